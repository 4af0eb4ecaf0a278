"""A WebSocket connection as the hub's :class:`~rtnb.server.hub.Sink`: its writes, straight to the socket if it can."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import tornado.iostream
import tornado.websocket

from ..core.errors import ConnectionClosed
from ..core.fanout import Batch, Member
from ..core.history import Gap, coalesce_gaps
from ..core.message import Format, Message, encode_msgpack
from ._publish_pipeline import PublishPipeline
from ._tornado import stream_bytes_sent, stream_bytes_written
from ._wsoutgoing import _encode_item, buffered_bytes, frame_bytes, split_frames
from .auth import ConnectionSecurity
from .hub import Hub

__all__ = ["WebSocketSink"]

frame_log = logging.getLogger("rtnb.frames")


class WebSocketSink(tornado.websocket.WebSocketHandler):
    """The writing half of :class:`~rtnb.server.websocket.HubWebSocket` (its fields are set in ``initialize``)."""

    hub: Hub
    member: Member | None
    security: ConnectionSecurity | None
    format: Format
    _stream: tornado.iostream.IOStream | None
    _direct: bool
    _max_queue_bytes: int
    _builder: Callable[[Batch], list[bytes]] | None
    _batch_key: str
    _opcode: int
    _closed: bool
    _abort_handle: Any
    _publishes: PublishPipeline

    def _write(self, data: bytes | memoryview) -> None:
        stream = self._stream
        if stream is None or self._closed:
            return
        if self._publishes.ready:  # publish answers go first: they came before whatever this is
            self._publishes.flush()
        if self._direct and stream_bytes_written(stream) == stream_bytes_sent(stream):
            # Nothing is queued in Tornado: hand the bytes to the kernel here.
            # IOStream.write would do the same send, plus a Future, a done
            # callback and a loop callback per call, once per subscriber.
            sock = stream.socket
            if sock is not None:
                try:
                    sent = sock.send(data)
                except OSError:
                    sent = 0  # EAGAIN, or an error stream.write meets again and closes the stream on
                if sent == len(data):
                    return
                if sent:
                    data = memoryview(data)[sent:]
        try:
            stream.write(data)
        except tornado.iostream.StreamClosedError:
            self._closed = True

    def send_batch(self, batch: Batch) -> bool:
        stream = self._stream
        if stream is None or self._closed:
            return True
        if buffered_bytes(stream) > self._max_queue_bytes:
            return False
        security = self.security
        if security is not None and security.permissions is not None and security.token_ran_out():
            return True  # closing with 4004; the client resumes from what it received
        builder = self._builder
        assert builder is not None  # open() sets it together with the stream
        for frame in batch.encoded(self._batch_key, builder):
            self._write(frame)
        return True

    def send_items(self, items: Sequence[Message | Gap]) -> None:
        security = self.security
        if security is not None and security.permissions is not None and security.token_ran_out():
            return
        fmt = self.format
        parts = [_encode_item(item, fmt) for item in coalesce_gaps(items)]
        if parts:
            for frame in split_frames(parts, fmt, self.hub.limits.max_batch_bytes):
                self._write(frame)

    def send_control(self, frame: dict[str, Any]) -> None:
        if frame_log.isEnabledFor(logging.DEBUG):
            frame_log.debug("-> %s %r", self.member.id if self.member else "-", frame)
        payload = orjson.dumps(frame) if self.format == "json" else encode_msgpack(frame)
        self._write(frame_bytes(payload, self._opcode))

    def buffered_bytes(self) -> int:
        return 0 if self._stream is None else buffered_bytes(self._stream)

    async def drained(self) -> None:
        stream = self._stream
        if stream is None or self._closed or stream.closed():
            raise ConnectionClosed("The connection is closed.")
        try:
            # shield: a caller's timeout must not cancel Tornado's own future
            await asyncio.shield(stream.write(b""))
        except tornado.iostream.StreamClosedError:
            raise ConnectionClosed("The connection is closed.") from None

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Start the closing handshake; drop the TCP connection if the peer does
        not finish it within the hub's ``close_timeout`` (Tornado waits 5 s)."""
        connection = self.ws_connection
        if connection is None:
            return
        self._publishes.flush()
        super().close(code, reason)
        if self._abort_handle is None and self._stream is not None:
            stream = self._stream
            self._abort_handle = asyncio.get_running_loop().call_later(self.hub.config.close_timeout, stream.close)
