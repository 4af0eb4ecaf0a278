"""Stored resume cursors shared through Redis, so any hub of a cluster resumes them.

A hub writes each cursor record (see :mod:`rtnb.core.cursor_store`) to
``{prefix}cursor:ID`` with the store's time to live, in the background; a hub
asked to resume a cursor it did not issue reads the records it lacks from there.
One key per record, so it works on Redis Cluster too. A write still in flight
when a client reconnects elsewhere, or Redis being down, makes the cursor
*expired* there: the hub then reports ``cursor_expired`` gaps, never a silent loss.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..core.errors import RtnbError
from ._redis_commands import KeyedCommands
from ._redis_keys import RedisKeys

__all__ = ["RedisCursorMirror"]

log = logging.getLogger("rtnb.backplane.redis")


class RedisCursorMirror:
    """A :class:`~rtnb.core.cursor_store.CursorMirror` on the backplane's Redis connection.

    Args:
        keys: key names (the prefix).
        commands: sends each command to the node holding its key.
        max_pending: writes in flight at most; beyond, records stay on this hub only.
    """

    def __init__(self, keys: RedisKeys, commands: KeyedCommands, max_pending: int = 10_000) -> None:
        self.keys = keys
        self.commands = commands
        self.max_pending = max_pending
        self._pending: set[asyncio.Task[Any]] = set()

    def _key(self, record_id: str) -> str:
        return f"{self.keys.prefix}cursor:{record_id}"

    def write(self, record_id: str, data: bytes, ttl: float) -> None:
        if len(self._pending) >= self.max_pending:
            return  # Redis is slow or down: this record stays on this hub only
        key, milliseconds = self._key(record_id), max(1, round(ttl * 1000))
        task = asyncio.ensure_future(self._write(key, data, milliseconds))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, key: str, data: bytes, milliseconds: int) -> None:
        try:
            await self.commands.call(key, lambda redis: redis.set(key, data, px=milliseconds))
        except RtnbError as error:
            log.debug("could not share a resume cursor through Redis: %s", error.message)

    async def read(self, record_id: str) -> bytes | None:
        try:
            key = self._key(record_id)
            data = await self.commands.call(key, lambda redis: redis.get(key))
        except RtnbError:
            return None
        return data if isinstance(data, bytes) else None

    async def close(self) -> None:
        """Wait briefly for writes in flight (at shutdown)."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=1.0)
