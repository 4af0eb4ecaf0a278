"""The Redis ``lost`` hash (epochs topic resets lost) is bounded by age and count (issue 18).

Every reset of a topic that held messages records the epoch it lost, so that a subscriber that
never knew the topic hears of the loss when it resumes. Nothing removed those records: the
hash of each bucket grew for ever, and every wildcard resume reads all 64 of them.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import redis.asyncio
from redis_helpers import redis_hub

from rtnb.backplane._redis_keys import bucket_of
from rtnb.core.topics import Pattern


def topics_in_one_bucket(count: int) -> list[str]:
    """``count`` topic names under ``bounded/`` that share a bucket (so one hash holds them all)."""
    bucket = bucket_of("bounded/0")
    names = (f"bounded/{index}" for index in itertools.count())
    return list(itertools.islice((name for name in names if bucket_of(name) == bucket), count))


async def lost_fields(client: Any, key: str) -> set[str]:
    return {field.decode() for field in await client.hkeys(key)}


async def after_reset_of(client: Any, key: str, topic: str) -> set[str]:
    """The ``lost`` hash's topics once the (background) reset of ``topic`` is recorded."""
    for _ in range(1000):
        fields = await lost_fields(client, key)
        if topic in fields:
            return fields
        await asyncio.sleep(0.01)
    raise AssertionError(f"the reset of {topic} was never recorded")


async def test_the_lost_hash_keeps_at_most_its_cap_newest_first(shared_redis_url: str, prefix: str) -> None:
    topics = topics_in_one_bucket(5)
    async with redis_hub(shared_redis_url, prefix, "cap", max_lost_per_bucket=3) as server:
        hub, backplane = server.hub, server.hub.backplane
        key = backplane.keys.lost(bucket_of(topics[0]))
        client = redis.asyncio.Redis.from_url(shared_redis_url)
        try:
            for count, topic in enumerate(topics, start=1):
                await hub.publish(topic, "before the reset")
                backplane.reset_topic(topic)
                seen = await after_reset_of(client, key, topic)
                assert len(seen) == min(count, 3)
            assert seen == set(topics[2:])
            assert await client.zcard(backplane.keys.lost_at(bucket_of(topics[0]))) == 3
            lost = await backplane.lost_epochs(Pattern.parse("bounded/#"))
            assert set(lost) == set(topics[2:])  # still reported, for the ones kept
        finally:
            await client.aclose()


async def test_lost_epochs_older_than_the_retention_are_dropped_at_the_next_reset(
    shared_redis_url: str, prefix: str
) -> None:
    old, new = topics_in_one_bucket(2)
    async with redis_hub(shared_redis_url, prefix, "age", lost_retention=3600.0) as server:
        hub, backplane = server.hub, server.hub.backplane
        bucket = bucket_of(old)
        client = redis.asyncio.Redis.from_url(shared_redis_url)
        try:
            await hub.publish(old, 1)
            backplane.reset_topic(old)
            await after_reset_of(client, backplane.keys.lost(bucket), old)
            # as if the reset of ``old`` happened two hours ago
            await client.zadd(backplane.keys.lost_at(bucket), {old: 1}, xx=True)
            await hub.publish(new, 1)
            backplane.reset_topic(new)
            assert await after_reset_of(client, backplane.keys.lost(bucket), new) == {new}
            assert [member.decode() for member in await client.zrange(backplane.keys.lost_at(bucket), 0, -1)] == [new]
        finally:
            await client.aclose()
