"""Peer: sse-starlette on uvicorn, the usual Python SSE stack.

``GET /sse`` returns an ``EventSourceResponse`` fed by the client's own
``asyncio.Queue``; a publisher connects a WebSocket to ``/pub`` and every text
frame it sends is put on every subscriber's queue (the pattern sse-starlette's
examples use for broadcasting).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import uvicorn
from common import announce, listening_socket, parse_arguments
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

queues: set[asyncio.Queue[str]] = set()


async def events(request: Request) -> EventSourceResponse:
    queue: asyncio.Queue[str] = asyncio.Queue(maxsize=10_000)
    queues.add(queue)

    async def stream() -> AsyncIterator[dict[str, str]]:
        try:
            while True:
                yield {"data": await queue.get()}
        finally:
            queues.discard(queue)

    return EventSourceResponse(stream())


async def publish(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive_text()
            for queue in queues:
                queue.put_nowait(message)
    except WebSocketDisconnect:
        return


application = Starlette(routes=[Route("/sse", events), WebSocketRoute("/pub", publish)])


def main() -> None:
    arguments = parse_arguments(__doc__ or "")
    sock = listening_socket(arguments.host)
    config = uvicorn.Config(application, loop=arguments.loop, log_level="warning", ws="websockets", lifespan="off")
    server = uvicorn.Server(config)
    announce(sock.getsockname()[1])
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
