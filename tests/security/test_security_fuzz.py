"""Property-based fuzzing of a live hub: random frames and HTTP bodies, thousands of cases.

The hub runs on its own thread (as in a notebook kernel) with ``--auth jwt``;
hypothesis drives blocking clients from the test thread. For every input:

* the hub answers a ping sent right after it (it is still up and responsive),
* everything it sends back is a well-formed frame, and every error carries a
  code from the error tree and a sentence (no crash, no untyped error),
* input that is not a request object at all gets an error;

and over the whole run an observer subscribed to the fuzzed topics receives
every message published, in order and without gaps, and the memory held by
rtnb, Tornado and websockets code returns to its baseline once the fuzzing
connections are closed.
"""

from __future__ import annotations

import asyncio
import gc
import http.client
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import msgpack
import orjson
import pytest
import tornado
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from security_helpers import jwt_authenticator, make_token
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from rtnb.core import errors
from rtnb.core.auth import RateLimit
from rtnb.core.history import HistoryLimits
from rtnb.core.limits import Limits
from rtnb.core.topics import Pattern
from rtnb.server.hub import Hub, HubConfig
from rtnb.server.runner import HubServer
from rtnb.testing import wait_until

WARM_UP_EXAMPLES = 300
WEBSOCKET_EXAMPLES = int(os.environ.get("RTNB_FUZZ_EXAMPLES", "2000"))
HTTP_EXAMPLES = WEBSOCKET_EXAMPLES // 2
MAX_FRAME_BYTES = 64 * 2**10

KNOWN_CODES = {cls.code for cls in errors._all_subclasses(errors.RtnbError)} | {"not_found"}
REPLY_OPS = {
    "welcome",
    "ack",
    "subscribed",
    "unsubscribed",
    "pong",
    "message",
    "gap",
    "presence",
    "authenticated",
    "error",
}
VALID_OPS = ("subscribe", "unsubscribe", "publish", "ping", "auth", "presence")
FUZZ_TOPICS = ["fuzz/a", "fuzz/b", "fuzz/c/d", "fuzz"]
#: stands for a frame one byte over the limit (kept short in hypothesis's reports)
OVERSIZE = "<oversize frame>"


# -- the hub on its own thread ---------------------------------------------------------------


class ThreadedHub:
    """A HubServer running on a private event loop in a daemon thread."""

    def __init__(self, **server_options: Any) -> None:
        self.server_options = server_options
        self.server: HubServer | None = None
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self.server = HubServer(**self.server_options)
        await self.server.start()
        self._ready.set()
        await self._stop.wait()
        await self.server.stop()

    def __enter__(self) -> HubServer:
        self._thread.start()
        assert self._ready.wait(10), "hub did not start"
        assert self.server is not None
        return self.server

    def __exit__(self, *exc_info: object) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self.loop.close()

    def call(self, function: Any) -> Any:
        """Run ``function()`` on the hub's loop and return its result (hub state is loop-owned)."""

        async def run() -> Any:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def wait_until(self, predicate: Any, timeout: float = 10.0) -> None:
        """:func:`rtnb.testing.wait_until` on the hub's loop, so ``predicate`` reads loop-owned state safely."""
        asyncio.run_coroutine_threadsafe(wait_until(predicate, timeout), self.loop).result(timeout + 5)


# -- strategies --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
topics = st.one_of(
    st.sampled_from(FUZZ_TOPICS),
    st.sampled_from(
        [
            "fuzz/+",
            "fuzz/#",
            "#",
            "+/a",
            "plant/7/x",
            "$rtnb/x",
            "a//b",
            "/a",
            "a/",
            "",
            "a\x00b",
            "fuzz/#/x",
            "x" * 300,
            "a/" * 20 + "b",
        ]
    ),
    st.text(max_size=30),
    json_values,
)
ops = st.one_of(st.sampled_from(VALID_OPS), st.sampled_from(["bogus", "", "PUBLISH"]), json_values)
request_objects = st.fixed_dictionaries(
    {"op": ops},
    optional={
        "topic": topics,
        "data": json_values,
        "id": st.one_of(st.integers(), st.text(max_size=10), json_values, st.text(min_size=129, max_size=140)),
        "last": st.one_of(st.integers(-5, 200_000), json_values),
        "since": st.one_of(
            st.dictionaries(topics.filter(lambda t: isinstance(t, str)), st.integers(-3, 10**6), max_size=3),
            json_values,
        ),
        "token": st.one_of(st.text(max_size=40), st.just(make_token("fuzzer", ("fuzz/#",), ("fuzz/#",))), json_values),
    },
)


def to_json(value: Any) -> str:
    """JSON text by the standard library, which, unlike orjson, writes integers beyond 64 bits."""
    return json.dumps(value)


def to_msgpack(value: Any) -> bytes:
    try:
        return msgpack.packb(value)
    except OverflowError:  # integers beyond 64 bits have no MessagePack form
        return msgpack.packb(repr(value))


text_frames = st.one_of(
    request_objects.map(to_json),
    json_values.map(to_json),
    st.text(max_size=200),
    st.just(OVERSIZE),
)
binary_frames = st.one_of(
    st.binary(max_size=200),
    request_objects.map(to_msgpack),
    st.builds(
        lambda topic, raw: msgpack.packb({"op": "publish", "topic": topic, "data": raw}),
        st.sampled_from(FUZZ_TOPICS),
        st.binary(max_size=20),
    ),
)


def is_request_object(frame: str | bytes) -> bool:
    """Whether the frame decodes to an object with a known op (else an error is required)."""
    try:
        value = orjson.loads(frame) if isinstance(frame, str) else msgpack.unpackb(frame, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException):  # any undecodable frame
        return False
    return isinstance(value, dict) and value.get("op") in VALID_OPS


# -- the fuzzing peer ----------------------------------------------------------------------------


def open_connection(url: str, token: str, **options: Any) -> ClientConnection:
    """A blocking WebSocket client with a token, entered as the context manager it is."""
    connection = connect(url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=None, **options)
    return connection.__enter__()


class FuzzPeer:
    """A blocking WebSocket client that sends one frame, then a probe ping, and checks every reply."""

    def __init__(self, url: str, token: str, subprotocol: str | None = None) -> None:
        self.url, self.token, self.subprotocol = url, token, subprotocol
        self.connection: ClientConnection | None = None
        self.probes = 0
        self.reconnects = 0

    def open(self) -> ClientConnection:
        if self.connection is None:
            subprotocols = [self.subprotocol] if self.subprotocol else None
            self.connection = open_connection(self.url, self.token, subprotocols=subprotocols)
            assert self.read_objects(self.connection)[0]["op"] == "welcome"
            self.reconnects += 1
        return self.connection

    def read_objects(self, connection: ClientConnection) -> list[dict[str, Any]]:
        frame = connection.recv(timeout=10)
        if isinstance(frame, bytes):
            unpacker = msgpack.Unpacker(raw=False)
            unpacker.feed(frame)
            return list(unpacker)
        return [orjson.loads(line) for line in frame.split("\n")]

    def exchange(self, frame: str | bytes) -> list[dict[str, Any]]:
        """Send ``frame`` and a probe; the replies before the probe's pong (or the close)."""
        if frame == OVERSIZE:
            frame = "x" * (MAX_FRAME_BYTES + 1)
        connection = self.open()
        self.probes += 1
        probe = f"probe-{self.probes}"
        replies: list[dict[str, Any]] = []
        try:
            connection.send(frame)
            ping = {"op": "ping", "id": probe}
            connection.send(msgpack.packb(ping) if self.subprotocol else orjson.dumps(ping).decode())
            while True:
                for item in self.read_objects(connection):
                    if item.get("op") == "pong" and item.get("id") == probe:
                        return replies
                    replies.append(item)
        except ConnectionClosed as closed:
            self.connection = None
            code = closed.rcvd.code if closed.rcvd else None
            oversize = len(frame) > MAX_FRAME_BYTES
            assert oversize and code == 1009, f"closed with {code} after {frame[:200]!r}"
            assert self.open() is not None  # and the hub takes new connections
            return replies

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def check_replies(frame: str | bytes, replies: list[dict[str, Any]]) -> None:
    for reply in replies:
        assert isinstance(reply, dict) and reply.get("op") in REPLY_OPS, reply
        if reply["op"] == "error":
            assert reply["code"] in KNOWN_CODES, reply
            assert isinstance(reply["message"], str) and reply["message"], reply
    if frame != OVERSIZE and not is_request_object(frame):
        assert any(reply["op"] == "error" for reply in replies), (frame[:200], replies)


# -- the observer ----------------------------------------------------------------------------------


class Observer:
    """Subscribes to the fuzzed topics on another connection and checks it misses nothing."""

    def __init__(self, url: str, token: str) -> None:
        self.connection = open_connection(url, token)
        self.offsets: dict[str, list[int]] = {}
        self.problems: list[Any] = []
        self.subscribed = threading.Event()
        self.wanted: tuple[str, int] | None = None
        self.reached = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        self.connection.send(orjson.dumps({"op": "subscribe", "topic": "fuzz/#", "id": "observe"}).decode())
        assert self.subscribed.wait(5)

    def _read(self) -> None:
        try:
            for frame in self.connection:
                for item in (orjson.loads(line) for line in str(frame).split("\n")):
                    if item.get("op") == "message":
                        self.offsets.setdefault(item["topic"], []).append(item["offset"])
                        if self.wanted is not None and (item["topic"], item["offset"]) == self.wanted:
                            self.reached.set()
                    elif item.get("id") == "observe":
                        self.subscribed.set()
                    elif item.get("op") not in ("welcome",):
                        self.problems.append(item)
        except ConnectionClosed:
            pass

    def close(self) -> None:
        self.connection.close()
        self.thread.join(5)


# -- the test ----------------------------------------------------------------------------------------


WATCHED_MODULES = ("rtnb", "tornado", "websockets", "asyncio", "_asyncio", "socket", "ssl")


def live_objects() -> Counter[str]:
    """Live objects whose class comes from the hub's stack, by ``module.Class`` (after a full collection)."""
    gc.collect()
    counts: Counter[str] = Counter()
    for obj in gc.get_objects():
        module = type(obj).__module__
        if isinstance(module, str) and module.split(".", 1)[0] in WATCHED_MODULES:
            counts[f"{module}.{type(obj).__qualname__}"] += 1
    return counts


def resident_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


@pytest.fixture
def fuzz_hub() -> Iterator[tuple[ThreadedHub, HubServer]]:
    config = HubConfig(limits=Limits(max_frame_bytes=MAX_FRAME_BYTES), history=HistoryLimits(max_messages=20))
    authenticator = jwt_authenticator(rate_limit=RateLimit(1e6, 1e6))
    threaded = ThreadedHub(hub=Hub(config), authenticator=authenticator)
    with threaded as server:
        yield threaded, server


@pytest.fixture
def quick_thread_switches() -> Iterator[None]:
    """Three threads hand every frame to each other; switch between them sooner than every 5 ms."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    yield
    sys.setswitchinterval(previous)


@pytest.mark.timeout(240)  # about 50 s alone; more on a loaded CI machine
@pytest.mark.xfail(
    tornado.version_info < (6, 5),
    reason="OPEN: on Tornado 6.4 about 70 publish handlers and their HTTP/1 connections stay alive after "
    "the fuzz run (the final object count fails); on 6.5+ nothing is left behind",
    strict=False,
)
def test_fuzzing_a_live_hub(fuzz_hub: tuple[ThreadedHub, HubServer], quick_thread_switches: None) -> None:
    threaded, server = fuzz_hub
    hub = server.hub
    started = time.monotonic()
    token = make_token("fuzzer", ("fuzz/#",), ("fuzz/#",))
    observer = Observer(server.ws_url, token)

    # Warm up: fill every fuzzed topic's history so later publishes replace, not add.
    warm = FuzzPeer(server.ws_url, token)
    for index in range(25):
        for topic in FUZZ_TOPICS:
            warm.exchange(orjson.dumps({"op": "publish", "topic": topic, "data": {"warm": index}}).decode())
    warm.close()

    text_peer = FuzzPeer(server.ws_url, token)
    binary_peer = FuzzPeer(server.ws_url, token, subprotocol="rtnb.msgpack")
    json_peer_for_binary = FuzzPeer(server.ws_url, token)
    assert server.port is not None
    http_connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    common: dict[str, Any] = {
        "deadline": None,
        "database": None,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    }

    def fuzz_websocket(frame: str | bytes, on_msgpack: bool) -> None:
        peer = binary_peer if on_msgpack and isinstance(frame, bytes) else text_peer
        if isinstance(frame, bytes) and not on_msgpack:
            peer = json_peer_for_binary  # binary frames on a JSON connection are JSON bytes
            replies = peer.exchange(frame)
            for reply in replies:
                assert reply.get("op") in REPLY_OPS and (reply["op"] != "error" or reply["code"] in KNOWN_CODES)
            return
        check_replies(frame, peer.exchange(frame))

    http_bodies = st.one_of(
        st.binary(max_size=300),
        json_values.map(lambda value: to_json(value).encode()),
        st.lists(json_values.map(lambda value: to_json(value).encode()), max_size=5).map(b"\n".join),
    )
    content_types = st.sampled_from(
        [
            "application/json",
            "application/x-ndjson",
            "text/plain",
            "multipart/form-data",
            "application/octet-stream",
            "",
        ]
    )

    def fuzz_http(topic: Any, body: bytes, content_type: str, poll: bool, last: str, cursor: str) -> None:
        nonlocal http_connection
        quoted = quote(str(topic), safe="/")
        headers = {"Authorization": f"Bearer {token}"}
        if poll:
            path = (
                f"/poll?topic={quote(str(topic), safe='')}&last={quote(last, safe='')}"
                f"&cursor={quote(cursor, safe='')}&timeout=0"
            )
            method, payload = "GET", None
        else:
            path, method, payload = f"/publish/{quoted}", "POST", body
            if content_type:
                headers["Content-Type"] = content_type
        try:
            http_connection.request(method, path, body=payload, headers=headers)
            response = http_connection.getresponse()
        except (http.client.HTTPException, OSError):
            http_connection.close()
            http_connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            http_connection.request(method, path, body=payload, headers=headers)
            response = http_connection.getresponse()
        data = response.read()
        assert response.status < 500, (response.status, path, data[:300])
        if response.status >= 400:
            assert orjson.loads(data)["error"]["code"] in KNOWN_CODES, data
        if response.will_close:
            http_connection.close()
            http_connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)

    def run(examples: int) -> None:
        settings(max_examples=examples, **common)(
            given(frame=st.one_of(text_frames, binary_frames), on_msgpack=st.booleans())(fuzz_websocket)
        )()
        settings(max_examples=examples * HTTP_EXAMPLES // WEBSOCKET_EXAMPLES, **common)(
            given(
                topic=topics,
                body=http_bodies,
                content_type=content_types,
                poll=st.booleans(),
                last=st.one_of(st.text(max_size=8), st.integers(-5, 10**6).map(str)),
                cursor=st.text(max_size=40),
            )(fuzz_http)
        )()

    # A first short round builds hypothesis's tables and the hub's caches; then the
    # baseline is taken and the long round runs with allocations traced.
    def close_peers() -> None:
        for peer in (text_peer, binary_peer, json_peer_for_binary):
            peer.close()  # they reconnect on their next frame
        http_connection.close()
        threaded.wait_until(lambda: hub.connection_count == 1)  # the observer

    # A first round builds hypothesis's tables and the hub's caches and reaches the
    # steady state; its end is the baseline the long round must come back to.
    phase = time.monotonic()
    run(WARM_UP_EXAMPLES)
    close_peers()
    baseline_objects = threaded.call(live_objects)
    baseline_resident = resident_bytes()
    print(f"warm-up round: {time.monotonic() - phase:.1f} s")
    phase = time.monotonic()
    run(WEBSOCKET_EXAMPLES)
    print(f"long round: {time.monotonic() - phase:.1f} s")
    close_peers()
    fuzzed_in = time.monotonic() - started

    # The hub is up, and the observer got every message published on the fuzzed topics.
    final = FuzzPeer(server.ws_url, token)
    marker = final.exchange(orjson.dumps({"op": "publish", "topic": "fuzz/a", "data": "end", "id": "end"}).decode())
    final_offset = next(reply["offset"] for reply in marker if reply.get("op") == "ack")
    final.close()
    observer.wanted = ("fuzz/a", final_offset)
    assert observer.reached.wait(10) or observer.offsets["fuzz/a"][-1] == final_offset
    observer.close()
    assert observer.problems == []
    positions = threaded.call(lambda: hub.backplane.positions(Pattern.parse("fuzz/#")))
    assert set(observer.offsets) == set(positions)
    for topic, offsets in observer.offsets.items():
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets))), f"gap or reorder on {topic}"
        assert offsets[-1] == positions[topic].last_offset

    # Nothing leaks: connections, subscriptions, timers, counters, memory.
    def leftovers() -> tuple[int, int, int, int]:
        return (hub.connection_count, hub.heartbeat_count, hub.task_count, len(server.authenticator.connections))

    threaded.wait_until(lambda: leftovers() == (0, 0, 0, 0))
    grown = threaded.call(live_objects) - baseline_objects
    resident_growth = resident_bytes() - baseline_resident
    print(
        f"fuzzed {WEBSOCKET_EXAMPLES} frames and {HTTP_EXAMPLES} HTTP requests in {fuzzed_in:.1f} s; "
        f"objects grown: {dict(grown)}; resident memory {resident_growth / 2**20:+.1f} MiB; "
        f"errors by code: {dict(hub.stats.errors)}"
    )
    cached_patterns = grown.pop("rtnb.core.topics.Pattern", 0)
    assert cached_patterns <= 4096  # Pattern.parse's bounded cache
    assert sum(grown.values()) < 100, f"objects left behind after fuzzing: {dict(grown.most_common(10))}"
    assert resident_growth < 64 * 2**20  # the process's whole memory, hypothesis's own included
    assert sum(hub.stats.errors.values()) > WEBSOCKET_EXAMPLES // 4  # the fuzzer did reach the error paths
