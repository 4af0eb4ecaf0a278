"""An echo endpoint on the hub's own WebSocket stack, for protocol-compliance runs (a test helper).

The Autobahn fuzzing cases need a server that echoes every message back. To
test what users get, the echo handler is :class:`~rtnb.server.websocket.HubWebSocket`
itself — same frame reader (:mod:`rtnb.server._wsprotocol`), size limit,
compression settings, close handshake and timeout, and the same pre-framed
write path — with only ``open`` and ``on_message`` replaced: no welcome frame,
no hub membership, the payload written back as it came.

It lives in the tests, not in the package: only :class:`EchoHubServer` and
:func:`make_echo_app` (used by ``tests/reliability`` and ``scripts/autobahn.py``)
mount it, so an installed hub cannot be turned into an echo service.
"""

from __future__ import annotations

from typing import Any

import tornado.web

from rtnb.server.hub import Hub
from rtnb.server.runner import HubServer
from rtnb.server.websocket import HubWebSocket, frame_bytes

__all__ = ["EchoHubServer", "EchoWebSocket", "make_echo_app"]

_TEXT = 0x1
_BINARY = 0x2


class EchoWebSocket(HubWebSocket):
    """:class:`HubWebSocket` that writes every message back instead of parsing it."""

    transport = "echo"

    def open(self, *args: str, **kwargs: str) -> None:
        connection = self.ws_connection
        assert connection is not None
        self._stream = connection.stream

    def on_message(self, frame: str | bytes) -> None:
        if isinstance(frame, str):
            self._write(frame_bytes(frame.encode("utf-8"), _TEXT))
        else:
            self._write(frame_bytes(frame, _BINARY))


def make_echo_app(hub: Hub, path: str = "/", **settings: Any) -> tornado.web.Application:
    """A Tornado application whose only route, ``path``, is an :class:`EchoWebSocket`.

    Args:
        hub: supplies the settings (limits, close timeout); it needs no clients.
        path: where the echo endpoint listens.
        settings: extra Tornado application settings.
    """
    return tornado.web.Application([(path, EchoWebSocket, {"hub": hub})], **settings)


class EchoHubServer(HubServer):
    """A :class:`~rtnb.server.runner.HubServer` (same HTTP server, timeouts and
    shutdown) whose ``/ws`` echoes instead of serving the hub's protocol."""

    def make_app(self) -> tornado.web.Application:
        return make_echo_app(self.hub, f"{self.prefix}/ws", **self.app_settings)
