"""Per-topic history with gap-free offsets and epochs.

Each topic keeps a bounded ring of its latest messages. Offsets start at 1 and
grow by one per message, so a client that remembers the last offset it has seen
can ask for exactly what came after. When the hub cannot give it all (trimmed
by a limit, or the topic's history was reset and got a new epoch) the answer
carries an explicit :class:`~rtnb.core.gaps.Gap` instead of silently skipping
(gaps are defined in :mod:`rtnb.core.gaps` and re-exported here, where their
users have always imported them from).

Limits, all with defaults and all bounded:

* per topic: ``max_messages`` (count), ``max_bytes`` (JSON size), ``max_age``
  (seconds, ``None`` disables the age limit);
* for the store: ``max_topics`` and ``max_total_bytes``. Past those the least
  recently published topic loses its retained messages, but not its place: the
  store remembers its epoch and last offset (a few dozen bytes, at most
  ``RETIRED_PER_TOPIC`` times ``max_topics`` of them). Publishing there again
  continues the same epoch, and a client resuming on it gets exactly a
  ``trimmed`` gap for what it missed, or nothing when it missed nothing. Only a
  topic forgotten past that bound, or reset, starts a new epoch.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .gaps import COALESCE_GAPS_FROM, GAP_LIST_SIZE, Gap, GapList, GapReason, coalesce_gaps
from .message import Message
from .topics import Pattern

__all__ = [
    "COALESCE_GAPS_FROM",
    "GAP_LIST_SIZE",
    "RETIRED_PER_TOPIC",
    "Gap",
    "GapList",
    "GapReason",
    "HistoryLimits",
    "HistoryStore",
    "TopicHistory",
    "coalesce_gaps",
]

#: evicted topics whose epoch and last offset are remembered, per ``max_topics``
RETIRED_PER_TOPIC = 10


@dataclass(frozen=True, slots=True)
class HistoryLimits:
    """Bounds on what the hub remembers. ``None`` disables ``max_age`` only."""

    max_messages: int = 1000
    max_bytes: int = 4 * 2**20
    max_age: float | None = None
    max_topics: int = 10_000
    max_total_bytes: int = 256 * 2**20

    def __post_init__(self) -> None:
        if self.max_messages < 0:
            raise ValueError("max_messages must be >= 0")
        if self.max_bytes < 0 or self.max_total_bytes < 0:
            raise ValueError("byte limits must be >= 0")
        if self.max_topics < 1:
            raise ValueError("max_topics must be >= 1")
        if self.max_age is not None and self.max_age <= 0:
            raise ValueError("max_age must be > 0 or None")


class TopicHistory:
    """The retained messages of one topic in one epoch."""

    __slots__ = ("_bytes", "_messages", "epoch", "last_offset", "limits", "topic")

    def __init__(self, topic: str, epoch: int, limits: HistoryLimits) -> None:
        self.topic = topic
        self.epoch = epoch
        self.limits = limits
        self.last_offset = 0
        self._messages: deque[Message] = deque()
        self._bytes = 0

    @property
    def first_offset(self) -> int:
        """Offset of the oldest retained message (``last_offset + 1`` when empty)."""
        return self._messages[0].offset if self._messages else self.last_offset + 1

    @property
    def retained_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._messages)

    def append(self, data: Any, ts: float, *, data_json: bytes | None = None) -> tuple[Message, int]:
        """Assign the next offset to ``data`` and retain it.

        Returns:
            The message and the number of bytes trimmed to make room.
        """
        self.last_offset += 1
        message = Message(self.topic, self.last_offset, self.epoch, ts, data, data_json=data_json)
        if self.limits.max_messages == 0:
            return message, 0
        size = message.size
        self._messages.append(message)
        self._bytes += size
        return message, self._trim_to_limits()

    def insert(self, message: Message) -> int:
        """Retain a message whose offset was assigned elsewhere (a backplane).

        Offsets must arrive in order; a message older than what is retained is
        ignored. Returns the number of bytes trimmed.
        """
        if message.offset <= self.last_offset:
            return 0
        if self._messages and message.offset != self.last_offset + 1:
            # A hole: what we hold no longer continues into this message.
            self._bytes = 0
            self._messages.clear()
        self.last_offset = message.offset
        if self.limits.max_messages == 0:
            return 0
        self._messages.append(message)
        self._bytes += message.size
        return self._trim_to_limits()

    def _trim_to_limits(self) -> int:
        limits, messages = self.limits, self._messages
        trimmed = 0
        while len(messages) > limits.max_messages or (self._bytes > limits.max_bytes and len(messages) > 1):
            trimmed += self._drop_oldest()
        return trimmed

    def _drop_oldest(self) -> int:
        size = self._messages.popleft().size
        self._bytes -= size
        return size

    def trim_older_than(self, cutoff: float) -> int:
        """Drop messages stamped before ``cutoff``; returns bytes freed."""
        trimmed = 0
        while self._messages and self._messages[0].ts < cutoff:
            trimmed += self._drop_oldest()
        return trimmed

    def drop_all(self) -> int:
        freed = self._bytes
        self._messages.clear()
        self._bytes = 0
        return freed

    def last(self, count: int) -> list[Message]:
        """The latest ``count`` retained messages, oldest first."""
        if count <= 0:
            return []
        start = max(0, len(self._messages) - count)
        return list(itertools.islice(self._messages, start, None))

    def since(self, offset: int, epoch: int | None = None) -> tuple[list[Gap], list[Message]]:
        """What comes after ``offset``, the last offset a client has seen.

        Args:
            offset: last seen offset (0: nothing seen yet).
            epoch: the epoch that offset belongs to, when the client knows it.

        Returns:
            Gaps to report first, then the retained messages to send.
        """
        gaps: list[Gap] = []
        epoch_changed = (epoch is not None and epoch != self.epoch) or offset > self.last_offset
        if epoch_changed:
            gaps.append(Gap(self.topic, offset + 1, None, "epoch_changed", self.epoch))
            offset = 0
        first = self.first_offset
        if offset + 1 < first:
            gaps.append(Gap(self.topic, offset + 1, first - 1, "trimmed", self.epoch))
            offset = first - 1
        skip = offset + 1 - first
        return gaps, list(itertools.islice(self._messages, skip, None))

    def __iter__(self) -> Iterator[Message]:
        return iter(self._messages)


class HistoryStore:
    """All topics' histories, bounded in topic count and total bytes.

    The store assigns epochs: an integer that is the creation time in
    milliseconds, made strictly increasing so two incarnations of a topic never
    share one. ``clock`` supplies time in seconds; the core never reads it itself.
    """

    def __init__(self, limits: HistoryLimits | None = None) -> None:
        self.limits = limits or HistoryLimits()
        self._topics: OrderedDict[str, TopicHistory] = OrderedDict()
        #: evicted topics: topic -> (epoch, last offset), oldest first
        self._retired: OrderedDict[str, tuple[int, int]] = OrderedDict()
        #: the last epoch each reset topic lost: topic -> (epoch, last offset), oldest first
        self._lost: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._total_bytes = 0
        self._last_epoch = 0
        self.evicted_topics = 0

    def __len__(self) -> int:
        return len(self._topics)

    def __contains__(self, topic: str) -> bool:
        return topic in self._topics

    @property
    def total_bytes(self) -> int:
        return self._total_bytes

    def get(self, topic: str) -> TopicHistory | None:
        return self._topics.get(topic)

    def topics(self) -> list[str]:
        return list(self._topics)

    def retired(self, topic: str) -> TopicHistory | None:
        """An evicted topic's place (its epoch and last offset, no messages), if remembered."""
        place = self._retired.get(topic)
        if place is None:
            return None
        history = TopicHistory(topic, place[0], self.limits)
        history.last_offset = place[1]
        return history

    def lookup(self, topic: str) -> TopicHistory | None:
        """The topic's history, or its remembered place when evicted, or ``None``."""
        history = self._topics.get(topic)
        return history if history is not None else self.retired(topic)

    def matching(self, pattern: Pattern, *, with_retired: bool = False) -> list[TopicHistory]:
        """Histories of every known topic ``pattern`` selects (and evicted ones' places if asked)."""
        if not pattern.is_wildcard:
            found = self.lookup(pattern.text) if with_retired else self._topics.get(pattern.text)
            return [found] if found is not None else []
        found_list = [history for topic, history in self._topics.items() if pattern.matches(topic)]
        if with_retired and self._retired:
            for topic in self._retired:
                if pattern.matches(topic):
                    place = self.retired(topic)
                    assert place is not None
                    found_list.append(place)
        return found_list

    def new_epoch(self, now: float) -> int:
        epoch = max(int(now * 1000), self._last_epoch + 1)
        self._last_epoch = epoch
        return epoch

    def open(self, topic: str, now: float, epoch: int | None = None) -> TopicHistory:
        """The history of ``topic``, created (with a new epoch) if unknown."""
        history = self._topics.get(topic)
        if history is None:
            place = self._retired.pop(topic, None)
            if place is not None and epoch is None:
                # Evicted, not reset: the topic continues where it stood, in its epoch.
                history = TopicHistory(topic, place[0], self.limits)
                history.last_offset = place[1]
            else:
                history = TopicHistory(topic, epoch if epoch is not None else self.new_epoch(now), self.limits)
            self._topics[topic] = history
            self._evict_over_limits(keep=topic)
        return history

    def append(self, topic: str, data: Any, now: float, *, data_json: bytes | None = None) -> Message:
        """Publish ``data`` on ``topic`` at time ``now``: assign offset, retain."""
        history = self.open(topic, now)
        self._topics.move_to_end(topic)
        message, trimmed = history.append(data, now, data_json=data_json)
        self._account(message, trimmed, keep=topic)
        return message

    def insert(self, message: Message) -> None:
        """Retain a message whose offset and epoch a backplane assigned."""
        history = self._topics.get(message.topic)
        if history is None or history.epoch != message.epoch:
            if history is not None:
                self._total_bytes -= history.drop_all()
            history = TopicHistory(message.topic, message.epoch, self.limits)
            self._topics[message.topic] = history
        self._topics.move_to_end(message.topic)
        trimmed = history.insert(message)
        self._account(message, trimmed, keep=message.topic)

    def _account(self, message: Message, trimmed: int, keep: str) -> None:
        if self.limits.max_messages:
            self._total_bytes += message.size - trimmed
        self._evict_over_limits(keep=keep)

    def _evict_over_limits(self, keep: str) -> None:
        limits = self.limits
        while len(self._topics) > limits.max_topics or (
            self._total_bytes > limits.max_total_bytes and len(self._topics) > 1
        ):
            oldest = next(iter(self._topics))
            if oldest == keep:
                self._topics.move_to_end(oldest)
                oldest = next(iter(self._topics))
                if oldest == keep:
                    break
            evicted = self._topics.pop(oldest)
            self._total_bytes -= evicted.drop_all()
            self.evicted_topics += 1
            self._retired[oldest] = (evicted.epoch, evicted.last_offset)
            while len(self._retired) > RETIRED_PER_TOPIC * limits.max_topics:
                self._retired.popitem(last=False)

    def trim_by_age(self, now: float) -> int:
        """Apply ``max_age`` to every topic; returns bytes freed."""
        if self.limits.max_age is None:
            return 0
        cutoff = now - self.limits.max_age
        freed = 0
        for history in self._topics.values():
            freed += history.trim_older_than(cutoff)
        self._total_bytes -= freed
        return freed

    def reset(self, topic: str) -> tuple[int, int] | None:
        """Forget ``topic``; publishing again starts a new epoch.

        Returns:
            The ``(epoch, last offset)`` the topic had, or ``None`` when it was unknown.
        """
        place = self._retired.pop(topic, None)
        history = self._topics.pop(topic, None)
        if history is not None:
            self._total_bytes -= history.drop_all()
            place = (history.epoch, history.last_offset)
        if place is not None and place[1]:
            self._lost[topic] = place
            self._lost.move_to_end(topic)
            while len(self._lost) > RETIRED_PER_TOPIC * self.limits.max_topics:
                self._lost.popitem(last=False)
        return place

    def lost_epochs(self, pattern: Pattern) -> dict[str, tuple[int, int]]:
        """Topics ``pattern`` matches whose last reset dropped an epoch: topic -> (epoch, last offset).

        A subscriber resuming without that topic in its cursor never saw that epoch
        (it did not know the topic): its messages are reported as lost, not skipped.
        """
        return {topic: place for topic, place in self._lost.items() if pattern.matches(topic)}
