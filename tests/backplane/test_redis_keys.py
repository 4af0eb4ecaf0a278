"""Pure parts of the Redis backplane: key names, glob mapping, presence selection. No Redis needed."""

from __future__ import annotations

import pytest

from rtnb.backplane._redis_keys import RedisKeys, escape_glob, pattern_glob, topic_prefix
from rtnb.backplane._redis_presence import (
    decode_memberships,
    encode_memberships,
    is_present,
    present_members,
)
from rtnb.backplane.redis import _redacted, _split_prefix
from rtnb.core.topics import Pattern


def glob(text: str) -> str:
    return pattern_glob(Pattern.parse(text))


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("plant/boiler/temp", "plant/boiler/temp"),
        ("plant/+/temp", "plant/*/temp"),
        ("plant/#", "plant*"),
        ("#", "*"),
        ("+", "*"),
        ("+/+", "*/*"),
        ("a/+/#", "a/**"),
    ],
)
def test_patterns_map_to_redis_globs(pattern: str, expected: str) -> None:
    assert glob(pattern) == expected


def test_glob_metacharacters_in_topic_names_are_escaped() -> None:
    assert escape_glob("a*b?c[d]e\\f") == "a\\*b\\?c\\[d\\]e\\\\f"
    assert glob("weird*/+/x?") == "weird\\*/*/x\\?"
    assert escape_glob("plain/name") == "plain/name"


def test_channel_glob_escapes_the_prefix_too() -> None:
    keys = RedisKeys("rtnb:test[1]:")
    assert keys.channel_glob(Pattern.parse("a/#")) == "rtnb:test\\[1\\]:m:a*"


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [("plant/+/temp", "plant"), ("plant/#", "plant"), ("#", ""), ("+/x", ""), ("a/b", "a/b"), ("a/b/+", "a/b")],
)
def test_topic_prefix_is_the_literal_start(pattern: str, prefix: str) -> None:
    assert topic_prefix(Pattern.parse(pattern)) == prefix


def test_key_names_keep_the_topic_as_suffix() -> None:
    keys = RedisKeys("p:")
    assert keys.epoch("a/b") == "p:e:a/b"
    assert keys.offset("a/b") == "p:o:a/b"
    assert keys.stream("a/b") == "p:s:a/b"
    assert keys.channel("a/b") == "p:m:a/b"
    assert keys.topic_of(b"p:m:a/b:c") == "a/b:c"


def test_prefix_can_come_from_the_url_and_passwords_are_hidden() -> None:
    assert _split_prefix("redis://h:1/0?prefix=x:&db=1") == ("redis://h:1/0?db=1", "x:")
    assert _split_prefix("redis://h:1/0") == ("redis://h:1/0", None)
    assert _redacted("redis://user:secret@h:6379/0") == "redis://user:***@h:6379/0"
    assert "secret" not in _redacted("redis://:secret@h:6379/0")


@pytest.mark.parametrize(
    ("subscription", "query", "present"),
    [
        ("chat/room1", "chat/room1", True),
        ("chat/+", "chat/room1", True),
        ("#", "chat/room1", True),
        ("chat/room2", "chat/room1", False),
        ("chat/room1", "chat/#", True),
        ("chat/+", "chat/#", True),
        ("#", "chat/#", False),
        ("news/x", "chat/#", False),
    ],
)
def test_presence_selection(subscription: str, query: str, present: bool) -> None:
    assert is_present(Pattern.parse(subscription), Pattern.parse(query)) is present


def test_presence_members_round_trip_through_redis_fields() -> None:
    fields = encode_memberships({"c1": ["chat/+"], "c2": ["news/#"], "c3": []})
    assert set(fields) == {"c1", "c2"}
    decoded = decode_memberships({key.encode(): value for key, value in fields.items()} | {b"bad": b"{"})
    assert decoded == {"c1": ["chat/+"], "c2": ["news/#"]}
    assert present_members(decoded, Pattern.parse("chat/x"), "h1") == [{"client": "c1", "hub": "h1"}]
    assert present_members(decoded, Pattern.parse("chat/x")) == [{"client": "c1"}]
