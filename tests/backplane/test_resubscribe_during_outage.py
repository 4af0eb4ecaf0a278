"""A re-subscribe refused during a Redis outage is retried until Redis is back (issue 18, item 2).

A private ``redis-server`` is stopped while a client is away; when the client comes
back its re-subscribe is answered ``unavailable``. The client must keep the
subscription, tell the application, retry with backoff, and once Redis is back
resume without loss: the messages published while it was away arrive, once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from redis_helpers import PrivateRedis, redis_hub

from rtnb.client import AsyncClient, BackoffPolicy, connect
from rtnb.client.sse import SSEClient
from rtnb.core.errors import RtnbError
from rtnb.core.message import Message
from rtnb.server.hub import Hub
from rtnb.testing import wait_until

FAST = BackoffPolicy(initial=0.05, cap=0.2)


class Gate:
    """A ``sleep`` for the client's backoff that waits while the gate is shut (the client stays away)."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()

    async def sleep(self, delay: float) -> None:
        await self.open.wait()
        await asyncio.sleep(min(delay, 0.1))


def cut_every_connection(hub: Hub) -> None:
    """The hub ends every client connection (the clients reconnect)."""
    for member in list(hub.fanout.members.values()):
        if member.sink is not None:
            member.sink.close(1011, "test: connection cut")


async def away_while_redis_goes_down(
    hub: Hub, redis: PrivateRedis, gate: Gate, topic: str, connected: Callable[[], bool]
) -> list[int]:
    """Cut the client, publish two messages while it is away, stop Redis, let the client back."""
    gate.open.clear()
    cut_every_connection(hub)
    await wait_until(lambda: not connected(), timeout=10)
    offsets = [(await hub.publish(topic, value)).offset for value in ("m2", "m3")]
    redis.stop()
    gate.open.set()
    return offsets


async def test_async_client_retries_a_refused_resubscribe_and_resumes_without_loss(
    private_redis: PrivateRedis,
) -> None:
    prefix = f"rtnb:outage-{uuid.uuid4().hex[:8]}:"
    async with redis_hub(private_redis.url, prefix, "h1") as server:
        gate = Gate()
        errors: list[RtnbError] = []
        client = AsyncClient(server.url, backoff=FAST, ping_interval=None, sleep=gate.sleep, on_error=errors.append)
        async with client:
            subscription = await client.subscribe("o/#")
            await client.publish("o/a", "m1")
            first = await subscription.get(10)
            assert isinstance(first, Message) and first.offset == 1
            missed = await away_while_redis_goes_down(
                server.hub,
                private_redis,
                gate,
                "o/a",
                lambda: client.client_id is not None and client.state.value == "connected",
            )
            await wait_until(lambda: any(error.code == "unavailable" for error in errors), timeout=15)
            assert subscription.active is False
            assert client.status()["refused_subscriptions"] == ["o/#"]
            await private_redis.start()
            items = [await subscription.get(30), await subscription.get(30)]
            assert [(item.topic, item.offset, item.data) for item in items] == [  # type: ignore[union-attr]
                ("o/a", missed[0], "m2"),
                ("o/a", missed[1], "m3"),
            ]
            await wait_until(lambda: subscription.active, timeout=5)
            assert client.gaps_reported == 0 and not subscription.closed
            await client.publish("o/a", "m4")
            live = await subscription.get(10)
            assert (live.offset, live.data) == (4, "m4")  # type: ignore[union-attr]


async def test_sync_client_retries_a_refused_resubscribe_and_resumes_without_loss(private_redis: PrivateRedis) -> None:
    prefix = f"rtnb:outage-{uuid.uuid4().hex[:8]}:"
    async with redis_hub(private_redis.url, prefix, "h1") as server:
        gate = Gate()
        gate_loop: dict[str, Any] = {}

        async def sleep(delay: float) -> None:  # runs on the client's own thread and loop
            while not gate_loop.get("open", True):
                await asyncio.sleep(0.02)
            await asyncio.sleep(min(delay, 0.1))

        client = await asyncio.to_thread(connect, server.url, backoff=FAST, ping_interval=None, sleep=sleep)
        try:
            subscription = await asyncio.to_thread(client.subscribe, "o/#")
            await server.hub.publish("o/a", "m1")
            assert (await asyncio.to_thread(subscription.get, 10)).offset == 1  # type: ignore[union-attr]
            gate_loop["open"] = False
            missed = await away_while_redis_goes_down(
                server.hub, private_redis, gate, "o/a", lambda: client.state.value == "connected"
            )
            gate_loop["open"] = True
            await wait_until(lambda: client.status()["refused_subscriptions"] == ["o/#"], timeout=15)
            await private_redis.start()
            items = [await asyncio.to_thread(subscription.get, 30) for _ in range(2)]
            assert [(item.offset, item.data) for item in items] == [(missed[0], "m2"), (missed[1], "m3")]  # type: ignore[union-attr]
        finally:
            await asyncio.to_thread(client.close)


async def test_sse_client_keeps_asking_while_redis_is_down_and_resumes_without_loss(
    private_redis: PrivateRedis,
) -> None:
    prefix = f"rtnb:outage-{uuid.uuid4().hex[:8]}:"
    async with redis_hub(private_redis.url, prefix, "h1") as server:
        gate = Gate()
        async with SSEClient(server.url, "o/#", backoff=FAST, sleep=gate.sleep) as stream:
            await wait_until(lambda: stream.last_event_id is not None, timeout=10)
            await server.hub.publish("o/a", "m1")
            assert (await stream.get(10)).offset == 1  # type: ignore[union-attr]
            missed = await away_while_redis_goes_down(
                server.hub, private_redis, gate, "o/a", lambda: stream.state.value == "connected"
            )
            await wait_until(lambda: stream.last_error is not None and stream.last_error.code == "unavailable", 15)
            await private_redis.start()
            items = [await stream.get(30), await stream.get(30)]
            assert [(item.offset, item.data) for item in items] == [(missed[0], "m2"), (missed[1], "m3")]  # type: ignore[union-attr]
            assert stream.gaps_reported == 0
