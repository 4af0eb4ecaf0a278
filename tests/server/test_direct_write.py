"""Fan-out writes that go straight to the socket when Tornado's buffer is empty.

``HubWebSocket._write`` sends with ``socket.send`` itself and hands Tornado's
``IOStream`` only what the kernel did not take. These tests check that this
shortcut is taken, and that when a subscriber stops reading — so sends come
back short and the rest queues in Tornado — every message still arrives once,
in order, with nothing lost at the seam.
"""

from __future__ import annotations

import asyncio
import socket

import orjson
import websockets

from rtnb.core.history import HistoryLimits
from rtnb.server.hub import HubConfig
from rtnb.server.websocket import HubWebSocket, buffered_bytes
from rtnb.testing import running_hub, wait_until

TOPIC = "plant/boiler/temp"


async def subscribe(url: str, **options: object) -> websockets.ClientConnection:
    connection = await websockets.connect(url, **options)  # type: ignore[arg-type]
    assert orjson.loads(await connection.recv())["op"] == "welcome"
    await connection.send(orjson.dumps({"op": "subscribe", "topic": TOPIC}).decode())
    assert orjson.loads(await connection.recv())["op"] == "subscribed"
    return connection


def only_sink(server: object) -> HubWebSocket:
    members = list(server.hub.fanout.members.values())  # type: ignore[attr-defined]
    assert len(members) == 1
    sink = members[0].sink
    assert isinstance(sink, HubWebSocket)
    return sink


async def offsets_received(connection: websockets.ClientConnection, count: int, timeout: float = 10.0) -> list[int]:
    offsets: list[int] = []
    async with asyncio.timeout(timeout):
        while len(offsets) < count:
            frame = await connection.recv()
            for line in frame.split("\n"):
                item = orjson.loads(line)
                assert item["op"] == "message", item
                offsets.append(item["offset"])
    return offsets


async def test_fan_out_bypasses_the_iostream_when_its_buffer_is_empty() -> None:
    async with running_hub() as server:
        connection = await subscribe(server.ws_url)
        try:
            stream = only_sink(server)._stream
            assert stream is not None
            queued_before = stream._total_write_index  # type: ignore[attr-defined]
            for value in range(5):
                server.hub.publish_now(TOPIC, {"value": value})
                await asyncio.sleep(0)  # one flush per message
            assert await offsets_received(connection, 5) == [1, 2, 3, 4, 5]
            # Every byte went to the kernel directly: Tornado's write counter never moved.
            assert stream._total_write_index == queued_before  # type: ignore[attr-defined]
        finally:
            await connection.close()


async def test_a_subscriber_that_stops_reading_still_gets_everything_in_order() -> None:
    count, payload = 1000, "x" * 1000
    config = HubConfig(history=HistoryLimits(max_messages=count + 100, max_bytes=64 * 2**20))
    async with running_hub(config) as server:
        # max_queue=1: the client stops reading its socket after a frame or two.
        connection = await subscribe(server.ws_url, max_queue=1, max_size=2**24)
        try:
            sink = only_sink(server)
            stream = sink._stream
            assert stream is not None and stream.socket is not None
            # A small send buffer, so sends come back short long before 1 MB (the
            # client's receive buffer holds what its kernel accepted so far).
            stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
            for start in range(0, count, 50):
                for value in range(start, start + 50):
                    server.hub.publish_now(TOPIC, {"value": value, "pad": payload})
                await asyncio.sleep(0)  # let each group of 50 flush as its own batch
            # The kernel's buffers filled up: part of the stream waits in Tornado.
            await wait_until(lambda: buffered_bytes(stream) > 0, timeout=5.0)
            assert sink.member is not None and sink.member.state.value == "live"
            stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2**20)  # drain quickly now
            offsets = await offsets_received(connection, count, timeout=20.0)
            assert offsets == list(range(1, count + 1))
            assert server.hub.stats.lag_events == 0
        finally:
            await connection.close()
