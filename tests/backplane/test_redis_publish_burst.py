"""A burst of publishes on one WebSocket through Redis (single and Cluster): every one answered,
in request order, with its id; a Redis outage mid-burst loses none silently."""

from __future__ import annotations

from typing import Any

import pytest
from redis_cluster import redis_cluster_url
from redis_helpers import PrivateRedis, redis_hub

from rtnb.backplane.redis import BackplaneState
from rtnb.testing import WirePeer, wait_until

__all__ = ["redis_cluster_url"]

pytestmark = pytest.mark.timeout(90)


def burst(count: int, topic: str) -> tuple[list[dict[str, Any]], list[tuple[str, int]]]:
    """``count`` publish requests, valid and invalid mixed, and the answer expected for each (op or code, id)."""
    requests: list[dict[str, Any]] = []
    expected: list[tuple[str, int]] = []
    for n in range(count):
        kind = n % 5
        if kind == 1:
            requests.append({"op": "publish", "topic": f"{topic}/+", "data": n, "id": n})
            expected.append(("wildcard_publish", n))
        elif kind == 3:
            requests.append({"op": "publish", "topic": f"{topic}/1", "id": n})
            expected.append(("missing_field", n))
        else:
            requests.append({"op": "publish", "topic": f"{topic}/{n % 3}", "data": n, "id": n})
            expected.append(("ack", n))
    return requests, expected


async def answers(peer: WirePeer, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The next ``count`` replies (acks and errors), skipping delivered messages and outage notices."""
    replies: list[dict[str, Any]] = []
    while len(replies) < count:
        item = await peer.next(timeout)
        if item["op"] not in ("message", "gap") and not (item["op"] == "error" and "id" not in item):
            replies.append(item)
    return replies


def assert_offsets_follow(replies: list[dict[str, Any]]) -> None:
    """Per topic, acknowledged offsets rise by one in request order."""
    by_topic: dict[str, list[int]] = {}
    for reply in replies:
        if reply["op"] == "ack":
            by_topic.setdefault(reply["topic"], []).append(reply["offset"])
    for offsets in by_topic.values():
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets))), offsets


async def run_burst(url: str, prefix: str) -> None:
    requests, expected = burst(600, "burst")
    async with redis_hub(url, prefix, "A") as hub_a, redis_hub(url, prefix, "B") as hub_b:
        async with WirePeer(hub_a.ws_url) as publisher, WirePeer(hub_b.ws_url) as subscriber:
            await subscriber.request({"op": "subscribe", "topic": "burst/#"})
            for request in requests:  # no waiting: many publishes in flight at once
                await publisher.send(request)
            replies = await answers(publisher, len(requests))
            assert [(reply.get("code", reply["op"]), reply.get("id")) for reply in replies] == expected
            assert_offsets_follow(replies)
            acked = [reply for reply in replies if reply["op"] == "ack"]
            received = await subscriber.messages(len(acked))
            for topic in ("burst/0", "burst/1", "burst/2"):  # order per topic, across hubs
                sent = [reply["id"] for reply in acked if reply["topic"] == topic]
                assert [item["data"] for item in received if item["topic"] == topic] == sent


async def test_a_burst_of_mixed_publishes_through_redis_is_answered_in_request_order(
    shared_redis_url: str, prefix: str
) -> None:
    await run_burst(shared_redis_url, prefix)


async def test_a_burst_of_mixed_publishes_through_a_redis_cluster_is_answered_in_request_order(
    redis_cluster_url: str,
) -> None:
    import uuid

    await run_burst(redis_cluster_url, f"rtnb:burst-{uuid.uuid4().hex[:8]}:")


async def test_a_redis_outage_mid_burst_answers_every_publish_and_acks_only_what_redis_kept(
    private_redis: PrivateRedis,
) -> None:
    count = 400
    async with redis_hub(private_redis.url, "rtnb:midburst:", "A") as hub_a:
        async with WirePeer(hub_a.ws_url) as publisher:
            for n in range(count):
                if n == count // 2:
                    private_redis.stop()  # killed while earlier publishes may still be in flight
                await publisher.send({"op": "publish", "topic": f"mid/{n % 2}", "data": n, "id": n})
            replies = await answers(publisher, count)
            assert [reply["id"] for reply in replies] == list(range(count)), "every publish answered, in order"
            outcomes = [reply.get("code", reply["op"]) for reply in replies]
            assert set(outcomes) <= {"ack", "unavailable"}, set(outcomes)
            assert outcomes[count // 2 :] == ["unavailable"] * (count - count // 2), "nothing acked while down"
            assert_offsets_follow(replies)
            acked = {reply["id"] for reply in replies if reply["op"] == "ack"}

            await private_redis.start()
            await wait_until(lambda: hub_a.hub.backplane.state is BackplaneState.CONNECTED, timeout=15)
            async with WirePeer(hub_a.ws_url) as reader:
                await reader.request({"op": "subscribe", "topic": "mid/#", "last": count})
                for topic in ("mid/0", "mid/1"):
                    ack = await reader.request({"op": "publish", "topic": topic, "data": "after", "id": topic})
                    assert ack["op"] == "ack", ack
                items: list[dict[str, Any]] = []
                while sum(1 for item in items if item.get("data") == "after") < 2:
                    items.extend(await reader.messages(1, timeout=10))
                stored = {item["data"] for item in items if item["op"] == "message" and item["data"] != "after"}
                assert acked <= stored, f"acknowledged but not kept: {sorted(acked - stored)[:10]}"
