"""The default backplane: everything inside this process.

Offsets and history live in a :class:`~rtnb.core.history.HistoryStore`. Publish
is synchronous (:meth:`MemoryBackplane.append`), so a hub on this backplane
never suspends between assigning an offset and routing the message; history
reads are immediate too, which makes subscribe-and-replay atomic.

It does no I/O (a history store and a callback), so it lives in the core: the
hub takes it as its default without depending on :mod:`rtnb.backplane`, which
re-exports it as ``rtnb.backplane.memory.MemoryBackplane``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from .backplane import Deliver, HubLink, ReadResult, TopicPosition
from .errors import Unavailable
from .history import Gap, HistoryLimits, HistoryStore
from .message import Message
from .presence import present_members
from .topics import Pattern

__all__ = ["MemoryBackplane"]


class MemoryBackplane:
    """In-process offsets, history and delivery.

    Args:
        limits: history bounds (messages, bytes, age, topics).
        clock: seconds since the epoch; injectable for tests.
    """

    name = "memory"
    is_local = True

    def __init__(
        self, limits: HistoryLimits | None = None, clock: Callable[[], float] = time.time, hub_id: str | None = None
    ) -> None:
        self.store = HistoryStore(limits)
        self.clock = clock
        #: this hub's name in presence, random unless given: the same shape as on Redis
        self.hub_id = hub_id or uuid.uuid4().hex[:12]
        self._deliver: Deliver | None = None
        self._hub: HubLink | None = None

    async def start(self, hub: HubLink) -> None:
        self._hub = hub
        self._deliver = hub.deliver

    async def stop(self) -> None:
        self._deliver = None

    def append(self, topic: str, data: Any, ts: float, data_json: bytes | None = None) -> Message:
        """Publish synchronously: assign the offset, retain, deliver."""
        deliver = self._deliver
        if deliver is None:
            raise Unavailable("The hub is not running.")
        message = self.store.append(topic, data, ts, data_json=data_json)
        deliver(message)
        return message

    async def publish(self, topic: str, data: Any, ts: float, data_json: bytes) -> Message:
        return self.append(topic, data, ts, data_json)

    async def read_since(self, topic: str, offset: int, epoch: int | None) -> ReadResult:
        history = self.store.lookup(topic)
        if history is None:
            # Unknown topic: a client that saw offsets here saw an older incarnation.
            return ([Gap(topic, offset + 1, None, "epoch_changed")] if offset else []), [], None
        gaps, messages = history.since(offset, epoch)
        return gaps, messages, (history.epoch, history.last_offset)

    def positions(self, pattern: Pattern) -> dict[str, TopicPosition]:
        return {
            history.topic: TopicPosition(history.epoch, history.first_offset, history.last_offset)
            for history in self.store.matching(pattern, with_retired=True)
        }

    async def watch(self, patterns: set[Pattern]) -> None:
        """Nothing to do: every message published here is already local."""

    def health(self) -> dict[str, Any]:
        return {
            "backplane": self.name,
            "ok": self._deliver is not None,
            "topics": len(self.store),
            "history_bytes": self.store.total_bytes,
        }

    def trim_by_age(self) -> int:
        return self.store.trim_by_age(self.clock())

    def cursor_mirror(self) -> None:
        """Stored resume cursors stay on this hub: there is no other hub."""
        return None

    async def lost_epochs(self, pattern: Pattern) -> dict[str, tuple[int, int]]:
        """Epochs reset topics lost (see :meth:`~rtnb.core.history.HistoryStore.lost_epochs`)."""
        return self.store.lost_epochs(pattern)

    def reset_topic(self, topic: str) -> None:
        """Forget ``topic``'s history; live subscribers get an ``epoch_changed`` gap now."""
        place = self.store.reset(topic)
        if place is not None and self._hub is not None:
            self._hub.topic_reset(topic)

    async def presence(self, query: Pattern) -> list[dict[str, str]]:
        """This hub's own subscribers: there is no other hub."""
        return [] if self._hub is None else present_members(self._hub.local_subscriptions(), query, self.hub_id)

    def announce_membership(self, client: str, before: list[str], after: list[str]) -> None:
        if self._hub is not None:
            self._hub.membership_changed(client, before, after, self.hub_id)
