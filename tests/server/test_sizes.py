"""Requests too big for the HTTP server itself get a JSON 413 or a 431, never a bare 400, a reset or silence.

Raw sockets on 127.0.0.1, as curl or a device would send.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest

from rtnb.core.topics import Pattern
from rtnb.server.runner import HubServer
from rtnb.testing import running_hub

SERVER_LIMIT = 16 * 2**20  # the HTTP server's own limit (HubServer: max(max_frame_bytes, 16 MiB))


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    status_line, *lines = head.decode().split("\r\n")
    headers = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), 10)
    return int(status_line.split()[1]), headers, body


def publish_head(server: HubServer, length: int, *extra: str) -> bytes:
    lines = [
        "POST /publish/big/one HTTP/1.1",
        f"Host: 127.0.0.1:{server.port}",
        "Content-Type: application/json",
        f"Content-Length: {length}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def assert_too_big(status: int, headers: dict[str, str], body: bytes) -> None:
    assert status == 413, body
    assert headers["content-type"] == "application/json"
    error = orjson.loads(body)["error"]
    assert error["code"] == "message_too_big" and str(SERVER_LIMIT) in error["message"]


async def test_a_body_over_the_server_limit_gets_413_json_and_no_reset() -> None:
    async with running_hub() as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        size = SERVER_LIMIT + 1024 * 1024
        writer.write(publish_head(server, size))

        async def send_body() -> None:
            chunk = b"x" * 65536
            for _ in range(size // len(chunk)):
                writer.write(chunk)
                await writer.drain()  # a reset would raise here

        sender = asyncio.create_task(send_body())
        status, headers, body = await read_response(reader)
        await asyncio.wait_for(sender, 30)  # the whole body went through: read and dropped, not reset
        writer.close()
        assert_too_big(status, headers, body)
        assert server.hub.stats.errors["message_too_big"] == 1
        assert server.hub.backplane.positions(Pattern.parse("#")) == {}


async def test_a_client_expecting_100_continue_is_answered_before_sending() -> None:
    async with running_hub() as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(publish_head(server, 50 * 2**20, "Expect: 100-continue"))
        status, headers, body = await read_response(reader)
        assert_too_big(status, headers, body)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # then closed, nothing else (no 100, no 400)
        writer.close()


async def test_a_chunked_body_over_the_server_limit_gets_413() -> None:
    async with running_hub() as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            (
                f"POST /publish/big/one HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            ).encode()
        )
        chunk = b"x" * 2**20
        frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        for _ in range(SERVER_LIMIT // len(chunk) + 2):
            writer.write(frame)
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        status, _headers, body = await read_response(reader)
        writer.close()
        assert status == 413 and orjson.loads(body)["error"]["code"] == "message_too_big"


async def test_bodies_within_the_limits_are_unchanged() -> None:
    async with running_hub() as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        body = b'{"value": 1}'
        writer.write(publish_head(server, len(body)) + body)
        status, _, reply = await read_response(reader)
        assert status == 200 and orjson.loads(reply)["offset"] == 1
        # over the hub's frame limit (1 MiB) but under the server's: the handler's own 413, as before
        big = b'"' + b"x" * (2 * 2**20) + b'"'
        writer.write(publish_head(server, len(big)) + big)
        status, _, reply = await read_response(reader)
        writer.close()
        assert status == 413 and orjson.loads(reply)["error"]["code"] == "message_too_big"


@pytest.mark.parametrize("path", ["/healthz", "/ws", "/publish/a"])
async def test_a_request_head_over_64_kib_gets_431(path: str) -> None:
    async with running_hub() as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        cookie = "c=" + "x" * (70 * 1024)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nCookie: {cookie}\r\n\r\n".encode())
        await writer.drain()
        received = b""
        try:
            while chunk := await asyncio.wait_for(reader.read(65536), 5):
                received += chunk
        except ConnectionResetError:
            pass  # the rest of the head was never read: the close may reset, after the answer
        writer.close()
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 431 "), received[:200]
        assert orjson.loads(body)["error"]["code"] == "header_too_large"


async def test_a_head_just_under_64_kib_is_served() -> None:
    async with running_hub() as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        cookie = "c=" + "x" * (60 * 1024)
        writer.write(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nCookie: {cookie}\r\n\r\n".encode())
        status, _, _ = await read_response(reader)
        writer.close()
        assert status == 200


async def test_a_server_level_413_to_an_allowed_origin_carries_cors_headers() -> None:
    dash = "https://dash.example"
    async with running_hub(allowed_origins=[dash]) as server:
        for origin, expected in ((dash, dash), ("https://other.example", None)):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(publish_head(server, 50 * 2**20, "Expect: 100-continue", f"Origin: {origin}"))
            status, headers, body = await read_response(reader)
            writer.close()
            assert_too_big(status, headers, body)
            assert headers.get("access-control-allow-origin") == expected
