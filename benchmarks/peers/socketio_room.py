"""Peer: python-socketio's ``AsyncServer`` on aiohttp, every subscriber in one room.

A subscriber emits ``subscribe`` and joins the room ``bench`` (the server
answers ``subscribed``); a publisher emits ``publish`` events whose data the
server emits as ``message`` to the room. WebSocket transport only.
"""

from __future__ import annotations

import socketio
from aiohttp import web
from common import announce, listening_socket, parse_arguments, run, wait_forever

server = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*", logger=False, engineio_logger=False)


@server.on("subscribe")
async def subscribe(sid: str, *args: object) -> None:
    await server.enter_room(sid, "bench")
    await server.emit("subscribed", to=sid)


@server.on("publish")
async def publish(sid: str, data: object) -> None:
    await server.emit("message", data, room="bench")


async def main(host: str) -> None:
    application = web.Application()
    server.attach(application)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    sock = listening_socket(host)
    site = web.SockSite(runner, sock)
    await site.start()
    announce(sock.getsockname()[1])
    await wait_forever()


if __name__ == "__main__":
    arguments = parse_arguments(__doc__ or "")
    run(main(arguments.host), arguments.loop)
