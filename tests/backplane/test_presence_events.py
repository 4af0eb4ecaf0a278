"""Presence join/leave events across hubs stay exactly once when a hub is slow or stalls.

In-process hubs on the real Redis with a short ``presence_ttl``; hub B's
backplane can hold its presence events back (a slow event path) and stop its
presence writes (a stalled hub), so the timing that used to produce a second
``leave`` is forced instead of hoped for.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis_helpers import redis_hub

from rtnb.backplane.redis import RedisBackplane
from rtnb.testing import WirePeer, wait_until

pytestmark = pytest.mark.timeout(60)

TTL = 0.5


class SlowPresence(RedisBackplane):
    """A backplane whose presence events can be held back and whose presence writes can stop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held: list[tuple[str, list[str], list[str]]] | None = None
        self.writing = True

    def announce_membership(self, client: str, before: list[str], after: list[str]) -> None:
        if self.held is not None:
            self.held.append((client, before, after))
        else:
            super().announce_membership(client, before, after)

    def release(self) -> None:
        held, self.held = self.held or [], None
        for client, before, after in held:
            super().announce_membership(client, before, after)

    async def _write_presence(self) -> None:
        if self.writing:
            await super()._write_presence()


class CountingChecks(RedisBackplane):
    """Counts the expiry checks that found hub B silent for longer than the ttl."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.quiet_checks = 0

    async def _expire_silent_hubs(self) -> None:
        now = asyncio.get_running_loop().time()
        store = self.presence_store
        if store._remote_members.get("B") and now - store._remote_heard.get("B", now) > self.presence_ttl:
            self.quiet_checks += 1
        await super()._expire_silent_hubs()


async def next_event(peer: WirePeer, timeout: float = 10.0) -> tuple[str, str, str]:
    """The next presence event (op, client, hub) the peer receives, skipping anything else."""
    while True:
        item = await peer.next(timeout)
        if item.get("op") in ("join", "leave"):
            return item["op"], item["client"], item["hub"]


async def test_a_live_hub_whose_leave_event_is_slow_is_not_taken_for_dead(shared_redis_url: str, prefix: str) -> None:
    async with (
        redis_hub(shared_redis_url, prefix, "A", backplane_class=CountingChecks, presence_ttl=TTL) as hub_a,
        redis_hub(shared_redis_url, prefix, "B", backplane_class=SlowPresence, presence_ttl=TTL) as hub_b,
    ):
        checks = hub_a.hub.backplane
        slow = hub_b.hub.backplane
        assert isinstance(checks, CountingChecks) and isinstance(slow, SlowPresence)
        async with WirePeer(hub_a.ws_url) as watcher, WirePeer(hub_b.ws_url) as leaver:
            await watcher.request({"op": "presence", "topic": "room/lobby", "watch": True})
            assert leaver.welcome is not None
            await leaver.request({"op": "subscribe", "topic": "room/lobby"})
            assert await next_event(watcher) == ("join", leaver.welcome["client"], "B")
            slow.held = []
            await leaver.request({"op": "unsubscribe", "topic": "room/lobby"})
            # B has no members now, so no members' hash, but it is alive: hub A must not call
            # its client gone while the leave event is late, however long A looks.
            seen = checks.quiet_checks
            await wait_until(lambda: checks.quiet_checks > seen, timeout=10)
            slow.release()
            async with WirePeer(hub_b.ws_url) as sentinel:
                assert sentinel.welcome is not None
                await sentinel.request({"op": "subscribe", "topic": "room/lobby"})
                assert await next_event(watcher) == ("leave", leaver.welcome["client"], "B")
                assert await next_event(watcher) == ("join", sentinel.welcome["client"], "B")


async def test_a_stalled_hub_yields_one_leave_even_when_its_own_leave_arrives_later(
    shared_redis_url: str, prefix: str
) -> None:
    async with (
        redis_hub(shared_redis_url, prefix, "A", presence_ttl=TTL) as hub_a,
        redis_hub(shared_redis_url, prefix, "B", backplane_class=SlowPresence, presence_ttl=TTL) as hub_b,
    ):
        stalled = hub_b.hub.backplane
        assert isinstance(stalled, SlowPresence)
        async with WirePeer(hub_a.ws_url) as watcher, WirePeer(hub_b.ws_url) as leaver:
            await watcher.request({"op": "presence", "topic": "room/lobby", "watch": True})
            assert leaver.welcome is not None
            await leaver.request({"op": "subscribe", "topic": "room/lobby"})
            assert await next_event(watcher) == ("join", leaver.welcome["client"], "B")
            # B stops refreshing its presence and its events are late: after the ttl, A says its
            # client left. When B's own leave finally arrives, it must not be told a second time.
            stalled.held, stalled.writing = [], False
            await leaver.request({"op": "unsubscribe", "topic": "room/lobby"})
            assert await next_event(watcher) == ("leave", leaver.welcome["client"], "B")
            stalled.writing = True
            stalled.release()
            async with WirePeer(hub_b.ws_url) as sentinel:
                assert sentinel.welcome is not None
                await sentinel.request({"op": "subscribe", "topic": "room/lobby"})
                assert await next_event(watcher) == ("join", sentinel.welcome["client"], "B")
