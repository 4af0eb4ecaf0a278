"""Gaps: messages a subscriber asked for, or should have had, that it will not get.

The hub never skips silently. When history cannot give a resuming client all
it missed (trimmed by a limit, reset to a new epoch, dropped for a slow
consumer) the answer carries a :class:`Gap` saying which offsets are lost and
why; many of them at once travel together as :class:`GapList` frames. Gaps are
made by the history (:mod:`rtnb.core.history`), the fan-out and the clients'
own resume checks, so they have a module of their own, pure like the rest of
the core.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .message import Message

__all__ = [
    "COALESCE_GAPS_FROM",
    "GAP_LIST_SIZE",
    "Gap",
    "GapList",
    "GapReason",
    "coalesce_gaps",
]

#: ``missing`` is reported by clients: an offset jump that no gap notice explained.
#: ``cursor_expired``: a stored resume cursor was no longer held, so where the client stood is unknown.
GapReason = Literal["trimmed", "epoch_changed", "slow_consumer", "unavailable", "missing", "cursor_expired"]


@dataclass(frozen=True, slots=True)
class Gap:
    """Messages a client asked for, or should have had, that it will not get.

    ``from_offset``..``to_offset`` is the inclusive range of lost offsets in
    ``epoch``. For ``epoch_changed`` the range refers to the old epoch and
    ``to_offset`` is ``None``: the hub no longer knows how far it went.
    """

    topic: str
    from_offset: int
    to_offset: int | None
    reason: GapReason
    epoch: int | None = None

    def to_wire(self) -> dict[str, Any]:
        frame: dict[str, Any] = {
            "op": "gap",
            "topic": self.topic,
            "from": self.from_offset,
            "to": self.to_offset,
            "reason": self.reason,
        }
        if self.epoch is not None:
            frame["epoch"] = self.epoch
        return frame


#: this many gaps sent together or more travel as :class:`GapList` frames
COALESCE_GAPS_FROM = 16
#: gaps per :class:`GapList` frame
GAP_LIST_SIZE = 1000


@dataclass(frozen=True, slots=True)
class GapList:
    """Several gaps in one frame, for a resume over many topics that lost history.

    On the wire: ``{"op": "gap", "gaps": [[TOPIC, FROM, TO, REASON, EPOCH], ...]}``
    (``TO`` and ``EPOCH`` may be ``null``), each entry meaning exactly what a
    single ``gap`` frame with those fields means, in order.
    """

    gaps: tuple[Gap, ...]

    def to_wire(self) -> dict[str, Any]:
        entries = [[gap.topic, gap.from_offset, gap.to_offset, gap.reason, gap.epoch] for gap in self.gaps]
        return {"op": "gap", "gaps": entries}


def coalesce_gaps(items: Sequence[Message | Gap]) -> list[Message | Gap | GapList]:
    """``items`` as a transport writes them: runs of ``COALESCE_GAPS_FROM`` gaps or more
    become :class:`GapList` frames of at most ``GAP_LIST_SIZE``; the rest is unchanged."""
    out: list[Message | Gap | GapList] = []
    run: list[Gap] = []

    def end_run() -> None:
        if len(run) < COALESCE_GAPS_FROM:
            out.extend(run)
        else:
            chunks = range(0, len(run), GAP_LIST_SIZE)
            out.extend(GapList(tuple(run[start : start + GAP_LIST_SIZE])) for start in chunks)
        run.clear()

    for item in items:
        if isinstance(item, Gap):
            run.append(item)
        else:
            if run:
                end_run()
            out.append(item)
    if run:
        end_run()
    return out
