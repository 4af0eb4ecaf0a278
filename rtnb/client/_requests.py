"""Requests and their replies on an :class:`~rtnb.client.AsyncClient`'s connection.

:class:`ClientRequests` also names the fields every part of the client shares (set in
``AsyncClient.__init__``); the parts build on it: pattern routing (``_routing.py``),
checkpoints (``_checkpoints.py``), the outbox (``_outbox.py``) and subscribing
(``_subscribing.py``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..core.errors import (
    ConnectionClosed,
    RtnbError,
    Timeout,
)
from ..core.message import Format
from ._backoff import Backoff
from ._resume import ResumeTracker
from ._state import ClientState
from ._subscription import Subscription
from ._wire import encode_request

if TYPE_CHECKING:
    from ._async import Overflow
    from ._outbox import _Publish
    from ._routing import _PatternState

__all__ = ["ClientRequests"]

log = logging.getLogger("rtnb.client")
frame_log = logging.getLogger("rtnb.client.frames")


class _ConnectionLost(ConnectionClosed):
    """The connection dropped while a request waited for its reply (internal)."""


class ClientRequests:
    """Sending requests with fresh ids and matching the hub's replies to them."""

    ws_url: str
    format: Format
    token: str | None
    headers: dict[str, str]
    request_timeout: float
    max_pending: int
    overflow: Overflow
    resend_unacked: bool
    ack_timeout: float
    max_publish_bytes: int
    max_queue: int
    on_error: Callable[[RtnbError], None] | None
    _backoff: Backoff
    _sleep: Callable[[float], Awaitable[Any]]
    _state: ClientState
    _tracker: ResumeTracker
    _patterns: dict[str, _PatternState]
    _routes: dict[str, tuple[Subscription, ...]]
    _outbox: deque[_Publish]
    _in_flight: dict[int, _Publish]
    _requests: dict[int, asyncio.Future[dict[str, Any]]]
    _listeners: dict[int, list[Subscription]]
    _refusal_retry: asyncio.Task[None] | None
    _checkpoint_request: asyncio.Task[None] | None
    _checkpoint_unsupported: Any
    _checkpoint_not_before: float
    _checkpoint_timer: asyncio.TimerHandle | None
    _ids: itertools.count[int]
    _connection: Any
    _outbox_ready: asyncio.Event
    _room: asyncio.Event
    _idle: asyncio.Event
    client_id: str | None
    dropped_publishes: int
    duplicates_dropped: int
    gaps_reported: int
    last_error: RtnbError | None

    async def _send(self, connection: Any, frame: dict[str, Any]) -> None:
        import websockets

        data = encode_request(frame, self.format)
        self._log_frame("->", data)
        try:
            await connection.send(data)
        except websockets.ConnectionClosed:
            raise _ConnectionLost("The connection to the hub is lost.") from None

    async def _start_request(
        self, connection: Any, frame: dict[str, Any], listeners: list[Subscription] | None = None
    ) -> asyncio.Future[dict[str, Any]]:
        """Send a request with a fresh ``id``; returns the future of its reply.

        ``listeners`` (replaying subscriptions) start hearing items the moment the
        reply is read, before anything the hub sent after it.
        """
        request_id = next(self._ids)
        frame["id"] = request_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._requests[request_id] = future
        if listeners:
            self._listeners[request_id] = listeners
        try:
            await self._send(connection, frame)
        except BaseException:
            self._requests.pop(request_id, None)
            self._listeners.pop(request_id, None)
            raise
        return asyncio.ensure_future(self._await_reply(request_id, future, frame["op"]))

    async def _await_reply(self, request_id: int, future: asyncio.Future[dict[str, Any]], op: str) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(future, self.request_timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"The hub did not answer the {op!r} request within {self.request_timeout} s.") from None
        finally:
            self._requests.pop(request_id, None)

    def _fail_requests(self, error: RtnbError) -> None:
        self._listeners.clear()  # their replay requests go out again after reconnection
        requests, self._requests = self._requests, {}
        for future in requests.values():
            if not future.done():
                future.set_exception(error)

    def _resolve(self, item: dict[str, Any]) -> None:
        request_id: Any = item.get("id")  # as the hub echoed it: an id this client never sent finds nothing
        future = self._requests.get(request_id)
        if future is not None and not future.done():
            future.set_result(item)

    def _report(self, error: RtnbError) -> None:
        """An error no caller is waiting for: log it and tell ``on_error``."""
        self.last_error = error
        log.warning("hub error %s: %s", error.code, error.message)
        if self.on_error is not None:
            try:
                self.on_error(error)
            except Exception:
                log.exception("on_error callback failed on %r", error)

    def _log_frame(self, direction: str, frame: str | bytes) -> None:
        if frame_log.isEnabledFor(logging.DEBUG):
            frame_log.debug("%s %s %r", direction, self.client_id or "-", frame)
