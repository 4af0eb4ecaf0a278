"""Checkpoints: a bounded resume cursor over any number of topics, asked of the hub now and then."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..core.errors import (
    ConnectionClosed,
    RtnbError,
    Timeout,
)
from ._requests import ClientRequests, _ConnectionLost
from ._state import ClientState

__all__ = ["CHECKPOINT_INTERVAL", "CheckpointRequests"]

log = logging.getLogger("rtnb.client")


#: seconds between two checkpoint requests at most (each costs the hub a cursor record)
CHECKPOINT_INTERVAL = 1.0


class CheckpointRequests(ClientRequests):
    """Asks the hub for a checkpoint when one is due, and keeps the cursor it answers."""

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
