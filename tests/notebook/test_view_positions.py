"""Views' relay positions are core Positions: read from the browser's ``since``, written by the buffers."""

from __future__ import annotations

from rtnb.core.message import Message
from rtnb.core.position import Position
from rtnb.notebook._pump import Frame
from rtnb.notebook._rows import RowBuffer
from rtnb.notebook._view import _positions


def message(topic: str, offset: int, epoch: int = 1) -> Message:
    return Message(topic=topic, data={"value": offset}, ts=1_700_000_000.0 + offset, offset=offset, epoch=epoch)


def test_a_browsers_since_becomes_positions_and_malformed_entries_are_dropped() -> None:
    since = {"a": [3, 41], "b": [1, 2, 3], "c": [True, 1], "d": "x", 5: [1, 1], "e": (2, 0)}
    positions = _positions(since)
    assert positions == {"a": Position(3, 41), "e": Position(2, 0)}
    assert all(type(position) is Position for position in positions.values())
    assert _positions(None) == {} and _positions([["a", 1, 2]]) == {}


def test_row_buffer_ends_at_positions_and_relays_after_any_epoch_offset_pair() -> None:
    rows = RowBuffer(keep=3)
    rows.add(Frame({"a": [message("a", n) for n in (1, 2, 3)], "b": [message("b", 7, epoch=2)]}, [], 4, 0))
    end = rows.end()
    assert end == {"a": Position(1, 3), "b": Position(2, 7)} and all(type(p) is Position for p in end.values())
    after = rows.encode_since({"a": Position(1, 2), "b": (1, 7)})  # b: another epoch, so all of it
    assert [(row["topic"], row["offset"]) for row in after[0][0]["rows"]] == [("a", 3), ("b", 7)]
    assert rows.encode_since(end) == []
