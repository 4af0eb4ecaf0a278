"""A topic reset before its first publish is still found by pattern lookups (found by the delivery model).

The reset script set the topic's epoch without listing the topic, and the publish script
lists only topics whose epoch it creates: no hub could find the topic by pattern, so a
subscriber resuming with a cursor never got its messages.
"""

from __future__ import annotations

import asyncio

from redis_helpers import redis_hub

from rtnb.core.topics import Pattern


async def test_a_topic_reset_before_its_first_publish_is_listed(shared_redis_url: str, prefix: str) -> None:
    async with redis_hub(shared_redis_url, prefix, "a") as hub_a:
        hub_a.hub.backplane.reset_topic("listed/b")
        await asyncio.sleep(0.1)  # the reset runs in the background
        for value in range(3):
            await hub_a.hub.publish("listed/b", value)
    async with redis_hub(shared_redis_url, prefix, "b") as hub_b:
        await hub_b.hub.watch([Pattern.parse("listed/+")])
        positions = hub_b.hub.backplane.positions(Pattern.parse("listed/+"))
        assert list(positions) == ["listed/b"] and positions["listed/b"].last_offset == 3


async def test_an_epoch_lost_by_a_reset_is_reported_to_a_resume_that_never_knew_the_topic(
    shared_redis_url: str, prefix: str
) -> None:
    """Created and reset while a subscriber was away: its resume (a ``since`` without the topic) is told."""
    from rtnb.testing import WirePeer

    async with redis_hub(shared_redis_url, prefix, "a") as hub:
        await hub.hub.publish("lost/b", 1)
        hub.hub.backplane.reset_topic("lost/b")
        await asyncio.sleep(0.1)
        async with WirePeer(hub.ws_url) as peer:
            await peer.request({"op": "subscribe", "topic": "lost/#", "since": {"lost/other": 0}})
            (gap,) = await peer.messages(1)
            assert (gap["op"], gap["topic"], gap["from"], gap["to"], gap["reason"]) == (
                "gap",
                "lost/b",
                1,
                None,
                "epoch_changed",
            )
