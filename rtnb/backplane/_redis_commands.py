"""Commands to the node that holds a key: history reads, lost epochs, topic resets, stored cursors.

Everything here is one request and one answer (or a gap) on the node that
holds the key asked about, with the Redis failure turned into the hub's
:class:`~rtnb.core.errors.Unavailable` (503) at this boundary. Publishing
(batched) and listening (a loop per node) have modules of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..core.errors import Unavailable
from ..core.history import Gap
from ..core.topics import Pattern
from ._redis_history import Delivered
from ._redis_keys import BUCKETS, RedisKeys, bucket_of
from ._redis_nodes import Topology, redis_errors
from ._redis_scripts import RESET_SCRIPT
from .base import ReadResult

__all__ = ["KeyedCommands"]

log = logging.getLogger("rtnb.backplane.redis")

#: What reaching a node can fail with before redis-py is imported (it is imported lazily).
_BASIC_ERRORS: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError, LookupError)


class KeyedCommands:
    """Sends each command to the node that holds its key.

    Args:
        keys: key names.
        delivered: this hub's delivery cursors (they cap history reads).
        topology: the current topology, or None while the backplane is not running.
        unavailable: turns a Redis error into the error callers get (and records it).
        record_error: records a Redis error as the last one (for ``/healthz``).
        command_timeout: seconds before a command is given up as failed.
        lost_limits: how long (seconds) and how many (per bucket) epochs lost by resets are
            remembered; None disables either limit (see :data:`~rtnb.backplane._redis_scripts.RESET_SCRIPT`).
    """

    def __init__(
        self,
        keys: RedisKeys,
        delivered: Delivered,
        topology: Callable[[], Topology | None],
        unavailable: Callable[[BaseException | str, str], Unavailable],
        record_error: Callable[[BaseException | str], object],
        command_timeout: float,
        lost_limits: tuple[float | None, int | None] = (None, None),
    ) -> None:
        self.keys = keys
        self.delivered = delivered
        self.topology = topology
        self.unavailable = unavailable
        self.record_error = record_error
        self.command_timeout = command_timeout
        retention, most = lost_limits
        self._lost_arguments = (0 if retention is None else max(1, int(retention * 1000)), most or 0)
        self.errors = _BASIC_ERRORS
        self._background: set[asyncio.Task[Any]] = set()

    def use_redis_errors(self) -> None:
        """Count redis-py's errors as "unreachable" too (called once redis-py is imported, at start)."""
        self.errors = redis_errors()

    def client_for(self, topic: str) -> Any:
        """The redis-py client of the node holding ``topic``.

        Raises:
            Unavailable: the backplane is not running, or no node holds the topic now.
        """
        topology = self.topology()
        if topology is None:
            raise Unavailable("The Redis backplane is not running.")
        try:
            return topology.node_of(bucket_of(topic)).client
        except LookupError as error:
            raise self.unavailable(error, "try again when it is back.") from None

    async def call(self, key: str, command: Callable[[Any], Awaitable[Any]]) -> Any:
        """``command`` on the client of the node that holds ``key``.

        Raises:
            Unavailable: the backplane is not running, or that node cannot be reached.
        """
        topology = self.topology()
        if topology is None:
            raise Unavailable("The Redis backplane is not running.")
        try:
            return await asyncio.wait_for(command(topology.node_for(key).client), self.command_timeout)
        except self.errors as error:
            raise self.unavailable(error, "try again when it is back.") from None

    async def read_since(self, topic: str, offset: int, epoch: int | None) -> ReadResult:
        """Messages after ``offset`` up to what this hub has delivered, with gaps for what is gone.

        When Redis cannot be read, the range comes back as a gap with reason
        ``unavailable`` so the subscriber knows, and can ask again.
        """
        failures: tuple[type[BaseException], ...] = (*self.errors, Unavailable)
        try:
            return await self.delivered.read_since(lambda: self.client_for(topic), topic, offset, epoch)
        except failures as error:
            self.record_error(error)
            tracked = self.delivered.tracked.get(topic)
            if tracked is None:
                return [Gap(topic, offset + 1, None, "unavailable")], [], None
            return (
                [Gap(topic, offset + 1, tracked.offset, "unavailable", tracked.epoch)],
                [],
                (tracked.epoch, tracked.offset),
            )

    async def lost_epochs(self, pattern: Pattern) -> dict[str, tuple[int, int]]:
        """Epochs reset topics matching ``pattern`` lost: topic -> (epoch, last offset).

        Each bucket keeps its own ``lost`` hash (beside its topics, in its hash
        slot, so the reset script stays one call on one shard); an exact pattern
        reads one bucket, a wildcard every bucket.

        Raises:
            Unavailable: Redis cannot be read.
        """
        buckets = [bucket_of(pattern.text)] if not pattern.is_wildcard else range(BUCKETS)
        lost: dict[str, tuple[int, int]] = {}
        for bucket in buckets:
            key = self.keys.lost(bucket)
            found = await self.call(key, _hgetall(key))
            for raw_topic, raw_place in found.items():
                topic = raw_topic.decode() if isinstance(raw_topic, bytes) else str(raw_topic)
                if pattern.matches(topic):
                    place = raw_place.decode() if isinstance(raw_place, bytes) else str(raw_place)
                    epoch, _, offset = place.partition(":")
                    lost[topic] = (int(epoch), int(offset))
        return lost

    def reset_topic(self, topic: str) -> None:
        """Start a new epoch for ``topic`` in Redis (in the background; a failure is logged)."""
        self.delivered.forget(topic)
        keys, bucket = self.keys, bucket_of(topic)
        with contextlib.suppress(Unavailable):
            client = self.client_for(topic)
            task = asyncio.ensure_future(
                client.eval(
                    RESET_SCRIPT,
                    6,
                    keys.epoch(topic),
                    keys.offset(topic),
                    keys.stream(topic),
                    keys.topics(bucket),
                    keys.lost(bucket),
                    keys.lost_at(bucket),
                    topic,
                    *self._lost_arguments,
                )
            )
            self._background.add(task)
            task.add_done_callback(self._finished)

    @property
    def pending(self) -> set[asyncio.Task[Any]]:
        """Resets still in flight."""
        return self._background

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("redis backplane task failed: %s", task.exception())


def _hgetall(key: str) -> Callable[[Any], Awaitable[Any]]:
    """A command reading hash ``key`` from a client (for :meth:`KeyedCommands.call`)."""

    def command(client: Any) -> Awaitable[Any]:
        reply: Awaitable[Any] = client.hgetall(key)  # redis-py's asyncio client: an awaitable reply
        return reply

    return command
