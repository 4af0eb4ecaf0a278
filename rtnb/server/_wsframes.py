"""RFC 6455 frame rules, without I/O: what makes a frame header or a close frame invalid.

The strict frame reader (:mod:`rtnb.server._wsprotocol`) reads bytes from the
stream and calls these to judge them; a rule broken raises :class:`FrameError`
with the close code the connection must be failed with (RFC 6455 section
7.1.7). Kept apart so the rules can be read in one place and tested with bytes
alone, with no socket and no Tornado.
"""

from __future__ import annotations

import struct

from ..core.close_codes import CloseCode, is_valid_close_code

__all__ = [
    "BINARY",
    "CLOSE",
    "CONTINUATION",
    "CONTROL_OPCODES",
    "DATA_OPCODES",
    "MAX_CONTROL_PAYLOAD",
    "PING",
    "PONG",
    "TEXT",
    "FrameError",
    "check_frame_header",
    "mask_at",
    "parse_close_payload",
    "truncate_reason",
]

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
DATA_OPCODES = frozenset({CONTINUATION, TEXT, BINARY})
CONTROL_OPCODES = frozenset({CLOSE, PING, PONG})
#: Longest payload of a control frame (RFC 6455 section 5.5).
MAX_CONTROL_PAYLOAD = 125


class FrameError(Exception):
    """A frame broke the protocol: fail the connection with ``code``, saying ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def truncate_reason(reason: str, limit: int = MAX_CONTROL_PAYLOAD - 2) -> str:
    """``reason`` cut to at most ``limit`` UTF-8 bytes, never inside a character."""
    encoded = reason.encode("utf-8")
    if len(encoded) <= limit:
        return reason
    return encoded[:limit].decode("utf-8", errors="ignore")


def mask_at(mask: bytes, offset: int) -> bytes:
    """The 4-byte mask as it applies to a chunk starting ``offset`` bytes into a payload."""
    shift = offset % 4
    return mask if shift == 0 else mask[shift:] + mask[:shift]


def check_frame_header(
    final: bool,
    opcode: int,
    reserved: int,
    masked: bool,
    length: int,
    fragmented_bytes: int | None,
    max_message_size: int,
) -> None:
    """Judge a client frame's header before its payload is read.

    Args:
        final, opcode, reserved, masked, length: the header's fields (``reserved``
            without the compression bit when the frame is compressed).
        fragmented_bytes: bytes of the fragmented message being read, or
            ``None`` when no message is in progress.
        max_message_size: the largest message accepted, in bytes.

    Raises:
        FrameError: 1002 for a protocol error (reserved bits or opcode, an
            unmasked frame, a fragmented or oversized control frame, a
            continuation out of place); 1009 when the message grows too big.
    """
    if reserved:
        raise FrameError(CloseCode.PROTOCOL_ERROR, "reserved bits set without an extension")
    if not masked:
        raise FrameError(CloseCode.PROTOCOL_ERROR, "client frames must be masked")
    if opcode in CONTROL_OPCODES:
        if not final:
            raise FrameError(CloseCode.PROTOCOL_ERROR, "fragmented control frame")
        if length > MAX_CONTROL_PAYLOAD:
            raise FrameError(CloseCode.PROTOCOL_ERROR, "control frame payload over 125 bytes")
        return
    if opcode not in DATA_OPCODES:
        raise FrameError(CloseCode.PROTOCOL_ERROR, f"reserved opcode {opcode:#x}")
    in_message = fragmented_bytes is not None
    if opcode == CONTINUATION and not in_message:
        raise FrameError(CloseCode.PROTOCOL_ERROR, "continuation frame without a message to continue")
    if opcode != CONTINUATION and in_message:
        raise FrameError(CloseCode.PROTOCOL_ERROR, "new message before the fragmented one ended")
    if (fragmented_bytes or 0) + length > max_message_size:
        raise FrameError(CloseCode.MESSAGE_TOO_BIG, "message too big")


def parse_close_payload(payload: bytes) -> tuple[int | None, str | None]:
    """The ``(code, reason)`` of a peer's close frame; ``(None, None)`` for an empty one.

    Raises:
        FrameError: 1002 for a 1-byte payload or a code that may not be sent on
            the wire; 1007 for a reason that is not UTF-8.
    """
    if len(payload) == 1:
        raise FrameError(CloseCode.PROTOCOL_ERROR, "close frame with a 1-byte payload")
    if not payload:
        return None, None
    code: int = struct.unpack("!H", payload[:2])[0]
    if not is_valid_close_code(code):
        raise FrameError(CloseCode.PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(CloseCode.INVALID_PAYLOAD, "close reason is not valid UTF-8") from None
    return code, reason
