"""One streaming HTTP GET for the SSE client, on Tornado's HTTP/1.1 client.

The request is written and the response parsed by Tornado's public
:class:`tornado.http1connection.HTTP1Connection` (the machinery under
``AsyncHTTPClient``) over a :class:`tornado.tcpclient.TCPClient` connection.
It is used directly instead of ``AsyncHTTPClient.fetch`` because an event
stream never ends: ``fetch`` cannot be cancelled, so closing an idle stream
would leave its socket open until the hub's next byte, and its request timeout
and body limit assume a finite body. Here :meth:`HttpStream.close` closes the
socket at once.

Header values are checked before a byte is sent: a value holding CR or LF
(which would smuggle extra header lines into the request) is refused with
:class:`ValueError`. A non-200 answer is turned into the typed error the hub
reported in its ``{"error": {"code", "message"}}`` body.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Awaitable, Mapping
from urllib.parse import urlsplit

import orjson
from tornado import httputil
from tornado.http1connection import HTTP1Connection, HTTP1ConnectionParameters
from tornado.iostream import StreamClosedError
from tornado.tcpclient import TCPClient

from ..core.errors import RtnbError, Unavailable, error_from_wire

__all__ = ["HttpStream", "check_request_headers", "open_stream"]

#: largest response head accepted (status line and headers)
_MAX_HEADER_BYTES = 64 * 2**10
#: largest error body read to find the hub's typed error
_MAX_ERROR_BODY = 64 * 2**10
#: body pieces buffered ahead of the reader before reading the socket pauses
_MAX_QUEUED_PIECES = 64
#: an event stream has no end, so its body has no size limit; only each event is bounded (by the parser)
_UNLIMITED_BODY = 2**62

# RFC 9110 token characters for a field name; a value may hold any visible
# character, space and tab, but never CR, LF or NUL.
_FIELD_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")


def check_request_headers(headers: Mapping[str, str]) -> None:
    """Refuse header names and values that would corrupt the request.

    Raises:
        TypeError: a name or value is not a string.
        ValueError: a name is not an HTTP token, or a value contains CR, LF or NUL.
    """
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"Header names and values must be strings, not {name!r}: {value!r}.")
        if not _FIELD_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid HTTP header name.")
        if _FORBIDDEN_IN_VALUE.search(value):
            raise ValueError(f"The value of header {name!r} contains CR, LF or NUL, which HTTP forbids.")


class _ResponseReader(httputil.HTTPMessageDelegate):
    """Receives the parsed response from Tornado: the head once, then body pieces."""

    def __init__(self) -> None:
        self.head: asyncio.Future[tuple[int, httputil.HTTPHeaders]] = asyncio.get_running_loop().create_future()
        self.pieces: asyncio.Queue[bytes] = asyncio.Queue(_MAX_QUEUED_PIECES)

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> None:
        if isinstance(start_line, httputil.ResponseStartLine) and not self.head.done():
            self.head.set_result((start_line.code, headers))

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        # Awaiting a bounded queue makes Tornado stop reading the socket while the client lags.
        return self.pieces.put(chunk) if chunk else None

    def finish(self) -> None:
        self.end()

    def on_connection_close(self) -> None:
        self.end()

    def reading_done(self, reading: asyncio.Task[bool]) -> None:
        """The response is read or broke: end the body (Tornado already logged any error)."""
        if not reading.cancelled():
            reading.exception()  # retrieved, so asyncio does not warn about it again
        self.end()

    def end(self) -> None:
        """Mark the end of the body (an empty piece), once the reader has room for it."""
        if not self.head.done():
            self.head.set_exception(Unavailable("The hub closed the connection before answering."))
            self.head.exception()  # retrieved: nobody may be waiting any more
        try:
            self.pieces.put_nowait(b"")
        except asyncio.QueueFull:
            pass  # the reader finds the end when it drains the queue and the reading task is done


class HttpStream:
    """The body of an open ``200`` response, read piece by piece.

    Attributes:
        status: the HTTP status code.
        headers: the response headers, names in lower case.
    """

    def __init__(
        self,
        connection: HTTP1Connection,
        reader: _ResponseReader,
        reading: asyncio.Task[bool],
        status: int,
        headers: httputil.HTTPHeaders,
    ) -> None:
        self._connection = connection
        self._reader = reader
        self._reading = reading
        self.status = status
        self.headers = {name.lower(): value for name, value in headers.get_all()}
        self._ended = False

    async def read(self) -> bytes:
        """The next piece of the body; ``b""`` once it ended or broke.

        A malformed body (bad chunk framing) ends the stream: Tornado logs it
        and closes the connection.
        """
        if self._ended:
            return b""
        if self._reader.pieces.empty() and self._reading.done():
            self._ended = True
            return b""
        piece = await self._reader.pieces.get()
        if not piece:
            self._ended = True
        return piece

    def close(self) -> None:
        """Close the connection now; pending and later reads return ``b""``."""
        self._ended = True
        self._connection.close()
        self._reading.cancel()
        self._reader.end()


async def open_stream(url: str, headers: Mapping[str, str], timeout: float) -> HttpStream:
    """Send ``GET url`` and return the streaming body of a 200 answer.

    Args:
        url: ``http://`` or ``https://`` (certificates verified with the system's trust store).
        headers: extra request headers; they replace the defaults of the same name.
        timeout: seconds to connect, and again seconds to receive the response head.

    Raises:
        ValueError / TypeError: a header name or value is malformed (nothing was sent).
        Unavailable: the hub cannot be reached or answered something unexpected.
        RtnbError: the hub refused the request with a typed error (bad pattern,
            bad cursor, unauthorized...).
    """
    check_request_headers(headers)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"An event stream URL must start with http:// or https://, not {url!r}.")
    secure = parts.scheme == "https"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if secure else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if _FORBIDDEN_IN_VALUE.search(target) or " " in target:
        raise ValueError(f"The URL {url!r} contains characters a request line cannot carry.")
    request_headers = httputil.HTTPHeaders(
        {"Host": parts.netloc, "Accept": "text/event-stream", "Cache-Control": "no-cache"}
    )
    for name, value in headers.items():
        request_headers[name] = value
    request_headers["Connection"] = "close"

    tcp_client = TCPClient()
    try:
        socket_stream = await asyncio.wait_for(
            tcp_client.connect(host, port, ssl_options=ssl.create_default_context() if secure else None), timeout
        )
    except (OSError, StreamClosedError, asyncio.TimeoutError) as error:
        raise Unavailable(f"Cannot reach the hub at {url}: {error or type(error).__name__}.") from None
    finally:
        tcp_client.close()
    connection = HTTP1Connection(
        socket_stream,
        True,
        HTTP1ConnectionParameters(
            no_keep_alive=True, max_header_size=_MAX_HEADER_BYTES, max_body_size=_UNLIMITED_BODY, decompress=False
        ),
    )
    reader = _ResponseReader()
    reading: asyncio.Task[bool] | None = None
    try:
        connection.write_headers(httputil.RequestStartLine("GET", target, "HTTP/1.1"), request_headers)
        connection.finish()
        reading = asyncio.ensure_future(connection.read_response(reader))
        reading.add_done_callback(reader.reading_done)
        status, response_headers = await asyncio.wait_for(reader.head, timeout)
        stream = HttpStream(connection, reader, reading, status, response_headers)
        if status != 200:
            raise await _error_from_body(stream, status, url)
    except BaseException as error:
        connection.close()
        if reading is not None:
            reading.cancel()
        if isinstance(error, asyncio.TimeoutError):
            raise Unavailable(f"The hub at {url} did not answer within {timeout} s.") from None
        if isinstance(error, (OSError, StreamClosedError)):
            raise Unavailable(f"The hub at {url} dropped the connection: {error!r}.") from None
        raise
    return stream


async def _error_from_body(stream: HttpStream, status: int, url: str) -> RtnbError:
    body = b""
    while len(body) < _MAX_ERROR_BODY:
        piece = await stream.read()
        if not piece:
            break
        body += piece
    try:
        error = orjson.loads(body)["error"]
        return error_from_wire(str(error["code"]), str(error["message"]))
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return Unavailable(f"The hub at {url} answered HTTP {status}: {body[:200].decode('utf-8', 'replace')}")
