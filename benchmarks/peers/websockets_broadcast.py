"""Peer: the ``websockets`` library's own ``broadcast()`` server.

Subscribers connect to ``/sub``; every frame a publisher sends to ``/pub`` goes
to :func:`websockets.asyncio.server.broadcast`, which frames the message once
and writes it to every open connection. Compression is off, as on the hub.
"""

from __future__ import annotations

from common import announce, listening_socket, parse_arguments, run, wait_forever
from websockets.asyncio.server import ServerConnection, broadcast, serve

subscribers: set[ServerConnection] = set()


async def handler(connection: ServerConnection) -> None:
    path = connection.request.path if connection.request is not None else ""
    if path == "/sub":
        subscribers.add(connection)
        try:
            await connection.wait_closed()
        finally:
            subscribers.discard(connection)
    elif path == "/pub":
        async for message in connection:
            broadcast(subscribers, message)


async def main(host: str) -> None:
    sock = listening_socket(host)
    async with serve(handler, sock=sock, compression=None, max_size=2**20):
        announce(sock.getsockname()[1])
        await wait_forever()


if __name__ == "__main__":
    arguments = parse_arguments(__doc__ or "")
    run(main(arguments.host), arguments.loop)
