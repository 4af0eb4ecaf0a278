"""Keep-alives for many connections from one timer.

A per-connection ping task costs a coroutine and a timer for every idle
connection; ten thousand dashboards would mean ten thousand sleeping tasks.
Instead one :class:`Heartbeat` per hub and kind wakes up every ``interval``
seconds, pings every connection it tracks, and ``timeout`` seconds later
declares dead those that did not answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

__all__ = ["Beating", "Heartbeat"]


class Beating(Protocol):
    """A connection the heartbeat can ping."""

    #: loop time of the unanswered ping, ``None`` once the peer has answered
    awaiting_pong_since: float | None

    def send_heartbeat(self) -> None:
        """Send a ping (or a keep-alive comment)."""

    def heartbeat_timed_out(self) -> None:
        """The peer did not answer in time: end the connection."""


class Heartbeat:
    """Pings tracked connections every ``interval`` s; closes silent ones after ``timeout`` s.

    Args:
        interval: seconds between pings; must be > 0.
        timeout: seconds to wait for an answer, at most ``interval``; ``None``
            only pings (keep-alive for transports with no answer, like SSE).
    """

    def __init__(self, interval: float, timeout: float | None) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.interval = interval
        self.timeout = None if timeout is None else min(timeout, interval)
        self.connections: dict[Beating, None] = {}
        self._handles: list[asyncio.TimerHandle] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, connection: Beating) -> None:
        connection.awaiting_pong_since = None
        self.connections[connection] = None
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._schedule(self.interval, self._ping_all)

    def discard(self, connection: Beating) -> None:
        self.connections.pop(connection, None)

    def stop(self) -> None:
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()
        self.connections.clear()
        self._loop = None

    def _schedule(self, delay: float, callback: Callable[[], object]) -> None:
        assert self._loop is not None
        self._handles = [handle for handle in self._handles if not handle.cancelled()][-4:]
        self._handles.append(self._loop.call_later(delay, callback))

    def _ping_all(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        for connection in list(self.connections):
            if connection.awaiting_pong_since is None:
                connection.awaiting_pong_since = now
            connection.send_heartbeat()
        if self.timeout is not None:
            self._schedule(self.timeout, lambda: self._check(now))
        self._schedule(self.interval, self._ping_all)

    def _check(self, pinged_at: float) -> None:
        for connection in list(self.connections):
            since = connection.awaiting_pong_since
            if since is not None and since <= pinged_at:
                self.discard(connection)
                connection.heartbeat_timed_out()
