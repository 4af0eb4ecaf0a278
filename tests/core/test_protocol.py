from __future__ import annotations

import pytest

from rtnb.core.errors import (
    BadCursor,
    BadField,
    BadJson,
    InvalidPattern,
    InvalidTopic,
    MissingField,
    RtnbError,
    TooDeep,
    UnknownOp,
    WildcardPublish,
    error_from_wire,
)
from rtnb.core.limits import Limits, TokenBucket
from rtnb.core.protocol import Checkpoint, Ping, Publish, Subscribe, Unsubscribe, parse_request


def test_publish() -> None:
    request = parse_request({"op": "publish", "topic": "a/b", "data": {"v": 1}, "id": "x1"})
    assert request == Publish("a/b", {"v": 1}, "x1")


def test_subscribe_with_last_and_since() -> None:
    request = parse_request({"op": "subscribe", "topic": "a/+", "last": 5})
    assert isinstance(request, Subscribe) and request.last == 5 and request.pattern.text == "a/+"
    request = parse_request({"op": "subscribe", "topic": "a/+", "since": {"a/b": 3, "a/c": {"offset": 4, "epoch": 9}}})
    assert isinstance(request, Subscribe)
    assert request.since == {"a/b": (None, 3), "a/c": (9, 4)}


def test_other_ops() -> None:
    assert parse_request({"op": "unsubscribe", "topic": "a/#"}) == Unsubscribe("a/#")
    assert parse_request({"op": "ping", "id": 7}) == Ping(7)


@pytest.mark.parametrize(
    ("frame", "error", "code"),
    [
        ([1, 2], BadJson, "bad_json"),
        ("ping", BadJson, "bad_json"),
        ({"op": "dance"}, UnknownOp, "unknown_op"),
        ({}, UnknownOp, "unknown_op"),
        ({"op": "publish", "topic": "a"}, MissingField, "missing_field"),
        ({"op": "publish", "data": 1}, MissingField, "missing_field"),
        ({"op": "subscribe"}, MissingField, "missing_field"),
        ({"op": "publish", "topic": "a/#", "data": 1}, WildcardPublish, "wildcard_publish"),
        ({"op": "publish", "topic": "a//b", "data": 1}, InvalidTopic, "invalid_topic"),
        ({"op": "publish", "topic": 5, "data": 1}, InvalidTopic, "invalid_topic"),
        ({"op": "subscribe", "topic": "a/#/b"}, InvalidPattern, "invalid_pattern"),
        ({"op": "subscribe", "topic": "a", "last": -1}, BadField, "bad_field"),
        ({"op": "subscribe", "topic": "a", "last": "3"}, BadField, "bad_field"),
        ({"op": "subscribe", "topic": "a", "since": [1]}, BadCursor, "bad_cursor"),
        ({"op": "subscribe", "topic": "a", "since": {"a": -2}}, BadCursor, "bad_cursor"),
        ({"op": "subscribe", "topic": "a", "since": {"a": 1}, "last": 2}, BadField, "bad_field"),
        ({"op": "ping", "id": {"x": 1}}, BadField, "bad_field"),
        ({"op": "publish", "topic": "a", "data": [[[[1]]]]}, TooDeep, "too_deep"),
    ],
)
def test_bad_requests_get_distinct_codes(frame: object, error: type[RtnbError], code: str) -> None:
    with pytest.raises(error) as caught:
        parse_request(frame, Limits(max_nesting=3))
    assert caught.value.code == code
    wire = caught.value.to_wire()
    assert wire["op"] == "error" and wire["code"] == code and wire["message"]


def test_errors_carry_the_request_id() -> None:
    with pytest.raises(WildcardPublish) as caught:
        parse_request({"op": "publish", "topic": "a/+", "data": 1, "id": "r9"})
    assert caught.value.to_wire()["id"] == "r9"


def test_error_codes_are_unique_and_round_trip() -> None:
    from rtnb.core import errors

    classes = [getattr(errors, name) for name in errors.__all__ if isinstance(getattr(errors, name), type)]
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes))
    for cls in classes:
        rebuilt = error_from_wire(cls.code, "m", "id1")
        assert type(rebuilt) is cls and rebuilt.request_id == "id1"
    unknown = error_from_wire("from_the_future", "m")
    assert isinstance(unknown, RtnbError) and unknown.code == "from_the_future"


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=10, burst=2, now=0.0)
    assert bucket.take(0.0) and bucket.take(0.0)
    assert not bucket.take(0.0)
    assert not bucket.take(0.05)
    assert bucket.take(0.1)
    assert bucket.take(10.0) and bucket.take(10.0) and not bucket.take(10.0)
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1)


def test_checkpoint_is_a_request_with_an_id() -> None:
    assert parse_request({"op": "checkpoint", "id": 4}) == Checkpoint(4)


def test_since_as_a_cursor_text_with_a_delta() -> None:
    request = parse_request(
        {"op": "subscribe", "topic": "w/#", "since": "~abcdefgh12", "delta": {"w/1": {"offset": 3, "epoch": 9}}}
    )
    assert isinstance(request, Subscribe)
    assert request.cursor is not None and request.cursor.stored_id == "abcdefgh12"
    assert request.since == {"w/1": (9, 3)}
    bare = parse_request({"op": "subscribe", "topic": "w/#", "since": "~abcdefgh12"})
    assert isinstance(bare, Subscribe) and bare.since == {} and bare.cursor is not None


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"op": "subscribe", "topic": "w/#", "since": "~!", "id": 1}, "bad_cursor"),
        ({"op": "subscribe", "topic": "w/#", "since": "", "id": 1}, "bad_cursor"),
        ({"op": "subscribe", "topic": "w/#", "delta": {"w/1": 1}, "id": 1}, "bad_field"),
        ({"op": "subscribe", "topic": "w/#", "since": "~abcdefgh12", "delta": [], "id": 1}, "bad_cursor"),
        ({"op": "subscribe", "topic": "w/#", "since": "~abcdefgh12", "last": 2, "id": 1}, "bad_field"),
    ],
)
def test_bad_cursor_resumes_are_refused_with_the_request_id(frame: dict[str, object], code: str) -> None:
    with pytest.raises(RtnbError) as refused:
        parse_request(frame)
    assert (refused.value.code, refused.value.request_id) == (code, 1)
