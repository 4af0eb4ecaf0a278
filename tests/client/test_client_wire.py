"""Client wire helpers and the event-stream parser, pure: no sockets."""

from __future__ import annotations

import msgpack
import orjson
import pytest

from rtnb.client._sse import EventStreamParser, ServerSentEvent
from rtnb.client._wire import decode_gap, encode_request, frame_items, to_http_url, to_ws_url
from rtnb.core.errors import BadField, BadJson, MessageTooBig
from rtnb.core.history import Gap


@pytest.mark.parametrize(
    ("given", "ws", "http"),
    [
        ("http://127.0.0.1:8765", "ws://127.0.0.1:8765/ws", "http://127.0.0.1:8765"),
        ("http://127.0.0.1:8765/", "ws://127.0.0.1:8765/ws", "http://127.0.0.1:8765"),
        ("https://example.org/rtnb", "wss://example.org/rtnb/ws", "https://example.org/rtnb"),
        ("ws://h:1/ws", "ws://h:1/ws", "http://h:1"),
        ("wss://h/user/x/rtnb/ws?token=abc", "wss://h/user/x/rtnb/ws?token=abc", "https://h/user/x/rtnb"),
    ],
)
def test_hub_urls_in_every_accepted_form(given: str, ws: str, http: str) -> None:
    assert to_ws_url(given) == ws
    assert to_http_url(given) == http


@pytest.mark.parametrize("bad", ["127.0.0.1:8765", "ftp://h/x", "http://", ""])
def test_unusable_urls_are_refused_with_a_typed_error(bad: str) -> None:
    with pytest.raises(BadField):
        to_ws_url(bad)


def test_frames_with_several_objects_are_split_json_and_msgpack() -> None:
    objects = [{"op": "message", "topic": "t", "offset": n} for n in range(3)]
    text = "\n".join(orjson.dumps(item).decode() for item in objects)
    assert frame_items(text) == objects
    assert frame_items(orjson.dumps(objects[0]).decode()) == objects[:1]
    assert frame_items(b"".join(msgpack.packb(item) for item in objects)) == objects


def test_garbage_frames_raise_bad_json() -> None:
    with pytest.raises(BadJson):
        frame_items("{not json")
    with pytest.raises(BadJson):
        frame_items(b"\xc1")  # a byte MessagePack never uses


def test_requests_encode_as_text_or_binary() -> None:
    frame = {"op": "publish", "topic": "t", "data": [1, 2]}
    assert orjson.loads(encode_request(frame, "json")) == frame
    assert msgpack.unpackb(encode_request(frame, "msgpack")) == frame


def test_gap_notices_decode_and_bad_ones_are_refused() -> None:
    wire = {"op": "gap", "topic": "t", "from": 3, "to": 7, "reason": "trimmed", "epoch": 9}
    assert decode_gap(wire) == Gap("t", 3, 7, "trimmed", 9)
    assert decode_gap({"op": "gap", "topic": "t", "from": 3, "to": None, "reason": "epoch_changed"}) == Gap(
        "t", 3, None, "epoch_changed"
    )
    with pytest.raises(BadField):
        decode_gap({"op": "gap", "topic": "t"})


def test_event_stream_parser_handles_any_chunking() -> None:
    stream = (
        b"retry: 2000\n\n"
        b": keepalive\n\n"
        b'event: welcome\ndata: {"op":"welcome"}\n\n'
        b"event: message\r\nid: c1\r\ndata: line one\r\ndata:line two\r\n\r\n"
        b"data: no type\rid: c2\r\r\n"
    )
    expected = [
        ServerSentEvent("welcome", '{"op":"welcome"}', None, False),
        ServerSentEvent("message", "line one\nline two", "c1", True),
        ServerSentEvent("message", "no type", "c2", True),
    ]
    for size in (1, 2, 3, 7, len(stream)):
        parser = EventStreamParser()
        events = []
        for start in range(0, len(stream), size):
            events.extend(parser.feed(stream[start : start + size]))
        assert events == expected, size
        assert parser.retry == 2000
        assert parser.last_event_id == "c2"


def test_event_ids_persist_and_events_without_data_are_not_dispatched() -> None:
    parser = EventStreamParser()
    assert parser.feed(b"id: a\n\n") == []
    assert parser.last_event_id == "a"
    assert parser.feed(b"data: x\n\n") == [ServerSentEvent("message", "x", "a", False)]


def test_an_oversized_event_is_refused_instead_of_growing_memory() -> None:
    parser = EventStreamParser(max_event_bytes=100)
    with pytest.raises(MessageTooBig):
        parser.feed(b"data: " + b"x" * 200)
    parser = EventStreamParser(max_event_bytes=100)
    with pytest.raises(MessageTooBig):
        parser.feed(b"data: " + b"x" * 60 + b"\n" + b"data: " + b"y" * 60 + b"\n")
