"""What this hub listens to in Redis, and what it does with each arrival.

The hub's patterns decide which buckets it needs (an exact topic: its bucket;
a wildcard: all of them). Each node's listener is subscribed to the needed
buckets that node holds; a change of patterns subscribes or unsubscribes the
difference and waits for Redis to confirm new subscriptions, then looks up the
topics new patterns match so their positions are known before replay.

When a listener (re)connects, :meth:`Subscriptions.join` subscribes it, then
brings every topic of its node up to date from the streams (see
:mod:`~rtnb.backplane._redis_history`) before any live message is handled;
topics created while it was away are found in the bucket indexes. Each
arrival (one payload per published batch: the bucket's clock, then the
envelopes) is decoded once, filtered exactly against the hub's patterns, and
caught up first if something lies between it and what was delivered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from ..core.errors import BadField, Unavailable
from ..core.message import Message
from ..core.topics import Pattern
from ._redis_history import Delivered, fetch_position
from ._redis_keys import BUCKETS, RedisKeys, bucket_of, topic_prefix
from ._redis_listener import Listener, ListenerLost
from ._redis_nodes import Node
from ._redis_scripts import CHECK_CLOCK_SCRIPT

__all__ = ["Subscriptions"]

log = logging.getLogger("rtnb.backplane.redis")


class Subscriptions:
    """The hub's patterns, the buckets each node's listener holds, and handling what arrives.

    Args:
        keys: key names.
        delivered: per-topic delivery cursors and catch-up.
        clocks: the highest clock seen per bucket (shared with the publisher).
        presence_channel: the channel of presence events, handed to ``on_presence``.
        on_presence: called with each presence event's payload.
        command_timeout: seconds to wait for Redis to confirm subscriptions.
    """

    def __init__(
        self,
        keys: RedisKeys,
        delivered: Delivered,
        clocks: dict[int, int],
        presence_channel: bytes,
        on_presence: Callable[[bytes], None],
        command_timeout: float,
    ) -> None:
        self.keys = keys
        self.delivered = delivered
        self.clocks = clocks
        self.presence_channel = presence_channel
        self.on_presence = on_presence
        self.command_timeout = command_timeout
        self.patterns: set[Pattern] = set()
        #: listeners that are subscribed and caught up, by node
        self.live: dict[Node, Listener] = {}
        self.presence_node: Node | None = None
        self._subscribed: dict[Node, set[int]] = {}
        self._redis_time_ms: dict[Node, int] = {}
        self._wanted_cache: dict[str, bool] = {}
        self._confirmations: dict[tuple[Node, bytes], asyncio.Future[None]] = {}
        #: unsubscribes this hub sent and Redis has not confirmed yet, per node and channel
        self._unsubscribing: dict[tuple[Node, bytes], int] = {}
        self._lock = asyncio.Lock()

    def needed_buckets(self) -> set[int]:
        if any(pattern.is_wildcard for pattern in self.patterns):
            return set(range(BUCKETS))
        return {bucket_of(pattern.text) for pattern in self.patterns}

    def wanted(self, topic: str) -> bool:
        """True when a pattern of this hub matches ``topic`` (cached)."""
        cache = self._wanted_cache
        wanted = cache.get(topic)
        if wanted is None:
            if len(cache) > 100_000:
                cache.clear()
            wanted = cache[topic] = any(pattern.matches(topic) for pattern in self.patterns)
        return wanted

    def refuse(self, patterns: set[Pattern]) -> None:
        """Stop counting ``patterns`` as watched: Redis could not take them (their subscribe was refused)."""
        self.patterns -= patterns
        self._wanted_cache.clear()

    async def update(self, wanted: set[Pattern], nodes: Iterable[Node]) -> tuple[set[Pattern], set[int]]:
        """Listen for exactly ``wanted``: subscribe what is new (confirmed), drop what is not needed.

        Returns:
            ``(added patterns, needed buckets no live listener could take)``.

        Raises:
            ListenerLost, redis errors: Redis did not confirm, or the topic lookup failed.
        """
        async with self._lock:
            added = wanted - self.patterns
            removed = self.patterns - wanted
            self.patterns = set(wanted)
            self._wanted_cache.clear()
            if removed:
                for topic in list(self.delivered.tracked):
                    if not self.wanted(topic):
                        self.delivered.forget(topic)
            needed = self.needed_buckets()
            waits: list[asyncio.Future[None]] = []
            missing: set[int] = set()
            for node in nodes:
                listener = self.live.get(node)
                old, new = self._subscribed.get(node, set()), needed & node.buckets
                if listener is None:
                    missing |= new - old
                    continue
                try:
                    dropped = [self.keys.channel(bucket).encode() for bucket in old - new]
                    listener.unsubscribe(dropped)
                    for channel in dropped:
                        self._unsubscribing[(node, channel)] = self._unsubscribing.get((node, channel), 0) + 1
                    channels = [self.keys.channel(bucket).encode() for bucket in new - old]
                    waits += [self._expect(node, channel) for channel in channels]
                    listener.subscribe(channels)
                    self._subscribed[node] = new
                except ListenerLost:
                    missing |= new - old
            if waits:
                await asyncio.wait_for(asyncio.gather(*waits), self.command_timeout)
            if added and self.live:
                await self.discover(added, None, list(self.live))
            return added, missing

    async def watch(
        self,
        wanted: set[Pattern],
        nodes: Iterable[Node],
        errors: tuple[type[BaseException], ...],
        unavailable: Callable[[BaseException | str, str], Unavailable],
    ) -> bool:
        """:meth:`update` for the hub: a new pattern Redis cannot take now is refused, not half-watched.

        Returns:
            False when new patterns were refused: no live listener could take them.

        Raises:
            Unavailable: Redis failed while confirming a new pattern (made by ``unavailable``).
        """
        adding = wanted - self.patterns
        try:
            added, missing = await self.update(wanted, nodes)
        except errors as error:
            if adding:
                # Not watched: a retried subscribe must be refused too until Redis is back,
                # not go live on topics whose positions this hub never looked up.
                self.refuse(adding)
                raise unavailable(error, "subscribe again when it is back.") from None
            log.info("could not unsubscribe in Redis (will resync on reconnect): %s", error)
            return True
        exact_missing = any(not pattern.is_wildcard and bucket_of(pattern.text) in missing for pattern in added)
        if added and (not self.live or exact_missing):
            self.refuse(added)
            return False
        return True

    def _expect(self, node: Node, channel: bytes) -> asyncio.Future[None]:
        future = self._confirmations.get((node, channel))
        if future is None or future.done():
            future = self._confirmations[(node, channel)] = asyncio.get_running_loop().create_future()
        return future

    def lost(self, node: Node, reason: str) -> None:
        """``node``'s listener is gone: forget its subscriptions, fail its pending confirmations."""
        self.live.pop(node, None)
        self._subscribed.pop(node, None)
        for key in [key for key in self._unsubscribing if key[0] is node]:
            del self._unsubscribing[key]
        for key in [key for key in self._confirmations if key[0] is node]:
            future = self._confirmations.pop(key)
            if not future.done():
                future.set_exception(ListenerLost(reason))

    async def discover(self, patterns: set[Pattern], missed_since_ms: int | None, nodes: list[Node]) -> None:
        """Start tracking untracked topics ``patterns`` match, in the buckets of ``nodes``.

        With ``missed_since_ms`` (a reconnect), a topic whose epoch began after
        that Redis time was created while this hub was away: its whole stream is
        delivered. Otherwise tracking starts at the topic's current offset.
        """
        for node in nodes:
            asked: list[Pattern | None] = []
            async with node.client.pipeline(transaction=False) as pipe:
                for pattern in patterns:
                    prefix = topic_prefix(pattern)
                    if not pattern.is_wildcard:
                        if bucket_of(prefix) in node.buckets:
                            pipe.zscore(self.keys.topics(bucket_of(prefix)), prefix)
                            asked.append(pattern)
                        continue
                    low, high = (b"[" + prefix.encode(), b"[" + prefix.encode() + b"\xff") if prefix else (b"-", b"+")
                    for bucket in node.buckets:
                        pipe.zrangebylex(self.keys.topics(bucket), low, high)
                        asked.append(None)
                replies = await pipe.execute() if asked else []
            topics: set[str] = set()
            for exact, reply in zip(asked, replies, strict=True):
                if exact is not None:
                    if reply is not None:
                        topics.add(exact.text)
                    continue
                names = (name.decode() if isinstance(name, bytes) else name for name in reply)
                topics.update(topic for topic in names if any(p.matches(topic) for p in patterns))
            for topic in sorted(topics):
                if topic in self.delivered.tracked:
                    continue
                position = await fetch_position(node.client, self.keys, topic)
                if position is None or topic in self.delivered.tracked:
                    continue
                if missed_since_ms is not None and position.epoch >= missed_since_ms:
                    await self.delivered.catch_up(node.client, topic, position.epoch, position.offset)
                else:
                    self.delivered.tracked[topic] = position

    async def join(self, node: Node, listener: Listener) -> None:
        """Subscribe a fresh ``listener`` to ``node``'s needed buckets, catch up, then mark it live.

        Raises:
            ListenerLost, redis errors: the node failed meanwhile.
        """
        async with self._lock:
            buckets = self.needed_buckets() & node.buckets
            expected = {self.keys.channel(bucket).encode() for bucket in buckets}
            if node is self.presence_node:
                expected.add(self.presence_channel)
            listener.subscribe(expected)
            early: list[list[Any]] = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.command_timeout
            while expected:
                if loop.time() > deadline:
                    raise ListenerLost("Redis did not confirm the subscriptions in time")
                item = await listener.read()
                if item[0] in (b"ssubscribe", b"subscribe"):
                    expected.discard(item[1])
                elif item[0] in (b"smessage", b"message"):
                    early.append(item)
            self._subscribed[node] = buckets
            await self._resync(node)
            for item in early:
                await self.handle(node, item)
            self.live[node] = listener

    async def _resync(self, node: Node) -> None:
        """Detect a restored Redis, deliver what tracked topics missed, find topics created meanwhile."""
        client = node.client
        checked = [bucket for bucket in sorted(node.buckets) if self.clocks.get(bucket)]
        if checked:
            async with client.pipeline(transaction=False) as pipe:
                for bucket in checked:
                    pipe.eval(
                        CHECK_CLOCK_SCRIPT, 2, self.keys.clock(bucket), self.keys.topics(bucket), self.clocks[bucket]
                    )
                await pipe.execute()
        for topic, tracked in list(self.delivered.tracked.items()):
            if bucket_of(topic) not in node.buckets:
                continue
            position = await fetch_position(client, self.keys, topic)
            if position is None:
                continue  # Redis lost the topic; its next message starts a new epoch
            if position.epoch >= tracked.epoch:
                await self.delivered.catch_up(client, topic, position.epoch, position.offset)
        missed_since = self._redis_time_ms.get(node)
        if missed_since is not None:
            await self.discover(set(self.patterns), missed_since, [node])
        seconds, microseconds = await client.time()
        self._redis_time_ms[node] = int(seconds) * 1000 + int(microseconds) // 1000

    async def handle(self, node: Node, item: list[Any]) -> None:
        """One push from ``node``'s listener: a batch of messages, a presence event, or a confirmation."""
        kind = item[0]
        if kind in (b"smessage", b"message"):
            channel, payload = item[1], item[2]
            if channel == self.presence_channel:
                self.on_presence(payload)
                return
            bucket = self.keys.bucket_of_channel(channel)
            if bucket is None:
                return
            clock, _, envelopes = payload.partition(b"\n")
            if int(clock) > self.clocks.get(bucket, 0):
                self.clocks[bucket] = int(clock)
            # The common case runs without a coroutine per message: only a message that
            # shows something was skipped waits (for its catch-up from the stream).
            delivered, wanted = self.delivered, self.wanted
            for envelope in envelopes.split(b"\n"):
                try:
                    message = Message.from_envelope(orjson.loads(envelope), json=envelope)
                except (orjson.JSONDecodeError, BadField) as error:
                    log.warning("ignoring an unreadable message: %s", error)
                    continue
                if not wanted(message.topic):
                    continue
                if delivered.needs_catch_up(message):
                    # Something between what we delivered and this: fetch it first, in order.
                    await delivered.catch_up(node.client, message.topic, message.epoch, message.offset - 1)
                delivered.accept(message)
        elif kind in (b"ssubscribe", b"subscribe"):
            future = self._confirmations.pop((node, item[1]), None)
            if future is not None and not future.done():
                future.set_result(None)
        elif kind in (b"sunsubscribe", b"unsubscribe"):
            key = (node, item[1])
            pending = self._unsubscribing.get(key, 0)
            if pending:
                # The confirmation of an unsubscribe this hub sent; the bucket may be
                # subscribed again since (a client left and another came): not a loss.
                if pending == 1:
                    del self._unsubscribing[key]
                else:
                    self._unsubscribing[key] = pending - 1
                return
            # Redis drops sharded subscriptions whose slot migrated away: listen again, elsewhere.
            bucket = self.keys.bucket_of_channel(item[1])
            if kind == b"sunsubscribe" and bucket is not None and bucket in self._subscribed.get(node, set()):
                raise ListenerLost(f"{node.name} no longer serves the slot of {item[1]!r}")
