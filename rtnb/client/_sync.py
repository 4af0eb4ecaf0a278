"""The synchronous client: an :class:`AsyncClient` on its own thread and event loop.

Plain scripts, threads and notebook cells call blocking methods; the client's
thread keeps the connection alive, reconnects and fills subscription queues in
the background. Because the client never runs on the caller's event loop, it
works from inside a running loop (a Jupyter kernel, ``asyncio.run``) and from
many threads at once.

One thing would deadlock and is refused with a clear error instead: waiting on
the client from its own thread (inside a subscription callback), e.g. a
``publish(..., ack=True)`` there. Use ``ack=False`` in callbacks.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import queue
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any, TypeVar

from ..core.errors import ConnectionClosed, RtnbError, Timeout
from ._async import AsyncClient
from ._loop_thread import LoopThread, LoopTimeout
from ._subscription import Item, Subscription

__all__ = ["Client", "SyncSubscription", "connect"]

log = logging.getLogger("rtnb.client.sync")

T = TypeVar("T")


class _End(enum.Enum):
    """The marker queued after the last item of a subscription (an enum, so its type is its own)."""

    END = "end"


_END = _End.END


class Client:
    """A thread-backed hub client; see :class:`AsyncClient` for every option.

    Args:
        url: the hub's base URL or WebSocket URL.
        **options: passed to :class:`AsyncClient` (``token``, ``format``,
            ``reconnect``, ``backoff``, ``max_pending``, ``overflow``...).

    Raises:
        Unavailable / Unauthorized: the first connection failed.
    """

    def __init__(self, url: str, **options: Any) -> None:
        self._loop_thread = LoopThread("rtnb-client").start()
        self._loop = self._loop_thread.loop
        self._closed = False
        try:
            self._client: AsyncClient = self._call(self._create(url, options))
            self._call(self._client.connect())
        except BaseException:
            self._stop_loop()
            raise

    @staticmethod
    async def _create(url: str, options: dict[str, Any]) -> AsyncClient:
        return AsyncClient(url, **options)

    def _stop_loop(self) -> None:
        self._loop_thread.stop(timeout=10)

    @property
    def on_client_thread(self) -> bool:
        """True when called from the client's own thread (a subscription callback)."""
        return self._loop_thread.on_thread

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the client's loop and wait for its result."""
        if self.on_client_thread:
            coroutine.close()
            raise RtnbError(
                "Waiting on the client from its own thread (a subscription callback) would deadlock;"
                " use publish(..., ack=False) there."
            )
        try:
            return self._loop_thread.run(coroutine, timeout)
        except LoopTimeout:
            raise Timeout(f"The client did not finish within {timeout} s.") from None

    # -- status --------------------------------------------------------------------

    @property
    def async_client(self) -> AsyncClient:
        """The underlying :class:`AsyncClient` (use it only on the client's loop)."""
        return self._client

    @property
    def url(self) -> str:
        return self._client.url

    @property
    def state(self) -> Any:
        return self._client.state

    @property
    def positions(self) -> dict[str, tuple[int, int]]:
        return self._client.positions

    @property
    def reconnects(self) -> int:
        return self._client.reconnects

    def status(self) -> dict[str, Any]:
        return self._client.status()

    def __repr__(self) -> str:
        return f"Client({self._client.ws_url!r}, {self._client.state.value})"

    # -- operations ----------------------------------------------------------------

    def publish(self, topic: str, data: Any, ack: bool = True, timeout: float | None = None) -> int | None:
        """Publish ``data`` on ``topic``; returns the offset (``None`` with ``ack=False``).

        From a subscription callback (the client's thread) only ``ack=False``
        is possible: the publish is queued and this returns at once.

        Raises:
            The errors of :meth:`AsyncClient.publish`.
        """
        if self.on_client_thread:
            if ack:
                raise RtnbError(
                    "publish(..., ack=True) from a subscription callback would deadlock; use ack=False there."
                )
            self._loop.create_task(self._publish_from_callback(topic, data))
            return None
        return self._call(self._client.publish(topic, data, ack=ack, timeout=timeout))

    async def _publish_from_callback(self, topic: str, data: Any) -> None:
        try:
            await self._client.publish(topic, data, ack=False)
        except RtnbError as error:
            log.error("publish to %r from a callback failed: %s", topic, error.message)

    def subscribe(
        self,
        pattern: str,
        callback: Callable[[Item], Any] | None = None,
        *,
        last: int | None = None,
        since: Mapping[str, Any] | None = None,
    ) -> SyncSubscription:
        """Subscribe to ``pattern``.

        Args:
            pattern: e.g. ``"plant/+/temp"``.
            callback: called with each item on the client's thread; without one,
                read the subscription with ``get()`` or a ``for`` loop.
            last / since: as in :meth:`AsyncClient.subscribe`.
        """
        items: queue.Queue[Item | _End] | None = None
        if callback is None:
            items = queue.Queue()
            limit = self._client.max_queue

            async def enqueue(item: Item) -> None:
                # The queue is bounded by waiting here, on the client's loop:
                # the client then stops reading its socket until the reader catches up.
                while items.qsize() >= limit:
                    await asyncio.sleep(0.005)
                items.put_nowait(item)

            deliver: Callable[[Item], Any] = enqueue
        else:
            deliver = callback
        subscription = self._call(self._client.subscribe(pattern, last=last, since=since, callback=deliver))
        return SyncSubscription(self, subscription, items)

    def unsubscribe(self, pattern: str) -> bool:
        return self._call(self._client.unsubscribe(pattern))

    def authenticate(self, token: str) -> dict[str, Any]:
        """Switch to a new token; see :meth:`AsyncClient.authenticate`."""
        return self._call(self._client.authenticate(token))

    def close(self) -> None:
        """Send what is queued, close the connection and stop the thread. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._loop.is_running():
                self._call(self._client.close())
        finally:
            self._stop_loop()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        # A forgotten client must not keep its thread and socket forever.
        loop_thread: LoopThread | None = getattr(self, "_loop_thread", None)
        if not getattr(self, "_closed", True) and loop_thread is not None:
            loop_thread.call_soon(loop_thread.loop.stop)  # False (nothing to do) when the loop is already closed


class SyncSubscription:
    """A subscription of the synchronous client.

    Read it with :meth:`get` (with a timeout) or ``for item in sub`` (blocks
    until the subscription ends), unless it was made with a callback.
    """

    def __init__(self, client: Client, subscription: Subscription, items: queue.Queue[Item | _End] | None) -> None:
        self._client = client
        self._subscription = subscription
        self._items = items
        self.pattern = subscription.pattern
        if items is not None:
            subscription._on_end(lambda error: items.put_nowait(_END))

    @property
    def received(self) -> int:
        return self._subscription.received

    @property
    def closed(self) -> bool:
        return self._subscription.closed

    def __repr__(self) -> str:
        return f"SyncSubscription({self.pattern!r}, received={self.received})"

    def get(self, timeout: float | None = 1.0) -> Item:
        """The next item.

        Raises:
            Timeout: nothing arrived within ``timeout`` seconds (``None``: wait forever).
            ConnectionClosed: the subscription ended (``error`` says why if it failed).
        """
        if self._items is None:
            raise RtnbError("This subscription hands its items to its callback; subscribe without one to read it.")
        try:
            item = self._items.get(timeout=timeout)
        except queue.Empty:
            raise Timeout(f"Nothing arrived on {self.pattern!r} within {timeout} s.") from None
        if item is _END:
            self._items.put_nowait(_END)  # later calls end too
            raise self._subscription.error or ConnectionClosed(f"The subscription to {self.pattern!r} is closed.")
        return item

    def __iter__(self) -> Iterator[Item]:
        if self._items is None:
            raise RtnbError("This subscription hands its items to its callback; subscribe without one to iterate.")
        while True:
            try:
                # A bounded wait, so Ctrl-C reaches a waiting script promptly.
                item = self._items.get(timeout=0.25)
            except queue.Empty:
                continue
            if item is _END:
                self._items.put_nowait(_END)
                if self._subscription.error is not None:
                    raise self._subscription.error
                return
            yield item

    def close(self) -> None:
        """Stop this subscription."""
        if self._client._closed or not self._client._loop.is_running():
            self._subscription._end()
            return
        self._client._call(self._subscription.close())

    def __enter__(self) -> SyncSubscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def connect(url: str, **options: Any) -> Client:
    """A connected synchronous :class:`Client`.

    ``rtnb.connect()`` (the package's) also accepts no URL and finds a hub; this
    one, in the client layer, talks to the hub it is given.

    Args:
        url: the hub's base URL (``http://127.0.0.1:8765``) or WebSocket URL.
        **options: as for :class:`AsyncClient`.

    Raises:
        Unavailable: the hub cannot be reached.
        TypeError: ``url`` is not a string.
    """
    if not isinstance(url, str):
        raise TypeError(
            f"rtnb.client.connect() needs the hub's URL as a string, not {type(url).__name__};"
            " rtnb.connect() without a URL finds the hub of this process or of Jupyter."
        )
    return Client(url, **options)
