"""The RFC 6455 frame rules of the strict reader, judged from bytes alone (no socket, no Tornado)."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from rtnb.core.close_codes import CloseCode
from rtnb.server._wsframes import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    TEXT,
    FrameError,
    check_frame_header,
    mask_at,
    parse_close_payload,
    truncate_reason,
)

LIMIT = 1000


def refusal(
    final: bool, opcode: int, *, reserved: int = 0, masked: bool = True, length: int = 0, fragmented: int | None = None
) -> tuple[int, str]:
    """The close code and reason a header is refused with."""
    with pytest.raises(FrameError) as caught:
        check_frame_header(final, opcode, reserved, masked, length, fragmented, LIMIT)
    return caught.value.code, caught.value.reason


def test_well_formed_headers_pass() -> None:
    check_frame_header(True, TEXT, 0, True, LIMIT, None, LIMIT)
    check_frame_header(False, BINARY, 0, True, 10, None, LIMIT)
    check_frame_header(True, CONTINUATION, 0, True, 10, 990, LIMIT)
    check_frame_header(True, PING, 0, True, 125, 500, LIMIT)  # a control frame may come mid-message


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ({"final": True, "opcode": TEXT, "reserved": 0x40}, "reserved bits set without an extension"),
        ({"final": True, "opcode": TEXT, "masked": False}, "client frames must be masked"),
        ({"final": False, "opcode": PING}, "fragmented control frame"),
        ({"final": True, "opcode": CLOSE, "length": 126}, "control frame payload over 125 bytes"),
        ({"final": True, "opcode": 0x3}, "reserved opcode 0x3"),
        ({"final": True, "opcode": CONTINUATION}, "continuation frame without a message to continue"),
        ({"final": True, "opcode": TEXT, "fragmented": 4}, "new message before the fragmented one ended"),
    ],
)
def test_protocol_errors_fail_with_1002(arguments: dict[str, Any], reason: str) -> None:
    assert refusal(**arguments) == (CloseCode.PROTOCOL_ERROR, reason)


def test_a_message_over_the_limit_fails_with_1009_counting_its_earlier_fragments() -> None:
    assert refusal(True, TEXT, length=LIMIT + 1) == (CloseCode.MESSAGE_TOO_BIG, "message too big")
    assert refusal(True, CONTINUATION, length=2, fragmented=LIMIT - 1) == (CloseCode.MESSAGE_TOO_BIG, "message too big")


def test_close_payloads() -> None:
    assert parse_close_payload(b"") == (None, None)
    assert parse_close_payload(struct.pack("!H", 1000) + "bye ✓".encode()) == (1000, "bye ✓")
    for payload, code, reason in [
        (b"\x03", CloseCode.PROTOCOL_ERROR, "close frame with a 1-byte payload"),
        (struct.pack("!H", 1005), CloseCode.PROTOCOL_ERROR, "invalid close code 1005"),
        (struct.pack("!H", 999), CloseCode.PROTOCOL_ERROR, "invalid close code 999"),
        (struct.pack("!H", 1000) + b"\xff", CloseCode.INVALID_PAYLOAD, "close reason is not valid UTF-8"),
    ]:
        with pytest.raises(FrameError) as caught:
            parse_close_payload(payload)
        assert (caught.value.code, caught.value.reason) == (code, reason)


def test_masks_rotate_with_the_offset_and_reasons_are_cut_between_characters() -> None:
    mask = b"\x01\x02\x03\x04"
    assert [mask_at(mask, offset) for offset in (0, 1, 4, 6)] == [mask, b"\x02\x03\x04\x01", mask, b"\x03\x04\x01\x02"]
    assert truncate_reason("short") == "short"
    cut = truncate_reason("é" * 100)  # 200 bytes: cut to 123, never inside a character
    assert cut == "é" * 61 and len(cut.encode()) == 122
