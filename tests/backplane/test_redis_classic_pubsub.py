"""The Redis < 7 path: classic ``PUBLISH``/``SUBSCRIBE`` instead of sharded pub/sub, forced.

The machine's Redis is 7 or newer, where the backplane picks sharded pub/sub; a
Redis 6 (no ``SPUBLISH``/``SSUBSCRIBE``) takes the classic commands instead.
``sharded_pubsub=False`` takes that same path on a newer server, so these tests
run it on a real Redis and a real Redis Cluster, and check, through Redis' own
command counts, that no sharded command was sent at all.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from redis_cluster import redis_cluster_url
from redis_helpers import PrivateRedis, collect, eventually, redis_hub
from test_redis_cluster import delete_cluster_prefix

from rtnb.backplane._redis_keys import bucket_of
from rtnb.backplane.redis import BackplaneState, RedisBackplane
from rtnb.server.runner import HubServer
from rtnb.testing import WirePeer, wait_until

__all__ = ["redis_cluster_url"]

pytestmark = pytest.mark.timeout(90)

SHARDED = {"spublish", "ssubscribe", "sunsubscribe"}


def backplane_of(server: HubServer) -> RedisBackplane:
    backplane = server.hub.backplane
    assert isinstance(backplane, RedisBackplane)
    return backplane


async def publish(peer: WirePeer, topic: str, data: Any) -> dict[str, Any]:
    return await peer.request({"op": "publish", "topic": topic, "data": data, "id": uuid.uuid4().hex[:8]})


def data_of(items: list[dict[str, Any]], topic: str) -> list[Any]:
    return [item["data"] for item in items if item["topic"] == topic]


async def command_calls(urls: list[str]) -> dict[str, int]:
    """``INFO commandstats`` calls summed over the nodes at ``urls``."""
    import redis.asyncio

    calls: dict[str, int] = {}
    for url in urls:
        client = redis.asyncio.Redis.from_url(url)
        try:
            for name, value in (await client.info("commandstats")).items():
                command = name.removeprefix("cmdstat_")
                calls[command] = calls.get(command, 0) + int(value["calls"])
        finally:
            await client.aclose()
    return calls


async def kill_listeners(url: str, name: str) -> int:
    """Cut the pub/sub connections named ``name`` on the node at ``url``; returns how many."""
    import redis.asyncio

    admin = redis.asyncio.Redis.from_url(url)
    try:
        found = [client["id"] for client in await admin.client_list(_type="pubsub") if client.get("name") == name]
        for client_id in found:
            await admin.client_kill_filter(_id=client_id)
        return len(found)
    finally:
        await admin.aclose()


async def test_classic_pubsub_on_one_redis_delivers_in_order_recovers_a_killed_listener_and_sends_no_sharded_command(
    private_redis: PrivateRedis,
) -> None:
    prefix = "rtnb:classic:"
    async with (
        redis_hub(private_redis.url, prefix, "A", sharded_pubsub=False) as hub_a,
        redis_hub(private_redis.url, prefix, "B", sharded_pubsub=False) as hub_b,
    ):
        backplane_b = backplane_of(hub_b)
        assert backplane_of(hub_a)._sharded is False and backplane_b._sharded is False
        async with (
            WirePeer(hub_a.ws_url) as publisher,
            WirePeer(hub_b.ws_url) as subscriber,
            WirePeer(hub_a.ws_url) as asker,
        ):
            await subscriber.request({"op": "subscribe", "topic": "classic/#"})
            acks = [await publish(publisher, f"classic/{n % 2}", n) for n in range(10)]
            assert [ack["op"] for ack in acks] == ["ack"] * 10
            received, errors = await collect(subscriber, 10)
            assert errors == []
            assert data_of(received, "classic/0") == [0, 2, 4, 6, 8]
            assert data_of(received, "classic/1") == [1, 3, 5, 7, 9]

            # Presence events travel over classic pub/sub too.
            async def members() -> list[dict[str, str]]:
                reply = await asker.request({"op": "presence", "topic": "classic/0", "id": "p"})
                return list(reply["members"])

            assert subscriber.welcome is not None
            expected = [{"client": subscriber.welcome["client"], "hub": "B"}]
            assert await eventually(members, expected) == expected

            # A killed classic listener is noticed, resubscribed, and what was published meanwhile recovered.
            assert await kill_listeners(private_redis.url, "rtnb-B") == 1
            await wait_until(lambda: backplane_b.state is not BackplaneState.CONNECTED, timeout=5)
            for n in range(10, 16):
                assert (await publish(publisher, f"classic/{n % 2}", n))["op"] == "ack"
            await wait_until(lambda: backplane_b.state is BackplaneState.CONNECTED, timeout=10)
            received, _ = await collect(subscriber, 6)
            assert data_of(received, "classic/0") == [10, 12, 14]
            assert data_of(received, "classic/1") == [11, 13, 15]
    calls = await command_calls([private_redis.url])
    assert calls.get("publish", 0) >= 1 and calls.get("subscribe", 0) >= 2, calls
    assert not SHARDED & set(calls), calls


async def test_classic_pubsub_on_a_cluster_crosses_shards_in_order(redis_cluster_url: str) -> None:
    prefix = f"rtnb:classic-{uuid.uuid4().hex[:8]}:"
    try:
        async with (
            redis_hub(redis_cluster_url, prefix, "A", sharded_pubsub=False) as hub_a,
            redis_hub(redis_cluster_url, prefix, "B", sharded_pubsub=False) as hub_b,
            redis_hub(redis_cluster_url, prefix, "C", sharded_pubsub=False) as hub_c,
        ):
            topology = backplane_of(hub_a)._topology
            assert topology is not None and topology.cluster and not topology.sharded
            node_urls = [node.url for node in topology.serving()]
            assert len(node_urls) == 3
            before = await command_calls(node_urls)
            # 24 topics: every master holds some of them, so the wildcard crosses every shard.
            topics = [f"classic/{n}" for n in range(24)]
            assert len({topology.node_of(bucket_of(topic)).name for topic in topics}) == 3
            async with (
                WirePeer(hub_a.ws_url) as publisher,
                WirePeer(hub_b.ws_url) as on_b,
                WirePeer(hub_c.ws_url) as on_c,
            ):
                for peer in (on_b, on_c):
                    await peer.request({"op": "subscribe", "topic": "classic/#"})
                for round_number in range(3):
                    for topic in topics:
                        assert (await publish(publisher, topic, round_number))["op"] == "ack"
                for peer in (on_b, on_c):
                    received, errors = await collect(peer, 3 * len(topics))
                    assert errors == []
                    for topic in topics:
                        assert data_of(received, topic) == [0, 1, 2]
                        assert [item["offset"] for item in received if item["topic"] == topic] == [1, 2, 3]
            after = await command_calls(node_urls)
        grown = {name for name in SHARDED if after.get(name, 0) > before.get(name, 0)}
        assert grown == set(), f"sharded commands sent: {grown}"
        assert after.get("publish", 0) > before.get("publish", 0)
    finally:
        await delete_cluster_prefix(redis_cluster_url, prefix)
