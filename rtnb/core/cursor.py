"""The resume cursor shared by SSE (``id:`` / ``Last-Event-ID``) and long polling.

A cursor says, for every topic a subscriber covers, the epoch and the last
offset it has been given. Handing it back on reconnect resumes exactly after
that point (or yields ``gap`` notices for what history no longer holds), so the
recovery model is the hub's ``since`` catch-up, whatever the transport.

Clients should treat a cursor as opaque text. It is built as the base64url
(no padding) of compact JSON ``{TOPIC: [EPOCH, OFFSET], ...}``: URL- and
header-safe, and readable by the browser client, which merges it with the
positions it has seen itself. Anything that does not decode to that shape is
refused with :class:`~rtnb.core.errors.BadCursor`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

import orjson

from .errors import BadCursor, RtnbError
from .protocol import SinceCursor
from .topics import validate_topic

__all__ = ["MAX_CURSOR_LENGTH", "decode_cursor", "encode_cursor"]

#: Longest cursor text accepted (characters); it travels in headers and URLs.
MAX_CURSOR_LENGTH = 32 * 2**10


def encode_cursor(positions: Mapping[str, tuple[int, int]]) -> str:
    """Build the cursor text for ``positions`` (topic -> (epoch, last offset)).

    Args:
        positions: what the subscriber has been given, per topic.

    Returns:
        The opaque cursor text; ``""`` never occurs (an empty mapping gives ``"e30"``).
    """
    payload = orjson.dumps({topic: [epoch, offset] for topic, (epoch, offset) in positions.items()})
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")


def decode_cursor(text: str) -> SinceCursor:
    """Read a cursor into a ``since`` request: topic -> (last offset, epoch).

    Args:
        text: a cursor as given by :func:`encode_cursor` (padding optional).

    Returns:
        The positions to resume after, in the shape :class:`~rtnb.core.protocol.Subscribe` takes.

    Raises:
        BadCursor: the text is too long, not base64url, not JSON, or not
            ``{TOPIC: [EPOCH, OFFSET]}`` with valid topics and non-negative integers.
    """
    if not isinstance(text, str) or not text:
        raise BadCursor("The cursor is empty; pass the id of the last event or poll you received.")
    if len(text) > MAX_CURSOR_LENGTH:
        raise BadCursor(f"The cursor is {len(text)} characters long; the limit is {MAX_CURSOR_LENGTH}.")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise BadCursor("The cursor is not one this hub issued (it does not decode).") from None
    if not isinstance(value, dict):
        raise BadCursor("The cursor is not one this hub issued (it is not a topic map).")
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
        since[topic] = (offset, epoch)
    return since
