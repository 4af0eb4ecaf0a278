"""Timeouts against slow and stuck peers, for every connection the hub's HTTP server accepts.

Tornado already bounds how long a request head may take (``idle_connection_timeout``,
an hour by default; :class:`~rtnb.server.runner.HubServer` sets it from
``HubConfig.handshake_timeout``) and a request body (``body_timeout``). What it
lacks is a *write* timeout: a peer that stops reading — a frozen dashboard, a
device whose link died without a FIN, a slowloris that asks and never reads —
keeps its connection and the bytes queued for it forever.

:class:`WriteWatchdog` adds one, for all transports at once (WebSocket, SSE,
long polling, plain responses), at the level they share: the accepted
:class:`~tornado.iostream.IOStream`. One timer sweeps every stream; a stream
whose peer has taken no byte for ``timeout`` seconds while bytes wait for it is
closed, and its handler's usual close path (``on_close``, ``on_connection_close``)
releases everything the hub held for it. A peer that reads slowly makes progress
and is never cut by this; the hub's slow-consumer policy handles it.

:class:`GuardedHTTPServer` is Tornado's ``HTTPServer`` with the watchdog attached.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import sys
from collections.abc import Callable
from typing import Any

import tornado.httpserver
import tornado.httputil
import tornado.iostream

from ..core.origins import RequestGuard
from ._sizes import MAX_DRAINED_BYTES, BodyLimit, answer_oversized_heads
from ._tornado import stream_bytes_sent, stream_bytes_written

if sys.platform != "win32":  # Unix: ask the kernel how much of what was sent the peer has not acknowledged
    import fcntl
    import termios

__all__ = ["GuardedHTTPServer", "WriteWatchdog", "bytes_taken", "bytes_waiting"]

log = logging.getLogger("rtnb.server")


def bytes_waiting(stream: tornado.iostream.BaseIOStream) -> int:
    """Bytes written to ``stream`` that the socket has not taken yet."""
    return stream_bytes_written(stream) - stream_bytes_sent(stream)


def _kernel_queue(stream: tornado.iostream.BaseIOStream) -> int:
    """Bytes in the socket's send queue not yet acknowledged by the peer (Linux ``SIOCOUTQ``); 0 elsewhere."""
    if sys.platform == "win32":  # pragma: no cover - no fcntl
        return 0
    try:
        fileno = stream.fileno()
        if not isinstance(fileno, int):
            fileno = fileno.fileno()
        answer = fcntl.ioctl(fileno, termios.TIOCOUTQ, b"\0\0\0\0")
    except (OSError, AttributeError, ValueError):
        return 0
    return int(struct.unpack("i", answer)[0])


def bytes_taken(stream: tornado.iostream.BaseIOStream) -> int:
    """Bytes the peer has taken from ``stream`` since it opened: grows while the peer reads.

    The kernel's send buffer can hold megabytes and tells the process it has
    room again only once a good part of it drained, so the bytes the socket took
    from Tornado's buffer can stand still for seconds while a slow peer reads;
    what the peer acknowledged (taken minus the kernel's queue) moves as it reads.
    """
    return stream_bytes_sent(stream) - _kernel_queue(stream)


class WriteWatchdog:
    """Closes streams whose peer takes no bytes for ``timeout`` seconds while bytes wait.

    Args:
        timeout: seconds without progress before a stream is closed; must be > 0.
        on_timeout: called once per stream closed this way (e.g. to count it).
    """

    def __init__(self, timeout: float, on_timeout: Callable[[], None] | None = None) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self.timeout = timeout
        self.on_timeout = on_timeout
        #: stream -> (bytes taken at the last sign of progress, loop time of it)
        self.streams: dict[tornado.iostream.BaseIOStream, tuple[int, float]] = {}
        self.closed_streams = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None

    @property
    def interval(self) -> float:
        """Seconds between sweeps: a stalled stream is closed at most this late."""
        return min(1.0, max(0.05, self.timeout / 4))

    def add(self, stream: tornado.iostream.BaseIOStream) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._handle = self._loop.call_later(self.interval, self._sweep)
        self.streams[stream] = (bytes_taken(stream), self._loop.time())

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._loop = None
        self.streams.clear()

    def _sweep(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        streams = self.streams
        for stream, (taken_before, since) in list(streams.items()):
            if stream.closed():
                del streams[stream]
                continue
            taken = bytes_taken(stream)
            if taken != taken_before or not bytes_waiting(stream):
                streams[stream] = (taken, now)
            elif now - since >= self.timeout:
                del streams[stream]
                self.closed_streams += 1
                log.info(
                    "closing a connection whose peer took no bytes for %.1fs (%d bytes waiting)",
                    now - since,
                    bytes_waiting(stream),
                )
                stream.close()
                if self.on_timeout is not None:
                    self.on_timeout()
        self._handle = self._loop.call_later(self.interval, self._sweep)


class GuardedHTTPServer(tornado.httpserver.HTTPServer):
    """Tornado's ``HTTPServer`` whose accepted streams are watched by a :class:`WriteWatchdog`.

    Takes Tornado's ``HTTPServer`` arguments plus ``write_timeout`` (seconds,
    ``None`` disables the watchdog), ``on_write_timeout`` (a callback per
    stream closed), ``on_refused`` (called with the error code of a request
    refused for its size) and ``guard`` (the hub's Host and Origin rules, for
    the CORS header of such a refusal). Requests too big for the server itself get 413 or
    431 answers (see :mod:`rtnb.server._sizes`).
    """

    def initialize(
        self,
        *args: Any,
        write_timeout: float | None = None,
        on_write_timeout: Callable[[], None] | None = None,
        on_refused: Callable[[str], None] | None = None,
        guard: RequestGuard | None = None,
        **kwargs: Any,
    ) -> None:
        super().initialize(*args, **kwargs)
        self.watchdog = None if write_timeout is None else WriteWatchdog(write_timeout, on_write_timeout)
        self.on_refused = on_refused
        self.guard = guard

    def handle_stream(self, stream: tornado.iostream.IOStream, address: tuple[Any, ...]) -> None:
        if self.watchdog is not None:
            self.watchdog.add(stream)
        answer_oversized_heads(stream)  # 431, not a silent close (rtnb.server._sizes)
        super().handle_stream(stream, address)

    def start_request(self, server_conn: object, request_conn: Any) -> tornado.httputil.HTTPMessageDelegate:
        """The application's delegate behind :class:`~rtnb.server._sizes.BodyLimit`: 413 with a JSON error
        for a body over the server's own limit, instead of Tornado's bare 400."""
        limit = self.conn_params.max_body_size or MAX_DRAINED_BYTES
        inner = super().start_request(server_conn, request_conn)
        return BodyLimit(inner, request_conn, limit, self.on_refused, self.guard)

    async def close_all_connections(self) -> None:
        try:
            await super().close_all_connections()
        finally:
            if self.watchdog is not None:
                self.watchdog.stop()
