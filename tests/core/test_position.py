"""Position: the one shape of a stream position, ``(epoch, offset)``, still a tuple."""

from __future__ import annotations

import json

import orjson
import pytest

from rtnb.core import Position
from rtnb.core.cursor import decode_cursor, encode_cursor


def test_a_position_is_the_epoch_then_the_offset() -> None:
    position = Position(3, 41)
    assert (position.epoch, position.offset) == (3, 41)
    epoch, offset = position
    assert (epoch, offset) == (3, 41) and position[0] == 3 and position[1] == 41
    assert position == (3, 41) and isinstance(position, tuple) and hash(position) == hash((3, 41))
    assert Position(epoch=3, offset=41) == position and repr(position) == "Position(epoch=3, offset=41)"


def test_positions_order_by_epoch_then_offset() -> None:
    assert sorted([Position(2, 1), Position(1, 9), Position(1, 3)]) == [(1, 3), (1, 9), (2, 1)]


def test_json_writes_it_as_a_pair_and_orjson_needs_it_as_a_list() -> None:
    """The standard json module (ipywidgets' comm) writes ``[epoch, offset]``; orjson refuses
    named tuples, which is why the hub's paths keep plain tuples (see the module docstring)."""
    position = Position(3, 41)
    assert json.loads(json.dumps({"a": position})) == {"a": [3, 41]}
    with pytest.raises(TypeError):
        orjson.dumps(position)
    assert orjson.loads(orjson.dumps(list(position))) == [3, 41]


def test_cursor_encoders_take_positions_as_well_as_tuples() -> None:
    mixed = {"plant/a": Position(3, 41), "plant/b": (1, 7)}
    assert decode_cursor(encode_cursor(mixed)) == {"plant/a": (3, 41), "plant/b": (1, 7)}
