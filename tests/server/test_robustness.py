"""Slow consumers, dead peers and shutdown, over real sockets."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import sys

import orjson
import pytest
import websockets
from websockets.asyncio.client import connect

from rtnb.core.history import HistoryLimits
from rtnb.core.limits import Limits
from rtnb.server.hub import HubConfig
from rtnb.server.runner import HubServer
from rtnb.testing import WirePeer, running_hub, wait_until

PAYLOAD = "x" * 1000


def small_buffer_socket(server: HubServer) -> socket.socket:
    """A client socket whose kernel receive buffer is tiny, so a peer that stops
    reading pushes back on the hub quickly instead of after megabytes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    return sock


async def read_objects(connection: websockets.ClientConnection, until: int, timeout: float = 20.0) -> list[dict]:
    """Read message and gap objects until offsets up to ``until`` are accounted for."""
    objects: list[dict] = []
    accounted = 0

    async def run() -> None:
        nonlocal accounted
        while accounted < until:
            frame = await connection.recv()
            for line in frame.split("\n"):
                item = orjson.loads(line)
                if item["op"] == "message":
                    objects.append(item)
                    accounted = max(accounted, item["offset"])
                elif item["op"] == "gap":
                    objects.append(item)
                    accounted = max(accounted, item["to"] or 0)

    await asyncio.wait_for(run(), timeout)
    return objects


def assert_every_offset_once(objects: list[dict], last: int) -> tuple[int, int]:
    """Each offset 1..last is delivered exactly once or covered by a gap; order kept."""
    seen: list[int] = []
    gapped: set[int] = set()
    for item in objects:
        if item["op"] == "message":
            seen.append(item["offset"])
        else:
            gapped.update(range(item["from"], item["to"] + 1))
    assert seen == sorted(seen), "messages out of order"
    assert len(seen) == len(set(seen)), "duplicate messages"
    assert not (set(seen) & gapped), "a message was both delivered and reported lost"
    assert set(seen) | gapped == set(range(1, last + 1)), "a message was lost silently"
    return len(seen), len(gapped)


async def flood(publisher: WirePeer, count: int) -> None:
    for index in range(count):
        await publisher.send({"op": "publish", "topic": "flood", "data": {"i": index, "pad": PAYLOAD}})
    await publisher.request({"op": "ping"})


async def run_slow_consumer(config: HubConfig, count: int) -> tuple[HubServer, list[dict], list[dict], list[int]]:
    async with running_hub(config) as server:
        slow = await connect(server.ws_url, sock=small_buffer_socket(server), max_queue=1)
        await slow.recv()  # welcome
        await slow.send(orjson.dumps({"op": "subscribe", "topic": "flood"}).decode())
        assert orjson.loads(await slow.recv())["op"] == "subscribed"
        depths: list[int] = []
        async with WirePeer(server.ws_url) as fast, WirePeer(server.ws_url) as publisher:
            await fast.request({"op": "subscribe", "topic": "flood"})
            fast_task = asyncio.ensure_future(fast.messages(count, timeout=30))

            async def sample() -> None:
                while not fast_task.done():
                    depths.append(max(server.hub.queue_depths()))
                    await asyncio.sleep(0.002)

            sampler = asyncio.ensure_future(sample())
            await flood(publisher, count)
            fast_received = await fast_task
            await sampler
            assert server.hub.stats.lag_events >= 1
            slow_received = await read_objects(slow, until=count)
        await slow.close()
        return server, fast_received, slow_received, depths


async def test_a_slow_consumer_neither_grows_memory_nor_slows_others_and_catches_up_losslessly() -> None:
    limit = 64 * 1024
    config = HubConfig(
        limits=Limits(max_queue_bytes=limit, max_batch_bytes=16 * 1024),
        history=HistoryLimits(max_messages=100_000, max_bytes=64 * 2**20),
    )
    count = 3000  # about 3 MB
    _server, fast, slow, depths = await run_slow_consumer(config, count)
    assert [m["offset"] for m in fast] == list(range(1, count + 1))
    # the hub stops writing to a member once it is over its limit: the buffer exceeds the
    # limit by at most one batch, and a batch holds what the publishers sent in one loop
    # turn (Tornado yields after reading 64 KiB from a connection)
    assert max(depths) <= limit + 64 * 1024 + 8 * 1024
    delivered, lost = assert_every_offset_once(slow, count)
    assert (delivered, lost) == (count, 0)


async def test_a_slow_consumer_gets_gaps_for_what_history_no_longer_holds() -> None:
    config = HubConfig(
        limits=Limits(max_queue_bytes=32 * 1024, max_batch_bytes=8 * 1024),
        history=HistoryLimits(max_messages=200),
    )
    count = 3000
    _server, fast, slow, _depths = await run_slow_consumer(config, count)
    assert len(fast) == count
    delivered, lost = assert_every_offset_once(slow, count)
    assert lost > 0 and delivered > 0
    assert {item["reason"] for item in slow if item["op"] == "gap"} == {"trimmed"}


async def test_a_consumer_stuck_past_max_lag_is_closed_with_1008() -> None:
    config = HubConfig(limits=Limits(max_queue_bytes=16 * 1024, max_lag_seconds=0.3), close_timeout=0.3)
    async with running_hub(config) as server:
        stuck = await connect(server.ws_url, sock=small_buffer_socket(server), max_queue=1, close_timeout=0.1)
        await stuck.recv()
        await stuck.send(orjson.dumps({"op": "subscribe", "topic": "flood"}).decode())
        async with WirePeer(server.ws_url) as publisher:
            await flood(publisher, 8000)  # more than the kernel buffers on loopback absorb
            await wait_until(lambda: server.hub.stats.slow_consumer_closes == 1, timeout=10)
            await wait_until(lambda: server.hub.connection_count == 1, timeout=10)
        await stuck.close()


async def raw_handshake(server: HubServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a WebSocket by hand, so nothing answers the hub's pings."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    return reader, writer


async def test_a_peer_that_stops_answering_pings_is_closed() -> None:
    config = HubConfig(ping_interval=0.2, ping_timeout=0.2, close_timeout=0.2)
    async with running_hub(config) as server:
        reader, writer = await raw_handshake(server)
        async with WirePeer(server.ws_url) as healthy:
            await wait_until(lambda: server.hub.connection_count == 2)
            received = await asyncio.wait_for(reader.read(-1), timeout=5)  # returns at EOF
            assert b"\x89" in received  # it was pinged (opcode 9)
            assert b"ping timeout" in received  # then told why it is closed
            await wait_until(lambda: server.hub.connection_count == 1)
            # the websockets client answers pings, so it survives several rounds
            await asyncio.sleep(0.8)
            assert await healthy.request({"op": "ping"}) == {"op": "pong"}
        writer.close()


async def test_serve_closes_clients_with_1001_and_exits_zero_on_ctrl_c() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rtnb",
        "serve",
        "--port",
        "0",
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    url = None
    while url is None:
        line = (await asyncio.wait_for(process.stderr.readline(), 20)).decode()
        assert line, "rtnb serve exited before announcing its URL"
        if "WebSocket: " in line:
            url = line.split("WebSocket: ")[1].split(";")[0]
    peers = [WirePeer(url) for _ in range(3)]
    for peer in peers:
        await peer.__aenter__()
        await peer.request({"op": "subscribe", "topic": "#"})
    process.send_signal(signal.SIGINT)
    for peer in peers:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await peer.next(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert await asyncio.wait_for(process.wait(), 5) == 0
