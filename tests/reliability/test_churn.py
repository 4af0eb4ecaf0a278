"""Churn: 5,000 connect/subscribe/disconnect cycles over WebSocket, SSE and long
polling, with messages flowing, clean and abrupt disconnects mixed. Afterwards
nothing may have grown: connections, subscriptions, fan-out groups, hub tasks,
heartbeat registrations, watched streams, HTTP connections, asyncio tasks, file
descriptors; history stays within its limits and memory within a budget.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import struct
from typing import Any

import orjson
import psutil
from raw_websocket import build_frame, open_raw, open_tcp

from rtnb.core.history import HistoryLimits
from rtnb.core.topics import Pattern
from rtnb.server.hub import Hub, HubConfig
from rtnb.server.metrics import render_metrics
from rtnb.server.runner import HubServer
from rtnb.testing import wait_until

CYCLES = {"ws": 2500, "sse": 1500, "poll": 1000}
CONCURRENCY = 16
#: RSS growth allowed over 5,000 cycles (allocator arenas, caches); a leak of one
#: handler per cycle would be several times this
MEMORY_BUDGET = 40 * 2**20
TOPICS = [f"churn/{name}/value" for name in ("a", "b", "c", "d")]


async def websocket_cycle(server: HubServer, number: int) -> None:
    peer = await open_raw(server.ws_url)
    try:
        await peer.read_frame()  # welcome
        pattern = f"churn/{'abcd'[number % 4]}/#" if number % 3 else "churn/#"
        await peer.send(build_frame(0x1, orjson.dumps({"op": "subscribe", "topic": pattern, "last": 2})))
        while b'"subscribed"' not in (await peer.read_frame())[1]:
            pass
        if number % 2:  # a clean close handshake
            await peer.send(build_frame(0x8, struct.pack("!H", 1000)))
            await peer.read_close()
    finally:
        if number % 2:
            peer.close()
        else:  # vanish without a close frame
            peer.writer.transport.abort()


async def http_request(server: HubServer, target: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    assert server.port is not None
    reader, writer = await open_tcp("127.0.0.1", server.port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return reader, writer


async def sse_cycle(server: HubServer, number: int) -> None:
    reader, writer = await http_request(server, f"/sse?topic=churn/{'abcd'[number % 4]}/%23&last=1")
    try:
        await asyncio.wait_for(reader.readuntil(b"event: ready"), 5)
    finally:
        if number % 2:
            writer.close()
        else:
            writer.transport.abort()


async def poll_cycle(server: HubServer, number: int) -> None:
    timeout = "0" if number % 2 else "0.05"
    reader, writer = await http_request(server, f"/poll?topic=churn/%23&last=1&timeout={timeout}")
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200"), head[:80]
    finally:
        writer.close()


CYCLE_FUNCTIONS = {"ws": websocket_cycle, "sse": sse_cycle, "poll": poll_cycle}


async def churn(server: HubServer, plan: list[tuple[str, int]]) -> None:
    queue = iter(plan)

    async def worker() -> None:
        for transport, number in queue:
            await CYCLE_FUNCTIONS[transport](server, number)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def publisher(hub: Hub, stop: asyncio.Event) -> int:
    published = 0
    for index in itertools.count():
        if stop.is_set():
            return published
        hub.publish_now(TOPICS[index % len(TOPICS)], {"index": index})
        published += 1
        try:
            await asyncio.wait_for(stop.wait(), 0.002)
        except asyncio.TimeoutError:
            pass
    return published


def snapshot(server: HubServer) -> dict[str, Any]:
    hub = server.hub
    http = server._http
    assert http is not None and http.watchdog is not None
    gc.collect()
    return {
        "connections": hub.connection_count,
        "members": len(hub.fanout.members),
        "subscriptions": hub.fanout.subscription_count(),
        "groups": len(hub.fanout.groups),
        "hub tasks": hub.task_count,
        "heartbeat connections": hub.heartbeat_count,
        "watched streams": len(http.watchdog.streams),
        "http connections": len(http._connections),
        "asyncio tasks": len(asyncio.all_tasks()),
        "fds": psutil.Process().num_fds(),
    }


async def quiescent(server: HubServer) -> None:
    """Every connection gone from the hub and the HTTP server; closed streams swept (within a second)."""
    http = server._http
    assert http is not None and http.watchdog is not None
    watchdog = http.watchdog
    await wait_until(lambda: server.hub.connection_count == 0 and not http._connections, timeout=10)
    await wait_until(lambda: not watchdog.streams, timeout=watchdog.interval * 3)


def interleaved(cycles: dict[str, int], offset: int = 0) -> list[tuple[str, int]]:
    plan = [(transport, offset + number) for transport, count in cycles.items() for number in range(count)]
    return sorted(plan, key=lambda item: (item[1] * 7919) % 10007)


async def test_5000_cycles_leave_nothing_behind() -> None:
    history = HistoryLimits(max_messages=50)
    config = HubConfig(history=history, ping_interval=5.0, ping_timeout=5.0, keepalive_interval=5.0)
    async with HubServer(Hub(config)) as server:
        hub = server.hub
        stop = asyncio.Event()
        publishing = asyncio.ensure_future(publisher(hub, stop))
        await churn(server, interleaved({"ws": 60, "sse": 30, "poll": 30}))  # warm-up: caches, timers
        await quiescent(server)
        before = snapshot(server)
        rss_before = psutil.Process().memory_info().rss

        await asyncio.wait_for(churn(server, interleaved(CYCLES, offset=1000)), 150)

        stop.set()
        published = await publishing
        await quiescent(server)
        await wait_until(lambda: snapshot(server)["fds"] <= before["fds"], timeout=10)
        after = snapshot(server)
        rss_after = psutil.Process().memory_info().rss

    print(before, after, f"RSS +{(rss_after - rss_before) / 2**20:.1f} MiB", f"published {published}")
    assert published > 100
    assert hub.stats.connections_opened >= sum(CYCLES.values())
    grown = {name: (before[name], after[name]) for name in before if after[name] > before[name]}
    assert grown == {}, f"grew over {sum(CYCLES.values())} cycles: {grown}"
    assert after["connections"] == after["subscriptions"] == after["groups"] == 0
    assert after["hub tasks"] == after["heartbeat connections"] == 0
    health = hub.backplane.health()
    assert health["topics"] == len(TOPICS)
    positions = hub.backplane.positions(Pattern.parse("churn/#"))
    retained = [position.last_offset - position.first_offset + 1 for position in positions.values()]
    assert len(retained) == len(TOPICS) and max(retained) <= history.max_messages
    assert rss_after - rss_before <= MEMORY_BUDGET, f"RSS grew {(rss_after - rss_before) / 2**20:.1f} MiB"
    metrics = render_metrics(hub).decode()
    for line in (
        "rtnb_connections 0.0",
        "rtnb_subscriptions 0.0",
        "rtnb_groups 0.0",
        "rtnb_hub_tasks 0.0",
        "rtnb_heartbeat_connections 0.0",
    ):
        assert line in metrics
