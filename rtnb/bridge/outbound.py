"""The bridge's seat in the hub: a subscriber whose "connection" is a queue to the broker.

:class:`OutboundQueue` implements the hub's :class:`~rtnb.server.hub.Sink`
protocol, so the hub treats the bridge like any other subscriber: it gets the
group batches of the ``--mqtt-out`` patterns, and the same slow-consumer policy
applies. While the broker is away the queue fills; past the hub's
``max_queue_bytes`` :meth:`OutboundQueue.send_batch` refuses, the hub marks the
bridge lagging and, once :meth:`OutboundQueue.drained` returns, catches it up
from history (with an explicit gap for anything history no longer holds).
Nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from ..core.errors import ConnectionClosed
from ..core.fanout import Batch
from ..core.history import Gap
from ..core.message import Message

__all__ = ["OutboundQueue"]

log = logging.getLogger("rtnb.bridge.mqtt")

#: bytes a queued message accounts for beyond its JSON size (topic, bookkeeping)
_OVERHEAD = 64


class OutboundQueue:
    """Hub messages waiting to be published to the broker, in order.

    Args:
        max_bytes: accounted bytes over which batches are refused (the hub then
            treats the bridge as a slow consumer and catches it up later).
        on_close: called with the close code when the hub ends this subscriber.
    """

    transport = "mqtt"

    def __init__(self, max_bytes: int, on_close: Callable[[int, str], None]) -> None:
        self.max_bytes = max_bytes
        self.on_close = on_close
        self.gaps: list[Gap] = []
        self.gap_count = 0
        #: topic -> (epoch, offset) of the last message taken in, to resume from
        self.positions: dict[str, tuple[int, int]] = {}
        self.closed = False
        self._items: deque[Message] = deque()
        self._bytes = 0
        self._not_empty = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()

    # -- Sink ------------------------------------------------------------------------

    def send_batch(self, batch: Batch) -> bool:
        if self._bytes > self.max_bytes:
            return False
        self._extend(batch.messages)
        return True

    def send_items(self, items: Sequence[Message | Gap]) -> None:
        messages = []
        for item in items:
            if isinstance(item, Message):
                messages.append(item)
            else:
                self.gap_count += 1
                self.gaps.append(item)
                del self.gaps[:-100]
                log.warning(
                    "MQTT bridge missed hub messages %s..%s on %s (%s); they will not reach the broker",
                    item.from_offset,
                    item.to_offset,
                    item.topic,
                    item.reason,
                )
        if messages:
            self._extend(messages)

    def send_control(self, frame: dict[str, Any]) -> None:
        log.debug("hub -> MQTT bridge: %r", frame)

    def buffered_bytes(self) -> int:
        return self._bytes

    async def drained(self) -> None:
        if self.closed:
            raise ConnectionClosed("The MQTT bridge has stopped.")
        await self._empty.wait()
        if self.closed:
            raise ConnectionClosed("The MQTT bridge has stopped.")

    def close(self, code: int, reason: str) -> None:
        self.on_close(code, reason)

    # -- the bridge's side -------------------------------------------------------------

    def _extend(self, messages: Sequence[Message]) -> None:
        items, positions = self._items, self.positions
        size = 0
        for message in messages:
            items.append(message)
            size += message.size + _OVERHEAD
            positions[message.topic] = (message.epoch, message.offset)
        self._bytes += size
        if items:
            self._empty.clear()
            self._not_empty.set()

    async def wait_not_empty(self) -> None:
        await self._not_empty.wait()

    def take(self, count: int) -> list[Message]:
        """Remove and return up to ``count`` messages from the front."""
        items = self._items
        taken = [items.popleft() for _ in range(min(count, len(items)))]
        self._bytes -= sum(message.size + _OVERHEAD for message in taken)
        self._settle()
        return taken

    def put_back(self, messages: Sequence[Message]) -> None:
        """Return unsent messages to the front, keeping their order."""
        self._items.extendleft(reversed(messages))
        self._bytes += sum(message.size + _OVERHEAD for message in messages)
        self._settle()

    def _settle(self) -> None:
        if self._items:
            self._empty.clear()
            self._not_empty.set()
        else:
            self._not_empty.clear()
            self._empty.set()

    def finish(self) -> None:
        """Wake every waiter for good: the bridge is stopping."""
        self.closed = True
        self._empty.set()
        self._not_empty.set()

    def __len__(self) -> int:
        return len(self._items)
