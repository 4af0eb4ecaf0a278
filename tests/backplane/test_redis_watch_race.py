"""A pattern being subscribed stays watched in Redis while its subscribe is under way (issue 18).

The delivery model's random search found a WebSocket on ``m/#`` that never got a new topic's
messages nor a gap. Root cause: a subscribe awaits Redis (``watch``, then the lost-epoch lookup)
before its member joins a group, and meanwhile another connection leaving makes the hub watch
"every pattern its groups hold" — without the one being subscribed. Redis stopped sending that
pattern's topics and the backplane forgot their positions; the new member went live on a
pattern nobody listened to, and when a later watch added it back, its topics were tracked from
their current offset: what was published in between was lost silently.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis_helpers import redis_hub

from rtnb.core.topics import Pattern
from rtnb.testing import WirePeer


async def test_a_watch_during_a_subscribe_keeps_the_pattern_being_subscribed(
    shared_redis_url: str, prefix: str
) -> None:
    async with redis_hub(shared_redis_url, prefix, "race") as server:
        hub = server.hub
        backplane: Any = hub.backplane
        async with WirePeer(server.ws_url) as other, WirePeer(server.ws_url) as resumer:
            await other.request({"op": "subscribe", "topic": "m/a", "id": 1})
            (other_member,) = [member for member in hub.fanout.members.values() if "m/a" in member.patterns]
            lookup = backplane.lost_epochs

            async def lost_epochs_while_another_leaves(pattern: Pattern) -> Any:
                if pattern.text == "m/#":
                    # another connection leaves while this subscribe waits on Redis: the hub
                    # re-watches what its groups hold, and that watch runs to its end here
                    hub.unsubscribe(other_member, "m/a")
                    while hub.task_count:
                        await asyncio.sleep(0.01)
                return await lookup(pattern)

            backplane.lost_epochs = lost_epochs_while_another_leaves
            reply = await resumer.request({"op": "subscribe", "topic": "m/#", "id": 2, "since": {}})
            assert reply["op"] == "subscribed"
            backplane.lost_epochs = lookup
            sent = [await hub.publish("m/c/d", value) for value in range(4)]
            got = await resumer.messages(4)
            assert [(item["op"], item["topic"], item["offset"]) for item in got] == [
                ("message", "m/c/d", message.offset) for message in sent
            ]
