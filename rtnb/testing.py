"""Helpers for testing code that uses rtnb: a real hub on a free port, a raw
WebSocket peer that speaks the wire protocol, and condition waits.

Everything here uses real sockets on 127.0.0.1, so what passes with these
helpers passes against a deployed hub. Example::

    async with running_hub() as server:
        async with WirePeer(server.ws_url) as peer:
            await peer.request({"op": "subscribe", "topic": "plant/#"})
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from .server.hub import Hub, HubConfig
from .server.runner import HubServer

__all__ = ["WirePeer", "running_hub", "wait_for", "wait_until"]


@contextlib.asynccontextmanager
async def running_hub(config: HubConfig | None = None, **server_options: Any) -> AsyncIterator[HubServer]:
    """A started :class:`HubServer` on 127.0.0.1 and a free port, stopped on exit."""
    server = HubServer(Hub(config), **server_options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.005) -> None:
    """Wait until ``predicate()`` is true; raise ``TimeoutError`` after ``timeout`` seconds.

    Use this instead of sleeps: it returns as soon as the condition holds and
    fails loudly when it never does.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def wait_for(awaitable: Awaitable[Any], timeout: float = 5.0) -> Any:
    return await asyncio.wait_for(awaitable, timeout)


class WirePeer:
    """A WebSocket peer that sends raw protocol frames and reads objects back.

    It splits coalesced frames (several ``\\n``-separated objects) into single
    objects, so tests can reason message by message.
    """

    def __init__(self, url: str, **connect_options: Any) -> None:
        self.url = url
        self.connect_options = connect_options
        self.connection: Any = None
        self.welcome: dict[str, Any] | None = None
        self._buffer: list[dict[str, Any]] = []
        self._held: list[dict[str, Any]] = []  # messages/gaps seen while waiting for a reply

    async def __aenter__(self) -> WirePeer:
        import websockets

        self.connection = await websockets.connect(self.url, **self.connect_options)
        self.welcome = await self.next()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.connection.close()

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        await self.connection.send(orjson.dumps(frame).decode() if isinstance(frame, dict) else frame)

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next object from the hub, whatever frame it came in."""
        while not self._buffer:
            frame = await asyncio.wait_for(self.connection.recv(), timeout)
            if isinstance(frame, bytes):
                import msgpack

                unpacker = msgpack.Unpacker(raw=False)
                unpacker.feed(frame)
                self._buffer.extend(unpacker)
            else:
                self._buffer.extend(orjson.loads(line) for line in frame.split("\n"))
        return self._buffer.pop(0)

    async def next_op(self, op: str, timeout: float = 5.0) -> dict[str, Any]:
        """Skip objects until one with ``op`` arrives."""
        deadline = time.monotonic() + timeout
        while True:
            item = await self.next(max(0.001, deadline - time.monotonic()))
            if item.get("op") == op:
                return item

    async def request(self, frame: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """Send ``frame`` and return the first reply that is not a message or gap."""
        await self.send(frame)
        deadline = time.monotonic() + timeout
        while True:
            item = await self.next(max(0.001, deadline - time.monotonic()))
            if item.get("op") not in ("message", "gap"):
                return item
            self._held.append(item)

    async def messages(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The next ``count`` message/gap objects (including ones held by :meth:`request`)."""
        found: list[dict[str, Any]] = []
        while self._held and len(found) < count:
            found.append(self._held.pop(0))
        deadline = time.monotonic() + timeout
        while len(found) < count:
            item = await self.next(max(0.001, deadline - time.monotonic()))
            if item.get("op") in ("message", "gap"):
                found.append(item)
        return found
