"""A hub on the Redis backplane stops promptly, whatever its background tasks were doing.

On Python < 3.12, ``asyncio.wait_for`` (which redis-py wraps every reply read
in) swallows a cancel that arrives in the same loop turn as the reply. The
backplane's presence-event loop, cancelled just as its ``PUBLISH`` was
answered, then went on to wait for its next event forever, and the hub's
shutdown with it: the hang seen in 1 of ~20 runs of the catch-up test under
load, always while its hubs were being stopped.
"""

from __future__ import annotations

import asyncio

from redis_helpers import redis_hub

from rtnb.backplane.redis import RedisBackplane
from rtnb.core.topics import Pattern


async def test_a_hub_stops_even_when_its_last_presence_event_is_answered_as_it_is_cancelled(
    shared_redis_url: str, prefix: str
) -> None:
    # The cancel lands a different number of loop turns after the event is queued
    # each round, so some round cancels the publish just as Redis answers it.
    for turns in range(16):
        async with redis_hub(shared_redis_url, prefix, f"stop-{turns}") as server:
            backplane = server.hub.backplane
            assert isinstance(backplane, RedisBackplane)
            backplane.announce_membership("c1", [], ["stop/#"])
            for _ in range(turns):
                await asyncio.sleep(0)
            stopping = asyncio.ensure_future(server.stop())
            done, _ = await asyncio.wait([stopping], timeout=5)
            assert done, f"the hub did not stop within 5 s (cancel {turns} loop turns after the event)"
            await stopping


async def test_dropping_and_taking_back_a_subscription_at_once_does_not_reconnect_the_listener(
    shared_redis_url: str, prefix: str
) -> None:
    # A client leaves (its buckets are unsubscribed) and another subscribes to the same
    # topic before Redis has confirmed the unsubscribe. That late confirmation is this
    # hub's own, not Redis taking the slot away: the listener must stay connected.
    async with redis_hub(shared_redis_url, prefix, "A") as server:
        backplane = server.hub.backplane
        assert isinstance(backplane, RedisBackplane)
        pattern = Pattern.parse("flip/topic")
        await backplane.watch({pattern})
        for _ in range(3):
            await backplane.watch(set())
            await backplane.watch({pattern})
        await asyncio.sleep(0.3)  # the confirmations arrive
        assert backplane.reconnects == 0
        assert backplane.health()["state"] == "connected"
