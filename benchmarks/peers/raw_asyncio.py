"""Peer: the raw asyncio ceiling — frame each message once, write it to every transport.

No framework: an :class:`asyncio.Protocol` does the HTTP upgrade by hand.
Subscribers connect to ``/sub``; each text frame a publisher sends to ``/pub``
is framed once and the same bytes are written to every subscriber's
transport, one ``write`` (one send system call) per subscriber per message.
Nothing per subscriber is done in Python beyond that call, so this is about
the most a Python server can deliver when it sends messages one by one.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct

from common import announce, listening_socket, parse_arguments, run, wait_forever

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
subscribers: list[asyncio.Transport] = []


def frame(payload: bytes, opcode: int = 0x1) -> bytes:
    length = len(payload)
    if length < 126:
        return struct.pack("!BB", 0x80 | opcode, length) + payload
    if length <= 0xFFFF:
        return struct.pack("!BBH", 0x80 | opcode, 126, length) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, length) + payload


def unmask(payload: bytes, mask: bytes) -> bytes:
    length = len(payload)
    key = int.from_bytes((mask * (length // 4 + 1))[:length], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(length, "big")


class WebSocketProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.publisher = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport in subscribers:
            subscribers.remove(self.transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.handshake(bytes(self.buffer[:end]))
            del self.buffer[: end + 4]
        if self.publisher:
            self.read_frames()

    def handshake(self, head: bytes) -> None:
        assert self.transport is not None
        lines = head.split(b"\r\n")
        path = lines[0].split(b" ")[1]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1(headers[b"sec-websocket-key"] + GUID).digest())
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        self.upgraded = True
        if path == b"/sub":
            subscribers.append(self.transport)
        else:
            self.publisher = True

    def read_frames(self) -> None:
        buffer = self.buffer
        while len(buffer) >= 2:
            opcode = buffer[0] & 0x0F
            length = buffer[1] & 0x7F
            offset = 2
            if length == 126:
                if len(buffer) < 4:
                    return
                (length,) = struct.unpack_from("!H", buffer, 2)
                offset = 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                (length,) = struct.unpack_from("!Q", buffer, 2)
                offset = 10
            if len(buffer) < offset + 4 + length:
                return
            mask = bytes(buffer[offset : offset + 4])
            payload = unmask(bytes(buffer[offset + 4 : offset + 4 + length]), mask)
            del buffer[: offset + 4 + length]
            if opcode == 0x1 or opcode == 0x2:
                framed = frame(payload, opcode)
                for transport in subscribers:
                    transport.write(framed)
            elif opcode == 0x8:
                assert self.transport is not None
                self.transport.close()
                return


async def main(host: str) -> None:
    sock = listening_socket(host)
    server = await asyncio.get_running_loop().create_server(WebSocketProtocol, sock=sock, backlog=4096)
    announce(sock.getsockname()[1])
    async with server:
        await wait_forever()


if __name__ == "__main__":
    arguments = parse_arguments(__doc__ or "")
    run(main(arguments.host), arguments.loop)
