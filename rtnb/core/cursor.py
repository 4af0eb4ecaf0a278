"""The resume cursor shared by SSE (``id:`` / ``Last-Event-ID``) and long polling.

A cursor says, for every topic a subscriber covers, the epoch and the last
offset it has been given, and which patterns it covered. Handing it back on
reconnect resumes exactly after that point (or yields ``gap`` notices for what
history no longer holds), so the recovery model is the hub's ``since``
catch-up, whatever the transport.

Clients should treat a cursor as opaque text. It comes in two forms:

* **inline**: the base64url (no padding) of compact JSON
  ``{TOPIC: [EPOCH, OFFSET], ..., "": {"p": [PATTERN, ...]}}``: URL- and
  header-safe, readable by the browser client, which merges it with the
  positions it has seen itself. The ``""`` entry (never a valid topic) names
  the patterns the cursor covered; cursors without it (issued by older hubs,
  or built by clients) are still accepted.
* **stored**: ``~`` followed by a short id (see :mod:`rtnb.core.cursor_store`),
  for cursors whose inline form would pass :data:`INLINE_CURSOR_LIMIT`. Its
  size does not depend on the number of topics.

Anything else is refused with :class:`~rtnb.core.errors.BadCursor`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import orjson

from .errors import BadCursor, RtnbError
from .protocol import SinceCursor
from .topics import validate_topic

__all__ = [
    "INLINE_CURSOR_LIMIT",
    "MAX_CURSOR_LENGTH",
    "STORED_CURSOR_PREFIX",
    "ResumePoint",
    "decode_cursor",
    "encode_cursor",
    "read_cursor",
]

#: Longest cursor text accepted (characters); it travels in headers and URLs.
MAX_CURSOR_LENGTH = 32 * 2**10
#: Longest inline cursor the hub issues; past it, it issues a stored one.
INLINE_CURSOR_LIMIT = 2 * 2**10
#: First character of a stored cursor (never one of base64url's).
STORED_CURSOR_PREFIX = "~"
_STORED_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
_PATTERNS_KEY = ""


@dataclass(frozen=True)
class ResumePoint:
    """A cursor as read from a request.

    Attributes:
        positions: topic -> (epoch, last offset), as a ``since`` request takes them.
        patterns: the patterns the cursor covered, ``None`` when it does not say
            (older cursors): every topic it does not list is then taken as new.
        stored_id: for a stored cursor, its id (``positions`` is then empty until
            the hub loads it).
        expired: a stored cursor the hub no longer holds: where the client stood
            is unknown, and the hub says so with gaps.
    """

    positions: SinceCursor
    patterns: frozenset[str] | None = None
    stored_id: str | None = None
    expired: bool = False

    def covers(self, pattern: str) -> bool:
        """True when ``pattern`` was covered by the cursor (or it does not say)."""
        return self.patterns is None or pattern in self.patterns


def encode_cursor(positions: Mapping[str, tuple[int, int]], patterns: Collection[str] | None = None) -> str:
    """Build the inline cursor text for ``positions`` (topic -> (epoch, last offset)).

    Args:
        positions: what the subscriber has been given, per topic.
        patterns: the patterns the subscriber covers, recorded in the cursor.

    Returns:
        The opaque cursor text; ``""`` never occurs (an empty mapping gives ``"e30"``).
    """
    value: dict[str, object] = {topic: [epoch, offset] for topic, (epoch, offset) in positions.items()}
    if patterns is not None:
        value[_PATTERNS_KEY] = {"p": sorted(patterns)}
    payload = orjson.dumps(value)
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")


def decode_cursor(text: str) -> SinceCursor:
    """Read an inline cursor into a ``since`` request: topic -> (epoch, last offset).

    Args:
        text: a cursor as given by :func:`encode_cursor` (padding optional).

    Returns:
        The positions to resume after, in the shape :class:`~rtnb.core.protocol.Subscribe` takes.

    Raises:
        BadCursor: the text is too long, not base64url, not JSON, or not
            ``{TOPIC: [EPOCH, OFFSET]}`` with valid topics and non-negative integers.
    """
    point = read_cursor(text)
    if point.stored_id is not None:
        raise BadCursor("This is a stored cursor; only the hub that issued it can read it.")
    return point.positions


def read_cursor(text: str) -> ResumePoint:
    """Read a cursor of either form (inline or stored).

    Raises:
        BadCursor: empty, too long, or neither form.
    """
    if not isinstance(text, str) or not text:
        raise BadCursor("The cursor is empty; pass the id of the last event or poll you received.")
    if len(text) > MAX_CURSOR_LENGTH:
        raise BadCursor(f"The cursor is {len(text)} characters long; the limit is {MAX_CURSOR_LENGTH}.")
    if text.startswith(STORED_CURSOR_PREFIX):
        stored_id = text[len(STORED_CURSOR_PREFIX) :]
        if not _STORED_ID.fullmatch(stored_id):
            raise BadCursor("The cursor is not one this hub issued (a malformed stored cursor).")
        return ResumePoint({}, None, stored_id)
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise BadCursor("The cursor is not one this hub issued (it does not decode).") from None
    if not isinstance(value, dict):
        raise BadCursor("The cursor is not one this hub issued (it is not a topic map).")
    patterns: frozenset[str] | None = None
    if _PATTERNS_KEY in value:
        covered = value.pop(_PATTERNS_KEY)
        listed = covered.get("p") if isinstance(covered, dict) else None
        if not isinstance(listed, list) or not all(isinstance(pattern, str) for pattern in listed):
            raise BadCursor('The cursor\'s pattern list must be {"p": [PATTERN, ...]}.')
        patterns = frozenset(listed)
    since: SinceCursor = {}
    for topic, position in value.items():
        try:
            validate_topic(topic, allow_system=True)
        except RtnbError:
            raise BadCursor(f"The cursor names an invalid topic {topic!r}.") from None
        if (
            not isinstance(position, list)
            or len(position) != 2
            or any(isinstance(number, bool) or not isinstance(number, int) or number < 0 for number in position)
        ):
            raise BadCursor(f"The cursor's position for {topic!r} must be [epoch, offset] of non-negative integers.")
        epoch, offset = position
        since[topic] = (epoch, offset)
    return ResumePoint(since, patterns)
