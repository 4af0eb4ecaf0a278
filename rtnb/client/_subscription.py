"""One subscription of an :class:`~rtnb.client.AsyncClient`: a bounded stream of items.

Items are :class:`~rtnb.core.message.Message` and :class:`~rtnb.core.history.Gap`,
in hub order per topic. A subscription is read either by iterating it
(``async for item in sub``) or through the callback given to ``subscribe``.

The queue behind iteration is bounded (``max_queue`` items). When it is full
the client stops reading from its socket until the application catches up:
the hub then sees a slow consumer and, past its own limit, skips this client
and later catches it up from history, reporting a gap for whatever history no
longer holds. Nothing is dropped silently, and memory stays bounded.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..core.errors import BadField, ConnectionClosed, RtnbError, Timeout
from ..core.history import Gap
from ..core.message import Message
from ..core.topics import Pattern
from ._resume import ResumeTracker

__all__ = ["Item", "ItemCallback", "Subscription", "SubscriptionOwner"]

log = logging.getLogger("rtnb.client.subscription")

#: what a subscription yields
Item = Message | Gap
#: a callback receiving items; it may be a coroutine function
ItemCallback = Callable[[Item], Awaitable[None] | None]


class SubscriptionOwner(Protocol):
    """The client a subscription belongs to (an ``AsyncClient`` or an ``SSEClient``)."""

    async def _discard(self, subscription: Subscription) -> None:
        """Forget *subscription*; unsubscribe its pattern once nothing else reads it."""


class Subscription:
    """Items matching one pattern, delivered in order per topic.

    Attributes:
        pattern: the subscribed pattern, e.g. ``"plant/+/temp"``.
        received: items handed to this subscription so far (messages and gaps).
        gaps: gap notices handed to this subscription so far.
    """

    def __init__(
        self,
        client: SubscriptionOwner,
        pattern: Pattern,
        *,
        callback: ItemCallback | None = None,
        max_queue: int = 10_000,
    ) -> None:
        self.pattern = pattern.text
        self.compiled = pattern
        self.received = 0
        self.gaps = 0
        self._client = client
        self._callback = callback
        self._max_queue = max_queue
        self._items: deque[Item] = deque()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._ended = False
        self._error: RtnbError | None = None
        self._end_hooks: list[Callable[[RtnbError | None], None]] = []
        #: set for a subscription made with ``last``/``since`` beside other ones: it keeps
        #: its own resume bookkeeping, so the replay it asked for reaches it even though
        #: the client's other subscriptions already had those messages
        self._own_tracker: ResumeTracker | None = None
        #: False while the hub refuses this subscription for now (``unavailable``,
        #: e.g. its Redis is down); the client keeps asking, with backoff
        self.active = True
        #: the ``last``/``since`` fields of its replay request, until the hub answered it
        self._replay_request: dict[str, Any] | None = None

    @property
    def closed(self) -> bool:
        """True once the subscription will hand out nothing more (after what is queued)."""
        return self._ended

    @property
    def error(self) -> RtnbError | None:
        """Why the subscription ended, when it did not end by ``close``/``unsubscribe``."""
        return self._error

    def __repr__(self) -> str:
        state = "closed" if self._ended else "open"
        return f"Subscription({self.pattern!r}, {state}, received={self.received}, queued={len(self._items)})"

    # -- fed by the client ---------------------------------------------------------

    async def _deliver(self, item: Item) -> None:
        if self._ended:
            return
        self.received += 1
        if isinstance(item, Gap):
            self.gaps += 1
        callback = self._callback
        if callback is not None:
            try:
                result = callback(item)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                # The application's bug must not stop delivery to everyone else; it is logged loudly.
                log.exception("callback of subscription %r failed on %r", self.pattern, item)
            return
        while len(self._items) >= self._max_queue and not self._ended:
            self._writable.clear()
            await self._writable.wait()
        self._items.append(item)
        self._readable.set()

    def _end(self, error: RtnbError | None = None) -> None:
        """No more items will come; iteration stops after the queued ones."""
        if self._ended:
            return
        self._ended = True
        self._error = error
        self._readable.set()
        self._writable.set()
        for hook in self._end_hooks:
            hook(error)

    def _on_end(self, hook: Callable[[RtnbError | None], None]) -> None:
        if self._ended:
            hook(self._error)
        else:
            self._end_hooks.append(hook)

    # -- read by the application -------------------------------------------------------

    async def get(self, timeout: float | None = None) -> Item:
        """The next item.

        Raises:
            Timeout: nothing arrived within ``timeout`` seconds.
            ConnectionClosed: the subscription ended (closed, or the client gave up);
                ``error`` tells which.
        """
        if self._callback is not None:
            raise BadField("This subscription hands its items to its callback; subscribe without one to read it.")
        if not self._items:
            if timeout is None:
                await self._wait_readable()
            else:
                try:
                    await asyncio.wait_for(self._wait_readable(), timeout)
                except asyncio.TimeoutError:
                    raise Timeout(f"Nothing arrived on {self.pattern!r} within {timeout} s.") from None
        if self._items:
            item = self._items.popleft()
            self._writable.set()
            return item
        raise self._error or ConnectionClosed(f"The subscription to {self.pattern!r} is closed.")

    async def _wait_readable(self) -> None:
        while not self._items and not self._ended:
            self._readable.clear()
            await self._readable.wait()

    def get_nowait(self) -> Item | None:
        """The next queued item, or ``None`` when none is queued."""
        if not self._items:
            return None
        item = self._items.popleft()
        self._writable.set()
        return item

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Item:
        if self._callback is not None:
            raise BadField("This subscription hands its items to its callback; subscribe without one to iterate.")
        await self._wait_readable()
        if self._items:
            item = self._items.popleft()
            self._writable.set()
            return item
        if self._error is not None:
            raise self._error
        raise StopAsyncIteration

    async def close(self) -> None:
        """Stop this subscription; the pattern is unsubscribed when no other subscription uses it."""
        await self._client._discard(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()
