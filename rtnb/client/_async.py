"""The asyncio client, on the ``websockets`` library.

One :class:`AsyncClient` holds one WebSocket connection to a hub and keeps it
alive: when it drops, the client backs off (full jitter), reconnects,
re-subscribes every pattern with a ``since`` cursor built from what it already
delivered, and sends the publishes queued meanwhile. The pure parts live
elsewhere: :mod:`._resume` (cursors, duplicates, gap detection),
:mod:`._backoff` (delays) and :mod:`._wire` (URLs, frame splitting); this module
only moves bytes between them and the socket.

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
from dataclasses import dataclass, field
from typing import Any, Literal

from ..core.close_codes import CloseCode
from ..core.errors import (
    BadField,
    ConnectionClosed,
    LimitExceeded,
    MessageTooBig,
    ProtocolError,
    RtnbError,
    Timeout,
    Unauthorized,
    Unavailable,
    error_from_wire,
)
from ..core.history import Gap
from ..core.message import Format, Message, check_nesting, encode_json
from ..core.protocol import PROTOCOL_VERSION, SUBPROTOCOL_MSGPACK, parse_since
from ..core.topics import Pattern, validate_pattern, validate_topic
from ._backoff import Backoff, BackoffPolicy
from ._first_connect import connect_with_retries
from ._resume import ResumeTracker
from ._state import ClientState, check_transition
from ._subscription import ItemCallback, Subscription
from ._wire import decode_gaps, encode_request, split_frame, to_http_url, to_ws_url

__all__ = ["AsyncClient", "Overflow", "StateCallback"]

log = logging.getLogger("rtnb.client")
frame_log = logging.getLogger("rtnb.client.frames")

#: seconds between two checkpoint requests at most (each costs the hub a cursor record)
CHECKPOINT_INTERVAL = 1.0

#: what a full offline queue does with one more publish
Overflow = Literal["error", "drop_oldest"]
#: called as ``callback(old_state, new_state)`` on every state change
StateCallback = Callable[[ClientState, ClientState], None]


class _ConnectionLost(ConnectionClosed):
    """The connection dropped while a request waited for its reply (internal)."""


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


@dataclass(eq=False)
class _PatternState:
    """A pattern this client holds, with the subscriptions reading it."""

    compiled: Pattern
    subscriptions: list[Subscription]
    last: int | None = None
    since: dict[str, Any] | None = None
    #: the connection the subscribe request went out on (None: not yet sent)
    sent_on: Any = None
    #: True once a subscribe request went out: later ones resume with ``since``
    established: bool = False
    #: the hub answered ``unavailable`` (its backplane is down): retried with backoff
    refused: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class AsyncClient:
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
            raise BadField(f"format must be 'json' or 'msgpack', not {format!r}.")
        if overflow not in ("error", "drop_oldest"):
            raise BadField(f"overflow must be 'error' or 'drop_oldest', not {overflow!r}.")
        if max_pending < 1 or max_queue < 1:
            raise BadField("max_pending and max_queue must be at least 1.")
        self.ws_url = to_ws_url(url)
        self.url = to_http_url(url)
        self.token = token
        self.format: Format = format
        self.reconnect = reconnect
        self.headers = dict(headers or {})
        if token is not None:
            self.headers.setdefault("Authorization", f"Bearer {token}")
        self.max_pending = max_pending
        self.overflow: Overflow = overflow
        self.resend_unacked = resend_unacked
        self.ack_timeout = ack_timeout
        self.request_timeout = request_timeout
        self.open_timeout = open_timeout
        self.connect_timeout = connect_timeout
        self.fail_fast = fail_fast
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_frame_bytes = max_frame_bytes
        self.max_publish_bytes = max_publish_bytes
        self.max_queue = max_queue
        self.close_timeout = close_timeout
        self.on_state_change = on_state_change
        self.on_error = on_error
        self._backoff = Backoff(backoff, random=random, clock=clock)
        self._sleep = sleep

        self._state = ClientState.NEW
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
        self._runner: asyncio.Task[None] | None = None
        self._outbox_ready = asyncio.Event()
        self._room = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._settled = asyncio.Event()  # set when CONNECTED or CLOSED

        #: reconnections made since the first connection
        self.reconnects = 0
        #: the hub's id for the current connection (from its ``welcome``)
        self.client_id: str | None = None
        #: publishes dropped by ``overflow="drop_oldest"``
        self.dropped_publishes = 0
        #: duplicate messages suppressed (seen again after a resume)
        self.duplicates_dropped = 0
        #: gaps handed to subscriptions (from the hub or detected here)
        self.gaps_reported = 0
        #: the last error that ended a connection or came unrequested from the hub
        self.last_error: RtnbError | None = None

    # -- status ----------------------------------------------------------------------

    @property
    def state(self) -> ClientState:
        return self._state

    @property
    def positions(self) -> dict[str, tuple[int, int]]:
        """``(epoch, offset)`` of the last message handed to subscriptions, per topic."""
        return self._tracker.positions

    @property
    def pending(self) -> int:
        """Publishes not yet acknowledged (queued or in flight)."""
        return len(self._outbox) + len(self._in_flight)

    def status(self) -> dict[str, Any]:
        """A snapshot for humans and dashboards."""
        return {
            "state": self._state.value,
            "url": self.ws_url,
            "client_id": self.client_id,
            "reconnects": self.reconnects,
            "pending": self.pending,
            "subscriptions": sorted(self._patterns),
            "refused_subscriptions": sorted(text for text, state in self._patterns.items() if state.refused),
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

    def _in_state(self, state: ClientState) -> bool:
        """Whether the client is in ``state`` now (read after an await: other tasks move it)."""
        return self._state is state

    def _set_state(self, new: ClientState) -> None:
        old = self._state
        if old is new:
            return
        check_transition(old, new)
        self._state = new
        log.debug("%s: %s -> %s", self.ws_url, old.value, new.value)
        self._room.set()  # publishers waiting for room re-check what to do
        if new in (ClientState.CONNECTED, ClientState.CLOSED):
            self._settled.set()
        else:
            self._settled.clear()
        if self.on_state_change is not None:
            try:
                self.on_state_change(old, new)
            except Exception:
                log.exception("on_state_change callback failed on %s -> %s", old.value, new.value)

    # -- lifecycle -------------------------------------------------------------------

    async def connect(self) -> AsyncClient:
        """Open the connection and subscribe what was subscribed before.

        A hub that cannot be reached yet is retried with ``backoff`` for up to
        ``connect_timeout`` seconds (a hub starting a second late does not fail a
        script); ``fail_fast=True`` makes a single attempt. Later losses are
        retried according to ``backoff``.

        Raises:
            Unavailable: the hub cannot be reached (after the retries).
            Unauthorized / Forbidden: the hub refused the credentials.
            ConnectionClosed: the client was closed.
        """
        if self._state is ClientState.CLOSED:
            raise ConnectionClosed("This client is closed; create a new one.")
        if self._state is not ClientState.NEW:
            await self._settled.wait()
            return self
        self._set_state(ClientState.CONNECTING)
        try:
            connection = await connect_with_retries(
                self._open,
                self._backoff,
                self._sleep,
                fail_fast=self.fail_fast,
                connect_timeout=self.connect_timeout,
                target=self.ws_url,
                still_wanted=lambda: self._state is ClientState.CONNECTING,
            )
        except RtnbError as error:
            self.last_error = error
            self._finish(error)
            raise
        self._runner = asyncio.ensure_future(self._run(connection))
        await self._settled.wait()
        if self._in_state(ClientState.CLOSED):  # the state moved while this waited
            raise self.last_error or ConnectionClosed("The client closed while connecting.")
        return self

    async def close(self) -> None:
        """Send what is queued (up to ``close_timeout``), then close for good.

        Publishes still unsent or unacknowledged then fail with
        :class:`ConnectionClosed`; subscriptions end. Safe to call twice.
        """
        if self._state in (ClientState.CLOSED, ClientState.CLOSING):
            if self._runner is not None:
                await asyncio.gather(self._runner, return_exceptions=True)
            return
        was_connected = self._state is ClientState.CONNECTED
        self._set_state(ClientState.CLOSING)
        if was_connected and self.pending:
            try:
                await asyncio.wait_for(self._idle.wait(), self.close_timeout)
            except asyncio.TimeoutError:
                log.warning("closing with %d publishes not acknowledged after %ss", self.pending, self.close_timeout)
        connection = self._connection
        if connection is not None:
            await connection.close()
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        self._finish(None)

    async def __aenter__(self) -> AsyncClient:
        return await self.connect()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _finish(self, error: RtnbError | None) -> None:
        """Go to CLOSED: end subscriptions, fail everything still waiting."""
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
        if self._state is not ClientState.CLOSED:
            self._set_state(ClientState.CLOSED)

    async def _open(self) -> Any:
        """One connection attempt: handshake, welcome, authentication."""
        import websockets
        from websockets.asyncio.client import connect
        from websockets.typing import Subprotocol

        subprotocols = [Subprotocol(SUBPROTOCOL_MSGPACK)] if self.format == "msgpack" else None
        try:
            connection = await connect(
                self.ws_url,
                subprotocols=subprotocols,
                additional_headers=self.headers or None,
                open_timeout=self.open_timeout,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                max_size=self.max_frame_bytes,
                compression=None,
                close_timeout=2.0,
            )
        except websockets.InvalidStatus as error:
            status = error.response.status_code
            if status in (401, 403):
                raise Unauthorized(f"The hub at {self.ws_url} refused the connection (HTTP {status}).") from None
            raise Unavailable(f"The hub at {self.ws_url} answered HTTP {status} instead of a WebSocket.") from None
        except (OSError, asyncio.TimeoutError, websockets.WebSocketException) as error:
            raise Unavailable(f"Cannot reach the hub at {self.ws_url}: {error or type(error).__name__}.") from None
        try:
            welcome = await self._receive_reply(connection, lambda item: item.get("op") == "welcome")
            if welcome.get("version") != PROTOCOL_VERSION:
                raise ProtocolError(
                    f"The hub speaks protocol version {welcome.get('version')}; this client speaks {PROTOCOL_VERSION}."
                )
            self.client_id = welcome.get("client")
            if self.token is not None:
                request_id = next(self._ids)
                await self._send(connection, {"op": "auth", "token": self.token, "id": request_id})
                reply = await self._receive_reply(connection, lambda item: item.get("id") == request_id)
                if reply.get("op") == "error":
                    raise error_from_wire(str(reply.get("code")), str(reply.get("message")), request_id)
        except BaseException:
            await connection.close()
            raise
        log.debug("connected to %s as %s", self.ws_url, self.client_id)
        return connection

    async def _receive_reply(self, connection: Any, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Read frames before the reader runs, until an object ``wanted`` accepts."""
        import websockets

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.open_timeout
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise asyncio.TimeoutError
                frame = await asyncio.wait_for(connection.recv(), remaining)
                self._log_frame("<-", frame)
                for item in split_frame(frame):
                    if isinstance(item, dict) and wanted(item):
                        return item
                    if isinstance(item, dict) and item.get("op") == "error":
                        raise error_from_wire(str(item.get("code")), str(item.get("message")))
        except asyncio.TimeoutError:
            raise Timeout(f"The hub at {self.ws_url} did not answer within {self.open_timeout} s.") from None
        except websockets.ConnectionClosed as error:
            raise Unavailable(f"The hub at {self.ws_url} closed the connection: {error}.") from None

    # -- the connection loop -----------------------------------------------------------

    async def _run(self, connection: Any) -> None:
        """Serve connections until closed or given up, reconnecting in between."""
        try:
            while True:
                await self._session(connection)
                if self._state in (ClientState.CLOSING, ClientState.CLOSED):
                    return
                self._connection_lost()
                if not self.reconnect:
                    self._finish(self.last_error or ConnectionClosed("The connection was lost; reconnect is off."))
                    return
                reconnected = await self._reconnect()
                if reconnected is None:
                    return
                connection = reconnected
                self.reconnects += 1
                log.info("reconnected to %s (reconnection %d)", self.ws_url, self.reconnects)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            # A bug here must not leave callers waiting forever: close loudly.
            log.exception("client loop for %s failed", self.ws_url)
            self.last_error = ConnectionClosed(f"The client failed: {error!r}.")
            self._finish(self.last_error)

    async def _reconnect(self) -> Any:
        """Back off and retry until connected; ``None`` after giving up or on close."""
        while True:
            delay = self._backoff.next_delay()
            if delay is None:
                attempts = self._backoff.attempts
                error = ConnectionClosed(
                    f"Gave up reconnecting to {self.ws_url} after {attempts} attempts"
                    f" (last error: {self.last_error.message if self.last_error else 'none'})."
                )
                log.error("%s", error.message)
                self.last_error = error
                self._finish(error)
                return None
            log.info("reconnecting to %s in %.3f s (attempt %d)", self.ws_url, delay, self._backoff.attempts)
            await self._sleep(delay)
            if self._state is not ClientState.DISCONNECTED:
                return None
            self._set_state(ClientState.CONNECTING)
            try:
                return await self._open()
            except RtnbError as error:
                self.last_error = error
                log.info("reconnection to %s failed: %s", self.ws_url, error.message)
                if self._in_state(ClientState.CONNECTING):  # _open may have moved it
                    self._set_state(ClientState.DISCONNECTED)
                else:
                    return None

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
        self._backoff.disconnected()
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
        self._set_state(ClientState.DISCONNECTED)

    async def _resubscribe(self, connection: Any) -> None:
        """Send every pattern not yet subscribed on ``connection`` and await the replies.

        Loops until none is left, so a ``subscribe`` made meanwhile is not missed;
        the state then turns CONNECTED without yielding to the loop in between.
        """
        while True:
            waiting = [
                state for state in self._patterns.values() if state.sent_on is not connection and not state.refused
            ]
            if not waiting:
                return
            replies = []
            for state in waiting:
                replies.append((state, await self._send_subscribe(connection, state)))
                listening = {sub for subs in self._listeners.values() for sub in subs}
                for subscription in list(state.subscriptions):
                    if subscription._replay_request is not None and subscription not in listening:
                        replies.append((state, await self._send_replay(connection, state, subscription)))
            for state, reply in replies:
                try:
                    await reply
                except _ConnectionLost:
                    raise
                except Timeout:
                    raise _ConnectionLost("The hub did not answer a subscribe request in time.") from None
                except RtnbError as error:
                    if error.code == "unavailable":
                        self._refused(connection, state, error)
                        continue
                    if error.code == "cursor_expired":
                        # The hub no longer holds the checkpoint: ask again with the full map.
                        log.info("the hub no longer holds this client's checkpoint; resuming with the full map")
                        self._tracker.drop_checkpoint()
                        state.sent_on = None
                        continue
                    log.error("the hub refused the subscription %r: %s", state.compiled.text, error.message)
                    self._drop_pattern(state, error)

    def _refused(self, connection: Any, state: _PatternState, error: RtnbError) -> None:
        """The hub cannot take the subscription now (e.g. Redis is down): keep it and retry.

        The application hears of it through ``on_error`` and each subscription's
        ``active`` flag; once the hub takes it again, it resumes from the client's
        positions, so nothing is lost (or the hub says what is, with gaps).
        """
        state.sent_on = None
        state.refused = True
        for subscription in state.subscriptions:
            subscription.active = False
        log.warning("the hub cannot take the subscription %r now (%s); retrying", state.compiled.text, error.message)
        self._report(error)
        if self._refusal_retry is None or self._refusal_retry.done():
            self._refusal_retry = asyncio.ensure_future(self._retry_refused(connection))

    async def _retry_refused(self, connection: Any) -> None:
        """Send refused subscriptions again, with the reconnection backoff, while ``connection`` lasts."""
        attempt = 0
        policy = self._backoff.policy
        while self._connection is connection and any(state.refused for state in self._patterns.values()):
            attempt += 1
            await self._sleep(policy.delay(attempt, self._backoff.random))
            if self._connection is not connection:
                return
            for state in self._patterns.values():
                state.refused = False
            try:
                await self._resubscribe(connection)
            except (_ConnectionLost, ConnectionClosed):
                return
        for state in self._patterns.values():
            if state.sent_on is connection:
                for subscription in state.subscriptions:
                    subscription.active = True

    async def _send_subscribe(self, connection: Any, state: _PatternState) -> asyncio.Future[dict[str, Any]]:
        frame: dict[str, Any] = {"op": "subscribe", "topic": state.compiled.text}
        first = not state.established
        if state.established:
            frame.update(self._tracker.resume_for(state.compiled))
        elif state.last is not None:
            frame["last"] = state.last
        elif state.since is not None:
            frame["since"] = state.since
        state.sent_on = connection
        state.established = True
        # The first request carries the creating subscription's last/since: it is that one's replay.
        spec = {key: frame[key] for key in ("last", "since") if key in frame}
        listeners = [sub for sub in state.subscriptions if first and sub._replay_request == spec]
        return await self._start_request(connection, frame, listeners[:1])

    async def _send_replay(
        self, connection: Any, state: _PatternState, subscription: Subscription
    ) -> asyncio.Future[dict[str, Any]]:
        """Ask the hub to replay what ``subscription`` asked for (``last``/``since``) on this connection."""
        assert subscription._replay_request is not None
        frame: dict[str, Any] = {"op": "subscribe", "topic": state.compiled.text, **subscription._replay_request}
        return await self._start_request(connection, frame, [subscription])

    def _drop_pattern(self, state: _PatternState, error: RtnbError | None) -> None:
        text = state.compiled.text
        if self._patterns.get(text) is state:
            del self._patterns[text]
        self._routes.clear()
        for subscription in state.subscriptions:
            subscription._end(error)
        patterns = [kept.compiled for kept in self._patterns.values()]
        self._tracker.forget(lambda topic: any(pattern.matches(topic) for pattern in patterns))

    # -- requests and replies ----------------------------------------------------------

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

    # -- reading -------------------------------------------------------------------------

    async def _read(self, connection: Any) -> None:
        import websockets

        try:
            async for frame in connection:
                self._log_frame("<-", frame)
                try:
                    items = split_frame(frame)
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

    def _route(self, topic: str) -> tuple[Subscription, ...]:
        subscriptions = self._routes.get(topic)
        if subscriptions is None:
            if len(self._routes) > 100_000:
                self._routes.clear()
            subscriptions = self._routes[topic] = tuple(
                subscription
                for state in self._patterns.values()
                if state.compiled.matches(topic)
                for subscription in state.subscriptions
            )
        return subscriptions

    async def _on_message(self, message: Message) -> None:
        subscriptions = self._route(message.topic)
        if not subscriptions:
            return  # in flight before an unsubscribe
        deliver, gaps = self._tracker.on_message(message.topic, message.epoch, message.offset)
        shared = tuple(sub for sub in subscriptions if sub._own_tracker is None)
        for gap in gaps:
            await self._hand_gap(gap, shared)
        if not deliver:
            self.duplicates_dropped += 1
        for subscription in subscriptions:
            tracker = subscription._own_tracker
            if tracker is None:
                if deliver:
                    await subscription._deliver(message)
                continue
            if subscription._replay_request is not None:
                continue  # its replay request is not answered yet: the replay covers this
            own, own_gaps = tracker.on_message(message.topic, message.epoch, message.offset)
            for gap in own_gaps:
                await self._hand_gap(gap, (subscription,))
            if own:
                await subscription._deliver(message)

    async def _on_gap(self, gap: Gap) -> None:
        subscriptions = self._route(gap.topic)
        if not subscriptions:
            return
        shared = tuple(sub for sub in subscriptions if sub._own_tracker is None)
        for handed in self._tracker.on_gap(gap):
            await self._hand_gap(handed, shared)
        for subscription in subscriptions:
            tracker = subscription._own_tracker
            if tracker is not None and subscription._replay_request is None:
                for handed in tracker.on_gap(gap):
                    await self._hand_gap(handed, (subscription,))

    async def _hand_gap(self, gap: Gap, subscriptions: tuple[Subscription, ...]) -> None:
        self.gaps_reported += 1
        log.warning(
            "gap on %s: offsets %s..%s (%s)",
            gap.topic,
            gap.from_offset,
            "?" if gap.to_offset is None else gap.to_offset,
            gap.reason,
        )
        for subscription in subscriptions:
            await subscription._deliver(gap)

    # -- checkpoints: a bounded resume over any number of topics ---------------------

    def _request_checkpoint_if_due(self) -> None:
        """Ask the hub for a checkpoint when the full ``since`` map would be large and
        enough topics moved after the last one: at most one request at a time and one per
        ``CHECKPOINT_INTERVAL``; a request due sooner waits on a timer (a burst that then
        stops must not leave a large delta behind)."""
        connection = self._connection
        if (
            connection is None
            or self._state is not ClientState.CONNECTED
            or connection is self._checkpoint_unsupported
            or self._checkpoint_request is not None
            or not self._tracker.checkpoint_due()
        ):
            return
        loop = asyncio.get_running_loop()
        wait = self._checkpoint_not_before - loop.time()
        if wait > 0:
            if self._checkpoint_timer is None:
                self._checkpoint_timer = loop.call_later(wait, self._checkpoint_timer_fired)
            return
        self._checkpoint_not_before = loop.time() + CHECKPOINT_INTERVAL
        self._checkpoint_request = asyncio.ensure_future(self._ask_checkpoint(connection))

    def _checkpoint_timer_fired(self) -> None:
        self._checkpoint_timer = None
        self._request_checkpoint_if_due()

    async def _ask_checkpoint(self, connection: Any) -> None:
        try:
            reply = await self._start_request(connection, {"op": "checkpoint"})
            await reply
        except (_ConnectionLost, Timeout, ConnectionClosed):
            return
        except RtnbError as error:
            if error.code == "unknown_op":
                self._checkpoint_unsupported = connection  # an older hub: resume with full maps
            else:
                log.debug("checkpoint refused: %s %s", error.code, error.message)
            return
        finally:
            if self._checkpoint_request is asyncio.current_task():
                self._checkpoint_request = None
        # Still due (a reply without cursor while catching up, or topics moved meanwhile): later.
        self._request_checkpoint_if_due()

    def _on_checkpoint(self, item: dict[str, Any]) -> None:
        """The hub's checkpoint reply, in stream order: the tracker stands exactly at its cursor."""
        cursor, patterns = item.get("cursor"), item.get("patterns")
        if isinstance(cursor, str) and isinstance(patterns, list):
            self._tracker.set_checkpoint(cursor, (pattern for pattern in patterns if isinstance(pattern, str)))
        self._resolve(item)

    def _seed(self, reply: dict[str, Any]) -> None:
        positions = reply.get("positions")
        if not isinstance(positions, dict):
            return
        for topic, position in positions.items():
            if isinstance(position, dict) and isinstance(position.get("offset"), int):
                epoch = position.get("epoch")
                self._tracker.seed(topic, epoch if isinstance(epoch, int) else None, position["offset"])

    def _start_listening(self, reply: dict[str, Any]) -> None:
        """Replaying subscriptions waiting for this reply hear from now on, from where it says."""
        request_id: Any = reply.get("id")  # as the hub echoed it: an id this client never sent finds nothing
        listeners = self._listeners.pop(request_id, None)
        if not listeners:
            return
        positions = reply.get("positions")
        for subscription in listeners:
            tracker = subscription._own_tracker
            if tracker is None or subscription._replay_request is None:
                continue
            since = subscription._replay_request.get("since") or {}
            for topic, position in since.items():
                tracker.seed(topic, position.get("epoch"), position["offset"])
            if isinstance(positions, dict):
                for topic, position in positions.items():
                    if isinstance(position, dict) and isinstance(position.get("offset"), int):
                        epoch = position.get("epoch")
                        tracker.seed(topic, epoch if isinstance(epoch, int) else None, position["offset"])
            subscription._replay_request = None

    def _resolve(self, item: dict[str, Any]) -> None:
        request_id: Any = item.get("id")  # as the hub echoed it: an id this client never sent finds nothing
        future = self._requests.get(request_id)
        if future is not None and not future.done():
            future.set_result(item)

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

    # -- publishing ----------------------------------------------------------------------

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

    # -- subscribing ---------------------------------------------------------------------

    async def subscribe(
        self,
        pattern: str,
        last: int | None = None,
        since: Mapping[str, Any] | None = None,
        callback: ItemCallback | None = None,
    ) -> Subscription:
        """Subscribe to ``pattern`` (``+`` one level, ``#`` the rest).

        Args:
            pattern: e.g. ``"plant/+/temp"``.
            last: first replay the last ``last`` messages of each matching topic.
            since: resume from ``{TOPIC: OFFSET}`` or ``{TOPIC: {"offset": N, "epoch": E}}``
                (the last offsets already seen).
            callback: called with each item (it may be a coroutine function);
                without one, iterate the returned subscription.

        ``last``/``since`` apply when a pattern is first subscribed on this client;
        a second subscription to the same pattern receives from then on.

        Returns:
            The subscription. While offline it is registered and goes out on reconnection.

        Raises:
            InvalidPattern / BadField: bad input.
            ConnectionClosed: the client is closed.
            RtnbError: the hub refused the subscription.
        """
        text = validate_pattern(pattern)
        if last is not None and (isinstance(last, bool) or not isinstance(last, int) or last < 0):
            raise BadField("last must be a non-negative integer.")
        if last is not None and since is not None:
            raise BadField("Give either last or since, not both.")
        wire_since: dict[str, Any] | None = None
        if since is not None:
            cursor = parse_since(dict(since))
            wire_since = {}
            for topic, (offset, epoch) in cursor.items():
                wire_since[topic] = {"offset": offset} if epoch is None else {"offset": offset, "epoch": epoch}
                self._tracker.seed(topic, epoch, offset)
        if self._state in (ClientState.CLOSING, ClientState.CLOSED):
            raise ConnectionClosed("This client is closed.")
        compiled = Pattern.parse(text)
        subscription = Subscription(self, compiled, callback=callback, max_queue=self.max_queue)
        replay = (last is not None or wire_since is not None) and bool(self._patterns)
        if replay:
            # Other subscriptions may already have had what this one asks to replay:
            # it gets its own bookkeeping and hears nothing until the hub answers its
            # request, after which the hub sends the replay, then live messages.
            subscription._own_tracker = ResumeTracker()
            subscription._replay_request = {"last": last} if last is not None else {"since": wire_since}
        self._routes.clear()
        state = self._patterns.get(text)
        if state is not None:
            state.subscriptions.append(subscription)
            if not replay:
                return subscription
            connection = self._connection
            if self._state is ClientState.CONNECTED and connection is not None:
                try:
                    await (await self._send_replay(connection, state, subscription))
                except _ConnectionLost:
                    pass  # sent again after reconnection
            return subscription
        state = _PatternState(compiled, [subscription], last, wire_since)
        self._patterns[text] = state
        connection = self._connection
        if self._state is ClientState.CONNECTED and connection is not None:
            try:
                reply = await self._send_subscribe(connection, state)
                await reply
            except _ConnectionLost:
                pass  # resubscribed with the rest after reconnection
            except RtnbError as error:
                self._drop_pattern(state, error)
                raise
        return subscription

    async def authenticate(self, token: str) -> dict[str, Any]:
        """Switch to a new token: refresh it on the live connection, and use it for reconnections.

        A hub with ``--auth jwt`` closes a connection (4004) when its token
        expires; calling this with a fresh token before then keeps it open.

        Returns:
            The hub's ``authenticated`` reply (``{}`` when not connected right now).

        Raises:
            Unauthorized: the hub refused the token (the connection keeps the old one).
        """
        self.token = token
        self.headers["Authorization"] = f"Bearer {token}"
        connection = self._connection
        if connection is None:
            return {}
        return await (await self._start_request(connection, {"op": "auth", "token": token}))

    async def unsubscribe(self, pattern: str) -> bool:
        """End every subscription to ``pattern`` and tell the hub.

        Returns:
            False if this client held no such subscription.
        """
        state = self._patterns.get(pattern)
        if state is None:
            return False
        await self._drop_and_unsubscribe(state)
        return True

    async def _discard(self, subscription: Subscription) -> None:
        state = self._patterns.get(subscription.pattern)
        if state is None or subscription not in state.subscriptions:
            subscription._end()
            return
        if len(state.subscriptions) > 1:
            state.subscriptions.remove(subscription)
            self._routes.clear()
            subscription._end()
            return
        await self._drop_and_unsubscribe(state)

    async def _drop_and_unsubscribe(self, state: _PatternState) -> None:
        was_sent = state.sent_on is not None and state.sent_on is self._connection
        self._drop_pattern(state, None)
        connection = self._connection
        if was_sent and connection is not None and self._state is ClientState.CONNECTED:
            try:
                await (await self._start_request(connection, {"op": "unsubscribe", "topic": state.compiled.text}))
            except _ConnectionLost:
                pass  # the next connection will not subscribe it
