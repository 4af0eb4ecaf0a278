"""Cluster-wide presence: who is subscribed where, and join/leave events between hubs.

Each hub keeps, in Redis, one hash of its own connections (client id -> JSON
list of patterns) with an expiry it refreshes while alive, so the members of a
hub that is killed vanish by themselves once the expiry passes. A separate
heartbeat key, refreshed with it, says the hub is alive even when it has no
members: only a hub whose heartbeat expired is declared gone by the others,
which then send the ``leave`` events its members will never send. Every key is
under one hash tag, so on a Redis Cluster presence lives on one shard and its
transactions stay legal.

Hubs exchange join/leave events on one (sharded) channel, one at a time so
every hub hears them in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import orjson

from ..core.presence import is_present, present_members
from ..core.topics import Pattern
from ._redis_keys import RedisKeys
from .base import HubLink

__all__ = ["PresenceStore", "decode_memberships", "encode_memberships", "is_present", "present_members"]

log = logging.getLogger("rtnb.backplane.redis")


def encode_memberships(memberships: Mapping[str, Iterable[str]]) -> dict[str, bytes]:
    """Hash fields for Redis: client id -> JSON list of its patterns."""
    return {client: orjson.dumps(sorted(patterns)) for client, patterns in memberships.items() if patterns}


def decode_memberships(fields: Mapping[bytes, bytes]) -> dict[str, list[str]]:
    """The inverse of :func:`encode_memberships`; unreadable entries are skipped."""
    memberships: dict[str, list[str]] = {}
    for client, value in fields.items():
        try:
            patterns = orjson.loads(value)
        except orjson.JSONDecodeError:
            continue
        if isinstance(patterns, list):
            memberships[client.decode()] = [text for text in patterns if isinstance(text, str)]
    return memberships


class PresenceStore:
    """This hub's presence entry, the cluster's answers, and the events between hubs.

    Args:
        keys: key names.
        hub_id: this hub's name.
        ttl: seconds after which a silent hub's members vanish.
        client: returns the redis-py client of the node holding presence (raises LookupError if unknown).
        publish_command: ``SPUBLISH`` (sharded, Redis >= 7) or ``PUBLISH``.
    """

    def __init__(
        self, keys: RedisKeys, hub_id: str, ttl: float, client: Callable[[], Any], publish_command: Callable[[], str]
    ) -> None:
        self.keys = keys
        self.hub_id = hub_id
        self.ttl = ttl
        self.client = client
        self.publish_command = publish_command
        self.link: HubLink | None = None
        self.channel = keys.presence_channel.encode()
        #: other hubs' members as their join/leave events told us, and when each hub last spoke
        self._remote_members: dict[str, dict[str, list[str]]] = {}
        self._remote_heard: dict[str, float] = {}
        #: (hub, client) whose leave this hub's watchers were told, and when: a late event or a
        #: stale presence snapshot about them must not make a second leave
        self._remote_left: dict[tuple[str, str], float] = {}
        self.outgoing: asyncio.Queue[bytes] = asyncio.Queue(maxsize=10_000)

    def _memberships(self) -> dict[str, list[str]]:
        return {} if self.link is None else self.link.local_subscriptions()

    async def write(self) -> None:
        """Replace this hub's entry with its current subscriptions and refresh its heartbeat."""
        key = self.keys.presence(self.hub_id)
        fields = encode_memberships(self._memberships())
        ttl_ms = int(self.ttl * 1000)
        async with self.client().pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if fields:
                pipe.hset(key, mapping=fields)
                pipe.pexpire(key, ttl_ms)
            # Alive even with no members: the others must not take an empty hub for a dead one.
            pipe.set(self.keys.alive(self.hub_id), b"1", px=ttl_ms)
            pipe.zadd(self.keys.hubs, {self.hub_id: 0})
            await pipe.execute()

    async def withdraw(self) -> None:
        async with self.client().pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.presence(self.hub_id), self.keys.alive(self.hub_id))
            pipe.zrem(self.keys.hubs, self.hub_id)
            await asyncio.wait_for(pipe.execute(), 1.0)

    def announce(self, client: str, before: list[str], after: list[str], connected: bool) -> None:
        """Queue a membership event for every hub; without Redis, tell this hub's watchers directly."""
        if not connected:
            if self.link is not None:
                self.link.membership_changed(client, before, after, self.hub_id)
            return
        event = orjson.dumps({"hub": self.hub_id, "client": client, "before": before, "after": after})
        try:
            self.outgoing.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("presence events are backing up; dropping one (presence queries stay exact)")

    async def refresh_forever(
        self,
        changed: asyncio.Event,
        debounce: float,
        live: Callable[[], bool],
        refresh: Callable[[], Awaitable[None]],
        errors: tuple[type[BaseException], ...],
    ) -> None:
        """Run ``refresh`` (write this hub's entry, expire silent hubs) while ``live()``.

        At once (after ``debounce`` seconds, coalescing a burst) when ``changed``
        is set, else every ttl/3 so the entry never expires while the hub lives.
        """
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), self.ttl / 3)
                await asyncio.sleep(debounce)
            changed.clear()
            if not live():
                continue
            try:
                await refresh()
            except errors as error:
                log.info("presence refresh failed: %s", error)

    async def send_events_forever(self, errors: tuple[type[BaseException], ...]) -> None:
        """Publish queued events one at a time, so every hub hears them in order."""
        while True:
            event = await self.outgoing.get()
            try:
                await self.client().execute_command(self.publish_command(), self.channel, event)
            except errors as error:  # the caller's errors include LookupError
                log.info("could not publish a presence event: %s", error)

    def received(self, data: bytes) -> None:
        """A membership event from the events channel (this hub's own included)."""
        try:
            event = orjson.loads(data)
            hub_id, client = str(event["hub"]), str(event["client"])
            before, after = list(event["before"]), list(event["after"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as error:
            log.warning("ignoring an unreadable presence event: %s", error)
            return
        if hub_id != self.hub_id:
            now = asyncio.get_running_loop().time()
            members = self._remote_members.setdefault(hub_id, {})
            key = (hub_id, client)
            if key in self._remote_left:
                before = []  # its leave was already told (its hub looked gone): never twice
            if after:
                members[client] = after
                self._remote_left.pop(key, None)
            else:
                members.pop(client, None)
                self._remote_left.setdefault(key, now)
            self._remote_heard[hub_id] = now
        if self.link is not None:
            self.link.membership_changed(client, before, after, hub_id)

    async def expire_silent_hubs(self) -> None:
        """Send leave events for the members of hubs whose heartbeat expired (killed hubs)."""
        client = self.client()
        now = asyncio.get_running_loop().time()
        forget = now - max(60.0, 6 * self.ttl)
        self._remote_left = {key: when for key, when in self._remote_left.items() if when > forget}
        quiet = [
            hub_id
            for hub_id, members in self._remote_members.items()
            if members and now - self._remote_heard.get(hub_id, now) > self.ttl
        ]
        for hub_id in quiet:
            # The heartbeat, not the members' hash: a live hub whose last client just left has
            # no hash, and its leave event may still be on its way.
            if await client.exists(self.keys.alive(hub_id)):
                self._remote_heard[hub_id] = now
                continue
            members = self._remote_members.pop(hub_id, {})
            self._remote_heard.pop(hub_id, None)
            log.info("hub %s vanished; its %d clients left", hub_id, len(members))
            # No await from the pop to here: an event read meanwhile would be told twice.
            for member, patterns in members.items():
                self._remote_left[(hub_id, member)] = now
                if self.link is not None:
                    self.link.membership_changed(member, patterns, [], hub_id)
            await client.zrem(self.keys.hubs, hub_id)

    async def read(self, query: Pattern) -> list[dict[str, str]]:
        """Every client, on any hub, subscribed to what ``query`` names, sorted by hub then client."""
        client = self.client()
        hub_ids = sorted(name.decode() for name in await client.zrange(self.keys.hubs, 0, -1))
        async with client.pipeline(transaction=False) as pipe:
            for hub_id in hub_ids:
                pipe.hgetall(self.keys.presence(hub_id))
            hashes = await pipe.execute()
        members: list[dict[str, str]] = []
        now = asyncio.get_running_loop().time()
        for hub_id, fields in zip(hub_ids, hashes, strict=True):
            memberships = decode_memberships(fields)
            members.extend(present_members(memberships, query, hub_id))
            if hub_id != self.hub_id and memberships:
                # Learn members no event told us of, so a hub killed later yields leave events
                # for them too. Events stay the truth for the others: the hash is written a
                # little after them, so it may still hold a client whose leave was told.
                known = self._remote_members.setdefault(hub_id, {})
                for member, patterns in memberships.items():
                    if member not in known and (hub_id, member) not in self._remote_left:
                        known[member] = patterns
                self._remote_heard[hub_id] = now
        return members
