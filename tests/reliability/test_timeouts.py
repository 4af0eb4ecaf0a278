"""Timeouts against slow and stuck peers: request heads and bodies, stalled readers on
every transport, unanswered pings. Every socket is real, on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import orjson
import psutil
import pytest
from raw_websocket import build_frame, open_raw, open_tcp

from rtnb.server.hub import Hub, HubConfig
from rtnb.server.runner import HubServer
from rtnb.testing import WirePeer, wait_until

SLOWLORIS = 200
TIMEOUT = 1.0
#: how late a close may come after its deadline on a busy 2-core machine
SLACK = 1.5


@pytest.fixture
async def strict_server() -> AsyncIterator[HubServer]:
    config = HubConfig(handshake_timeout=TIMEOUT, body_timeout=TIMEOUT, write_timeout=0.5, ping_interval=0)
    async with HubServer(Hub(config)) as server:
        yield server


def open_fds() -> int:
    return psutil.Process().num_fds()


async def slowloris(port: int, kind: str) -> float:
    """One hostile client; returns seconds from connect to the hub closing the connection."""
    started = time.monotonic()  # before connecting: the hub's clock cannot start earlier
    reader, writer = await open_tcp("127.0.0.1", port)
    try:
        if kind == "drip":  # a request head that never ends, one byte at a time
            writer.write(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
        elif kind == "body":  # a complete head, then a body that never arrives
            writer.write(b'POST /publish/a/b HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n{"v":')
        # "silent" sends nothing at all
        while True:
            try:
                if not await asyncio.wait_for(reader.read(1024), 0.2):
                    return time.monotonic() - started
            except asyncio.TimeoutError:
                if kind == "drip":
                    writer.write(b"X")
            except ConnectionResetError:
                return time.monotonic() - started
    finally:
        writer.close()


async def test_200_slowloris_sockets_are_closed_within_the_timeout_and_fds_return(strict_server: HubServer) -> None:
    baseline = open_fds()
    assert strict_server.port is not None
    kinds = ["drip"] * (SLOWLORIS // 2) + ["silent"] * (SLOWLORIS // 4) + ["body"] * (SLOWLORIS // 4)
    durations = await asyncio.wait_for(
        asyncio.gather(*(slowloris(strict_server.port, kind) for kind in kinds)), TIMEOUT + 10
    )
    assert len(durations) == SLOWLORIS
    assert max(durations) <= TIMEOUT + SLACK, f"slowest close after {max(durations):.2f}s"
    assert min(durations) >= TIMEOUT * 0.9, "closed before the timeout: not the timeout at work"
    await wait_until(lambda: open_fds() <= baseline, timeout=5)
    async with WirePeer(strict_server.ws_url) as peer:  # the hub still serves
        assert (await peer.request({"op": "ping"}))["op"] == "pong"


async def fill_until_stalled(server: HubServer, topic: str, connections_before: int) -> None:
    """Publish 64 KiB messages until some connection has bytes its peer does not take."""
    hub = server.hub
    payload = {"blob": "x" * 65536}
    await wait_until(lambda: hub.connection_count > connections_before)
    deadline = time.monotonic() + 10
    while max(hub.queue_depths(), default=0) == 0:
        assert time.monotonic() < deadline, "the stalled reader never stalled the hub"
        hub.publish_now(topic, payload)
        await asyncio.sleep(0)  # let the hub flush


async def test_websocket_reader_that_stops_is_closed_by_the_write_timeout(strict_server: HubServer) -> None:
    hub = strict_server.hub
    peer = await open_raw(strict_server.ws_url, receive_buffer=4096)
    try:
        await peer.send(build_frame(0x1, orjson.dumps({"op": "subscribe", "topic": "stall/#"})))
        await wait_until(lambda: hub.fanout.subscription_count() == 1)
        await fill_until_stalled(strict_server, "stall/ws", 0)
        started = time.monotonic()
        await wait_until(lambda: hub.connection_count == 0, timeout=0.5 + SLACK + 1)
        assert time.monotonic() - started <= 0.5 + SLACK
        assert hub.stats.write_timeouts == 1
    finally:
        peer.close()


async def test_sse_reader_that_stops_is_closed_by_the_write_timeout(strict_server: HubServer) -> None:
    hub = strict_server.hub
    assert strict_server.port is not None
    _reader, writer = await open_tcp("127.0.0.1", strict_server.port, receive_buffer=4096)
    try:
        writer.write(b"GET /sse?topic=stall/%23 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await wait_until(lambda: hub.fanout.subscription_count() == 1)
        await fill_until_stalled(strict_server, "stall/sse", 0)
        await wait_until(lambda: hub.connection_count == 0, timeout=0.5 + SLACK + 1)
        assert hub.stats.write_timeouts == 1
    finally:
        writer.close()


async def test_long_poll_answer_nobody_reads_is_dropped_by_the_write_timeout(strict_server: HubServer) -> None:
    hub = strict_server.hub
    assert strict_server.port is not None
    for index in range(60):  # ~4 MiB of history: more than the socket buffers take
        hub.publish_now("stall/poll", {"index": index, "blob": "x" * 65536})
    watchdog = strict_server._http.watchdog  # type: ignore[union-attr]
    _reader, writer = await open_tcp("127.0.0.1", strict_server.port, receive_buffer=4096)
    try:
        writer.write(b"GET /poll?topic=stall/%23&last=60&timeout=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await wait_until(lambda: hub.stats.write_timeouts == 1, timeout=0.5 + SLACK + 2)
        await wait_until(lambda: not watchdog.streams)
    finally:
        writer.close()


async def test_slow_reader_that_keeps_reading_is_not_cut() -> None:
    """The write timeout is about progress: a reader slower than the writer survives it."""
    config = HubConfig(write_timeout=0.3, ping_interval=0)
    async with HubServer(Hub(config)) as server:
        hub = server.hub
        peer = await open_raw(server.ws_url, receive_buffer=4096)
        try:
            await peer.send(build_frame(0x1, orjson.dumps({"op": "subscribe", "topic": "slow/#"})))
            await wait_until(lambda: hub.fanout.subscription_count() == 1)
            # the hub's side of the socket with a small send buffer, so that the kernel cannot
            # absorb the backlog (loopback buffers grow to megabytes) and bytes wait in the hub
            (member,) = hub.fanout.members.values()
            member.sink._stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
            count = 60  # ~4 MB: more than the kernel's buffers hold, so bytes wait in the hub
            for index in range(count):
                hub.publish_now("slow/a", {"index": index, "blob": "y" * 65536})
            received = 0
            started = time.monotonic()
            backlog_seen_late = False
            while received < count:
                chunk = await asyncio.wait_for(peer.reader.read(65536), 5)
                assert chunk, "the hub closed a reader that was making progress"
                received += chunk.count(b'"op":"message"')
                assert hub.connection_count == 1, (received, hub.stats)
                if time.monotonic() - started > 2 * config.write_timeout and max(hub.queue_depths()) > 0:
                    backlog_seen_late = True
                await asyncio.sleep(0.005)  # the pace of a slow reader
            assert time.monotonic() - started > 3 * config.write_timeout
            assert backlog_seen_late, "bytes never waited long in the hub: the test proved nothing"
            assert hub.stats.write_timeouts == 0
            assert hub.connection_count == 1
        finally:
            peer.close()


async def test_websocket_peer_that_never_answers_pings_is_closed_with_1011() -> None:
    config = HubConfig(ping_interval=0.2, ping_timeout=0.2)
    async with HubServer(Hub(config)) as server:
        peer = await open_raw(server.ws_url)  # reads frames but never sends a pong
        try:
            started = time.monotonic()
            code, reason = await peer.read_close(timeout=3)
            assert (code, reason) == (1011, "ping timeout")
            assert time.monotonic() - started <= 0.4 + SLACK
        finally:
            peer.close()
        await wait_until(lambda: server.hub.connection_count == 0 and server.hub.heartbeat_count == 0)


def test_defaults_bound_every_wait() -> None:
    config = HubConfig()
    assert config.handshake_timeout <= 30  # Tornado's own default is an hour
    assert config.body_timeout <= 60
    assert config.write_timeout is not None and config.write_timeout <= 60
    assert config.ping_interval > 0 and config.ping_timeout > 0 and config.close_timeout > 0
