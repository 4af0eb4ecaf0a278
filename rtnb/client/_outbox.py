"""The outbox of an :class:`~rtnb.client.AsyncClient`: publishes queued, in flight, acknowledged."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from ..core.errors import (
    ConnectionClosed,
    LimitExceeded,
    MessageTooBig,
    Timeout,
    error_from_wire,
)
from ..core.message import check_nesting, encode_json
from ..core.topics import validate_topic
from ._requests import ClientRequests
from ._state import ClientState

__all__ = ["Outbox"]

log = logging.getLogger("rtnb.client")


@dataclass(eq=False)
class _Publish:
    topic: str
    data: Any
    request_id: int | None
    future: asyncio.Future[int] | None

    def waiting(self) -> bool:
        """Whether someone still waits for this publish's ack (not settled, not fire-and-forget)."""
        return self.future is not None and not self.future.done()

    def fail(self, error: Exception) -> None:
        """Settle the ack this publish's caller waits for with *error*, unless already settled."""
        if self.future is not None and not self.future.done():
            self.future.set_exception(error)


class Outbox(ClientRequests):
    """Publishes in order, with backpressure online and a bounded queue offline."""

    @property
    def pending(self) -> int:
        """Publishes not yet acknowledged (queued or in flight)."""
        return len(self._outbox) + len(self._in_flight)

    def _on_ack(self, item: dict[str, Any]) -> None:
        request_id: Any = item.get("id")  # as the hub echoed it: an id this client never sent finds nothing
        publish = self._in_flight.pop(request_id, None)
        if publish is None:
            return  # its caller timed out
        if publish.future is not None and not publish.future.done():
            publish.future.set_result(int(item.get("offset", 0)))
        self._room.set()
        self._update_idle()

    def _on_error(self, item: dict[str, Any]) -> None:
        request_id = item.get("id")
        error = error_from_wire(str(item.get("code")), str(item.get("message")), request_id)
        publish = self._in_flight.pop(request_id, None) if request_id is not None else None
        if publish is not None:
            if publish.future is not None and not publish.future.done():
                publish.future.set_exception(error)
            self._room.set()
            self._update_idle()
            return
        future = self._requests.get(request_id) if request_id is not None else None
        if future is not None:
            if not future.done():
                future.set_exception(error)
            return
        self._report(error)

    async def publish(self, topic: str, data: Any, ack: bool = True, timeout: float | None = None) -> int | None:
        """Publish ``data`` (any JSON value) on ``topic``.

        While disconnected the publish is queued and sent after reconnection.

        Args:
            topic: a concrete topic such as ``"plant/boiler/temp"``.
            data: the payload.
            ack: wait for the hub's acknowledgement and return the offset.
            timeout: seconds to wait for the ack (default ``ack_timeout``),
                counting any time spent queued while offline.

        Returns:
            The message's offset in its topic, or ``None`` when ``ack`` is false.

        Raises:
            InvalidTopic / WildcardPublish / BadField / TooDeep: bad input, raised at once.
            LimitExceeded: the offline queue is full (``overflow="error"``), or this
                publish was dropped from it (``overflow="drop_oldest"``).
            Timeout: no ack in time; the publish is withdrawn if it was still queued,
                otherwise it may or may not have been delivered.
            ConnectionClosed: the client is closed, or lost the connection before
                the ack with ``resend_unacked=False``.
            RtnbError: the hub refused it (e.g. ``MessageTooBig``, ``Forbidden``).
        """
        validate_topic(topic)
        check_nesting(data)
        size = len(encode_json(data))  # refuses what JSON cannot carry, here rather than on the hub
        if size > self.max_publish_bytes:
            raise MessageTooBig(f"The payload is {size} bytes; this client sends at most {self.max_publish_bytes}.")
        if self._state in (ClientState.CLOSING, ClientState.CLOSED):
            raise ConnectionClosed("This client is closed.")
        loop = asyncio.get_running_loop()
        publish = _Publish(topic, data, next(self._ids) if ack else None, loop.create_future() if ack else None)
        await self._enqueue(publish)
        if publish.future is None:
            return None
        limit = self.ack_timeout if timeout is None else timeout
        try:
            return await asyncio.wait_for(asyncio.shield(publish.future), limit)
        except asyncio.TimeoutError:
            if publish in self._outbox:
                self._outbox.remove(publish)
                detail = "it was still queued (the client is offline) and is withdrawn"
            else:
                assert publish.request_id is not None  # a publish with an ack future always has an id
                self._in_flight.pop(publish.request_id, None)
                detail = "it was sent and may or may not have been delivered"
            self._room.set()
            self._update_idle()
            publish.future.cancel()
            raise Timeout(f"No ack for the publish to {topic!r} within {limit} s; {detail}.") from None

    async def _enqueue(self, publish: _Publish) -> None:
        while self.pending >= self.max_pending:
            if self._state in (ClientState.CLOSING, ClientState.CLOSED):
                raise ConnectionClosed("This client is closed.")
            if self._state is ClientState.CONNECTED:
                self._room.clear()
                await self._room.wait()
                continue
            if self.overflow == "error" or not self._outbox:
                raise LimitExceeded(
                    f"The client is offline and already holds {self.pending} publishes (max_pending);"
                    " this one is refused."
                )
            dropped = self._outbox.popleft()
            self.dropped_publishes += 1
            log.warning("offline queue full: dropping the oldest publish (to %r)", dropped.topic)
            if dropped.future is not None and not dropped.future.done():
                dropped.future.set_exception(
                    LimitExceeded(f"The publish to {dropped.topic!r} was dropped: the offline queue was full.")
                )
        self._outbox.append(publish)
        self._idle.clear()
        self._outbox_ready.set()

    def _update_idle(self) -> None:
        if not self._outbox and not self._in_flight:
            self._idle.set()

    async def _send_outbox(self, connection: Any) -> None:
        """Send queued publishes in order while the connection lasts."""
        outbox = self._outbox
        while True:
            while not outbox:
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
            publish = outbox.popleft()
            frame: dict[str, Any] = {"op": "publish", "topic": publish.topic, "data": publish.data}
            if publish.future is not None:
                if publish.future.done():
                    continue  # withdrawn by a timeout
                assert publish.request_id is not None  # a publish with an ack future always has an id
                self._in_flight[publish.request_id] = publish
                frame["id"] = publish.request_id
            else:
                # Fire-and-forget publishes leave the client here: at most once.
                self._room.set()
                self._update_idle()
            await self._send(connection, frame)
