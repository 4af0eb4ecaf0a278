from __future__ import annotations

import msgpack
import orjson
import pytest

from rtnb.core.errors import BadField, BadJson, TooDeep
from rtnb.core.message import Message, check_payload, decode_frame, encode_json


def test_spliced_envelope_equals_a_fresh_encoding() -> None:
    data = {"value": 21.5, "unit": "°C", "tags": [1, 2]}
    spliced = Message("plant/boiler/temp", 7, 1234, 1700000000.25, data, data_json=encode_json(data))
    plain = Message("plant/boiler/temp", 7, 1234, 1700000000.25, data)
    assert (
        orjson.loads(spliced.json)
        == orjson.loads(plain.json)
        == {
            "op": "message",
            "topic": "plant/boiler/temp",
            "offset": 7,
            "epoch": 1234,
            "ts": 1700000000.25,
            "data": data,
        }
    )


def test_encodings_are_made_once_and_reused() -> None:
    message = Message("t", 1, 1, 1.0, {"v": 1})
    assert message.json is message.json
    assert message.msgpack is message.msgpack
    assert msgpack.unpackb(message.msgpack)["data"] == {"v": 1}


def test_payloads_json_cannot_carry_are_refused() -> None:
    with pytest.raises(BadField):
        encode_json({"blob": b"\x00\x01"})


def test_decode_frame_reports_bad_input() -> None:
    assert decode_frame('{"op":"ping"}') == {"op": "ping"}
    assert decode_frame(msgpack.packb({"op": "ping"})) == {"op": "ping"}
    with pytest.raises(BadJson):
        decode_frame("{nope")
    with pytest.raises(BadJson):
        decode_frame(b"\xc1")


def test_nesting_is_bounded() -> None:
    shallow: object = 1
    for _ in range(32):
        shallow = [shallow]
    check_payload(shallow, 32)
    with pytest.raises(TooDeep):
        check_payload([shallow], 32)
    check_payload({"a": {"b": [1, 2, {"c": 3}]}}, 4)
    with pytest.raises(TooDeep):
        check_payload({"a": {"b": [1, 2, {"c": {}}]}}, 4)


def test_from_envelope_round_trip() -> None:
    message = Message("a/b", 3, 9, 2.5, [1, "x"])
    again = Message.from_envelope(orjson.loads(message.json), json=message.json)
    assert again == message
    assert again.json is message.json
    with pytest.raises(BadField):
        Message.from_envelope({"topic": "a"})
