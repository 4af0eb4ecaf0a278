"""Names of the Redis keys and channels the Redis backplane uses, and pattern mapping.

Pure functions, no I/O, so they are tested without Redis.

Every name starts with a prefix (``rtnb:`` by default) so several clusters, or
many tests, share one Redis without meeting. For a topic ``T``:

* ``{prefix}e:T``  the topic's epoch (a string holding milliseconds, set once with SET NX)
* ``{prefix}o:T``  the last offset assigned (INCR)
* ``{prefix}s:T``  the history: a stream whose entry ids are ``OFFSET-0``
* ``{prefix}m:T``  the pub/sub channel carrying each message's JSON envelope
* ``{prefix}topics`` every topic name (a sorted set, all scores 0, read by prefix)
* ``{prefix}hubs`` and ``{prefix}presence:HUB`` cluster presence (see the presence module)
* ``{prefix}alive:HUB`` a hub's heartbeat (expires), present even when it has no members

Redis pub/sub globs are not MQTT wildcards: ``*`` crosses ``/`` and a topic may
itself contain ``*``, ``?``, ``[`` or ``\\``. So a pattern maps to a glob that
selects *at least* what it matches (literal levels escaped, ``+`` and ``#``
widened to ``*``) and every arrival is then filtered exactly with
:meth:`~rtnb.core.topics.Pattern.matches`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.topics import Pattern

__all__ = ["RedisKeys", "escape_glob", "pattern_glob", "topic_prefix"]

_GLOB_SPECIAL = frozenset("*?[]\\")


def escape_glob(text: str) -> str:
    """``text`` with every Redis glob metacharacter backslash-escaped."""
    if _GLOB_SPECIAL.isdisjoint(text):
        return text
    return "".join("\\" + character if character in _GLOB_SPECIAL else character for character in text)


def pattern_glob(pattern: Pattern) -> str:
    """A Redis glob (without prefix) matching every topic ``pattern`` matches, and maybe more.

    ``a/+/c`` gives ``a/*/c``; ``a/#`` gives ``a*`` (it must match ``a`` itself);
    ``#`` gives ``*``. Literal levels are escaped.
    """
    parts: list[str] = []
    for index, level in enumerate(pattern.levels):
        if level == "#":
            # '#' also matches the parent level itself: drop the separator before it.
            return "/".join(parts) + "*" if index else "*"
        parts.append("*" if level == "+" else escape_glob(level))
    return "/".join(parts)


def topic_prefix(pattern: Pattern) -> str:
    """The literal start every topic matched by ``pattern`` shares (may be empty)."""
    literal: list[str] = []
    for level in pattern.levels:
        if level in ("+", "#"):
            break
        literal.append(level)
    else:
        return pattern.text
    return "/".join(literal)


@dataclass(frozen=True)
class RedisKeys:
    """Key and channel names under one ``prefix``."""

    prefix: str = "rtnb:"

    def epoch(self, topic: str) -> str:
        return f"{self.prefix}e:{topic}"

    def offset(self, topic: str) -> str:
        return f"{self.prefix}o:{topic}"

    def stream(self, topic: str) -> str:
        return f"{self.prefix}s:{topic}"

    def channel(self, topic: str) -> str:
        return f"{self.prefix}m:{topic}"

    @property
    def channel_prefix(self) -> str:
        return f"{self.prefix}m:"

    @property
    def topics(self) -> str:
        return f"{self.prefix}topics"

    @property
    def hubs(self) -> str:
        return f"{self.prefix}hubs"

    def presence(self, hub_id: str) -> str:
        return f"{self.prefix}presence:{hub_id}"

    def alive(self, hub_id: str) -> str:
        return f"{self.prefix}alive:{hub_id}"

    def channel_glob(self, pattern: Pattern) -> str:
        """The PSUBSCRIBE glob for a wildcard ``pattern`` (prefix escaped too)."""
        return escape_glob(self.channel_prefix) + pattern_glob(pattern)

    def topic_of(self, channel: bytes | str) -> str:
        """The topic a message channel carries."""
        name = channel.decode() if isinstance(channel, bytes) else channel
        return name[len(self.channel_prefix):]
