"""The SSE client's HTTP GET (``rtnb.client._stream``) against raw sockets on 127.0.0.1.

A tiny asyncio server records every byte the client sends, so the tests see
exactly what went on the wire: nothing at all when a header is refused, and
the end of the connection when a stream is closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from rtnb.client._stream import check_request_headers, open_stream
from rtnb.client.sse import SSEClient
from rtnb.core.errors import Unauthorized, Unavailable

SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@dataclass
class RecordingServer:
    """Answers each connection with ``answer`` and records what the client sent."""

    answer: bytes
    received: bytearray = field(default_factory=bytearray)
    connections: int = 0
    closed_by_client: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        head = await reader.readuntil(b"\r\n\r\n")
        self.received += head
        writer.write(self.answer)
        await writer.drain()
        while await reader.read(65536):
            pass
        self.closed_by_client.set()
        writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/sse?topic=a"


@pytest.fixture
async def serve() -> AsyncIterator[RecordingServer]:
    recorder = RecordingServer(SSE_HEAD)
    server = await asyncio.start_server(recorder.handle, "127.0.0.1", 0)
    recorder.port = server.sockets[0].getsockname()[1]
    async with server:
        yield recorder


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\rb", "a\x00b"])
async def test_header_values_with_cr_or_lf_are_refused_before_anything_is_sent(
    serve: RecordingServer, value: str
) -> None:
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        await open_stream(serve.url, {"X-Token": value}, timeout=5)
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        SSEClient(f"http://127.0.0.1:{serve.port}", "a/#", headers={"X-Token": value})
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        SSEClient(f"http://127.0.0.1:{serve.port}", "a/#", token=value)
    await asyncio.sleep(0.05)
    assert serve.connections == 0 and serve.received == b""


@pytest.mark.parametrize("name", ["Bad Name", "X-A:b", "X\r\nY", ""])
def test_header_names_must_be_http_tokens(name: str) -> None:
    with pytest.raises(ValueError, match="not a valid HTTP header name"):
        check_request_headers({name: "v"})


def test_header_values_must_be_strings() -> None:
    with pytest.raises(TypeError):
        check_request_headers({"X-Count": 3})  # type: ignore[dict-item]


async def test_request_line_and_headers_on_the_wire(serve: RecordingServer) -> None:
    stream = await open_stream(serve.url, {"Authorization": "Bearer t", "Accept": "text/event-stream"}, timeout=5)
    try:
        assert stream.status == 200 and stream.headers["content-type"] == "text/event-stream"
    finally:
        stream.close()
    head = bytes(serve.received).decode("latin-1")
    lines = head.split("\r\n")
    assert lines[0] == "GET /sse?topic=a HTTP/1.1"
    assert f"Host: 127.0.0.1:{serve.port}" in lines
    assert "Authorization: Bearer t" in lines and "Connection: close" in lines
    assert sum(line.lower().startswith("accept:") for line in lines) == 1


async def test_chunked_body_is_read_piece_by_piece_and_close_ends_the_connection_at_once(
    serve: RecordingServer,
) -> None:
    serve.answer = SSE_HEAD + chunk(b"data: 1\n\n") + chunk(b"data: 2\n\n")
    stream = await open_stream(serve.url, {}, timeout=5)
    body = b""
    while body != b"data: 1\n\ndata: 2\n\n":
        body += await asyncio.wait_for(stream.read(), 5)
    reading = asyncio.ensure_future(stream.read())  # waits: the stream is idle
    await asyncio.sleep(0.05)
    assert not reading.done()
    stream.close()
    assert await asyncio.wait_for(reading, 5) == b""
    await asyncio.wait_for(serve.closed_by_client.wait(), 5)  # the socket closed without waiting for data
    assert await stream.read() == b""


async def test_end_of_chunked_body_reads_as_empty(serve: RecordingServer) -> None:
    serve.answer = SSE_HEAD + chunk(b": hello\n\n") + b"0\r\n\r\n"
    stream = await open_stream(serve.url, {}, timeout=5)
    assert await asyncio.wait_for(stream.read(), 5) == b": hello\n\n"
    assert await asyncio.wait_for(stream.read(), 5) == b""
    stream.close()


async def test_a_refusal_becomes_the_hubs_typed_error(serve: RecordingServer) -> None:
    body = b'{"error": {"code": "unauthorized", "message": "No token."}}'
    serve.answer = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    with pytest.raises(Unauthorized, match="No token"):
        await open_stream(serve.url, {}, timeout=5)
    await asyncio.wait_for(serve.closed_by_client.wait(), 5)


async def test_a_non_json_refusal_is_unavailable_with_the_status(serve: RecordingServer) -> None:
    serve.answer = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 4\r\n\r\noops"
    with pytest.raises(Unavailable, match="HTTP 502: oops"):
        await open_stream(serve.url, {}, timeout=5)


async def test_a_silent_server_times_out_as_unavailable(serve: RecordingServer) -> None:
    serve.answer = b""
    with pytest.raises(Unavailable, match=r"did not answer within 0\.2 s"):
        await open_stream(serve.url, {}, timeout=0.2)
    await asyncio.wait_for(serve.closed_by_client.wait(), 5)


async def test_not_http_and_unreachable_are_unavailable(serve: RecordingServer) -> None:
    serve.answer = b"SSH-2.0-OpenSSH\r\n\r\n"
    with pytest.raises(Unavailable):
        await open_stream(serve.url, {}, timeout=5)
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    with pytest.raises(Unavailable, match="Cannot reach the hub"):
        await open_stream(f"http://127.0.0.1:{port}/sse", {}, timeout=5)


async def test_tls_certificates_are_verified(serve: RecordingServer) -> None:
    # a plain-HTTP listener cannot complete a TLS handshake: the client refuses, it never falls back
    with pytest.raises(Unavailable):
        await open_stream(f"https://127.0.0.1:{serve.port}/sse", {}, timeout=5)
    assert serve.received == b""
