"""The reconnecting-session skeleton the WebSocket and SSE clients share.

Both clients hold one connection to a hub at a time and keep it alive the same
way; only what a connection is, how one is opened and how it is served differ.
:class:`ReconnectingSession` is that common part:

- the state machine (:class:`~rtnb.client.ClientState`, every move checked);
- ``connect()``: the first connection, retried while the hub cannot be reached
  yet (``connect_timeout``), or a single attempt with ``fail_fast``;
- the reconnection loop: serve a connection until it ends, then back off (one
  :class:`~rtnb.client.Backoff` per client) and open another, until closed, or
  given up (``reconnect=False``, or the policy's ``max_attempts``);
- ``close()``, safe to call twice, and the end in ``CLOSED``.

A client supplies :meth:`_open` (one attempt), :meth:`_session` (one connection,
until it ends), :meth:`_close_connection` and :meth:`_release` (what ``close()``
and the end do beyond the skeleton), and may hook :meth:`_connection_lost` and
:meth:`_state_changed`.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Generic, TypeVar

from ..core.errors import ConnectionClosed, RtnbError
from ._backoff import Backoff, BackoffPolicy
from ._first_connect import connect_with_retries
from ._state import ClientState, check_transition

__all__ = ["ReconnectingSession"]

#: what one connection is (a WebSocket, an HTTP stream)
C = TypeVar("C")
S = TypeVar("S", bound="ReconnectingSession[Any]")


class ReconnectingSession(abc.ABC, Generic[C]):
    """A client's connection lifecycle: connect, serve, lose, back off, reconnect, close.

    Args:
        target: the hub's address, for errors and logs.
        reconnect / backoff / connect_timeout / fail_fast / random / clock / sleep:
            as for :class:`~rtnb.client.AsyncClient`.
    """

    #: what the client calls itself in its errors and logs
    _kind: ClassVar[str] = "client"
    #: why a client with ``reconnect=False`` ends when its connection does
    _ended_without_reconnect: ClassVar[str] = "The connection was lost; reconnect is off."
    #: where the lifecycle is logged
    _log: ClassVar[logging.Logger] = logging.getLogger("rtnb.client")

    def __init__(
        self,
        target: str,
        *,
        reconnect: bool,
        backoff: BackoffPolicy | None,
        connect_timeout: float | None,
        fail_fast: bool,
        random: Callable[[], float],
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[Any]],
    ) -> None:
        self._target = target
        self.reconnect = reconnect
        self.connect_timeout = connect_timeout
        self.fail_fast = fail_fast
        self._backoff = Backoff(backoff, random=random, clock=clock)
        self._sleep = sleep
        self._state = ClientState.NEW
        self._runner: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()  # set when CONNECTED or CLOSED
        #: reconnections made since the first connection
        self.reconnects = 0
        #: the last error that ended a connection or came unrequested from the hub
        self.last_error: RtnbError | None = None

    # -- what a client supplies -------------------------------------------------------

    @abc.abstractmethod
    async def _open(self) -> C:
        """One connection attempt.

        Raises:
            Unavailable: the hub cannot be reached (retried).
            RtnbError: the hub refused (not retried by ``connect()``).
        """

    @abc.abstractmethod
    async def _session(self, connection: C) -> None:
        """Serve ``connection`` until it ends; go ``CONNECTED`` once it is ready (unless closed meanwhile)."""

    @abc.abstractmethod
    async def _close_connection(self, was_connected: bool) -> None:
        """``close()`` was called (now ``CLOSING``): end the current connection, if any."""

    @abc.abstractmethod
    def _release(self, error: RtnbError | None) -> None:
        """The client ends (``error`` says why, ``None`` on ``close()``): end subscriptions, fail waiters."""

    def _connection_lost(self) -> None:
        """A connection ended while the client still wants one (before ``DISCONNECTED``)."""

    def _state_changed(self, old: ClientState, new: ClientState) -> None:
        """Called after every state change."""

    # -- the state machine ------------------------------------------------------------

    @property
    def state(self) -> ClientState:
        return self._state

    def _in_state(self, state: ClientState) -> bool:
        """Whether the client is in ``state`` now (read after an await: other tasks move it)."""
        return self._state is state

    def _set_state(self, new: ClientState) -> None:
        old = self._state
        if old is new:
            return
        check_transition(old, new)
        self._state = new
        self._log.debug("%s: %s -> %s", self._target, old.value, new.value)
        if new in (ClientState.CONNECTED, ClientState.CLOSED):
            self._settled.set()
        else:
            self._settled.clear()
        self._state_changed(old, new)

    # -- lifecycle -------------------------------------------------------------------

    async def connect(self: S) -> S:
        """Open the connection (and subscribe what was subscribed before).

        A hub that cannot be reached yet is retried with ``backoff`` for up to
        ``connect_timeout`` seconds (a hub starting a second late does not fail a
        script); ``fail_fast=True`` makes a single attempt. Later losses are
        retried according to ``backoff``.

        Raises:
            Unavailable: the hub cannot be reached (after the retries).
            Unauthorized / Forbidden: the hub refused the credentials.
            RtnbError: the hub refused the request (e.g. ``InvalidPattern``).
            ConnectionClosed: the client was closed.
        """
        if self._state is ClientState.CLOSED:
            raise ConnectionClosed(f"This {self._kind} is closed; create a new one.")
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
                target=self._target,
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
        """Close for good; safe to call twice.

        The WebSocket client first sends what is queued (up to ``close_timeout``);
        publishes still unsent or unacknowledged then fail with
        :class:`ConnectionClosed`. Subscriptions end after their queued items.
        """
        if self._state in (ClientState.CLOSED, ClientState.CLOSING):
            if self._runner is not None:
                await asyncio.gather(self._runner, return_exceptions=True)
            return
        was_connected = self._state is ClientState.CONNECTED
        self._set_state(ClientState.CLOSING)
        await self._close_connection(was_connected)
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        self._finish(None)

    async def __aenter__(self: S) -> S:
        return await self.connect()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _finish(self, error: RtnbError | None) -> None:
        """Go to CLOSED: end subscriptions, fail everything still waiting."""
        self._release(error)
        if self._state is not ClientState.CLOSED:
            self._set_state(ClientState.CLOSED)

    # -- the connection loop -----------------------------------------------------------

    async def _run(self, connection: C) -> None:
        """Serve connections until closed or given up, reconnecting in between."""
        try:
            while True:
                await self._session(connection)
                if self._state in (ClientState.CLOSING, ClientState.CLOSED):
                    return
                self._backoff.disconnected()
                self._connection_lost()
                self._set_state(ClientState.DISCONNECTED)
                if not self.reconnect:
                    self._finish(self.last_error or ConnectionClosed(self._ended_without_reconnect))
                    return
                reconnected = await self._reconnect()
                if reconnected is None:
                    return
                connection = reconnected
                self.reconnects += 1
                self._log.info("reconnected to %s (reconnection %d)", self._target, self.reconnects)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            # A bug here must not leave callers waiting forever: close loudly.
            self._log.exception("%s loop for %s failed", self._kind, self._target)
            self.last_error = ConnectionClosed(f"The {self._kind} failed: {error!r}.")
            self._finish(self.last_error)

    async def _reconnect(self) -> C | None:
        """Back off and retry until connected; ``None`` after giving up or on close."""
        while True:
            delay = self._backoff.next_delay()
            if delay is None:
                attempts = self._backoff.attempts
                error = ConnectionClosed(
                    f"Gave up reconnecting to {self._target} after {attempts} attempts"
                    f" (last error: {self.last_error.message if self.last_error else 'none'})."
                )
                self._log.error("%s", error.message)
                self.last_error = error
                self._finish(error)
                return None
            self._log.info("reconnecting to %s in %.3f s (attempt %d)", self._target, delay, self._backoff.attempts)
            await self._sleep(delay)
            if self._state is not ClientState.DISCONNECTED:
                return None
            self._set_state(ClientState.CONNECTING)
            try:
                return await self._open()
            except RtnbError as error:
                self.last_error = error
                self._log.info("reconnection to %s failed: %s", self._target, error.message)
                if self._in_state(ClientState.CONNECTING):  # _open may have moved it
                    self._set_state(ClientState.DISCONNECTED)
                else:
                    return None
