from __future__ import annotations

import pytest

from rtnb.core.errors import InvalidPattern, InvalidTopic, WildcardPublish
from rtnb.core.topics import Pattern, validate_pattern, validate_topic


@pytest.mark.parametrize("topic", ["a", "plant/boiler/temp", "a/b-c/d_e.f", "ünï/cödé", "x" * 256])
def test_valid_topics_are_returned_unchanged(topic: str) -> None:
    assert validate_topic(topic) == topic


@pytest.mark.parametrize(
    ("topic", "error"),
    [
        ("", InvalidTopic),
        ("a//b", InvalidTopic),
        ("/a", InvalidTopic),
        ("a/", InvalidTopic),
        ("a\x00b", InvalidTopic),
        ("x" * 257, InvalidTopic),
        ("/".join("a" * 17), InvalidTopic),
        ("$rtnb/status", InvalidTopic),
        ("a/+/c", WildcardPublish),
        ("a/#", WildcardPublish),
        ("a+b", WildcardPublish),
        (42, InvalidTopic),
        (None, InvalidTopic),
    ],
)
def test_invalid_topics_raise_typed_errors(topic: object, error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        validate_topic(topic)
    assert caught.value.code in {"invalid_topic", "wildcard_publish"}
    assert caught.value.message.endswith(".")


def test_system_topics_are_allowed_for_the_hub_itself() -> None:
    assert validate_topic("$rtnb/bridge/mqtt", allow_system=True) == "$rtnb/bridge/mqtt"


@pytest.mark.parametrize("pattern", ["#", "+", "a/#", "a/+/c", "+/+/+", "a/b", "+/#"])
def test_valid_patterns(pattern: str) -> None:
    assert validate_pattern(pattern) == pattern


@pytest.mark.parametrize("pattern", ["a/#/c", "a/b#", "a/+b/c", "#/a", "", "a//#", 7])
def test_invalid_patterns(pattern: object) -> None:
    with pytest.raises(InvalidPattern):
        validate_pattern(pattern)


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("plant/+/temp", "plant/boiler/temp", True),
        ("plant/+/temp", "plant/boiler/pressure", False),
        ("plant/+/temp", "plant/a/b/temp", False),
        ("plant/#", "plant", True),
        ("plant/#", "plant/a/b/c", True),
        ("plant/#", "plantx/a", False),
        ("#", "anything/at/all", True),
        ("+", "one", True),
        ("+", "one/two", False),
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", False),
        ("#", "$rtnb/status", False),
        ("+/status", "$rtnb/status", False),
        ("$rtnb/#", "$rtnb/status", True),
    ],
)
def test_pattern_matching_follows_mqtt(pattern: str, topic: str, expected: bool) -> None:
    assert Pattern.parse(pattern).matches(topic) is expected


@pytest.mark.parametrize(
    ("grant", "request_", "expected"),
    [
        ("plant/7/#", "plant/7/#", True),
        ("plant/7/#", "plant/7/+/temp", True),
        ("plant/7/#", "plant/7", True),
        ("plant/7/#", "plant/#", False),
        ("plant/7/#", "#", False),
        ("plant/+/temp", "plant/boiler/temp", True),
        ("plant/+/temp", "plant/+/temp", True),
        ("plant/boiler/temp", "plant/+/temp", False),
        ("#", "x/y", True),
    ],
)
def test_covers_decides_wildcard_escalation(grant: str, request_: str, expected: bool) -> None:
    assert Pattern.parse(grant).covers(Pattern.parse(request_)) is expected


def test_patterns_hash_by_text() -> None:
    assert {Pattern.parse("a/+"), Pattern.parse("a/+")} == {Pattern.parse("a/+")}
