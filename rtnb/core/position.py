"""A stream position: where a reader stands in one topic's stream, ``(epoch, offset)``.

Every message carries its topic's epoch and a gap-free offset in that epoch (see
:mod:`rtnb.core.history`). A reader's place in a topic is the pair of the two,
always in this order: the epoch first (which incarnation of the topic's history),
then the offset of the last message seen (or reached). ``Position(3, 41)`` reads
"epoch 3, offset 41". Comparing positions only makes sense within one epoch.

:class:`Position` is a named tuple, so it still is the ``(epoch, offset)`` tuple
older code and JSON (``[epoch, offset]``) expect: it unpacks, indexes and
compares like one, and a plain ``(epoch, offset)`` tuple is accepted wherever a
position is taken. The hub's fan-out, which records a position per message and
group, and the backplanes and cursor store it feeds keep plain tuples of the same
shape (a named tuple costs about 0.25 µs more per position than a tuple, ``python -m timeit``);
views and other code that hands positions around by name use ``Position``.

orjson (the hub's encoder) does not serialize named tuples: write
``[position.epoch, position.offset]`` (or ``list(position)``), as the cursor
encoders do, never the ``Position`` itself.

The wire keeps its own shapes: a ``since`` field is ``{topic: offset}`` or
``{topic: {"offset": N, "epoch": E}}``, which :func:`rtnb.core.protocol.parse_since`
reads into ``{topic: (epoch or None, offset)}`` (its ``SinceCursor``, in the same order,
whose epoch may be unknown); a browser's relay request says ``{topic: [epoch, offset]}``.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Position"]


class Position(NamedTuple):
    """Where a reader stands in one topic's stream.

    Attributes:
        epoch: the topic history's epoch (it changes when the history is reset).
        offset: the offset of the last message seen (or reached) in that epoch; 0 before the first.
    """

    epoch: int
    offset: int
