"""What this hub has delivered per topic, and reading the rest from the topics' Redis streams.

The per-topic cursor (epoch, offset) is the truth for
:meth:`~rtnb.backplane.redis.RedisBackplane.positions` and caps history reads,
so a subscriber catching up from history meets the live stream without loss or
duplicates: a message Redis holds but this hub has not yet delivered is left
to the live path. Catching a topic up (after a reconnect, or when a live
message shows something was skipped) delivers what the stream retains, after
first telling live subscribers, through the hub link, of what it no longer
holds: a new epoch (``epoch_changed``) or a trimmed start (``trimmed``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from ..core.errors import BadField
from ..core.history import Gap, HistoryLimits, HistoryStore
from ..core.message import Message
from ..core.topics import Pattern
from ._redis_keys import RedisKeys
from .base import HubLink, ReadResult, TopicPosition

__all__ = ["Delivered", "Tracked", "decode_entries"]

log = logging.getLogger("rtnb.backplane.redis")


@dataclass
class Tracked:
    """How far this hub has delivered a topic, and where its history starts."""

    epoch: int
    offset: int
    first: int


def decode_entries(entries: Iterable[tuple[bytes, dict[bytes, bytes]]]) -> list[Message]:
    """Messages from XRANGE entries; unreadable ones are skipped with a warning."""
    messages = []
    for _entry_id, fields in entries:
        raw = fields.get(b"m")
        if raw is None:
            continue
        try:
            messages.append(Message.from_envelope(orjson.loads(raw), json=raw))
        except (orjson.JSONDecodeError, BadField) as error:
            log.warning("skipping an unreadable history entry: %s", error)
    return messages


async def fetch_position(client: Any, keys: RedisKeys, topic: str) -> Tracked | None:
    """Where ``topic`` stands in Redis now, or None when Redis never saw it."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.get(keys.epoch(topic))
        pipe.get(keys.offset(topic))
        pipe.xrange(keys.stream(topic), "-", "+", count=1)
        epoch, offset, first = await pipe.execute()
    if epoch is None:
        return None
    last = int(offset or 0)
    return Tracked(int(epoch), last, int(first[0][0].split(b"-", 1)[0]) if first else last + 1)


class Delivered:
    """Per-topic delivery cursors, a cache of recent messages, and catch-up from streams.

    Args:
        keys: key names.
        limits: bounds of the local cache (and the default history start of a new topic).
    """

    def __init__(self, keys: RedisKeys, limits: HistoryLimits) -> None:
        self.keys = keys
        self.limits = limits
        self.cache = HistoryStore(limits)
        self.tracked: dict[str, Tracked] = {}
        self.link: HubLink | None = None

    def accept(self, message: Message) -> None:
        """Deliver ``message`` unless this hub already did (or it is from an older epoch)."""
        topic = message.topic
        tracked = self.tracked.get(topic)
        if tracked is not None:
            if message.epoch < tracked.epoch or (message.epoch == tracked.epoch and message.offset <= tracked.offset):
                return
            if message.epoch == tracked.epoch:
                tracked.offset = message.offset
            else:
                self.tracked[topic] = Tracked(message.epoch, message.offset, message.offset)
        else:
            first = 1 if message.offset == 1 else max(1, message.offset - self.limits.max_messages + 1)
            self.tracked[topic] = Tracked(message.epoch, message.offset, min(first, message.offset))
        self.cache.insert(message)
        if self.link is not None:
            self.link.deliver(message)

    def needs_catch_up(self, message: Message) -> bool:
        """True when something lies between what was delivered and ``message``."""
        tracked = self.tracked.get(message.topic)
        return tracked is not None and (
            message.epoch > tracked.epoch or (message.epoch == tracked.epoch and message.offset > tracked.offset + 1)
        )

    async def read_since(self, client: Callable[[], Any], topic: str, offset: int, epoch: int | None) -> ReadResult:
        """Messages after ``offset`` up to what this hub has delivered, with gaps for what is gone.

        Reads the cache when it holds the whole range, else the topic's stream
        (``client()`` gives the node's client). Redis errors propagate.
        """
        tracked = self.tracked.get(topic)
        if tracked is None:
            found = await fetch_position(client(), self.keys, topic)
            if found is None:
                return ([Gap(topic, offset + 1, None, "epoch_changed")] if offset else []), [], None
            tracked = found
        current_epoch, last = tracked.epoch, tracked.offset
        gaps: list[Gap] = []
        if (epoch is not None and epoch != current_epoch) or offset > last:
            gaps.append(Gap(topic, offset + 1, None, "epoch_changed", current_epoch))
            offset = 0
        if offset >= last:
            return gaps, [], (current_epoch, last)
        cached = self.cache.get(topic)
        if (
            cached is not None
            and cached.epoch == current_epoch
            and cached.last_offset == last
            and (cached.first_offset <= offset + 1)
        ):
            more_gaps, messages = cached.since(offset, current_epoch)
            return gaps + more_gaps, messages, (current_epoch, last)
        entries = await client().xrange(self.keys.stream(topic), f"{offset + 1}-0", f"{last}-0")
        messages = [message for message in decode_entries(entries) if message.epoch == current_epoch]
        first = messages[0].offset if messages else last + 1
        if first > offset + 1:
            gaps.append(Gap(topic, offset + 1, first - 1, "trimmed", current_epoch))
        return gaps, messages, (current_epoch, last)

    def positions(self, pattern: Pattern) -> dict[str, TopicPosition]:
        if not pattern.is_wildcard:
            tracked = self.tracked.get(pattern.text)
            found = {} if tracked is None else {pattern.text: tracked}
        else:
            found = {topic: tracked for topic, tracked in self.tracked.items() if pattern.matches(topic)}
        return {
            topic: TopicPosition(tracked.epoch, min(tracked.first, tracked.offset + 1), tracked.offset)
            for topic, tracked in found.items()
        }

    def forget(self, topic: str) -> None:
        self.tracked.pop(topic, None)
        self.cache.reset(topic)

    async def catch_up(self, client: Any, topic: str, epoch: int, upto: int) -> None:
        """Bring ``topic`` to offset ``upto`` of ``epoch`` from its stream, with a gap for whatever is gone."""
        tracked = self.tracked.get(topic)
        gaps: list[Gap] = []
        after = 0
        if tracked is not None:
            if tracked.epoch > epoch:
                return  # an older epoch than the one delivered: nothing to catch up
            if tracked.epoch == epoch:
                after = tracked.offset
            else:
                gaps.append(Gap(topic, tracked.offset + 1, None, "epoch_changed", epoch))
        messages: list[Message] = []
        if upto > after:
            entries = await client.xrange(self.keys.stream(topic), f"{after + 1}-0", f"{upto}-0")
            messages = [message for message in decode_entries(entries) if message.epoch == epoch]
        first = messages[0].offset if messages else max(upto, after) + 1
        if first > after + 1:
            gaps.append(Gap(topic, after + 1, first - 1, "trimmed", epoch))
        if gaps:
            self.skip_to(topic, epoch, first - 1, gaps)
        for message in messages:
            self.accept(message)

    def skip_to(self, topic: str, epoch: int, offset: int, gaps: list[Gap]) -> None:
        """Tell live subscribers of ``topic`` the ``gaps``; this hub's position moves to ``offset`` of ``epoch``."""
        for gap in gaps:
            log.warning(
                "live subscribers of %r missed what history no longer holds: %s gap %s..%s (epoch %s)",
                topic,
                gap.reason,
                gap.from_offset,
                gap.to_offset,
                gap.epoch,
            )
        tracked = self.tracked.get(topic)
        if tracked is not None and tracked.epoch == epoch:
            # Streams lose their oldest entries first: history now starts after the gap.
            tracked.offset = max(tracked.offset, offset)
            tracked.first = max(tracked.first, offset + 1)
        else:
            self.tracked[topic] = Tracked(epoch, offset, offset + 1)
        if self.link is not None:
            self.link.skip(topic, epoch, offset, gaps)
