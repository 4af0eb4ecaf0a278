"""A byte-level WebSocket client for hostile-peer tests.

Client libraries refuse to send what these tests need (invalid close codes,
unmasked frames, half-sent headers), so this one writes frames by hand over
an asyncio stream and reads the server's frames back just as raw.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from urllib.parse import urlsplit

__all__ = ["RawWebSocket", "build_frame", "open_raw", "open_tcp"]


def build_frame(opcode: int, payload: bytes, *, final: bool = True, masked: bool = True, reserved: int = 0) -> bytes:
    """One client frame; ``masked=False`` and ``reserved`` make it deliberately invalid."""
    first = (0x80 if final else 0) | reserved | opcode
    length = len(payload)
    mask_bit = 0x80 if masked else 0
    if length < 126:
        header = struct.pack("!BB", first, mask_bit | length)
    elif length <= 0xFFFF:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not masked:
        return header + payload
    mask = os.urandom(4)
    body = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return header + mask + body


class RawWebSocket:
    """An upgraded connection: send raw frames, read ``(opcode, payload)`` pairs."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_frame(self, timeout: float = 5.0) -> tuple[int, bytes]:
        """The next server frame; raises ``asyncio.IncompleteReadError`` at EOF."""

        async def read() -> tuple[int, bytes]:
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            return first & 0x0F, await self.reader.readexactly(length)

        return await asyncio.wait_for(read(), timeout)

    async def read_close(self, timeout: float = 5.0) -> tuple[int | None, str]:
        """Skip data frames until the server's close frame; its (code, reason)."""
        while True:
            opcode, payload = await self.read_frame(timeout)
            if opcode == 0x8:
                if len(payload) < 2:
                    return None, ""
                return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8")

    async def at_eof(self, timeout: float = 5.0) -> bool:
        """Whether the server ended the TCP connection (reads until EOF or ``timeout``)."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), timeout):
                pass
        except (ConnectionResetError, asyncio.TimeoutError):
            return False
        return True

    def close(self) -> None:
        self.writer.close()


async def open_tcp(
    host: str, port: int, receive_buffer: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection; ``receive_buffer`` shrinks the kernel's receive buffer so that
    a peer that stops reading stalls the server quickly."""
    if receive_buffer is None:
        return await asyncio.open_connection(host, port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    return await asyncio.open_connection(sock=sock, limit=4096)  # the transport pauses reading at 8 KiB


async def open_raw(url: str, path: str | None = None, receive_buffer: int | None = None) -> RawWebSocket:
    """Open a TCP connection to ``url`` (``ws://host:port/path``) and upgrade it."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    reader, writer = await open_tcp(host, port, receive_buffer)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path or parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    writer.write(request.encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        writer.close()
        raise ConnectionError(f"upgrade refused: {head[:200]!r}")
    return RawWebSocket(reader, writer)
