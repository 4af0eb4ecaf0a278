"""One connection's publishes: answered in request order, a read's worth of answers in one write.

A WebSocket publisher sends publishes back to back without waiting for their
acknowledgements. :class:`PublishPipeline` keeps what a connection owes the
client for them, in request order: an ``ack`` once the backplane accepted the
message, or the ``error`` that refused it (bad field, rate limit, permission,
``unavailable``). Nothing is written per publish: answers gather while the
connection reads what has arrived, and go out together at the end of the loop
turn, several objects in one frame (``\\n``-separated JSON, or concatenated
MessagePack; docs/protocol.md allows it for every hub frame).

On a shared backplane (Redis) a publish waits for a round trip. Its coroutine
(:meth:`~rtnb.server.hub.Hub.publish`) is driven here by callbacks, without an
:class:`asyncio.Task`, and settles its place in the queue; the answers behind
a publish still in flight wait for it, so acknowledgements and errors leave
in request order however the backplane's replies interleave. At most
:data:`MAX_PUBLISHES_IN_FLIGHT` publishes of one connection wait at a time:
:meth:`PublishPipeline.publish` then returns a future, and the connection reads
no further frame until it is done (backpressure).

Anything else the connection writes (messages, replies to other requests)
first flushes the answers that are ready (:meth:`PublishPipeline.flush`), so
they never overtake an acknowledgement they came after.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import orjson

from ..core.errors import RtnbError, Unavailable
from ..core.message import Format, Message, encode_msgpack

__all__ = ["MAX_PUBLISHES_IN_FLIGHT", "PublishPipeline"]

log = logging.getLogger("rtnb.ws")

#: Publishes one WebSocket may have waiting on a shared backplane before reading pauses.
MAX_PUBLISHES_IN_FLIGHT = 1024


class _Answer:
    """One publish's place in the queue: its encoded answer once settled (``None`` while in flight)."""

    __slots__ = ("encoded", "request_id")

    def __init__(self, request_id: Any) -> None:
        self.request_id = request_id
        self.encoded: bytes | None = None


class PublishPipeline:
    """Acknowledgements and errors of one connection's publishes, in request order.

    Args:
        fmt: the connection's wire format (``json`` or ``msgpack``).
        write_objects: writes encoded objects (a non-empty list) as few frames as fit.
        record_error: counts an error code (the hub's statistics).
    """

    __slots__ = (
        "_encode",
        "_flush_scheduled",
        "_in_flight",
        "_queue",
        "_record_error",
        "_resume_reading",
        "_write_objects",
        "ready",
    )

    def __init__(
        self,
        fmt: Format,
        write_objects: Callable[[list[bytes]], None],
        record_error: Callable[[str], None],
    ) -> None:
        self._encode: Callable[[Any], bytes] = orjson.dumps if fmt == "json" else encode_msgpack
        self._write_objects = write_objects
        self._record_error = record_error
        #: answers settled and not yet written, in request order (write them with :meth:`flush`)
        self.ready: list[bytes] = []
        #: from the oldest publish still in flight on: its answer and all after it wait
        self._queue: deque[_Answer] = deque()
        self._in_flight = 0
        self._flush_scheduled = False
        #: the future the reader waits on while MAX_PUBLISHES_IN_FLIGHT publishes are in flight
        self._resume_reading: asyncio.Future[None] | None = None

    @property
    def in_flight(self) -> int:
        """Publishes handed to the backplane and not answered yet."""
        return self._in_flight

    @property
    def pending(self) -> bool:
        """True while some answer is not written yet (ready, or behind a publish in flight)."""
        return bool(self.ready or self._queue)

    # -- answers -------------------------------------------------------------------------

    def acknowledge(self, request_id: Any, message: Message) -> None:
        """``message`` was accepted: acknowledge it (no-op without a request id), after what came before."""
        if request_id is None:
            return
        self._answer(request_id, self._ack(request_id, message))

    def refuse(self, error: RtnbError) -> None:
        """Answer a request with ``error`` (recorded in the hub's counts), after what came before."""
        self._record_error(error.code)
        self._answer(error.request_id, self._encode(error.to_wire()))

    def publish(self, request_id: Any, publishing: Coroutine[Any, Any, Message]) -> asyncio.Future[None] | None:
        """Drive ``publishing`` (``hub.publish(...)``) and answer it in its turn.

        Returns:
            ``None``, or a future the reader should wait for before reading on:
            :data:`MAX_PUBLISHES_IN_FLIGHT` publishes are in flight.
        """
        answer = _Answer(request_id)
        self._queue.append(answer)
        self._in_flight += 1
        self._step(answer, publishing)
        if self._in_flight < MAX_PUBLISHES_IN_FLIGHT:
            return None
        if self._resume_reading is None:
            self._resume_reading = asyncio.get_running_loop().create_future()
        return self._resume_reading

    def flush(self) -> None:
        """Write the answers that are ready now, as few frames as fit."""
        ready = self.ready
        if ready:
            self.ready = []
            self._write_objects(ready)

    # -- internals -----------------------------------------------------------------------

    def _ack(self, request_id: Any, message: Message) -> bytes:
        return self._encode(
            {"op": "ack", "id": request_id, "topic": message.topic, "offset": message.offset, "epoch": message.epoch}
        )

    def _answer(self, request_id: Any, encoded: bytes) -> None:
        """A settled answer: ready at once, or queued behind publishes still in flight."""
        if self._queue:
            answer = _Answer(request_id)
            answer.encoded = encoded
            self._queue.append(answer)
            return
        self.ready.append(encoded)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self.flush()

    def _step(self, answer: _Answer, publishing: Coroutine[Any, Any, Message], _done: Any = None) -> None:
        """Run ``publishing`` until it waits (a callback resumes it) or ends (its answer is settled)."""
        try:
            waiting = publishing.send(None)
        except StopIteration as stop:
            message: Message = stop.value
            self._settle(answer, None if answer.request_id is None else self._ack(answer.request_id, message))
            return
        except RtnbError as error:
            if error.request_id is None:
                error.request_id = answer.request_id
            self._record_error(error.code)
            self._settle(answer, self._encode(error.to_wire()))
            return
        except (Exception, asyncio.CancelledError):
            # A bug below the hub, or the backplane's future cancelled (it is stopping):
            # the message was not acknowledged, and the client is told so.
            log.exception("publish failed")
            failure = Unavailable("The message was not published.", request_id=answer.request_id)
            self._record_error(failure.code)
            self._settle(answer, self._encode(failure.to_wire()))
            return
        step = functools.partial(self._step, answer, publishing)
        if waiting is None:  # a bare yield: give the loop a turn
            asyncio.get_running_loop().call_soon(step)
        else:
            # as asyncio.Task does: the coroutine waits on this future, resumed by its callback
            waiting._asyncio_future_blocking = False
            waiting.add_done_callback(step)

    def _settle(self, answer: _Answer, encoded: bytes | None) -> None:
        """A publish in flight got its answer (``None``: no request id, nothing to write)."""
        answer.encoded = encoded if encoded is not None else b""
        self._in_flight -= 1
        resume = self._resume_reading
        if resume is not None and self._in_flight < MAX_PUBLISHES_IN_FLIGHT:
            self._resume_reading = None
            if not resume.done():
                resume.set_result(None)
        queue = self._queue
        if queue[0] is not answer:
            return  # an older publish is still in flight; its settling releases this one
        ready = self.ready
        while queue and queue[0].encoded is not None:
            encoded_answer = queue.popleft().encoded
            if encoded_answer:
                ready.append(encoded_answer)
        if ready:
            self._schedule_flush()
