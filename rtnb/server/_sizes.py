"""Answers for requests too big for the HTTP server itself: 413 for a body, 431 for a head.

The hub's handlers answer a body over ``max_frame_bytes`` with 413 and a JSON
error. Tornado's HTTP server has limits of its own, checked before any handler
runs, and it answers them badly:

* a body over ``max_body_size`` (16 MiB or more) gets a bare ``400 Bad
  Request`` with no body, and the connection is closed while the client is
  still sending, which the client sees as a reset;
* a request head over ``max_header_size`` (64 KiB) closes the connection with
  no response at all.

:class:`BodyLimit` wraps each request's delegate: a ``Content-Length`` over the
limit (or a chunked body growing past it) is answered with ``413`` and the same
JSON error the handlers send. A client that asked ``Expect: 100-continue`` is
answered before it sends the body; otherwise the body is read and dropped (up
to :data:`MAX_DRAINED_BYTES`, within the body timeout) so the client reads the
answer instead of a reset. :func:`answer_oversized_heads` makes a stream answer
``431`` when a head outgrows the limit, before Tornado closes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import tornado.http1connection
import tornado.httputil
import tornado.iostream

from ..core.errors import HeadTooLarge, MessageTooBig
from ..core.origins import RequestGuard

__all__ = ["MAX_DRAINED_BYTES", "MAX_HEAD_BYTES", "BodyLimit", "answer_oversized_heads"]

#: Largest request head (request line and headers) accepted: Tornado's default.
MAX_HEAD_BYTES = 64 * 1024
#: Most bytes of a refused body read and dropped so the client sees the 413; a
#: bigger announced body gets its answer and the connection is closed.
MAX_DRAINED_BYTES = 256 * 2**20


def _response(
    error: MessageTooBig | HeadTooLarge, reason: str, cors_origin: str | None = None
) -> tuple[tornado.httputil.ResponseStartLine, tornado.httputil.HTTPHeaders, bytes]:
    body = orjson.dumps(error.to_http_body())
    headers = tornado.httputil.HTTPHeaders(
        {
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "Cache-Control": "no-store",
            "Connection": "close",
        }
    )
    if cors_origin is not None:  # a page on an allowed origin reads why, as from the handlers
        headers["Access-Control-Allow-Origin"] = cors_origin
        headers["Vary"] = "Origin"
    return tornado.httputil.ResponseStartLine("HTTP/1.1", error.http_status, reason), headers, body


class BodyLimit(tornado.httputil.HTTPMessageDelegate):
    """One request's delegate, refusing a body over ``limit`` bytes with 413 and a JSON error.

    Args:
        inner: the application's delegate, which gets everything of a request within the limit.
        connection: the request's connection (to answer and to lift Tornado's own limit).
        limit: the largest body accepted, Tornado's ``max_body_size``.
        on_refused: called with the error code once per refused request (the hub counts it).
        guard: the hub's Host and Origin rules, for the CORS header of a refusal.
    """

    def __init__(
        self,
        inner: tornado.httputil.HTTPMessageDelegate,
        connection: tornado.http1connection.HTTP1Connection,
        limit: int,
        on_refused: Callable[[str], None] | None = None,
        guard: RequestGuard | None = None,
    ) -> None:
        self.inner = inner
        self.guard = guard
        self._cors_origin: str | None = None
        self.connection = connection
        self.limit = limit
        self.on_refused = on_refused
        self.refused = False
        self._answered = False
        self._counting = False
        self._received = 0

    def headers_received(
        self,
        start_line: tornado.httputil.RequestStartLine | tornado.httputil.ResponseStartLine,
        headers: tornado.httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        if self.guard is not None:
            self._cors_origin = self.guard.cors_origin(headers.get("Host"), headers.get("Origin"))
        length = _content_length(headers)
        if length is not None and length > self.limit:
            expecting = headers.get("Expect", "").lower() == "100-continue"
            # Lift Tornado's limit for this request, or it answers 400 after our 413.
            self.connection.set_max_body_size(length)
            self._refuse(f"The body is {length} bytes; this hub accepts at most {self.limit}.")
            if expecting or length > MAX_DRAINED_BYTES:
                # The client waits for a go-ahead it will not get (or the body is not worth reading):
                # finishing now makes Tornado close the connection once the answer is out.
                self._finish_answer()
            return None
        if "chunked" in headers.get("Transfer-Encoding", "").lower():
            self._counting = True
            self.connection.set_max_body_size(MAX_DRAINED_BYTES)  # over ``limit`` we answer, not Tornado
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self.refused:
            return None  # read and dropped: the client reads our answer, not a reset
        if self._counting:
            self._received += len(chunk)
            if self._received > self.limit:
                self.inner.on_connection_close()
                self._refuse(f"The chunked body is over {self.limit} bytes, the most this hub accepts.")
                return None
        return self.inner.data_received(chunk)

    def finish(self) -> None:
        if self.refused:
            self._finish_answer()
            return
        self.inner.finish()

    def on_connection_close(self) -> None:
        if not self.refused:
            self.inner.on_connection_close()

    def _refuse(self, message: str) -> None:
        self.refused = True
        if self.on_refused is not None:
            self.on_refused(MessageTooBig.code)
        start_line, headers, body = _response(MessageTooBig(message), "Content Too Large", self._cors_origin)
        self.connection.write_headers(start_line, headers, body)

    def _finish_answer(self) -> None:
        if not self._answered:
            self._answered = True
            self.connection.finish()


def _content_length(headers: tornado.httputil.HTTPHeaders) -> int | None:
    value = headers.get("Content-Length")
    if value is None:
        return None
    try:
        return int(value.split(",")[0].strip())
    except ValueError:
        return None  # Tornado refuses it itself (400)


def _head_too_large_answer() -> bytes:
    """The whole 431 response, as bytes (written straight to the socket)."""
    error = HeadTooLarge(f"The request head is over {MAX_HEAD_BYTES} bytes, the most this hub accepts.")
    start_line, headers, body = _response(error, "Request Header Fields Too Large")
    lines = [f"HTTP/1.1 {start_line.code} {start_line.reason}"]
    lines += [f"{name}: {value}" for name, value in headers.get_all()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


_HEAD_TOO_LARGE = _head_too_large_answer()


def answer_oversized_heads(stream: tornado.iostream.IOStream) -> None:
    """Make ``stream`` answer ``431`` when a request head outgrows Tornado's ``max_header_size``.

    Tornado reads a head with ``read_until_regex(..., max_bytes=max_header_size)``;
    when the head is longer, the stream closes itself at once with an
    ``UnsatisfiableReadError``, before anything can be written. This wraps the
    stream's ``read_until_regex`` (to know a head is being read) and ``close``
    (to put the 431 answer, a few hundred bytes, straight into the socket's
    empty send buffer just before the close).
    """
    read_until_regex = stream.read_until_regex
    close = stream.close
    reading_head = False

    def read_head(regex: bytes, max_bytes: int | None = None) -> Awaitable[bytes]:
        nonlocal reading_head
        reading_head = True
        future = asyncio.ensure_future(read_until_regex(regex, max_bytes))  # Tornado's Future, as is

        def done(_: Any) -> None:
            nonlocal reading_head
            reading_head = False

        future.add_done_callback(done)
        return future

    def close_answering(exc_info: Any = False) -> None:
        if reading_head and isinstance(exc_info, tornado.iostream.UnsatisfiableReadError) and not stream.closed():
            try:
                stream.socket.send(_HEAD_TOO_LARGE)
            except OSError:
                pass  # the peer is gone, or the send buffer is full: nothing to answer
        close(exc_info)

    # Replacing two methods of this one stream is the point (Tornado offers no hook between
    # the head read failing and the stream closing); mypy flags any method assignment.
    stream.read_until_regex = read_head  # type: ignore[method-assign]
    stream.close = close_answering  # type: ignore[method-assign]
