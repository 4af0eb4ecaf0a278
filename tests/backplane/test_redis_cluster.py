"""Hubs on a real 3-master Redis Cluster: one hub to clients, shards that fail and return.

The cluster is found from the same ``redis://host:port`` URL as a single Redis.
Topics are chosen so that each shard holds some, so a wildcard subscription
crosses shards and a killed master takes only its own topics away.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
import pytest
import tornado.httpclient
from redis_cluster import PrivateCluster, need_redis_server, private_cluster, redis_cluster_url
from redis_helpers import collect, redis_hub

from rtnb.backplane._redis_keys import bucket_of
from rtnb.backplane.redis import BackplaneState, RedisBackplane
from rtnb.server.runner import HubServer
from rtnb.testing import WirePeer, wait_until

__all__ = ["private_cluster", "redis_cluster_url"]

pytestmark = pytest.mark.timeout(90)


def backplane_of(server: HubServer) -> RedisBackplane:
    backplane = server.hub.backplane
    assert isinstance(backplane, RedisBackplane)
    return backplane


def node_port(server: HubServer, topic: str) -> int:
    """The port of the master that holds ``topic``."""
    topology = backplane_of(server)._topology
    assert topology is not None
    return topology.node_of(bucket_of(topic)).endpoint.port


def topics_per_shard(server: HubServer, template: str, per_shard: int) -> dict[int, list[str]]:
    """``per_shard`` topic names on each master, keyed by its port."""
    found: dict[int, list[str]] = {}
    number = 0
    while len(found) < 3 or any(len(names) < per_shard for names in found.values()):
        topic = template.format(number)
        names = found.setdefault(node_port(server, topic), [])
        if len(names) < per_shard:
            names.append(topic)
        number += 1
    return found


async def publish(peer: WirePeer, topic: str, data: Any) -> dict[str, Any]:
    return await peer.request({"op": "publish", "topic": topic, "data": data, "id": uuid.uuid4().hex[:8]})


def by_topic(items: list[dict[str, Any]]) -> dict[str, list[int]]:
    offsets: dict[str, list[int]] = {}
    for item in items:
        if item.get("op") == "message":
            offsets.setdefault(item["topic"], []).append(item["offset"])
    return offsets


async def delete_cluster_prefix(url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` on every master."""
    import redis.asyncio

    seed = redis.asyncio.Redis.from_url(url)
    try:
        slots = await seed.execute_command("CLUSTER SLOTS")
    finally:
        await seed.aclose()
    for host, port in {(entry[2][0].decode(), int(entry[2][1])) for entry in slots}:
        client = redis.asyncio.Redis(host=host, port=port)
        try:
            async for key in client.scan_iter(match=prefix + "*", count=1000):
                await client.delete(key)
        except (OSError, redis.exceptions.RedisError):
            pass
        finally:
            await client.aclose()


async def test_three_hubs_on_a_cluster_act_as_one_across_shards(redis_cluster_url: str) -> None:
    prefix = f"rtnb:test-{uuid.uuid4().hex[:12]}:"
    try:
        async with (
            redis_hub(redis_cluster_url, prefix, "A") as hub_a,
            redis_hub(redis_cluster_url, prefix, "B") as hub_b,
            redis_hub(redis_cluster_url, prefix, "C") as hub_c,
        ):
            health = hub_a.hub.health()
            assert health["cluster"] is True and len(health["nodes"]) == 3 and health["state"] == "connected"
            shards = topics_per_shard(hub_a, "plant/{}/temp", 2)
            topics = [topic for names in shards.values() for topic in names]
            async with (
                WirePeer(hub_a.ws_url) as publisher,
                WirePeer(hub_b.ws_url) as on_b,
                WirePeer(hub_c.ws_url) as on_c,
                WirePeer(hub_c.ws_url) as mover,
            ):
                for peer, pattern in ((on_b, "plant/#"), (on_c, "plant/+/temp"), (mover, "plant/#")):
                    assert (await peer.request({"op": "subscribe", "topic": pattern}))["op"] == "subscribed"
                acks = [await publish(publisher, topic, n) for n in range(10) for topic in topics]
                assert all(ack["op"] == "ack" for ack in acks), acks
                expected = {topic: [ack["offset"] for ack in acks if ack["topic"] == topic] for topic in topics}
                assert all(offsets == list(range(1, 11)) for offsets in expected.values())
                epochs = {ack["topic"]: ack["epoch"] for ack in acks}
                for peer in (on_b, on_c, mover):
                    seen = await peer.messages(60)
                    assert by_topic(seen) == expected  # every shard, in order, exactly once
                    assert all(item["epoch"] == epochs[item["topic"]] for item in seen)

                # Presence, asked on A, answered from every hub.
                reply = await publisher.request({"op": "presence", "topic": topics[0]})
                assert sorted(member["hub"] for member in reply["members"]) == ["B", "C", "C"]

                # History: the last 3 of every topic, on any hub.
                async with WirePeer(hub_a.ws_url) as late:
                    await late.request({"op": "subscribe", "topic": "plant/#", "last": 3})
                    assert by_topic(await late.messages(18)) == {topic: [8, 9, 10] for topic in topics}

                # A client moves from C to B and resumes where it was.
                cursor = {topic: {"offset": 10, "epoch": epochs[topic]} for topic in topics}
            async with WirePeer(hub_a.ws_url) as publisher:
                for n in range(5):
                    for topic in topics:
                        await publish(publisher, topic, f"more {n}")
                async with WirePeer(hub_b.ws_url) as moved:
                    await moved.request({"op": "subscribe", "topic": "plant/#", "since": cursor})
                    assert by_topic(await moved.messages(30)) == {topic: [11, 12, 13, 14, 15] for topic in topics}
    finally:
        await delete_cluster_prefix(redis_cluster_url, prefix)


async def test_killed_listeners_on_every_shard_are_noticed_resubscribed_and_caught_up(
    redis_cluster_url: str,
) -> None:
    import redis.asyncio

    prefix = f"rtnb:test-{uuid.uuid4().hex[:12]}:"
    try:
        async with (
            redis_hub(redis_cluster_url, prefix, "A") as hub_a,
            redis_hub(redis_cluster_url, prefix, "B") as hub_b,
        ):
            topics = [t for names in topics_per_shard(hub_a, "kill/{}", 1).values() for t in names]
            async with (
                WirePeer(hub_a.ws_url) as publisher,
                WirePeer(hub_a.ws_url) as on_a,
                WirePeer(hub_b.ws_url) as on_b,
                WirePeer(hub_b.ws_url) as exact_b,
            ):
                for peer, pattern in ((on_a, "kill/#"), (on_b, "kill/+"), (exact_b, topics[-1])):
                    await peer.request({"op": "subscribe", "topic": pattern})
                for topic in topics:
                    await publish(publisher, topic, "before")
                for peer, count in ((on_a, 3), (on_b, 3), (exact_b, 1)):
                    await peer.messages(count)
                killed = 0
                for port in {node_port(hub_a, topic) for topic in topics}:
                    admin = redis.asyncio.Redis(host="127.0.0.1", port=port)
                    try:
                        for client in await admin.client_list(_type="pubsub"):
                            if client.get("name") in ("rtnb-A", "rtnb-B"):
                                await admin.client_kill_filter(_id=client["id"])
                                killed += 1
                    finally:
                        await admin.aclose()
                assert killed == 6  # one listener per hub per shard
                for topic in topics:
                    for n in range(5):
                        assert (await publish(publisher, topic, n))["op"] == "ack"
                for server in (hub_a, hub_b):
                    await wait_until(
                        lambda server=server: backplane_of(server).state is BackplaneState.CONNECTED, timeout=5
                    )
                for peer, wanted in ((on_a, topics), (on_b, topics), (exact_b, topics[-1:])):
                    items, _errors = await collect(peer, 5 * len(wanted), timeout=10)
                    assert by_topic(items) == {topic: [2, 3, 4, 5, 6] for topic in wanted}
    finally:
        await delete_cluster_prefix(redis_cluster_url, prefix)


async def http_publish(server: HubServer, topic: str, data: Any) -> tuple[int, dict[str, Any], float]:
    """POST /publish/TOPIC: (status, body, seconds taken)."""
    began = time.monotonic()
    response = await tornado.httpclient.AsyncHTTPClient().fetch(
        f"{server.url}/publish/{topic}",
        method="POST",
        body=orjson.dumps(data),
        raise_error=False,
        request_timeout=30,
    )
    return response.code, orjson.loads(response.body), time.monotonic() - began


async def test_a_killed_master_fails_fast_for_its_topics_only_and_recovers_with_a_gap(tmp_path: Any) -> None:
    need_redis_server()
    # Not persistent: the master comes back empty, so what it held is lost and must show as a gap.
    cluster = PrivateCluster(tmp_path, persistent=False)
    await cluster.start()
    try:
        async with (
            redis_hub(cluster.url, "rtnb:kill:", "A") as hub_a,
            redis_hub(cluster.url, "rtnb:kill:", "B") as hub_b,
        ):
            topology = backplane_of(hub_a)._topology
            assert topology is not None
            # The master holding presence too: losing it must not stop the other shards.
            doomed = topology.node_for(backplane_of(hub_a).keys.hubs).endpoint.port
            shards = topics_per_shard(hub_a, "line/{}", 1)
            lost_topic = shards[doomed][0]
            kept = [names[0] for port, names in shards.items() if port != doomed]
            async with (
                WirePeer(hub_a.ws_url) as publisher,
                WirePeer(hub_b.ws_url) as on_b,
                WirePeer(hub_a.ws_url) as on_a,
            ):
                for peer in (on_a, on_b):
                    await peer.request({"op": "subscribe", "topic": "line/#"})
                for topic in [lost_topic, *kept]:
                    for n in range(3):
                        await publish(publisher, topic, n)
                for peer in (on_a, on_b):
                    await peer.messages(9)

                cluster.kill(doomed)
                status, body, took = await http_publish(hub_a, lost_topic, "into the void")
                assert (status, body["error"]["code"]) == (503, "unavailable") and took < 5, (status, body, took)
                for peer in (on_a, on_b):
                    notice = await peer.next_op("error")
                    assert notice["code"] == "unavailable"
                # The other shards keep publishing and delivering, through every hub.
                for topic in kept:
                    for server in (hub_a, hub_b):
                        status, body, took = await http_publish(server, topic, "still here")
                        assert status == 200 and took < 5, (status, body)
                for peer in (on_a, on_b):
                    items, _errors = await collect(peer, 4, timeout=10)
                    assert by_topic(items) == {topic: [4, 5] for topic in kept}
                health = await tornado.httpclient.AsyncHTTPClient().fetch(hub_a.url + "/healthz", raise_error=False)
                assert health.code == 503

                await cluster.restart(doomed)
                for server in (hub_a, hub_b):
                    await wait_until(
                        lambda server=server: backplane_of(server).state is BackplaneState.CONNECTED, timeout=15
                    )
                answer = await publish(publisher, lost_topic, "back")
                assert answer["op"] == "ack", answer
                assert answer["offset"] == 1  # the restarted master lost the topic: a new epoch
                for peer in (on_a, on_b):
                    gap = await peer.next_op("gap", timeout=10)
                    assert (gap["topic"], gap["reason"], gap["from"]) == (lost_topic, "epoch_changed", 4)
                    item = await peer.next_op("message")
                    assert (item["topic"], item["offset"], item["data"]) == (lost_topic, 1, "back")
    finally:
        cluster.stop()


async def test_a_stalled_master_is_noticed_within_seconds_and_listened_to_again(
    private_cluster: PrivateCluster,
) -> None:
    async with redis_hub(private_cluster.url, "rtnb:stall:", "A") as hub_a:
        backplane = backplane_of(hub_a)
        async with WirePeer(hub_a.ws_url) as subscriber:
            await subscriber.request({"op": "subscribe", "topic": "s/#"})
            shards = topics_per_shard(hub_a, "s/{}", 1)
            frozen = next(iter(shards))
            private_cluster.pause(frozen)
            began = time.monotonic()
            try:
                await wait_until(lambda: backplane.state is BackplaneState.DISCONNECTED, timeout=5)
                noticed = time.monotonic() - began
            finally:
                private_cluster.resume(frozen)
            assert noticed < 5
            await wait_until(lambda: backplane.state is BackplaneState.CONNECTED, timeout=15)
            async with WirePeer(hub_a.ws_url) as publisher:
                answer = await publish(publisher, shards[frozen][0], "after the stall")
                assert answer["op"] == "ack", answer
            item = await subscriber.next_op("message")
            assert item["data"] == "after the stall"
