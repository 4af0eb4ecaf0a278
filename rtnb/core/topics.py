"""Topic names and MQTT-style subscription patterns.

Topics are ``/``-separated levels such as ``plant/boiler/temp``. Patterns may
use ``+`` for exactly one level and ``#`` (last level only) for any number of
levels, zero included: ``plant/#`` matches ``plant`` and ``plant/a/b``. These
are MQTT's rules, chosen because IoT users already know them.

Beyond MQTT, rtnb refuses empty levels (``a//b``, ``/a``, ``a/``) because they
are nearly always a bug in the publisher, and it bounds the length and depth of
names. Topics whose first level starts with ``$`` are system topics (the hub
publishes on ``$rtnb/...``): clients cannot publish there, and a pattern whose
first level is a wildcard does not match them, exactly as in MQTT.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .errors import InvalidPattern, InvalidTopic, WildcardPublish

__all__ = [
    "DEFAULT_MAX_TOPIC_DEPTH",
    "DEFAULT_MAX_TOPIC_LENGTH",
    "MQTT_BRIDGE_STATUS_TOPIC",
    "Pattern",
    "is_pattern",
    "validate_pattern",
    "validate_topic",
]

#: Longest topic or pattern accepted, in characters.
DEFAULT_MAX_TOPIC_LENGTH = 256
#: Most levels a topic or pattern may have.
DEFAULT_MAX_TOPIC_DEPTH = 16

SYSTEM_PREFIX = "$"
_FORBIDDEN_CHARACTERS = frozenset("\x00")


def is_pattern(name: str) -> bool:
    """True when ``name`` contains a wildcard level (``+`` or ``#``)."""
    return "+" in name or "#" in name


def _check_common(
    name: object, what: str, error: type[InvalidTopic] | type[InvalidPattern], max_length: int, max_depth: int
) -> list[str]:
    if not isinstance(name, str):
        raise error(f"{what} must be a string, got {type(name).__name__}.")
    if not name:
        raise error(f"{what} must not be empty.")
    if len(name) > max_length:
        raise error(f"{what} is {len(name)} characters long; the limit is {max_length}.")
    if not _FORBIDDEN_CHARACTERS.isdisjoint(name):
        raise error(f"{what} {name!r} contains a NUL character.")
    levels = name.split("/")
    if len(levels) > max_depth:
        raise error(f"{what} {name!r} has {len(levels)} levels; the limit is {max_depth}.")
    if "" in levels:
        raise error(f"{what} {name!r} has an empty level; use names like 'plant/boiler/temp'.")
    return levels


def validate_topic(
    name: object,
    *,
    allow_system: bool = False,
    max_length: int = DEFAULT_MAX_TOPIC_LENGTH,
    max_depth: int = DEFAULT_MAX_TOPIC_DEPTH,
) -> str:
    """Check that ``name`` is a concrete topic one may publish to.

    Args:
        name: the candidate topic.
        allow_system: accept ``$``-topics (only the hub itself publishes there).
        max_length: longest accepted name.
        max_depth: most accepted levels.

    Returns:
        ``name``, unchanged, so the call can be used inline.

    Raises:
        WildcardPublish: ``name`` contains ``+`` or ``#``.
        InvalidTopic: any other rule is broken.
    """
    _check_common(name, "Topic", InvalidTopic, max_length, max_depth)
    assert isinstance(name, str)
    if is_pattern(name):
        raise WildcardPublish(
            f"Cannot publish to {name!r}: '+' and '#' are wildcards for subscribing, not topic names."
        )
    if name.startswith(SYSTEM_PREFIX) and not allow_system:
        raise InvalidTopic(f"Topic {name!r} is reserved: topics starting with '$' belong to the hub.")
    return name


def validate_pattern(
    pattern: object,
    *,
    max_length: int = DEFAULT_MAX_TOPIC_LENGTH,
    max_depth: int = DEFAULT_MAX_TOPIC_DEPTH,
) -> str:
    """Check that ``pattern`` is a valid subscription pattern (or plain topic).

    Raises:
        InvalidPattern: a wildcard is not a whole level, ``#`` is not last, or a
            general naming rule is broken.
    """
    levels = _check_common(pattern, "Pattern", InvalidPattern, max_length, max_depth)
    assert isinstance(pattern, str)
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if level == "#":
            if index != last:
                raise InvalidPattern(f"Pattern {pattern!r}: '#' is only allowed as the last level.")
        elif level != "+" and ("+" in level or "#" in level):
            raise InvalidPattern(f"Pattern {pattern!r}: a wildcard must fill a whole level, as in 'a/+/c' or 'a/#'.")
    return pattern


@dataclass(frozen=True, slots=True)
class Pattern:
    """A compiled subscription pattern.

    Build with :meth:`parse`, which validates; equality and hashing follow the
    text so patterns can key dictionaries and sets.
    """

    text: str
    levels: tuple[str, ...]

    @classmethod
    def parse(cls, text: object) -> Pattern:
        """Validate and compile ``text``; raises :class:`InvalidPattern`."""
        return _parse_cached(validate_pattern(text))

    @property
    def is_wildcard(self) -> bool:
        return "+" in self.levels or "#" in self.levels

    def matches(self, topic: str) -> bool:
        """True when the concrete ``topic`` is selected by this pattern."""
        if not self.is_wildcard:
            return topic == self.text
        topic_levels = topic.split("/")
        pattern_levels = self.levels
        if topic.startswith(SYSTEM_PREFIX) and pattern_levels[0] in ("+", "#"):
            return False
        for index, level in enumerate(pattern_levels):
            if level == "#":
                return True
            if index >= len(topic_levels):
                return False
            if level != "+" and level != topic_levels[index]:
                return False
        return len(topic_levels) == len(pattern_levels)

    def covers(self, other: Pattern) -> bool:
        """True when every topic ``other`` matches is matched by this pattern.

        Used by permission checks: a grant of ``plant/7/#`` covers a request for
        ``plant/7/+/temp`` but not for ``plant/#``.
        """
        mine, theirs = self.levels, other.levels
        for index, level in enumerate(mine):
            if level == "#":
                return True
            if index >= len(theirs):
                return False
            their_level = theirs[index]
            if their_level == "#":
                return False
            if level != "+" and level != their_level:
                return False
        return len(mine) == len(theirs)

    def __str__(self) -> str:
        return self.text


@lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Pattern:
    return Pattern(text, tuple(text.split("/")))


#: The hub system topic where an MQTT bridge reports its state (``last=1`` gives the
#: current one). The bridge publishes it and notebook ``Status`` views read it, so the
#: name lives here, below both.
MQTT_BRIDGE_STATUS_TOPIC = "$rtnb/bridge/mqtt"
