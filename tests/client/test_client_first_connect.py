"""The first connect is retried with the backoff policy; ``fail_fast`` makes one attempt (issue 18)."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from rtnb.client import AsyncClient, BackoffPolicy, connect
from rtnb.client.sse import SSEClient
from rtnb.core.errors import Unavailable
from rtnb.server.hub import Hub, HubConfig
from rtnb.server.runner import HubServer

FAST = BackoffPolicy(initial=0.05, cap=0.2)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def start_late(port: int, delay: float = 1.0) -> HubServer:
    await asyncio.sleep(delay)
    server = HubServer(Hub(HubConfig(ping_interval=0)), port=port)
    await server.start()
    return server


async def test_async_client_waits_for_a_hub_that_starts_a_second_late() -> None:
    port = free_port()
    starting = asyncio.ensure_future(start_late(port))
    try:
        async with AsyncClient(f"http://127.0.0.1:{port}", backoff=FAST, ping_interval=None) as client:
            subscription = await client.subscribe("late/#")
            assert await client.publish("late/a", 1) == 1
            assert (await subscription.get(5)).offset == 1  # type: ignore[union-attr]
            assert client.reconnects == 0
    finally:
        await (await starting).stop()


async def test_sse_client_waits_for_a_hub_that_starts_a_second_late() -> None:
    port = free_port()
    starting = asyncio.ensure_future(start_late(port))
    try:
        async with SSEClient(f"http://127.0.0.1:{port}", "late/#", backoff=FAST) as stream:
            server = await starting
            server.hub.publish_now("late/a", 1)
            assert (await stream.get(5)).offset == 1  # type: ignore[union-attr]
    finally:
        await (await starting).stop()


async def test_sync_client_waits_for_a_hub_that_starts_a_second_late() -> None:
    port = free_port()
    starting = asyncio.ensure_future(start_late(port))
    try:
        client = await asyncio.to_thread(connect, f"http://127.0.0.1:{port}", backoff=FAST, ping_interval=None)
        try:
            assert await asyncio.to_thread(client.publish, "late/a", 1) == 1
        finally:
            await asyncio.to_thread(client.close)
    finally:
        await (await starting).stop()


@pytest.mark.parametrize("kind", ["websocket", "sse"])
async def test_fail_fast_makes_a_single_attempt(kind: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(Unavailable):
        if kind == "websocket":
            await AsyncClient(url, backoff=FAST, fail_fast=True).connect()
        else:
            await SSEClient(url, "a/#", backoff=FAST, fail_fast=True).connect()
    assert time.monotonic() - started < 1.0


async def test_without_a_hub_connect_gives_up_after_connect_timeout() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(Unavailable):
        await AsyncClient(url, backoff=FAST, connect_timeout=0.8).connect()
    assert 0.4 < time.monotonic() - started < 3.0
