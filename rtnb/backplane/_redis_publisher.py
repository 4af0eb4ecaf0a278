"""Batched publishes: one round trip per node for everything that arrived meanwhile.

Publishes are queued per node. A node with nothing in flight sends its queue
at the end of the current loop turn; while a batch is in flight, new publishes
wait and go together in the next one. So a quiet hub pays one round trip per
message (no added latency) and a busy one pays one round trip per batch, with
batches growing with the load. Within a batch the messages of each bucket go
to one script call (:data:`~rtnb.backplane._redis_scripts.PUBLISH_SCRIPT`) in
arrival order, and only one batch per node is in flight, so offsets follow
the order in which the hub accepted the publishes, exactly as one call per
message did. Each caller gets its own acknowledgement (the message with its
offset) or its own :class:`~rtnb.core.errors.Unavailable`, in the order the
publishes came (so a connection's acks, which go out in request order, seldom
wait for one another).

The hub's own work per message is what limits a busy publisher, so a batch is
encoded here, straight to RESP, and written as one buffer on a connection kept
for publishing: one script argument per message (built with one format
operation from the payload JSON the hub already has), each topic's key names
encoded once and cached.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from typing import Any

import orjson

from ..core.errors import Unavailable
from ..core.history import HistoryLimits
from ..core.message import Message
from ._redis_keys import RedisKeys, bucket_of
from ._redis_nodes import Node, Topology, execute_command
from ._redis_scripts import PUBLISH_SCRIPT
from ._tasks import cancel_and_wait

__all__ = ["Publisher"]

log = logging.getLogger("rtnb.backplane.redis")

_SCRIPT = PUBLISH_SCRIPT.encode()
_SHA = hashlib.sha1(_SCRIPT).hexdigest().encode()

#: Messages per script call at most (a few hundred kB of arguments at 1 kB each).
MAX_BATCH = 512
#: Messages per round trip to one node at most, so no single batch holds Redis (or the hub) for long.
MAX_ROUND = 2048
#: Topics whose encoded key names are kept (a cache; cleared whole when full).
MAX_CACHED_TOPICS = 10_000

_dumps = orjson.dumps


def _bulk(value: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


class _Pending:
    """One queued publish (a plain slotted class: one is made per message)."""

    __slots__ = ("bucket", "data", "data_json", "future", "outcome", "topic", "ts")

    def __init__(
        self, bucket: int, topic: str, data: Any, ts: float, data_json: bytes, future: asyncio.Future[Message]
    ) -> None:
        self.bucket = bucket
        self.topic = topic
        self.data = data
        self.ts = ts
        self.data_json = data_json
        self.future = future
        self.outcome: Message | Unavailable | None = None


class Publisher:
    """Queues publishes per node and sends them in batches.

    Each node gets one connection of its own for publishing (made by its
    redis-py pool, so with every option of the URL: TLS, login, database),
    on which the hub writes each batch as one buffer of script calls it
    encoded itself, then reads one reply per call. redis-py's pipeline would
    encode every argument of every message through several layers of Python;
    here a message is one argument built with one format operation, and the
    key names of each topic are encoded once and reused.

    Args:
        topology: where each bucket lives.
        keys: key names.
        limits: history bounds applied by the script.
        clocks: the highest clock seen per bucket (shared with the listener side).
        unavailable: turns a Redis error into the error callers get.
    """

    def __init__(
        self,
        topology: Topology,
        keys: RedisKeys,
        limits: HistoryLimits,
        clocks: dict[int, int],
        unavailable: Callable[[BaseException | str, str], Unavailable],
    ) -> None:
        self.topology = topology
        self.keys = keys
        self.limits = limits
        self.clocks = clocks
        self.unavailable = unavailable
        self.batches = 0
        self._queues: dict[Node, list[_Pending]] = {}
        self._busy: set[Node] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._connections: dict[Node, Any] = {}
        self._buckets: dict[str, int] = {}
        #: per topic: its three keys and its two arguments, as RESP bulk strings
        self._topic_parts: dict[str, tuple[bytes, bytes]] = {}
        max_age_ms = 0 if limits.max_age is None else int(limits.max_age * 1000)
        self._limit_parts = _bulk(b"%d" % limits.max_messages) + _bulk(b"%d" % max_age_ms)

    def publish(self, topic: str, data: Any, ts: float, data_json: bytes) -> asyncio.Future[Message]:
        """Queue one message; the future gets it back with its offset and epoch.

        Raises:
            Unavailable: the topology is not known (Redis never answered yet).
        """
        bucket = self._buckets.get(topic)
        if bucket is None:
            if len(self._buckets) >= MAX_CACHED_TOPICS:
                self._buckets.clear()
            bucket = self._buckets[topic] = bucket_of(topic)
        try:
            node = self.topology.node_of(bucket)
        except LookupError as error:
            raise self.unavailable(error, "the message was not published.") from None
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(node)
        if queue is None:
            queue = self._queues[node] = []
        queue.append(_Pending(bucket, topic, data, ts, data_json, future))
        if node not in self._busy:
            self._start_draining(node)
        return future

    def _start_draining(self, node: Node) -> None:
        self._busy.add(node)
        task = asyncio.ensure_future(self._drain(node))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, node: Node) -> None:
        """Send ``node``'s queue batch after batch, one in flight, until it is empty."""
        try:
            await self._drop_if_closed(node)
            while True:
                queue = self._queues.get(node)
                if not queue:
                    return
                if len(queue) > MAX_ROUND:
                    batch, self._queues[node] = queue[:MAX_ROUND], queue[MAX_ROUND:]
                else:
                    batch = queue
                    del self._queues[node]
                try:
                    await self._send(node, batch)
                except Exception as error:  # a bug or an unexpected reply: fail the batch, never leave it waiting
                    log.exception("publishing a batch to %s failed", node.name)
                    self._fail(batch, self.unavailable(error, "the message was not published."))
        finally:
            self._busy.discard(node)
            if self._queues.get(node):  # arrived as the loop ended: go again
                self._start_draining(node)

    def _topic(self, topic: str) -> tuple[bytes, bytes]:
        """``topic``'s keys (epoch, offset, stream) and arguments (name, JSON name), encoded once."""
        parts = self._topic_parts.get(topic)
        if parts is None:
            if len(self._topic_parts) >= MAX_CACHED_TOPICS:
                self._topic_parts.clear()
            keys = self.keys
            parts = self._topic_parts[topic] = (
                _bulk(keys.epoch(topic).encode())
                + _bulk(keys.offset(topic).encode())
                + _bulk(keys.stream(topic).encode()),
                _bulk(topic.encode()) + _bulk(_dumps(topic)),
            )
        return parts

    def _command(self, bucket: int, items: list[_Pending]) -> bytes:
        """One ``EVALSHA`` of the publish script for ``items`` (all of ``bucket``), as RESP."""
        keys = self.keys
        numbers: dict[str, int] = {}
        for item in items:
            if item.topic not in numbers:
                numbers[item.topic] = len(numbers) + 1
        key_parts = [_bulk(keys.clock(bucket).encode()), _bulk(keys.topics(bucket).encode())]
        topic_parts = []
        for topic in numbers:
            topic_keys, topic_arguments = self._topic(topic)
            key_parts.append(topic_keys)
            topic_parts.append(topic_arguments)
        key_count = 2 + 3 * len(numbers)
        messages = [
            b"$%d\r\n%s\r\n" % (len(packed), packed)
            for packed in [b"%d %s %s" % (numbers[item.topic], _dumps(item.ts), item.data_json) for item in items]
        ]
        header = b"*%d\r\n$7\r\nEVALSHA\r\n%s%s" % (
            3 + key_count + 6 + 2 * len(numbers) + len(items),
            _bulk(_SHA),
            _bulk(b"%d" % key_count),
        )
        arguments = (
            _bulk(keys.channel(bucket).encode())
            + self._limit_parts
            + _bulk(b"%d" % self.clocks.get(bucket, 0))
            + (b"$8\r\nSPUBLISH\r\n" if self.topology.sharded else b"$7\r\nPUBLISH\r\n")
            + _bulk(b"%d" % len(numbers))
        )
        return b"".join((header, *key_parts, arguments, *topic_parts, *messages))

    async def _send(self, node: Node, batch: list[_Pending]) -> None:
        groups: dict[int, list[_Pending]] = {}
        for item in batch:
            group = groups.get(item.bucket)
            if group is None:
                groups[item.bucket] = [item]
            else:
                group.append(item)
        calls: list[list[_Pending]] = []
        for items in groups.values():
            if len(items) <= MAX_BATCH:
                calls.append(items)
            else:
                calls += [items[start : start + MAX_BATCH] for start in range(0, len(items), MAX_BATCH)]
        self.batches += 1
        import redis.exceptions

        try:
            results = await self._run(node, calls)
            if any(isinstance(result, redis.exceptions.NoScriptError) for result in results):
                await execute_command(node.client, "SCRIPT", "LOAD", _SCRIPT)
                again = [
                    items
                    for items, result in zip(calls, results, strict=True)
                    if isinstance(result, redis.exceptions.NoScriptError)
                ]
                retried = iter(await self._run(node, again))
                results = [
                    next(retried) if isinstance(result, redis.exceptions.NoScriptError) else result
                    for result in results
                ]
        except (redis.exceptions.RedisError, OSError, asyncio.TimeoutError) as error:
            self._fail(batch, self.unavailable(error, "the message was not published."))
            return
        clocks = self.clocks
        for items, result in zip(calls, results, strict=True):
            if isinstance(result, BaseException):
                if "MOVED" in str(result) or "ASK" in str(result):
                    log.info("Redis Cluster moved a slot (%s); relearning the topology", result)
                    task = asyncio.ensure_future(self._rediscover())
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                failure = str(self.unavailable(result, "the message was not published."))
                for item in items:
                    item.outcome = Unavailable(failure)
                continue
            clock, epochs, offsets = result
            bucket = items[0].bucket
            if clock > clocks.get(bucket, 0):
                clocks[bucket] = clock
            if len(epochs) == 1:
                epoch = epochs[0]
                for item, offset in zip(items, offsets, strict=True):
                    item.outcome = Message(item.topic, offset, epoch, item.ts, item.data, data_json=item.data_json)
                continue
            numbers: dict[str, int] = {}
            for item in items:
                if item.topic not in numbers:
                    numbers[item.topic] = len(numbers)
            for item, offset in zip(items, offsets, strict=True):
                item.outcome = Message(
                    item.topic, offset, epochs[numbers[item.topic]], item.ts, item.data, data_json=item.data_json
                )
        # Answered in the order the publishes came, not bucket by bucket: a connection's
        # publishes then finish in its request order, and its acks go out without waiting.
        for item in batch:
            future, outcome = item.future, item.outcome
            if future.done():
                continue
            if isinstance(outcome, Message):
                future.set_result(outcome)
            else:
                future.set_exception(outcome or Unavailable("Redis gave no answer for this message."))

    @staticmethod
    def _fail(items: list[_Pending], failure: Unavailable) -> None:
        for item in items:
            if not item.future.done():
                item.future.set_exception(Unavailable(str(failure)))

    async def _run(self, node: Node, calls: list[list[_Pending]]) -> list[Any]:
        """One round trip: every call of the batch written at once on ``node``; errors come back per call.

        Raises:
            redis errors, OSError: the connection failed (it is dropped; the next batch opens another).
        """
        import redis.exceptions

        connection: Any = self._connections.get(node)
        if connection is None:
            pool: Any = node.client.connection_pool  # make_connection is unannotated in redis-py
            connection = self._connections[node] = pool.make_connection()
        try:
            await connection.send_packed_command(
                b"".join([self._command(items[0].bucket, items) for items in calls]), check_health=False
            )
            results: list[Any] = []
            for _ in calls:
                try:
                    results.append(await connection.read_response())
                except redis.exceptions.ResponseError as error:  # this call's error; the connection is fine
                    results.append(error)
            return results
        except BaseException:
            # Replies may still be on their way: this connection cannot be trusted any more.
            if self._connections.get(node) is connection:
                del self._connections[node]
            with contextlib.suppress(Exception):
                await connection.disconnect()
            raise

    async def _drop_if_closed(self, node: Node) -> None:
        """Drop ``node``'s publishing connection if the server closed it while it sat idle.

        Redis (``timeout``), a proxy or a restart may close an idle connection;
        writing a batch on it would fail that batch, and a failed batch cannot be
        sent again (Redis may have run part of it). redis-py's pool makes the
        same check before lending a connection; here it runs once per drain, so
        only when publishing resumes after a pause, never between the batches of
        a busy hub.
        """
        import redis.exceptions

        connection: Any = self._connections.get(node)
        if connection is None or not connection.is_connected:
            return
        # redis-py 8 renamed the check (can_read_destructive is deprecated there); 5.x has only the old name.
        unread = connection.can_read if hasattr(connection, "can_read") else connection.can_read_destructive
        try:
            if not await unread():
                return  # open, and nothing unread: fit to use
        except (redis.exceptions.ConnectionError, OSError):
            pass  # closed by the server
        if self._connections.get(node) is connection:
            del self._connections[node]
        with contextlib.suppress(Exception):
            await connection.disconnect()

    def forget(self, node: Node) -> None:
        """``node`` was lost: drop its publishing connection, so the next batch opens a fresh one.

        A connection to a Redis that went away (or restarted) would fail the
        first batch sent after it returns.
        """
        connection = self._connections.pop(node, None)
        if connection is not None:
            task = asyncio.ensure_future(connection.disconnect())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _rediscover(self) -> None:
        try:
            await self.topology.discover()
        except Exception as error:
            log.warning("could not relearn the Redis Cluster topology: %s", error)

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        for queue in self._queues.values():
            self._fail(queue, Unavailable("The Redis backplane stopped."))
        self._queues.clear()
        connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            with contextlib.suppress(Exception):
                await connection.disconnect()
