"""Every private Tornado name rtnb relies on, in one place.

rtnb reads WebSocket frames itself (:mod:`rtnb.server._wsprotocol`: strict RFC
6455, a callback reader that holds no coroutine per idle connection) and looks
at an :class:`~tornado.iostream.IOStream`'s write counters to write straight to
the socket and to time out peers that stop reading. Tornado offers no public API
for either, so a few private names are unavoidable. They are all named here,
and nowhere else:

* :data:`PROTOCOL_ATTRIBUTES` — state of :class:`WebSocketProtocol13` that the
  strict reader takes over;
* :data:`STREAM_ATTRIBUTES` — the write counters of an ``IOStream``;
* :func:`websocket_mask`, :func:`websocket_params`, :class:`DecompressTooLargeError`,
  :func:`send_pong`, :func:`release_response_headers`.

:func:`missing_internals` lists what the running Tornado lacks. The test
``tests/server/test_tornado_internals.py`` fails loudly when it is not empty,
and CI runs the suite against the oldest and the newest Tornado that
``pyproject.toml`` admits (:data:`TESTED_RANGE`). Should a Tornado outside that
range be installed anyway (pip keeps an existing one), the WebSocket handler
falls back to Tornado's own frame reader with one warning instead of failing
every upgrade: less strict, still correct for well-behaved peers.
"""

from __future__ import annotations

import functools
import inspect
import logging
from types import TracebackType
from typing import TYPE_CHECKING, Any

import tornado
import tornado.iostream
import tornado.util
import tornado.websocket
from tornado.websocket import WebSocketProtocol13

if TYPE_CHECKING:
    import tornado.web

__all__ = [
    "FRAME_YIELD_COST",
    "PROTOCOL_ATTRIBUTES",
    "STREAM_ATTRIBUTES",
    "TESTED_RANGE",
    "YIELD_THRESHOLD",
    "DecompressTooLargeError",
    "WebSocketProtocol13",
    "missing_internals",
    "release_response_headers",
    "send_pong",
    "stream_bytes_sent",
    "stream_bytes_written",
    "strict_framing_available",
    "websocket_mask",
    "websocket_params",
]

log = logging.getLogger("rtnb.server")

#: The Tornado releases this module is checked against (pyproject.toml says the same).
TESTED_RANGE = (">=6.4.2", "<6.7")

#: Input, in bytes, after which the frame reader gives other connections a turn
#: (Tornado 6.5+ does the same; each frame counts at least FRAME_YIELD_COST).
YIELD_THRESHOLD = 256 * 1024
FRAME_YIELD_COST = 1024

#: Attributes of a WebSocketProtocol13 instance that the strict reader reads or sets.
PROTOCOL_ATTRIBUTES = (
    "_fragmented_message_buffer",
    "_waiting",
    "_frame_compressed",
    "_decompressor",
    "_message_bytes_in",
    "_wire_bytes_in",
    "client_terminated",
    "server_terminated",
    "close_code",
    "close_reason",
    "params",
    "handler",
    "stream",
)
#: Methods of WebSocketProtocol13 that the strict reader calls or overrides.
PROTOCOL_METHODS = ("_abort", "_run_callback", "_write_frame", "_receive_frame_loop", "close")
#: Write counters of an IOStream (bytes handed to it, and bytes the socket took), and its read buffer.
STREAM_ATTRIBUTES = ("_total_write_index", "_total_write_done_index", "_read_buffer", "_read_buffer_size")
#: Methods of an IOStream that the strict reader calls.
STREAM_METHODS = ("_consume",)

_MODULE_NAMES = {
    tornado.websocket: ("_WebSocketParams", "_DecompressTooLargeError"),
    tornado.util: ("_websocket_mask",),
}

DecompressTooLargeError: type[Exception] = getattr(tornado.websocket, "_DecompressTooLargeError", OverflowError)


def websocket_mask(mask: bytes, data: bytes) -> bytes:
    """``data`` XORed with the 4-byte ``mask`` (Tornado's C speedup when built)."""
    return tornado.util._websocket_mask(mask, data)


def websocket_params(
    ping_interval: float | None, ping_timeout: float | None, max_message_size: int, compression_options: Any
) -> Any:
    """Tornado's per-connection WebSocket parameters object."""
    return tornado.websocket._WebSocketParams(
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        max_message_size=max_message_size,
        compression_options=compression_options,
    )


def send_pong(protocol: WebSocketProtocol13, data: bytes) -> None:
    """Answer a ping.

    Tornado 6.5+ keeps at most one pong outstanding (``_send_pong``); 6.4 writes
    the frame directly, as it does itself.
    """
    send = getattr(protocol, "_send_pong", None)
    if send is not None:
        send(data)
        return
    try:
        protocol._write_frame(True, 0xA, data)
    except tornado.iostream.StreamClosedError:
        protocol._abort()


def stream_bytes_written(stream: tornado.iostream.BaseIOStream) -> int:
    """Bytes handed to ``stream`` since it opened."""
    return stream._total_write_index


def stream_bytes_sent(stream: tornado.iostream.BaseIOStream) -> int:
    """Bytes of ``stream`` the socket has taken since it opened."""
    return stream._total_write_done_index


def buffered_input(stream: tornado.iostream.BaseIOStream) -> tuple[bytearray, int]:
    """The bytes ``stream`` read from its socket that no read took yet, and how many there are.

    The buffer is Tornado's own: look, do not change it; take bytes with :func:`take_input`.
    """
    return stream._read_buffer, stream._read_buffer_size


def take_input(stream: tornado.iostream.BaseIOStream, count: int) -> bytes:
    """Remove the first ``count`` buffered bytes of ``stream`` (at most what :func:`buffered_input` shows)."""
    taken: bytes = stream._consume(count)
    return taken


def release_response_headers(handler: tornado.web.RequestHandler, headers: Any) -> None:
    """Replace a handler's response headers (Tornado keeps them for the socket's life)."""
    handler._headers = headers


class _Handler:
    """A do-nothing delegate (what Tornado's ``_WebSocketDelegate`` protocol asks of a handler),
    enough to construct a protocol in :func:`missing_internals`."""

    def on_ws_connection_close(self, close_code: int | None = None, close_reason: str | None = None) -> None:
        pass

    def on_message(self, message: str | bytes) -> None:
        pass

    def on_ping(self, data: bytes) -> None:
        pass

    def on_pong(self, data: bytes) -> None:
        pass

    def log_exception(
        self, typ: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        pass


def missing_internals() -> list[str]:
    """The private Tornado names rtnb uses that the running Tornado lacks (empty when all is well)."""
    missing = [
        f"{module.__name__}.{name}"
        for module, names in _MODULE_NAMES.items()
        for name in names
        if not hasattr(module, name)
    ]
    missing += [f"WebSocketProtocol13.{name}" for name in PROTOCOL_METHODS if not hasattr(WebSocketProtocol13, name)]
    stream_init = inspect.getsource(tornado.iostream.BaseIOStream.__init__)
    missing += [f"IOStream().{name}" for name in STREAM_ATTRIBUTES if f"self.{name} =" not in stream_init]
    missing += [f"IOStream.{name}" for name in STREAM_METHODS if not hasattr(tornado.iostream.BaseIOStream, name)]
    if "tornado.websocket._WebSocketParams" in missing:
        return missing
    try:
        protocol = WebSocketProtocol13(_Handler(), False, websocket_params(None, None, 1024, None))
    except Exception as error:  # a changed constructor is itself a finding
        return [*missing, f"WebSocketProtocol13(handler, mask_outgoing, params): {error!r}"]
    missing += [f"WebSocketProtocol13().{name}" for name in PROTOCOL_ATTRIBUTES if not hasattr(protocol, name)]
    return missing


@functools.cache
def strict_framing_available() -> bool:
    """Whether :mod:`rtnb.server._wsprotocol` can run on this Tornado; warns once when not."""
    missing = missing_internals()
    if missing:
        log.warning(
            "Tornado %s lacks internals rtnb's strict WebSocket reader uses (%s); tested: tornado%s. "
            "Falling back to Tornado's own frame reader.",
            tornado.version,
            ", ".join(missing),
            ",".join(TESTED_RANGE),
        )
    return not missing
