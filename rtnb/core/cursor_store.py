"""Stored resume cursors: bounded tokens for subscriptions over any number of topics.

A cursor lists, per topic, where a subscriber stands; over thousands of topics
its inline form (:func:`~rtnb.core.cursor.encode_cursor`) no longer fits a URL or
a header. The hub then keeps the positions itself and hands out ``~ID``, a token
of constant size, as the SSE event id or poll cursor.

Keeping a 10,000-topic map per SSE event would cost far too much, so records are
**deltas**: a record names the record it extends (its *base*) and holds only the
topics that moved since. A full record starts each chain; a chain is at most
``MAX_CHAIN`` records long, and a new full record is written when the delta would
be large or the chain's start is getting old, so a token never outlives its chain.

Bounds (all documented in docs/guarantees.md): records expire ``ttl`` seconds
after they were written, and at most ``max_entries`` topic positions are held in
all; past that the oldest records go first. A token whose records are gone is
*expired*: the hub then answers with explicit gaps, never silently.

On a shared backplane the records are also written to a :class:`CursorMirror`
(Redis), in the background, so a client resuming on another hub of the cluster
finds them: :meth:`CursorStore.load_async` reads missing records from there.

No I/O here: ``clock`` and the mirror are injected.
"""

from __future__ import annotations

import base64
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

import orjson

from .cursor import INLINE_CURSOR_LIMIT, STORED_CURSOR_PREFIX, encode_cursor

__all__ = ["MAX_CHAIN", "ChainHead", "CursorIssuer", "CursorMirror", "CursorStore"]

#: records in one chain, full record included
MAX_CHAIN = 32

#: topic -> (epoch, last offset): a :class:`~rtnb.core.position.Position`, or a plain tuple of that
#: shape as the fan-out keeps them (positions pass through here uncopied)
Positions = Mapping[str, tuple[int, int]]


class CursorMirror(Protocol):
    """Where records are copied for other hubs (the Redis backplane provides one)."""

    def write(self, record_id: str, data: bytes, ttl: float) -> None:
        """Store ``data`` under ``record_id`` for ``ttl`` seconds, in the background."""

    async def read(self, record_id: str) -> bytes | None:
        """The data stored under ``record_id``, or ``None`` (unknown, expired, unreachable)."""


@dataclass
class _Record:
    base: str | None
    changes: dict[str, tuple[int, int]]
    removed: tuple[str, ...]
    patterns: frozenset[str]
    written: float

    @property
    def size(self) -> int:
        return len(self.changes) + len(self.removed) + 1

    def encode(self) -> bytes:
        changes = {topic: list(place) for topic, place in self.changes.items()}
        return orjson.dumps({"b": self.base, "c": changes, "r": list(self.removed), "p": sorted(self.patterns)})

    @classmethod
    def decode(cls, data: bytes, written: float) -> _Record | None:
        try:
            value = orjson.loads(data)
            changes = {str(topic): (int(place[0]), int(place[1])) for topic, place in value["c"].items()}
            base = value["b"]
            return cls(
                None if base is None else str(base),
                changes,
                tuple(str(topic) for topic in value["r"]),
                frozenset(str(pattern) for pattern in value["p"]),
                written,
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError, AttributeError):
            return None


@dataclass
class ChainHead:
    """The last record written for one issuer (a fan-out group, a stream), to extend it."""

    record_id: str
    positions: dict[str, tuple[int, int]]
    patterns: frozenset[str]
    depth: int
    chain_started: float


def _new_id() -> str:
    return base64.urlsafe_b64encode(os.urandom(12)).decode("ascii")


class CursorStore:
    """Stored cursors in memory, bounded in age and size.

    Args:
        ttl: seconds a record is kept after it was written.
        max_entries: topic positions kept over all records.
        clock: monotonic seconds.
    """

    def __init__(
        self, *, ttl: float = 3600.0, max_entries: int = 4_000_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if ttl <= 0 or max_entries < 1:
            raise ValueError("ttl must be > 0 and max_entries >= 1")
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._entries = 0
        #: where records are copied for other hubs (``None``: this hub only)
        self.mirror: CursorMirror | None = None

    def __len__(self) -> int:
        return len(self._records)

    @property
    def entries(self) -> int:
        """Topic positions held over all records."""
        return self._entries

    def save(self, positions: Positions, patterns: Collection[str], head: ChainHead | None = None) -> ChainHead:
        """Record ``positions`` (covering ``patterns``); returns the new head, whose
        ``record_id`` is the token id.

        With ``head`` (the previous record of the same issuer) only the difference
        is written, unless a full record is due.
        """
        now = self.clock()
        covered = frozenset(patterns)
        current = dict(positions)
        record: _Record | None = None
        if (
            head is not None
            and head.depth < MAX_CHAIN
            and head.patterns == covered
            and now - head.chain_started < self.ttl / 2
            and head.record_id in self._records
        ):
            changes = {topic: place for topic, place in current.items() if head.positions.get(topic) != place}
            removed = tuple(topic for topic in head.positions if topic not in current)
            if len(changes) + len(removed) <= max(16, len(current) // 4):
                record = _Record(head.record_id, changes, removed, covered, now)
                depth, started = head.depth + 1, head.chain_started
        if record is None:
            record = _Record(None, dict(current), (), covered, now)
            depth, started = 1, now
        return self._write(record, current, depth, started, now)

    def save_moved(
        self, head: ChainHead, changes: Mapping[str, tuple[int, int]], removed: Collection[str] = ()
    ) -> ChainHead:
        """Record ``head``'s positions moved by ``changes`` (and without ``removed``).

        The caller knows exactly what moved (the messages it just sent), so nothing
        is compared: the cost is that of the change, not of the whole map. ``head``
        is consumed (its positions become the new head's).
        """
        now = self.clock()
        current = head.positions
        for topic in removed:
            current.pop(topic, None)
        current.update(changes)
        if (
            head.depth < MAX_CHAIN
            and now - head.chain_started < self.ttl / 2
            and head.record_id in self._records
            and len(changes) + len(removed) <= max(16, len(current) // 4)
        ):
            record = _Record(head.record_id, dict(changes), tuple(removed), head.patterns, now)
            return self._write(record, current, head.depth + 1, head.chain_started, now)
        return self._write(_Record(None, dict(current), (), head.patterns, now), current, 1, now, now)

    def _write(
        self, record: _Record, current: dict[str, tuple[int, int]], depth: int, started: float, now: float
    ) -> ChainHead:
        record_id = _new_id()
        self._records[record_id] = record
        self._entries += record.size
        if self.mirror is not None:
            self.mirror.write(record_id, record.encode(), self.ttl)
        self._expire(now)
        return ChainHead(record_id, current, record.patterns, depth, started)

    def load(self, record_id: str) -> ChainHead | None:
        """What a token stands for (as a head to extend), or ``None`` when it expired or never existed."""
        self._expire(self.clock())
        chain: list[_Record] = []
        next_id: str | None = record_id
        while next_id is not None:
            record = self._records.get(next_id)
            if record is None or len(chain) >= MAX_CHAIN:
                return None
            chain.append(record)
            next_id = record.base
        positions: dict[str, tuple[int, int]] = {}
        for record in reversed(chain):
            for topic in record.removed:
                positions.pop(topic, None)
            positions.update(record.changes)
        return ChainHead(record_id, positions, chain[0].patterns, len(chain), chain[-1].written)

    async def load_async(self, record_id: str) -> ChainHead | None:
        """:meth:`load`, first copying from the mirror the records this hub does not hold."""
        if self.mirror is not None:
            next_id: str | None = record_id
            for _ in range(MAX_CHAIN):
                if next_id is None:
                    break
                record = self._records.get(next_id)
                if record is None:
                    data = await self.mirror.read(next_id)
                    record = None if data is None else _Record.decode(data, self.clock())
                    if record is None:
                        return None
                    self._records[next_id] = record
                    self._entries += record.size
                next_id = record.base
        return self.load(record_id)

    def _expire(self, now: float) -> None:
        records = self._records
        while records:
            oldest_id, oldest = next(iter(records.items()))
            if now - oldest.written < self.ttl and self._entries <= self.max_entries:
                return
            del records[oldest_id]
            self._entries -= oldest.size


class CursorIssuer:
    """Hands out cursors: inline while small, stored past ``INLINE_CURSOR_LIMIT``.

    Remembers the last stored record of each issuer (a fan-out group, an SSE
    stream: any object) so its next cursor is written as a delta; at most
    ``max_issuers`` of them, least recently used dropped first (their next cursor
    is then a full record).
    """

    def __init__(self, store: CursorStore | None = None, max_issuers: int = 10_000) -> None:
        self.store = store if store is not None else CursorStore()
        self.max_issuers = max_issuers
        self._heads: OrderedDict[int, tuple[object, ChainHead]] = OrderedDict()

    def issue(
        self, positions: Positions, patterns: Collection[str], issuer: object = None, head: ChainHead | None = None
    ) -> str:
        """The cursor text for ``positions`` covering ``patterns``.

        Args:
            issuer: who issues it (its previous stored record is the delta's base).
            head: an explicit base instead (e.g. the stored cursor a poll came with).
        """
        # An entry takes at least 10 bytes of JSON: past this count it cannot fit inline.
        if len(positions) * 10 * 4 // 3 <= INLINE_CURSOR_LIMIT:
            text = encode_cursor(positions, patterns)
            if len(text) <= INLINE_CURSOR_LIMIT:
                if issuer is not None:
                    self.forget(issuer)  # its next cursor must not extend an older stored one
                return text
        key = id(issuer)
        if head is None and issuer is not None:
            known = self._heads.get(key)
            if known is not None and known[0] is issuer:
                head = known[1]
        head = self.store.save(positions, patterns, head)
        if issuer is not None:
            self._heads[key] = (issuer, head)
            self._heads.move_to_end(key)
            while len(self._heads) > self.max_issuers:
                self._heads.popitem(last=False)
        return STORED_CURSOR_PREFIX + head.record_id

    def issue_moved(
        self, issuer: object, changes: Mapping[str, tuple[int, int]], removed: Collection[str] = ()
    ) -> str | None:
        """The next stored cursor of ``issuer``, which has moved by exactly ``changes``
        (and dropped ``removed``) since its last one; ``None`` when it has no stored
        cursor to extend (the caller then calls :meth:`issue` with its positions)."""
        known = self._heads.get(id(issuer))
        if known is None or known[0] is not issuer:
            return None
        head = self.store.save_moved(known[1], changes, removed)
        self._heads[id(issuer)] = (issuer, head)
        self._heads.move_to_end(id(issuer))
        return STORED_CURSOR_PREFIX + head.record_id

    async def load(self, stored_id: str) -> ChainHead | None:
        """A stored cursor's positions and patterns (from another hub too, through the
        store's mirror), or ``None`` when it expired."""
        return await self.store.load_async(stored_id)

    def forget(self, issuer: object) -> None:
        """``issuer`` issues no more cursors (a stream ended), or its positions changed in a
        way its next cursor cannot describe as a move: that one is then a full record."""
        known = self._heads.get(id(issuer))
        if known is not None and known[0] is issuer:
            del self._heads[id(issuer)]
