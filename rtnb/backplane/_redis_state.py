"""The Redis backplane's connection state, and what the hub hears when a node goes down.

The state is ``CONNECTED`` exactly when every serving node has a live
(subscribed and caught-up) listener. A node that goes down moves it to
``DISCONNECTED``, counts a reconnect, and, if the node's listener was live,
tells the subscribers whose patterns reach that node's buckets that live
messages pause (an ``unavailable`` error frame); they resume without loss once
the node is back (see :mod:`~rtnb.backplane._redis_subscriptions`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Collection, Container, Iterable
from typing import Any

from ..core.errors import Unavailable
from ..core.topics import Pattern
from ._redis_keys import bucket_of
from ._redis_nodes import Node
from .base import HubLink

__all__ = ["BackplaneState", "ConnectionState"]

log = logging.getLogger("rtnb.backplane.redis")


class BackplaneState(enum.Enum):
    """Lifecycle of the connection to Redis: ``CONNECTED`` when every node's listener is live."""

    STOPPED = "stopped"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


class ConnectionState:
    """The backplane's state, its reconnect count and the last Redis error, for ``/healthz`` and logs."""

    def __init__(self) -> None:
        self.state = BackplaneState.STOPPED
        self.reconnects = 0
        self.last_error: str | None = None
        #: set while the state is CONNECTED (``start`` waits on it)
        self.connected = asyncio.Event()

    @property
    def running(self) -> bool:
        return self.state is not BackplaneState.STOPPED

    def starting(self) -> None:
        """STOPPED -> CONNECTING.

        Raises:
            RuntimeError: the backplane was started already.
        """
        if self.state is not BackplaneState.STOPPED:
            raise RuntimeError(f"the Redis backplane is {self.state.value}; it can be started only once")
        self.state = BackplaneState.CONNECTING

    def stopping(self) -> bool:
        """Any state -> STOPPED; True when it was CONNECTED (so presence is worth withdrawing)."""
        was_connected = self.state is BackplaneState.CONNECTED
        self.state = BackplaneState.STOPPED
        self.connected.clear()
        return was_connected

    def record(self, error: BaseException | str) -> str:
        """Remember ``error`` as the last one; returns its text."""
        self.last_error = str(error) or type(error).__name__
        return self.last_error

    def update(self, serving: Collection[Node], live: Container[Node]) -> None:
        """CONNECTED when every serving node is live; DISCONNECTED otherwise (unless still connecting)."""
        if self.state is BackplaneState.STOPPED:
            return
        if serving and all(node in live for node in serving):
            self.state = BackplaneState.CONNECTED
            self.last_error = None
            self.connected.set()
        elif self.state is not BackplaneState.CONNECTING:
            self.state = BackplaneState.DISCONNECTED
            self.connected.clear()

    def health(self, serving: Iterable[Node], live: Container[Node]) -> dict[str, Any]:
        """The ``/healthz`` fields of the connection: state, each node's, reconnects, last error."""
        return {
            "ok": self.state is BackplaneState.CONNECTED,
            "state": self.state.value,
            "nodes": {node.name: "connected" if node in live else "disconnected" for node in serving},
            "reconnects": self.reconnects,
            "last_error": self.last_error,
        }

    def went_down(self, node: Node, was_live: bool, hub: HubLink | None) -> None:
        """``node``'s listener failed (``record`` the error first): update the state, tell the hub."""
        if self.state is BackplaneState.STOPPED:
            return
        if was_live or self.state is BackplaneState.CONNECTED:
            self.state = BackplaneState.DISCONNECTED
            self.connected.clear()
        self.reconnects += 1
        if was_live and hub is not None:
            log.warning("lost Redis at %s (%s); reconnecting", node.name, self.last_error)
            lost = node.buckets

            def affected(pattern: Pattern) -> bool:
                return pattern.is_wildcard or bucket_of(pattern.text) in lost

            hub.backplane_unavailable(
                Unavailable(
                    "The Redis backplane is unreachable: publishing fails and live messages pause; "
                    "they resume, without loss, when it is back."
                ),
                affected,
            )
