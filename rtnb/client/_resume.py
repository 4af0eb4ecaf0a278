"""Resume bookkeeping for a client, without I/O.

The tracker remembers, per topic, the ``(epoch, offset)`` up to which the
application has been served. From that it decides, for every object the hub
sends, whether to hand it on:

* a message at or before the cursor (same epoch) is a duplicate and is dropped;
* a message that jumps past ``cursor + 1`` with no gap notice first, or that
  arrives in a new epoch unannounced, is handed on *after* a synthesised
  :class:`~rtnb.core.history.Gap` (reason ``missing`` or ``epoch_changed``), so
  a loss is never silent even if the hub failed to say so;
* a hub gap notice moves the cursor past the lost range, so the messages after
  it are accepted; a notice about a range already passed is dropped.

It also builds the ``since`` object a subscribe request carries when the client
reconnects: ``{TOPIC: {"offset": N, "epoch": E}}`` for every topic the pattern
matches.

Over thousands of topics that object is hundreds of KiB, so the tracker also
keeps a **checkpoint**: a cursor the hub issued (``{"op": "checkpoint"}``,
answered in order with the stream) and the set of topics that moved after it.
A resume then sends ``since: CURSOR`` and a ``delta`` of those topics only,
whose size depends on how much moved since the checkpoint, not on the number
of topics (see docs/guarantees.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..core.history import Gap
from ..core.topics import Pattern

__all__ = ["CHECKPOINT_MIN_TOPICS", "CHECKPOINT_RENEW_TOPICS", "Position", "ResumeTracker"]

#: topics tracked before checkpoints are worth it (below, the full map is small)
CHECKPOINT_MIN_TOPICS = 256
#: topics moved since the last checkpoint that make it due for renewal
CHECKPOINT_RENEW_TOPICS = 64

#: (epoch or None when only "a new epoch, from its start" is known, last offset served)
Position = tuple["int | None", int]


class ResumeTracker:
    """Per-topic cursors, duplicate suppression and gap detection."""

    def __init__(self) -> None:
        self._cursor: dict[str, Position] = {}
        self._delivered: dict[str, tuple[int, int]] = {}
        #: the hub's last checkpoint cursor, the patterns it covers, and the topics moved after it
        self._checkpoint: str | None = None
        self._checkpoint_patterns: frozenset[str] = frozenset()
        self._moved: set[str] = set()

    # -- checkpoints ------------------------------------------------------------------

    @property
    def checkpoint(self) -> str | None:
        """The hub's last checkpoint cursor, or ``None``."""
        return self._checkpoint

    @property
    def moved_since_checkpoint(self) -> int:
        """How many topics moved after the checkpoint (the size of a resume's delta)."""
        return len(self._moved)

    def checkpoint_due(self) -> bool:
        """True when asking the hub for a (new) checkpoint is worth it."""
        if len(self._cursor) < CHECKPOINT_MIN_TOPICS:
            return False
        return self._checkpoint is None or len(self._moved) >= CHECKPOINT_RENEW_TOPICS

    def set_checkpoint(self, cursor: str, patterns: Iterable[str]) -> None:
        """The hub's checkpoint reply arrived: ``cursor`` stands where this tracker stands now.

        Called in stream order (before any later message is accounted), so nothing
        has moved after it yet. Topics whose epoch is unknown stay in the delta: the
        hub's cursor may still name their old epoch.
        """
        self._checkpoint = cursor
        self._checkpoint_patterns = frozenset(patterns)
        self._moved = {topic for topic, (epoch, _offset) in self._cursor.items() if epoch is None}

    def drop_checkpoint(self) -> None:
        """Forget the checkpoint (the hub no longer holds it): resumes send the full map."""
        self._checkpoint = None
        self._checkpoint_patterns = frozenset()
        self._moved = set()

    def resume_for(self, pattern: Pattern) -> dict[str, Any]:
        """The resume fields of a subscribe request for ``pattern``.

        ``{"since": CURSOR, "delta": {...}}`` when a checkpoint covers the pattern
        (the delta lists only topics that moved after it), else ``{"since": {...}}``.
        """
        if self._checkpoint is None or pattern.text not in self._checkpoint_patterns:
            return {"since": self.since_for(pattern)}
        delta: dict[str, dict[str, Any]] = {}
        for topic in self._moved:
            place = self._cursor.get(topic)
            if place is not None and pattern.matches(topic):
                epoch, offset = place
                delta[topic] = {"offset": offset} if epoch is None else {"offset": offset, "epoch": epoch}
        fields: dict[str, Any] = {"since": self._checkpoint}
        if delta:
            fields["delta"] = delta
        return fields

    def _moved_topic(self, topic: str) -> None:
        if self._checkpoint is not None:
            self._moved.add(topic)

    # -- positions ----------------------------------------------------------------------

    @property
    def cursor(self) -> dict[str, Position]:
        """Where the application stands per topic (a copy)."""
        return dict(self._cursor)

    @property
    def positions(self) -> dict[str, tuple[int, int]]:
        """``(epoch, offset)`` of the last message handed on, per topic (a copy)."""
        return dict(self._delivered)

    def __contains__(self, topic: str) -> bool:
        return topic in self._cursor

    def seed(self, topic: str, epoch: int | None, offset: int) -> bool:
        """Set the starting point of a topic the tracker does not know yet.

        The hub reports where a new subscription starts on each matching topic;
        recording it lets a later resume ask for exactly what came after, even
        on topics that had sent nothing yet. Known topics keep their cursor.

        Returns:
            True if the topic was new and got this cursor.
        """
        if topic in self._cursor:
            return False
        self._cursor[topic] = (epoch, offset)
        self._moved_topic(topic)
        return True

    def on_message(self, topic: str, epoch: int, offset: int) -> tuple[bool, list[Gap]]:
        """Account for a message the hub sent.

        Returns:
            ``(deliver, gaps)``: whether to hand the message on, and gaps to hand
            on before it.
        """
        known = self._cursor.get(topic)
        gaps: list[Gap] = []
        if known is not None:
            known_epoch, known_offset = known
            if known_epoch is None:
                # A new epoch was announced without its identity: this is its first message.
                if offset > known_offset + 1:
                    gaps.append(Gap(topic, known_offset + 1, offset - 1, "missing", epoch))
            elif known_epoch == epoch:
                if offset <= known_offset:
                    return False, gaps
                if offset > known_offset + 1:
                    gaps.append(Gap(topic, known_offset + 1, offset - 1, "missing", epoch))
            else:
                gaps.append(Gap(topic, known_offset + 1, None, "epoch_changed", epoch))
                if offset > 1:
                    gaps.append(Gap(topic, 1, offset - 1, "missing", epoch))
        self._cursor[topic] = (epoch, offset)
        self._delivered[topic] = (epoch, offset)
        self._moved_topic(topic)
        return True, gaps

    def on_gap(self, gap: Gap) -> list[Gap]:
        """Account for a gap notice from the hub.

        Returns:
            The gaps to hand on: none when the notice is about a range already
            passed; the notice itself otherwise, preceded by a synthesised
            ``epoch_changed`` when it moves to a new epoch that was not announced.
        """
        topic = gap.topic
        known = self._cursor.get(topic)
        if gap.reason == "epoch_changed":
            if known is not None and gap.epoch is not None and known[0] == gap.epoch:
                return []  # already moved into that epoch
            self._cursor[topic] = (gap.epoch, 0)
            self._moved_topic(topic)
            return [gap]
        if gap.to_offset is None:
            return [gap]
        if known is None:
            self._cursor[topic] = (gap.epoch, gap.to_offset)
            self._moved_topic(topic)
            return [gap]
        known_epoch, known_offset = known
        epoch = known_epoch if gap.epoch is None else gap.epoch
        handed: list[Gap] = []
        if epoch == known_epoch:
            if gap.to_offset <= known_offset:
                return []
        elif known_epoch is not None:
            handed.append(Gap(topic, known_offset + 1, None, "epoch_changed", epoch))
        self._cursor[topic] = (epoch, gap.to_offset)
        self._moved_topic(topic)
        handed.append(gap)
        return handed

    def since_for(self, pattern: Pattern) -> dict[str, dict[str, Any]]:
        """The ``since`` object resuming ``pattern``: every known topic it matches."""
        since: dict[str, dict[str, Any]] = {}
        for topic, (epoch, offset) in self._cursor.items():
            if pattern.matches(topic):
                position: dict[str, Any] = {"offset": offset}
                if epoch is not None:
                    position["epoch"] = epoch
                since[topic] = position
        return since

    def forget(self, keep: Callable[[str], bool]) -> list[str]:
        """Drop topics for which ``keep(topic)`` is false (no subscription covers them)."""
        dropped = [topic for topic in self._cursor if not keep(topic)]
        for topic in dropped:
            del self._cursor[topic]
            self._delivered.pop(topic, None)
            self._moved.discard(topic)
        return dropped

    def topics(self) -> Iterable[str]:
        return self._cursor.keys()
