"""A TCP proxy on 127.0.0.1 that tests can cut, to break connections on purpose.

``cut()`` aborts every connection passing through (both sides see a reset);
``refuse()`` makes new connections fail until ``allow()``. The client under
test only sees what a real network failure would show it.
"""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    """Forward 127.0.0.1:``port`` to ``target_host``:``target_port``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.accepting = True
        #: False: data from the target is swallowed (the client hears nothing back)
        self.forward_replies = True
        self.port: int | None = None
        self.connections_made = 0
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.BaseTransport] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def cut(self) -> int:
        """Abort every open connection; returns how many were cut."""
        transports, self._transports = self._transports, set()
        for transport in transports:
            transport.abort()
        if transports:
            self.cuts += 1
        return len(transports) // 2

    def refuse(self) -> None:
        self.accepting = False

    def allow(self) -> None:
        self.accepting = True

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if not self.accepting:
            client_writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        self.connections_made += 1
        pair = (client_writer.transport, upstream_writer.transport)
        self._transports.update(pair)
        pipes = [
            asyncio.ensure_future(self._pipe(source, sink, replies))
            for source, sink, replies in (
                (client_reader, upstream_writer, False),
                (upstream_reader, client_writer, True),
            )
        ]
        for task in pipes:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await asyncio.gather(*pipes, return_exceptions=True)
        # Both directions ended: the connection no longer passes through.
        self._transports.difference_update(pair)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, replies: bool) -> None:
        with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
            while True:
                data = await source.read(65536)
                if not data:
                    break
                if replies and not self.forward_replies:
                    continue
                sink.write(data)
                await sink.drain()
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            if sink.can_write_eof():
                sink.write_eof()  # pass the half-close on, as TCP would
