"""``GET /sse`` over real loopback sockets: events, resume, gaps, keep-alive, many streams."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from rtnb.core.cursor import decode_cursor, encode_cursor
from rtnb.core.history import HistoryLimits
from rtnb.server import sse as sse_module
from rtnb.server.hub import HubConfig
from rtnb.server.runner import HubServer
from rtnb.testing import running_hub, wait_until


@dataclass
class Event:
    """One parsed SSE event (or comment, with ``event == ":comment"``)."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None

    @property
    def json(self) -> Any:
        return orjson.loads(self.data)


@dataclass
class SSEStream:
    """A raw HTTP/1.1 SSE client: request line, headers, chunked body, event parsing."""

    server: HubServer
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    _pending: bytes = b""
    _events: list[Event] = field(default_factory=list)
    ended: bool = False

    async def open(self) -> SSEStream:
        assert self.server.port is not None
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        lines = [f"GET {self.path} HTTP/1.1", f"Host: 127.0.0.1:{self.server.port}", "Accept: text/event-stream"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        status_line, *header_lines = head.decode().split("\r\n")
        self.status = int(status_line.split()[1])
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                self.response_headers[name.strip().lower()] = value.strip()
        return self

    async def body(self) -> bytes:
        """The whole body of a non-streaming (error) response."""
        assert self.reader is not None
        length = int(self.response_headers.get("content-length", "0"))
        return await asyncio.wait_for(self.reader.readexactly(length), 5)

    async def _read_chunk(self) -> bytes:
        assert self.reader is not None
        size_line = await self.reader.readuntil(b"\r\n")
        size = int(size_line.strip(), 16)
        chunk = await self.reader.readexactly(size + 2)
        if size == 0:
            self.ended = True
        return chunk[:-2]

    async def next(self, timeout: float = 5.0, comments: bool = False) -> Event:
        deadline = time.monotonic() + timeout
        while True:
            while self._events:
                event = self._events.pop(0)
                if comments or event.event != ":comment":
                    return event
            if self.ended:
                raise EOFError("the stream ended")
            chunk = await asyncio.wait_for(self._read_chunk(), max(0.001, deadline - time.monotonic()))
            self._feed(chunk)

    def _feed(self, chunk: bytes) -> None:
        self._pending += chunk
        while b"\n\n" in self._pending:
            block, self._pending = self._pending.split(b"\n\n", 1)
            event = Event()
            has_field = False
            for line in block.decode().split("\n"):
                if line.startswith(":"):
                    self._events.append(Event(event=":comment", data=line[1:].strip()))
                    continue
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                has_field = True
                if name == "event":
                    event.event = value
                elif name == "data":
                    event.data = value if not event.data else event.data + "\n" + value
                elif name == "id":
                    event.id = value
                elif name == "retry":
                    event.retry = int(value)
            if has_field:
                if not event.data:
                    event.event = ":no-data"  # browsers do not dispatch it (retry:, bare id:)
                self._events.append(event)

    async def until(self, kind: str, timeout: float = 5.0) -> Event:
        deadline = time.monotonic() + timeout
        while True:
            event = await self.next(max(0.001, deadline - time.monotonic()))
            if event.event == kind:
                return event

    async def messages(self, count: int, timeout: float = 5.0) -> list[Event]:
        """The next ``count`` message/gap events."""
        found: list[Event] = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            event = await self.next(max(0.001, deadline - time.monotonic()))
            if event.event in ("message", "gap"):
                found.append(event)
        return found

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass


def sse_path(*patterns: str, **query: Any) -> str:
    parts = [f"topic={quote(pattern, safe='')}" for pattern in patterns]
    parts += [f"{name}={quote(str(value), safe='')}" for name, value in query.items()]
    return "/sse?" + "&".join(parts)


async def open_stream(server: HubServer, path: str, **headers: str) -> SSEStream:
    return await SSEStream(server, path, headers=headers).open()


@pytest.fixture
async def fast_hub() -> AsyncIterator[HubServer]:
    async with running_hub(HubConfig(keepalive_interval=0.05, sse_retry=0.5)) as server:
        yield server


async def test_stream_headers_retry_welcome_and_ready(fast_hub: HubServer) -> None:
    stream = await open_stream(fast_hub, sse_path("plant/+/temp"))
    try:
        assert stream.status == 200
        assert stream.response_headers["content-type"].startswith("text/event-stream")
        assert stream.response_headers["cache-control"] == "no-cache"
        assert stream.response_headers["x-accel-buffering"] == "no"
        first = await stream.next()
        assert first.retry == 500
        welcome = await stream.until("welcome")
        assert welcome.json["version"] == 1
        subscribed = await stream.until("subscribed")
        assert subscribed.json["topic"] == "plant/+/temp"
        ready = await stream.until("ready")
        assert ready.id is not None and decode_cursor(ready.id) == {}
    finally:
        await stream.close()


async def test_messages_are_envelopes_with_a_cursor_id_on_the_last_event(fast_hub: HubServer) -> None:
    hub = fast_hub.hub
    stream = await open_stream(fast_hub, sse_path("plant/+/temp", "alarms/#"))
    try:
        await stream.until("ready")
        hub.publish_now("plant/boiler/temp", {"value": 71.5})
        hub.publish_now("alarms/boiler", {"level": "high"})
        hub.publish_now("other/topic", 1)
        events = await stream.messages(2)
        envelopes = [event.json for event in events]
        assert [(item["op"], item["topic"], item["offset"], item["data"]) for item in envelopes] == [
            ("message", "plant/boiler/temp", 1, {"value": 71.5}),
            ("message", "alarms/boiler", 1, {"level": "high"}),
        ]
        assert all(event.event == "message" for event in events)
        # One batch: only its last event carries the cursor, and it covers both topics.
        assert events[0].id is None
        assert events[1].id is not None
        since = decode_cursor(events[1].id)
        assert {topic: offset for topic, (_epoch, offset) in since.items()} == {
            "plant/boiler/temp": 1,
            "alarms/boiler": 1,
        }
        assert since["plant/boiler/temp"][0] == envelopes[0]["epoch"]
    finally:
        await stream.close()


async def test_last_replays_history_per_topic(fast_hub: HubServer) -> None:
    hub = fast_hub.hub
    for index in range(5):
        hub.publish_now("plant/a/temp", index)
        hub.publish_now("plant/b/temp", -index)
    stream = await open_stream(fast_hub, sse_path("plant/+/temp", last=2))
    try:
        events = await stream.messages(4)
        seen = sorted((event.json["topic"], event.json["offset"]) for event in events)
        assert seen == [("plant/a/temp", 4), ("plant/a/temp", 5), ("plant/b/temp", 4), ("plant/b/temp", 5)]
        ready = await stream.until("ready")
        assert {topic: offset for topic, (_, offset) in decode_cursor(ready.id or "").items()} == {
            "plant/a/temp": 5,
            "plant/b/temp": 5,
        }
    finally:
        await stream.close()


@pytest.mark.parametrize("how", ["header", "query"])
async def test_resume_with_last_event_id_across_two_topics(fast_hub: HubServer, how: str) -> None:
    hub = fast_hub.hub
    first = await open_stream(fast_hub, sse_path("plant/#"))
    await first.until("ready")
    for index in range(3):
        hub.publish_now("plant/a/temp", {"n": index})
        hub.publish_now("plant/b/pressure", {"n": index})
    received = await first.messages(6)
    last_id = [event.id for event in received if event.id][-1]
    await first.close()
    await wait_until(lambda: hub.connection_count == 0)
    # Published while the client is away, on both topics, plus a topic created meanwhile.
    for index in range(3, 6):
        hub.publish_now("plant/a/temp", {"n": index})
        hub.publish_now("plant/b/pressure", {"n": index})
    hub.publish_now("plant/c/new", {"n": 0})
    if how == "header":
        second = await open_stream(fast_hub, sse_path("plant/#", last=1), **{"Last-Event-ID": last_id or ""})
    else:
        second = await open_stream(fast_hub, sse_path("plant/#", lastEventId=last_id))
    try:
        missed = await second.messages(7)
        got = sorted((event.json["topic"], event.json["offset"]) for event in missed)
        assert got == sorted(
            [("plant/a/temp", offset) for offset in (4, 5, 6)]
            + [("plant/b/pressure", offset) for offset in (4, 5, 6)]
            + [("plant/c/new", 1)]
        )
        await second.until("ready")
        hub.publish_now("plant/a/temp", {"n": 6})
        live = await second.messages(1)
        assert (live[0].json["topic"], live[0].json["offset"]) == ("plant/a/temp", 7)
    finally:
        await second.close()


async def test_resume_reports_trimmed_history_as_a_gap() -> None:
    config = HubConfig(history=HistoryLimits(max_messages=5), keepalive_interval=0)
    async with running_hub(config) as server:
        hub = server.hub
        first = hub.publish_now("sensor/x", 0)
        cursor = encode_cursor({"sensor/x": (first.epoch, 1)})
        for index in range(1, 20):
            hub.publish_now("sensor/x", index)
        stream = await open_stream(server, sse_path("sensor/x"), **{"Last-Event-ID": cursor})
        try:
            gap, *messages = await stream.messages(6)
            assert gap.event == "gap"
            expected = {"op": "gap", "topic": "sensor/x", "from": 2, "to": 15, "reason": "trimmed"}
            expected["epoch"] = first.epoch
            assert gap.json == expected
            assert [event.json["offset"] for event in messages] == [16, 17, 18, 19, 20]
            # The cursor on the catch-up events already includes the gap and the messages.
            assert decode_cursor(messages[-1].id or "") == {"sensor/x": (first.epoch, 20)}
        finally:
            await stream.close()


async def test_resume_from_another_epoch_reports_epoch_changed(fast_hub: HubServer) -> None:
    hub = fast_hub.hub
    message = hub.publish_now("sensor/y", 1)
    stale = encode_cursor({"sensor/y": (message.epoch - 1, 7)})
    stream = await open_stream(fast_hub, sse_path("sensor/y"), **{"Last-Event-ID": stale})
    try:
        gap, replayed = await stream.messages(2)
        assert gap.event == "gap"
        assert gap.json["reason"] == "epoch_changed" and gap.json["from"] == 8 and gap.json["to"] is None
        assert replayed.json["offset"] == 1 and replayed.json["epoch"] == message.epoch
    finally:
        await stream.close()


async def test_keepalive_comments_arrive_at_the_interval(fast_hub: HubServer) -> None:
    stream = await open_stream(fast_hub, sse_path("quiet/topic"))
    try:
        await stream.until("ready")
        comments = 0
        started = time.monotonic()
        while comments < 3:
            event = await stream.next(timeout=2.0, comments=True)
            comments += event.event == ":comment" and event.data == "keepalive"
        assert time.monotonic() - started < 2.0
    finally:
        await stream.close()


async def test_many_concurrent_streams_get_every_message_from_one_encoding(
    fast_hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = 0
    original = sse_module.build_batch_events

    def counting(cursors: Any, batch: Any) -> bytes:
        nonlocal builds
        builds += 1
        return original(cursors, batch)

    monkeypatch.setattr(sse_module, "build_batch_events", counting)
    hub = fast_hub.hub
    streams = [await open_stream(fast_hub, sse_path("fleet/+/pos")) for _ in range(100)]
    try:
        await asyncio.gather(*(stream.until("ready") for stream in streams))
        assert hub.connection_count == 100
        for index in range(20):
            hub.publish_now(f"fleet/{index % 4}/pos", {"i": index})
        hub.flush()
        assert builds == 1  # one group, one batch, one encoding for 100 streams
        results = await asyncio.gather(*(stream.messages(20) for stream in streams))
        for events in results:
            assert [event.json["data"]["i"] for event in events] == list(range(20))
    finally:
        for stream in streams:
            await stream.close()
    await wait_until(lambda: hub.connection_count == 0)


async def test_closing_the_client_disconnects_its_member(fast_hub: HubServer) -> None:
    stream = await open_stream(fast_hub, sse_path("a/b"))
    await stream.until("ready")
    assert fast_hub.hub.connection_count == 1
    await stream.close()
    await wait_until(lambda: fast_hub.hub.connection_count == 0)


async def test_hub_shutdown_ends_the_stream_with_an_error_event() -> None:
    server = HubServer(port=0)
    await server.start()
    stream = await open_stream(server, sse_path("a/b"))
    try:
        await stream.until("ready")
        stopping = asyncio.ensure_future(server.stop())
        error = await stream.until("error")
        assert error.json["code"] == "closed"
        await asyncio.wait_for(stopping, 5)
    finally:
        await stream.close()


@pytest.mark.parametrize(
    ("path", "headers", "code"),
    [
        ("/sse", {}, "missing_field"),
        (sse_path("a/#/b"), {}, "invalid_pattern"),
        (sse_path("a//b"), {}, "invalid_pattern"),
        (sse_path("a", last="x"), {}, "bad_field"),
        (sse_path("a", last=-1), {}, "bad_field"),
        (sse_path("a"), {"Last-Event-ID": "not-a-cursor!"}, "bad_cursor"),
        (sse_path("a", lastEventId=encode_cursor({"a": (1, 1)})[:-3]), {}, "bad_cursor"),
        (sse_path("a", lastEventId="WyJsaXN0Il0"), {}, "bad_cursor"),  # base64url of ["list"]
    ],
)
async def test_bad_requests_get_typed_json_errors(
    fast_hub: HubServer, path: str, headers: dict[str, str], code: str
) -> None:
    stream = await open_stream(fast_hub, path, **headers)
    try:
        assert stream.status == 400
        assert stream.response_headers["content-type"] == "application/json"
        body = orjson.loads(await stream.body())
        assert body["error"]["code"] == code
        assert body["error"]["message"].endswith(".")
    finally:
        await stream.close()
    assert fast_hub.hub.stats.errors[code] == 1
    assert fast_hub.hub.connection_count == 0


async def test_a_backplane_failure_after_the_headers_becomes_an_error_event(
    fast_hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rtnb.core.errors import Unavailable

    async def refuse(patterns: Any) -> None:
        raise Unavailable("The backplane is down.")

    monkeypatch.setattr(fast_hub.hub.backplane, "watch", refuse)
    stream = await open_stream(fast_hub, sse_path("a/b"))
    try:
        assert stream.status == 200
        error = await stream.until("error")
        assert error.json == {"op": "error", "code": "unavailable", "message": "The backplane is down."}
        with pytest.raises(EOFError):
            await stream.next()
    finally:
        await stream.close()
    await wait_until(lambda: fast_hub.hub.connection_count == 0)
    assert fast_hub.hub.stats.errors["unavailable"] == 1
