"""A hub cut off from Redis catches up with exactly the right gaps, never losing a message silently.

Each test cuts one in-process hub (B) off Redis and keeps it off (its
reconnect waits on a gate) while history moves on without it, then lets it
back and checks what its live subscriber receives: the gap that covers what
history no longer holds (inclusive range, reason, epoch), then the retained
messages, then nothing twice. Redis is a private ``redis-server`` on a free
port: these tests stop it or cut its clients.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from redis_helpers import PrivateRedis, eventually, redis_hub

from rtnb.backplane.redis import BackplaneState, RedisBackplane
from rtnb.core.history import HistoryLimits
from rtnb.server.hub import HubConfig
from rtnb.server.runner import HubServer
from rtnb.testing import WirePeer, wait_until

pytestmark = pytest.mark.timeout(60)


class GatedReconnect(RedisBackplane):
    """Reconnects only while ``gate`` is set, so a test decides how long a hub stays cut off."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = asyncio.Event()
        self.gate.set()

    async def _connect(self, node: Any, listener: Any) -> None:
        await self.gate.wait()
        await super()._connect(node, listener)


async def publish(peer: WirePeer, topic: str, data: Any) -> dict[str, Any]:
    """Publish with an id and return the hub's acknowledgement."""
    ack = await peer.request({"op": "publish", "topic": topic, "data": data, "id": uuid.uuid4().hex[:8]})
    assert ack["op"] == "ack", ack
    return ack


def gated(server: HubServer) -> GatedReconnect:
    backplane = server.hub.backplane
    assert isinstance(backplane, GatedReconnect)
    return backplane


async def cut_off(server: HubServer, redis_url: str) -> None:
    """Close the hub's pub/sub connection (as Redis does to a subscriber over its output limit); keep it off."""
    import redis.asyncio

    backplane = gated(server)
    backplane.gate.clear()
    admin = redis.asyncio.Redis.from_url(redis_url)
    try:
        clients = await admin.client_list(_type="pubsub")
        listeners = [client["id"] for client in clients if client.get("name") == f"rtnb-{backplane.hub_id}"]
        assert len(listeners) == 1, clients
        await admin.client_kill_filter(_id=listeners[0])
    finally:
        await admin.aclose()
    await wait_until(lambda: backplane.state is not BackplaneState.CONNECTED, timeout=5)


async def let_back(server: HubServer) -> None:
    backplane = gated(server)
    backplane.gate.set()
    await wait_until(lambda: backplane.state is BackplaneState.CONNECTED, timeout=10)


async def first_retained(redis_url: str, stream: str) -> int | None:
    """The offset of the oldest entry the topic's stream still holds (None: nothing)."""
    import redis.asyncio

    admin = redis.asyncio.Redis.from_url(redis_url)
    try:
        entries = await admin.xrange(stream, "-", "+", count=1)
    finally:
        await admin.aclose()
    return int(entries[0][0].split(b"-")[0]) if entries else None


def gap(topic: str, first: int, last: int | None, reason: str, epoch: int) -> dict[str, Any]:
    return {"op": "gap", "topic": topic, "from": first, "to": last, "reason": reason, "epoch": epoch}


def summary(items: list[dict[str, Any]]) -> list[Any]:
    """Gaps whole, messages as (topic, offset, epoch): what a subscriber saw, comparable at a glance."""
    return [item if item["op"] == "gap" else (item["topic"], item["offset"], item["epoch"]) for item in items]


async def test_a_topic_created_while_cut_off_whose_start_was_trimmed_comes_with_a_gap_first(
    private_redis: PrivateRedis,
) -> None:
    # MAXLEN ~ 5 trims whole stream nodes (100 entries), so 400 publishes leave a stream not starting at 1.
    config = HubConfig(ping_interval=0, history=HistoryLimits(max_messages=5))
    prefix = "rtnb:created:"
    async with (
        redis_hub(private_redis.url, prefix, "A", config) as hub_a,
        redis_hub(private_redis.url, prefix, "B", config, backplane_class=GatedReconnect) as hub_b,
    ):
        async with WirePeer(hub_a.ws_url) as publisher, WirePeer(hub_b.ws_url) as subscriber:
            await subscriber.request({"op": "subscribe", "topic": "made/#"})
            await cut_off(hub_b, private_redis.url)
            acks = [await publish(publisher, "made/new", n) for n in range(400)]
            epoch = acks[0]["epoch"]
            first = await first_retained(private_redis.url, gated(hub_b).keys.stream("made/new"))
            assert first is not None and 1 < first <= 400
            await let_back(hub_b)
            received = await subscriber.messages(1 + 401 - first, timeout=10)
            expected = [gap("made/new", 1, first - 1, "trimmed", epoch)]
            expected += [("made/new", offset, epoch) for offset in range(first, 401)]
            assert summary(received) == expected
            await publish(publisher, "made/new", "sentinel")
            assert summary(await subscriber.messages(1)) == [("made/new", 401, epoch)]


async def test_an_epoch_that_changed_while_cut_off_is_announced_then_its_trimmed_start(tmp_path: Path) -> None:
    import shutil

    import redis.asyncio

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed, so Redis cannot be stopped and restarted in a test")
    volatile = PrivateRedis(tmp_path, persistent=False)
    await volatile.start()
    prefix = "rtnb:reborn:"
    try:
        async with (
            redis_hub(volatile.url, prefix, "A") as hub_a,
            redis_hub(volatile.url, prefix, "B", backplane_class=GatedReconnect) as hub_b,
        ):
            async with WirePeer(hub_a.ws_url) as publisher, WirePeer(hub_b.ws_url) as subscriber:
                await subscriber.request({"op": "subscribe", "topic": "re/#"})
                old = [await publish(publisher, "re/t", n) for n in range(3)]
                assert summary(await subscriber.messages(3)) == [("re/t", n, old[0]["epoch"]) for n in (1, 2, 3)]
                gated(hub_b).gate.clear()
                volatile.stop()  # Redis restarts empty: every topic starts a new epoch
                await wait_until(lambda: gated(hub_b).state is BackplaneState.DISCONNECTED, timeout=5)
                await volatile.start()
                await wait_until(lambda: hub_a.hub.backplane.state is BackplaneState.CONNECTED, timeout=10)
                new = [await publish(publisher, "re/t", n) for n in range(10)]
                epoch = new[0]["epoch"]
                assert epoch > old[0]["epoch"] and [ack["offset"] for ack in new] == list(range(1, 11))
                admin = redis.asyncio.Redis.from_url(volatile.url)
                try:
                    # History of the new epoch then loses its first three offsets (as an age limit would).
                    await admin.xtrim(gated(hub_b).keys.stream("re/t"), minid="4-0", approximate=False)
                finally:
                    await admin.aclose()
                await let_back(hub_b)
                expected = [gap("re/t", 4, None, "epoch_changed", epoch), gap("re/t", 1, 3, "trimmed", epoch)]
                expected += [("re/t", offset, epoch) for offset in range(4, 11)]
                assert summary(await subscriber.messages(len(expected), timeout=10)) == expected
                await publish(publisher, "re/t", "sentinel")
                assert summary(await subscriber.messages(1)) == [("re/t", 11, epoch)]
    finally:
        volatile.stop()


async def test_history_that_expired_past_the_hubs_position_is_reported_before_anything_else(
    private_redis: PrivateRedis,
) -> None:
    import redis.asyncio

    # Streams expire whole half a second after their last publish (the age limit).
    config = HubConfig(ping_interval=0, history=HistoryLimits(max_age=0.5))
    prefix = "rtnb:expired:"
    async with (
        redis_hub(private_redis.url, prefix, "A", config) as hub_a,
        redis_hub(private_redis.url, prefix, "B", config, backplane_class=GatedReconnect) as hub_b,
    ):
        async with WirePeer(hub_a.ws_url) as publisher, WirePeer(hub_b.ws_url) as subscriber:
            await subscriber.request({"op": "subscribe", "topic": "aged/#"})
            epoch_old = (await publish(publisher, "aged/old", 0))["epoch"]
            assert summary(await subscriber.messages(1)) == [("aged/old", 1, epoch_old)]
            await cut_off(hub_b, private_redis.url)
            for n in range(1, 5):
                await publish(publisher, "aged/old", n)
            epoch_new = (await publish(publisher, "aged/new", 0))["epoch"]
            for n in range(1, 3):
                await publish(publisher, "aged/new", n)
            keys = gated(hub_b).keys
            admin = redis.asyncio.Redis.from_url(private_redis.url)
            try:
                streams = (keys.stream("aged/old"), keys.stream("aged/new"))
                assert await eventually(lambda: admin.exists(*streams), 0, timeout=10) == 0, "never expired"
            finally:
                await admin.aclose()
            await let_back(hub_b)
            # Told at once, with nothing published since: offsets 2..5 and 1..3 are gone for good.
            gaps = sorted(await subscriber.messages(2), key=lambda item: str(item.get("topic")))
            assert gaps == [gap("aged/new", 1, 3, "trimmed", epoch_new), gap("aged/old", 2, 5, "trimmed", epoch_old)]

            # A client resuming on the same hub, with the same pattern, gets the same gaps, then goes live.
            async with WirePeer(hub_b.ws_url) as resumer:
                since = {"aged/old": {"offset": 1, "epoch": epoch_old}}
                reply = await resumer.request({"op": "subscribe", "topic": "aged/#", "since": since})
                assert reply["op"] == "subscribed", reply
                resumed = sorted(await resumer.messages(2), key=lambda item: str(item.get("topic")))
                assert resumed == gaps
                await publish(publisher, "aged/old", "sentinel")
                await publish(publisher, "aged/new", "sentinel")
                for peer in (subscriber, resumer):
                    fresh = await peer.messages(2)
                    assert sorted(summary(fresh)) == [("aged/new", 4, epoch_new), ("aged/old", 6, epoch_old)]
