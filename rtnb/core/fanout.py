"""Who gets which message: subscriptions, groups and batches, without I/O.

The hot path of a hub is "one message in, N subscribers out". Doing Python
work per subscriber per message is what makes the classic broadcast loop slow,
so the fan-out is organised around **groups**: every subscriber whose set of
patterns is the same belongs to one group, and a published message is appended
once per *group*, not once per subscriber. When the adapter flushes (once per
event-loop turn), each group's pending messages become one :class:`Batch` whose
encodings are built once and written to every member as the same bytes.

Messages are only ever coalesced if they are already pending when the flush
runs: nothing is held back waiting for company.

A member whose connection cannot keep up is marked ``LAGGING``: it stays in its
group but batches skip it, and it remembers the cursor (last offset per topic)
where it fell behind. The hub later catches it up from history, reporting a
:class:`~rtnb.core.history.Gap` for anything history no longer holds. That is
the slow-consumer policy: one slow client never slows the others, and it never
loses a message silently.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable, Iterable
from typing import Any

from .message import Message
from .topics import Pattern

__all__ = ["Batch", "Cursor", "Fanout", "Group", "Member", "MemberState"]

#: topic -> (epoch, last offset delivered): a :class:`~rtnb.core.position.Position`'s shape, kept as
#: plain tuples because the fan-out writes one per message and group
Cursor = dict[str, tuple[int, int]]

_member_ids = itertools.count(1)


class MemberState(enum.Enum):
    """Lifecycle of a subscriber in the fan-out.

    ``LIVE -> LAGGING -> CATCHING_UP -> LIVE`` while connected, ``-> CLOSED`` at
    the end. A member is only written to by group batches while ``LIVE``.
    """

    LIVE = "live"
    LAGGING = "lagging"
    CATCHING_UP = "catching_up"
    CLOSED = "closed"


_ALLOWED = {
    MemberState.LIVE: {MemberState.LAGGING, MemberState.CATCHING_UP, MemberState.CLOSED},
    MemberState.LAGGING: {MemberState.CATCHING_UP, MemberState.CLOSED},
    MemberState.CATCHING_UP: {MemberState.LIVE, MemberState.LAGGING, MemberState.CATCHING_UP, MemberState.CLOSED},
    MemberState.CLOSED: set(),
}


class Member:
    """One subscriber (a connection, an SSE stream, a poll waiter).

    Attributes:
        id: unique within the process, also used as the client id on the wire.
        sink: the adapter's object that writes to this subscriber.
        patterns: current subscriptions, text -> compiled pattern.
        cursor: only meaningful while not ``LIVE``: how far this member got.
    """

    __slots__ = ("cursor", "group", "id", "patterns", "sink", "state")

    def __init__(self, sink: Any = None, member_id: str | None = None) -> None:
        self.id = member_id or f"c{next(_member_ids)}"
        self.sink = sink
        self.patterns: dict[str, Pattern] = {}
        self.group: Group | None = None
        self.state = MemberState.LIVE
        self.cursor: Cursor = {}

    def transition(self, new_state: MemberState) -> None:
        """Move to ``new_state``; raises ``RuntimeError`` on an illegal move."""
        if new_state not in _ALLOWED[self.state]:
            raise RuntimeError(f"member {self.id}: illegal transition {self.state.value} -> {new_state.value}")
        self.state = new_state

    def position(self) -> Cursor:
        """How far this member has been served, per topic."""
        if self.state is MemberState.LIVE and self.group is not None:
            return dict(self.group.cursor)
        return dict(self.cursor)

    def __repr__(self) -> str:
        return f"Member({self.id}, {self.state.value}, patterns={sorted(self.patterns)})"


class Group:
    """Members with identical pattern sets, fed as one."""

    __slots__ = ("cursor", "key", "members", "patterns", "pending")

    def __init__(self, key: frozenset[str], patterns: Iterable[Pattern]) -> None:
        self.key = key
        self.patterns = tuple(patterns)
        self.members: dict[Member, None] = {}
        self.pending: list[Message] = []
        self.cursor: Cursor = {}

    def matches(self, topic: str) -> bool:
        return any(pattern.matches(topic) for pattern in self.patterns)

    def __repr__(self) -> str:
        return f"Group({sorted(self.key)}, members={len(self.members)}, pending={len(self.pending)})"


class Batch:
    """A group's pending messages at flush time, with shared encodings.

    Adapters ask :meth:`encoded` for the bytes of their wire format; the first
    caller builds them, everyone else reuses them.
    """

    __slots__ = ("_cache", "group", "messages")

    def __init__(self, group: Group, messages: list[Message]) -> None:
        self.group = group
        self.messages = messages
        self._cache: dict[str, Any] = {}

    def encoded(self, key: str, build: Callable[[Batch], Any]) -> Any:
        cache = self._cache
        value = cache.get(key)
        if value is None:
            value = cache[key] = build(self)
        return value


class Fanout:
    """Subscription registry and routing of messages to groups.

    Args:
        on_dirty: called when the first group of a flush cycle gets a pending
            message; the adapter schedules its flush from there.
        max_route_cache: topics whose routes are remembered; past it the cache
            is cleared (routes are recomputed lazily).
    """

    def __init__(self, on_dirty: Callable[[], None] | None = None, max_route_cache: int = 100_000) -> None:
        self.on_dirty = on_dirty
        self.max_route_cache = max_route_cache
        self.groups: dict[frozenset[str], Group] = {}
        self.members: dict[str, Member] = {}
        self._routes: dict[str, tuple[Group, ...]] = {}
        self._dirty: list[Group] = []

    # -- membership -----------------------------------------------------------------

    def add(self, member: Member) -> None:
        self.members[member.id] = member

    def remove(self, member: Member) -> None:
        """Forget ``member``; safe to call twice."""
        self._move(member, frozenset(), {})
        self.members.pop(member.id, None)
        if member.state is not MemberState.CLOSED:
            member.transition(MemberState.CLOSED)

    def set_patterns(self, member: Member, patterns: dict[str, Pattern]) -> Group | None:
        """Give ``member`` a new pattern set, moving it to the matching group.

        Must be called with nothing pending (flush first): messages routed before
        the change were meant for the old set.

        Returns:
            The member's new group, or ``None`` when it has no patterns.
        """
        return self._move(member, frozenset(patterns), patterns)

    def _move(self, member: Member, key: frozenset[str], patterns: dict[str, Pattern]) -> Group | None:
        if self._dirty:
            raise RuntimeError("flush pending batches before changing subscriptions")
        old = member.group
        member.patterns = dict(patterns)
        if old is not None and old.key == key:
            return old
        if old is not None:
            del old.members[member]
            if not old.members:
                del self.groups[old.key]
                self._routes.clear()
        if not key:
            member.group = None
            return None
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(key, patterns.values())
            self._routes.clear()
        group.members[member] = None
        member.group = group
        return group

    # -- routing --------------------------------------------------------------------

    def route(self, message: Message) -> int:
        """Queue ``message`` for every group that wants it; returns the group count."""
        topic = message.topic
        groups = self._routes.get(topic)
        if groups is None:
            groups = self._compute_route(topic)
        if groups:
            was_idle = not self._dirty
            dirty = self._dirty
            for group in groups:
                if not group.pending:
                    dirty.append(group)
                group.pending.append(message)
            if was_idle and self.on_dirty is not None:
                self.on_dirty()
        return len(groups)

    def _compute_route(self, topic: str) -> tuple[Group, ...]:
        if len(self._routes) >= self.max_route_cache:
            self._routes.clear()
        groups = tuple(group for group in self.groups.values() if group.matches(topic))
        self._routes[topic] = groups
        return groups

    def take_batches(self) -> list[Batch]:
        """Everything pending, one batch per group; advances group cursors."""
        dirty, self._dirty = self._dirty, []
        batches = []
        for group in dirty:
            messages, group.pending = group.pending, []
            cursor = group.cursor
            for message in messages:
                cursor[message.topic] = (message.epoch, message.offset)
            batches.append(Batch(group, messages))
        return batches

    @property
    def has_pending(self) -> bool:
        return bool(self._dirty)

    # -- slow consumers ---------------------------------------------------------------

    @staticmethod
    def mark_lagging(member: Member, skipped: list[Message]) -> None:
        """Freeze ``member``'s cursor before ``skipped`` (a batch it did not get)."""
        assert member.group is not None
        cursor = dict(member.group.cursor)
        seen: set[str] = set()
        for message in skipped:
            if message.topic not in seen:
                seen.add(message.topic)
                cursor[message.topic] = (message.epoch, message.offset - 1)
        member.cursor = cursor
        member.transition(MemberState.LAGGING)

    @staticmethod
    def behind(member: Member) -> dict[str, tuple[int, int]]:
        """Topics where a catching-up member is behind its group, with its position."""
        group = member.group
        if group is None:
            return {}
        mine = member.cursor
        return {
            topic: mine.get(topic, (epoch, 0))
            for topic, (epoch, offset) in group.cursor.items()
            if mine.get(topic) != (epoch, offset)
        }

    # -- introspection ----------------------------------------------------------------

    def subscription_count(self) -> int:
        return sum(len(member.patterns) for member in self.members.values())

    def subscribers_of(self, topic: str) -> int:
        """How many members would receive a message on ``topic`` now."""
        groups = self._routes.get(topic)
        if groups is None:
            groups = self._compute_route(topic)
        return sum(len(group.members) for group in groups)
