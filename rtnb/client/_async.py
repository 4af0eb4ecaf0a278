"""The asyncio client, on the ``websockets`` library.

One :class:`AsyncClient` holds one WebSocket connection to a hub and keeps it
alive: when it drops, the client backs off (full jitter), reconnects,
re-subscribes every pattern with a ``since`` cursor built from what it already
delivered, and sends the publishes queued meanwhile. The pure parts live
elsewhere: :mod:`._resume` (cursors, duplicates, gap detection),
:mod:`._backoff` (delays) and :mod:`._wire` (URLs, frame splitting); this module
only moves bytes between them and the socket.

The client itself is split by job, each part a class it builds on: requests and
replies (``_requests.py``), the patterns it holds and routing to subscriptions
(``_routing.py``), checkpoints (``_checkpoints.py``), the outbox of publishes
(``_outbox.py``), subscribing (``_subscribing.py``) and opening a connection
(``_ws_open.py``), on the reconnecting-session skeleton both clients share
(``_session.py``); this module keeps a connection's session: serve, read, lose.

Delivery guarantees are stated in ``docs/guarantees.md``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random as random_module
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from ..core.close_codes import CloseCode
from ..core.errors import (
    BadArgument,
    ConnectionClosed,
    MessageTooBig,
    ProtocolError,
    RtnbError,
)
from ..core.message import Format, Message
from ._backoff import BackoffPolicy
from ._checkpoints import CheckpointRequests
from ._outbox import Outbox, _Publish
from ._requests import _ConnectionLost
from ._resume import ResumeTracker
from ._routing import _PatternState
from ._session import ReconnectingSession
from ._state import ClientState
from ._subscribing import Subscribing
from ._subscription import Subscription
from ._wire import decode_gaps, frame_items, to_http_url, to_ws_url
from ._ws_open import WebSocketOpening

__all__ = ["AsyncClient", "Overflow", "StateCallback"]

log = logging.getLogger("rtnb.client")

#: what a full offline queue does with one more publish
Overflow = Literal["error", "drop_oldest"]
#: called as ``callback(old_state, new_state)`` on every state change
StateCallback = Callable[[ClientState, ClientState], None]


class AsyncClient(Subscribing, CheckpointRequests, Outbox, WebSocketOpening, ReconnectingSession[Any]):
    """A hub client for asyncio code: publish, subscribe, survive disconnections.

    Args:
        url: the hub's base URL (``http://127.0.0.1:8765``, a prefix allowed:
            ``http://host/rtnb``) or its WebSocket URL (``ws://host:port/ws``).
        token: sent as ``Authorization: Bearer TOKEN`` and in an ``auth`` request.
        format: ``"json"`` (text frames) or ``"msgpack"`` (binary frames).
        reconnect: reconnect after a lost connection (else the client closes).
        backoff: delays between reconnection attempts, see :class:`BackoffPolicy`.
        headers: extra HTTP headers for the WebSocket handshake.
        max_pending: publishes the client holds unsent or unacknowledged. While
            connected, a publish beyond it waits for room (backpressure); while
            offline, ``overflow`` decides.
        overflow: ``"error"`` (default): a publish that finds the offline queue
            full raises :class:`LimitExceeded`; ``"drop_oldest"``: the oldest
            queued publish is dropped and *its* caller gets :class:`LimitExceeded`.
        resend_unacked: after a reconnection, send again the publishes the hub
            had not acknowledged (at-least-once; a duplicate is possible).
            ``False`` fails them with :class:`ConnectionClosed` instead.
        ack_timeout: default seconds ``publish(ack=True)`` waits for the ack.
        request_timeout: seconds to wait for replies to subscribe/unsubscribe.
        open_timeout: seconds to open a connection and get the hub's welcome.
        connect_timeout: how long ``connect()`` keeps retrying a hub it cannot reach yet
            (with ``backoff``), in seconds; ``None``: only ``backoff.max_attempts`` bounds it.
        fail_fast: ``connect()`` makes a single attempt: a hub that cannot be reached
            fails it at once (``Unavailable``), as a wrong URL should in a quick check.
        ping_interval / ping_timeout: WebSocket keep-alive; ``None`` disables.
        max_frame_bytes: largest frame accepted from the hub (``None``: no limit).
        max_publish_bytes: largest encoded payload ``publish`` sends; bigger ones raise
            :class:`MessageTooBig` at once (the hub's default limit is 1 MiB per frame).
        max_queue: items each subscription queues for the application.
        close_timeout: seconds ``close()`` waits for queued publishes to go out.
        on_state_change: ``callback(old, new)`` on every :class:`ClientState` change.
        on_error: ``callback(error)`` for hub errors no request is waiting for
            (e.g. a rejected ``publish(ack=False)``); they are logged either way.
        random / clock / sleep: injectable for tests of the backoff schedule.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        format: Format = "json",
        reconnect: bool = True,
        backoff: BackoffPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        max_pending: int = 1000,
        overflow: Overflow = "error",
        resend_unacked: bool = True,
        ack_timeout: float = 10.0,
        request_timeout: float = 10.0,
        open_timeout: float = 10.0,
        connect_timeout: float | None = 30.0,
        fail_fast: bool = False,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        max_frame_bytes: int | None = 16 * 2**20,
        max_publish_bytes: int = 2**20 - 1024,
        max_queue: int = 10_000,
        close_timeout: float = 5.0,
        on_state_change: StateCallback | None = None,
        on_error: Callable[[RtnbError], None] | None = None,
        random: Callable[[], float] = random_module.random,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if format not in ("json", "msgpack"):
            raise BadArgument(f"format must be 'json' or 'msgpack', not {format!r}.")
        if overflow not in ("error", "drop_oldest"):
            raise BadArgument(f"overflow must be 'error' or 'drop_oldest', not {overflow!r}.")
        if max_pending < 1 or max_queue < 1:
            raise BadArgument("max_pending and max_queue must be at least 1.")
        self.ws_url = to_ws_url(url)
        self.url = to_http_url(url)
        super().__init__(
            self.ws_url,
            reconnect=reconnect,
            backoff=backoff,
            connect_timeout=connect_timeout,
            fail_fast=fail_fast,
            random=random,
            clock=clock,
            sleep=sleep,
        )
        self.token = token
        self.format: Format = format
        self.headers = dict(headers or {})
        if token is not None:
            self.headers.setdefault("Authorization", f"Bearer {token}")
        self.max_pending = max_pending
        self.overflow: Overflow = overflow
        self.resend_unacked = resend_unacked
        self.ack_timeout = ack_timeout
        self.request_timeout = request_timeout
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_frame_bytes = max_frame_bytes
        self.max_publish_bytes = max_publish_bytes
        self.max_queue = max_queue
        self.close_timeout = close_timeout
        self.on_state_change = on_state_change
        self.on_error = on_error

        self._tracker = ResumeTracker()
        self._patterns: dict[str, _PatternState] = {}
        self._routes: dict[str, tuple[Subscription, ...]] = {}
        self._outbox: deque[_Publish] = deque()
        self._in_flight: dict[int, _Publish] = {}
        self._requests: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._listeners: dict[int, list[Subscription]] = {}
        self._refusal_retry: asyncio.Task[None] | None = None
        #: the checkpoint request in flight, and the connection whose hub does not know the op
        self._checkpoint_request: asyncio.Task[None] | None = None
        self._checkpoint_unsupported: Any = None
        self._checkpoint_not_before = 0.0
        self._checkpoint_timer: asyncio.TimerHandle | None = None
        self._ids = itertools.count(1)
        self._connection: Any = None
        self._close_code: int | None = None
        self._outbox_ready = asyncio.Event()
        self._room = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

        #: the hub's id for the current connection (from its ``welcome``)
        self.client_id: str | None = None
        #: publishes dropped by ``overflow="drop_oldest"``
        self.dropped_publishes = 0
        #: duplicate messages suppressed (seen again after a resume)
        self.duplicates_dropped = 0
        #: gaps handed to subscriptions (from the hub or detected here)
        self.gaps_reported = 0

    # -- status ----------------------------------------------------------------------

    @property
    def positions(self) -> dict[str, tuple[int, int]]:
        """``(epoch, offset)`` of the last message handed to subscriptions, per topic."""
        return self._tracker.positions

    def status(self) -> dict[str, Any]:
        """A snapshot for humans and dashboards."""
        return {
            "state": self._state.value,
            "url": self.ws_url,
            "client_id": self.client_id,
            "reconnects": self.reconnects,
            "pending": self.pending,
            "subscriptions": sorted(self._patterns),
            "refused_subscriptions": sorted(
                text for text, state in self._patterns.items() if state.refused or state.retrying
            ),
            "positions": self.positions,
            "checkpoint": self._tracker.checkpoint,
            "moved_since_checkpoint": self._tracker.moved_since_checkpoint,
            "gaps_reported": self.gaps_reported,
            "duplicates_dropped": self.duplicates_dropped,
            "dropped_publishes": self.dropped_publishes,
            "last_error": None if self.last_error is None else repr(self.last_error),
        }

    def __repr__(self) -> str:
        return f"AsyncClient({self.ws_url!r}, {self._state.value})"

    def _state_changed(self, old: ClientState, new: ClientState) -> None:
        self._room.set()  # publishers waiting for room re-check what to do
        if self.on_state_change is not None:
            try:
                self.on_state_change(old, new)
            except Exception:
                log.exception("on_state_change callback failed on %s -> %s", old.value, new.value)

    # -- lifecycle -------------------------------------------------------------------

    async def _close_connection(self, was_connected: bool) -> None:
        if was_connected and self.pending:
            try:
                await asyncio.wait_for(self._idle.wait(), self.close_timeout)
            except asyncio.TimeoutError:
                log.warning("closing with %d publishes not acknowledged after %ss", self.pending, self.close_timeout)
        connection = self._connection
        if connection is not None:
            await connection.close()

    def _release(self, error: RtnbError | None) -> None:
        """End subscriptions, fail everything still waiting."""
        reason = error or ConnectionClosed("The client is closed.")
        for publish in [*self._in_flight.values(), *self._outbox]:
            if publish.future is not None and not publish.future.done():
                publish.future.set_exception(
                    ConnectionClosed(f"The publish to {publish.topic!r} was not acknowledged before the client closed.")
                )
            elif publish.future is None:
                log.warning("publish to %r was never sent: the client closed", publish.topic)
        self._in_flight.clear()
        self._outbox.clear()
        self._idle.set()
        self._fail_requests(reason)
        for state in self._patterns.values():
            for subscription in state.subscriptions:
                subscription._end(error)

    # -- the connection loop -----------------------------------------------------------

    async def _session(self, connection: Any) -> None:
        """Serve one connection: resubscribe, go live, send the outbox, read until it ends."""
        self._connection = connection
        reader = asyncio.ensure_future(self._read(connection))
        sender: asyncio.Task[None] | None = None
        try:
            await self._resubscribe(connection)
            if reader.done() or self._state is not ClientState.CONNECTING:
                return
            self._backoff.connected()
            self._set_state(ClientState.CONNECTED)
            self._request_checkpoint_if_due()
            sender = asyncio.ensure_future(self._send_outbox(connection))
            await asyncio.shield(reader)
        except _ConnectionLost:
            pass
        finally:
            self._connection = None
            retry, self._refusal_retry = self._refusal_retry, None
            checkpoint, self._checkpoint_request = self._checkpoint_request, None
            if self._checkpoint_timer is not None:
                self._checkpoint_timer.cancel()
                self._checkpoint_timer = None
            for task in (retry, checkpoint):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            for task in (sender, reader):
                if task is not None and not task.done():
                    task.cancel()
            await asyncio.gather(*(task for task in (sender, reader) if task is not None), return_exceptions=True)
            await connection.close()

    def _connection_lost(self) -> None:
        lost = [publish for publish in self._in_flight.values() if publish.future is not None]
        self._in_flight.clear()
        if self._close_code == CloseCode.MESSAGE_TOO_BIG and lost:
            # The hub reads frames in order and had acknowledged everything before the
            # frame it refused: the oldest unacknowledged publish is the culprit. Sending
            # it again would loop forever, so it fails; the others are not to blame.
            culprit = lost.pop(0)
            culprit.fail(
                MessageTooBig(
                    f"The hub closed the connection (1009): the publish to {culprit.topic!r}"
                    " is over its frame size limit."
                )
            )
        if self.resend_unacked:
            self._outbox.extendleft(reversed([publish for publish in lost if publish.waiting()]))
        else:
            for publish in lost:
                publish.fail(
                    ConnectionClosed(
                        f"The connection was lost before the hub acknowledged the publish to {publish.topic!r};"
                        " it may or may not have been delivered."
                    )
                )
        self._update_idle()
        for state in self._patterns.values():
            state.sent_on = None
            state.refused = False  # asked again on the next connection
        log.warning("lost the connection to %s; %d publishes waiting", self.ws_url, self.pending)

    # -- reading -------------------------------------------------------------------------

    async def _read(self, connection: Any) -> None:
        import websockets

        try:
            async for frame in connection:
                self._log_frame("<-", frame)
                try:
                    items = frame_items(frame)
                except RtnbError as error:
                    self._report(error)
                    continue
                for item in items:
                    await self._dispatch(item)
        except websockets.ConnectionClosed as error:
            log.debug("connection to %s closed: %s", self.ws_url, error)
        finally:
            self._close_code = getattr(connection, "close_code", None)
            self._fail_requests(_ConnectionLost("The connection to the hub was lost."))

    async def _dispatch(self, item: Any) -> None:
        if not isinstance(item, dict):
            self._report(ProtocolError(f"The hub sent {type(item).__name__} where an object was expected."))
            return
        op = item.get("op")
        try:
            if op == "message":
                await self._on_message(Message.from_envelope(item))
                self._request_checkpoint_if_due()
            elif op == "gap":
                for gap in decode_gaps(item):
                    await self._on_gap(gap)
                self._request_checkpoint_if_due()
            elif op == "ack":
                self._on_ack(item)
            elif op == "error":
                self._on_error(item)
            elif op == "subscribed":
                self._seed(item)
                self._start_listening(item)
                self._resolve(item)
                self._request_checkpoint_if_due()
            elif op == "checkpoint":
                self._on_checkpoint(item)
            elif "id" in item:
                self._resolve(item)
            else:
                log.debug("ignoring %r from the hub", op)
        except RtnbError as error:
            self._report(error)
