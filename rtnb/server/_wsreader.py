"""Reading WebSocket frames by callbacks, so that an idle connection holds no coroutine.

Tornado's :class:`~tornado.websocket.WebSocketProtocol13` reads frames in a
coroutine awaited from the opening handshake, so every connection keeps a
chain of suspended coroutines for its whole life (about 4 KiB when idle).
:class:`CallbackFrameReader` replaces that loop: it reads each frame's first
two bytes with a callback and drives the frame's own coroutine
(:meth:`CallbackFrameReader._frame`, supplied by the subclass) without a Task.
What a frame means, and the RFC 6455 rules, are the subclass's
(:class:`~rtnb.server._wsprotocol.StrictWebSocketProtocol`); this module only
decides when the next frame is read.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import sys
from collections.abc import Awaitable, Coroutine
from typing import Any, cast

from tornado.iostream import StreamClosedError

from ._tornado import FRAME_YIELD_COST, YIELD_THRESHOLD, WebSocketProtocol13

__all__ = ["CallbackFrameReader"]


class CallbackFrameReader(WebSocketProtocol13):
    """Tornado's protocol-13 implementation with a callback-driven frame loop.

    Subclasses implement :meth:`_frame`: one frame, after its first two bytes.
    """

    # No state of its own: the subclass's slots stay the only additions to
    # Tornado's attributes (see StrictWebSocketProtocol).
    __slots__ = ()

    async def _receive_frame_loop(self) -> None:
        """Start reading frames by callbacks, and return at once.

        Tornado awaits its read loop from the handshake, so every connection
        keeps a chain of suspended coroutines for its whole life: the HTTP
        request's task, the handler's ``get`` (holding the request headers),
        the handshake, the loop, the frame being read — about 4 KiB for an idle
        connection. Here the handshake coroutine ends after ``open`` and
        :meth:`_read_frames` takes over: an idle connection holds only the
        stream's pending 2-byte read and its callback.
        """
        self._read_frames()

    def _read_frames(self) -> None:
        """Handle frames for as long as their bytes are already buffered.

        Each frame starts with a 2-byte read. When the stream already has the
        bytes (the usual case under load) the frame is handled here and now;
        otherwise a callback on the read resumes here when they come. A frame
        runs as a coroutine (:meth:`_frame`, strict and streaming as before)
        driven by :meth:`_step` without a Task: it usually finishes without
        waiting; when it must wait (the rest of a large frame, or a handler
        that returned an awaitable) the next frame is read only once it is done,
        so requests are still handled one after the other, in order. After
        about 256 KiB of input the loop gives other connections a turn, as
        Tornado's does.
        """
        stream = self.stream
        assert stream is not None
        work = 0
        while not self.client_terminated:
            start = self._wire_bytes_in
            handled = self._take_buffered_message()
            if handled is not False:
                # a whole small message was already buffered: handled without a read or a coroutine
                if handled is not True and not self._step(_waiting_for(handled)):
                    return  # the handler returned an awaitable: the next frame is read once it is done
                work += FRAME_YIELD_COST + self._wire_bytes_in - start
                if work >= YIELD_THRESHOLD:
                    stream.io_loop.add_callback(self._read_frames)
                    return
                continue
            try:
                # Tornado returns a Future here (typed as Awaitable): polling it and adding a
                # callback is what lets an idle connection hold no coroutine at all.
                header = cast("asyncio.Future[bytes]", stream.read_bytes(2))
            except StreamClosedError:
                self._stop_reading(aborted=True)
                return
            if not header.done():
                header.add_done_callback(self._on_header)
                return
            if not self._start_frame(header):
                return
            work += FRAME_YIELD_COST + self._wire_bytes_in - start
            if work >= YIELD_THRESHOLD:
                stream.io_loop.add_callback(self._read_frames)
                return
        self._stop_reading(aborted=False)

    def _on_header(self, header: asyncio.Future[bytes]) -> None:
        if self._start_frame(header):
            self._read_frames()

    def _start_frame(self, header: asyncio.Future[bytes]) -> bool:
        """Run the frame whose first two bytes ``header`` holds; True when it is done and the next may be read."""
        try:
            data = header.result()
        except StreamClosedError:
            self._stop_reading(aborted=True)
            return False
        self._wire_bytes_in += 2
        return self._step(self._frame(data))

    def _step(self, frame: Coroutine[Any, Any, None]) -> bool:
        """Run ``frame`` until it finishes (True) or waits (False; it resumes by itself)."""
        try:
            waiting = frame.send(None)
        except StopIteration:
            return True
        except StreamClosedError:
            self._stop_reading(aborted=True)
            return False
        except Exception:
            self.handler.log_exception(*sys.exc_info())
            self._stop_reading(aborted=True)
            return False
        if waiting is None:  # a bare yield (asyncio.sleep(0)): give the loop a turn
            self.stream.io_loop.add_callback(self._resume, frame, None)
        else:
            waiting._asyncio_future_blocking = False
            waiting.add_done_callback(functools.partial(self._resume, frame))
        return False

    def _resume(self, frame: Coroutine[Any, Any, None], _done: Any) -> None:
        if self._step(frame):
            self._read_frames()

    def _stop_reading(self, aborted: bool) -> None:
        """Reading is over: the peer's close frame came, or the stream closed (``aborted``)."""
        if aborted:
            self._abort()
        self.handler.on_ws_connection_close(self.close_code, self.close_reason)

    @abc.abstractmethod
    async def _frame(self, header: bytes) -> None:
        """One frame, after its first two bytes: what the strict protocol (``_wsprotocol.py``) reads and acts on."""

    def _take_buffered_message(self) -> Any:
        """Handle the next message at once if it is small and already buffered whole (the subclass's fast path).

        Returns:
            ``False`` when it did not (the frame is then read as usual), ``True``
            when the message was handled, or the awaitable its handler returned
            (the next frame is read once it is done).
        """
        return False


async def _waiting_for(handled: Awaitable[Any]) -> None:
    await handled
