"""A minimal streaming HTTP/1.1 GET on asyncio streams, for the SSE client.

Only what an event stream needs: one GET, the status and headers, then the
body as it arrives, chunked or not. A non-200 answer is turned into the typed
error the hub reported in its ``{"error": {"code", "message"}}`` body.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

import orjson

from ..core.errors import MessageTooBig, RtnbError, Unavailable, error_from_wire

__all__ = ["HttpStream", "open_stream"]

_MAX_HEADER_BYTES = 64 * 2**10
_MAX_ERROR_BODY = 64 * 2**10


class HttpStream:
    """The body of an open response, read chunk by chunk."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: dict[str, str], chunked: bool
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.headers = headers
        self.chunked = chunked
        self._ended = False

    async def read(self) -> bytes:
        """The next piece of the body; ``b""`` once it ended.

        Raises:
            Unavailable: the body is malformed (bad chunk framing).
        """
        if self._ended:
            return b""
        if not self.chunked:
            data = await self.reader.read(65536)
            if not data:
                self._ended = True
            return data
        size_line = await self.reader.readline()
        if not size_line:
            self._ended = True
            return b""
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise Unavailable("The hub sent a malformed chunked body.") from None
        if size == 0:
            self._ended = True
            return b""
        try:
            data = await self.reader.readexactly(size + 2)
        except asyncio.IncompleteReadError as error:
            self._ended = True
            return error.partial[:size]
        return data[:size]

    def close(self) -> None:
        self.writer.close()


async def open_stream(url: str, headers: Mapping[str, str], timeout: float) -> HttpStream:
    """Send ``GET url`` and return the streaming body of a 200 answer.

    Raises:
        Unavailable: the hub cannot be reached or answered something unexpected.
        RtnbError: the hub refused the request with a typed error (bad pattern,
            bad cursor, unauthorized...).
    """
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if secure else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    context = ssl.create_default_context() if secure else None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=context, limit=2**20), timeout)
    except (OSError, asyncio.TimeoutError) as error:
        raise Unavailable(f"Cannot reach the hub at {url}: {error or type(error).__name__}.") from None
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Accept: text/event-stream",
        "Cache-Control: no-cache",
        *(f"{name}: {value}" for name, value in headers.items()),
        "Connection: close",
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    try:
        status, response_headers = await asyncio.wait_for(_read_head(reader), timeout)
        chunked = "chunked" in response_headers.get("transfer-encoding", "").lower()
        stream = HttpStream(reader, writer, response_headers, chunked)
        if status != 200:
            raise await _error_from_body(stream, status, url)
    except BaseException as error:
        writer.close()
        if isinstance(error, asyncio.TimeoutError):
            raise Unavailable(f"The hub at {url} did not answer within {timeout} s.") from None
        if isinstance(error, (OSError, asyncio.IncompleteReadError)):
            raise Unavailable(f"The hub at {url} dropped the connection: {error!r}.") from None
        raise
    return stream


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    status_line = await reader.readline()
    fields = status_line.decode("latin-1").split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
        raise Unavailable(f"Not an HTTP answer: {status_line[:80]!r}.")
    headers: dict[str, str] = {}
    total = len(status_line)
    while True:
        line = await reader.readline()
        total += len(line)
        if total > _MAX_HEADER_BYTES:
            raise MessageTooBig("The hub's response headers are too large.")
        if line in (b"\r\n", b"\n", b""):
            return int(fields[1]), headers
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()


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
