"""The Tornado internals rtnb relies on are all there, in the Tornado installed now.

CI runs the suite against the oldest and the newest Tornado that pyproject.toml
admits; this test is the loud, first failure when a Tornado release renames one
of the private names listed in :mod:`rtnb.server._tornado`.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
import tornado
import tornado.iostream
import tornado.websocket
from tornado.websocket import WebSocketProtocol13

from rtnb.server import _tornado

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_every_private_name_rtnb_uses_exists() -> None:
    assert _tornado.missing_internals() == [], (
        f"Tornado {tornado.version} changed internals that rtnb.server._tornado names; "
        "update that module (and the tested range) before allowing this release"
    )
    assert _tornado.strict_framing_available()


async def test_stream_write_counters_count_what_the_socket_took() -> None:
    left, right = socket.socketpair()
    stream = tornado.iostream.IOStream(left)
    try:
        await stream.write(b"x" * 1000)
        assert _tornado.stream_bytes_written(stream) == 1000
        assert _tornado.stream_bytes_sent(stream) == 1000
    finally:
        stream.close()
        right.close()


def test_a_missing_internal_is_reported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(tornado.websocket, "_WebSocketParams")
    assert _tornado.missing_internals() == ["tornado.websocket._WebSocketParams"]


def test_a_missing_protocol_method_is_reported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(WebSocketProtocol13, "_write_frame")
    assert "WebSocketProtocol13._write_frame" in _tornado.missing_internals()


def test_pyproject_admits_exactly_the_tested_range() -> None:
    text = PYPROJECT.read_text()
    declared = re.search(r'"tornado(>=[^"]+)"', text)
    assert declared is not None
    assert declared.group(1) == ",".join(_tornado.TESTED_RANGE)
