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
offset) or its own :class:`~rtnb.core.errors.Unavailable`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
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
_SHA = hashlib.sha1(_SCRIPT).hexdigest()

#: Messages per script call at most (a few hundred kB of arguments at 1 kB each).
MAX_BATCH = 512
#: Messages per round trip to one node at most, so no single batch holds Redis (or the hub) for long.
MAX_ROUND = 2048


@dataclass(slots=True)
class _Pending:
    bucket: int
    topic: str
    data: Any
    ts: float
    data_json: bytes
    future: asyncio.Future[Message]


class Publisher:
    """Queues publishes per node and sends them in batches.

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

    def publish(self, topic: str, data: Any, ts: float, data_json: bytes) -> asyncio.Future[Message]:
        """Queue one message; the future gets it back with its offset and epoch.

        Raises:
            Unavailable: the topology is not known (Redis never answered yet).
        """
        bucket = bucket_of(topic)
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
            self._busy.add(node)
            task = asyncio.ensure_future(self._drain(node))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return future

    async def _drain(self, node: Node) -> None:
        """Send ``node``'s queue batch after batch, one in flight, until it is empty."""
        try:
            while True:
                queue = self._queues.get(node)
                if not queue:
                    return
                batch, self._queues[node] = queue[:MAX_ROUND], queue[MAX_ROUND:]
                try:
                    await self._send(node, batch)
                except Exception as error:  # a bug or an unexpected reply: fail the batch, never leave it waiting
                    log.exception("publishing a batch to %s failed", node.name)
                    for item in batch:
                        if not item.future.done():
                            item.future.set_exception(self.unavailable(error, "the message was not published."))
        finally:
            self._busy.discard(node)
            if self._queues.get(node):  # arrived as the loop ended: go again
                self._busy.add(node)
                task = asyncio.ensure_future(self._drain(node))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _command(self, bucket: int, items: list[_Pending]) -> list[Any]:
        keys = self.keys
        topics: dict[str, int] = {}
        for item in items:
            topics.setdefault(item.topic, len(topics) + 1)
        key_names: list[str] = [keys.clock(bucket), keys.topics(bucket)]
        arguments: list[Any] = [
            keys.channel(bucket),
            self.limits.max_messages,
            0 if self.limits.max_age is None else int(self.limits.max_age * 1000),
            self.clocks.get(bucket, 0),
            "SPUBLISH" if self.topology.sharded else "PUBLISH",
            len(topics),
        ]
        for topic in topics:
            key_names += (keys.epoch(topic), keys.offset(topic), keys.stream(topic))
            arguments += (topic, orjson.dumps(topic))
        for item in items:
            arguments += (topics[item.topic], orjson.dumps(item.ts), item.data_json, int(item.ts * 1000))
        return ["EVALSHA", _SHA, len(key_names), *key_names, *arguments]

    async def _send(self, node: Node, batch: list[_Pending]) -> None:
        groups: dict[int, list[_Pending]] = {}
        for item in batch:
            groups.setdefault(item.bucket, []).append(item)
        calls: list[list[_Pending]] = []
        for items in groups.values():
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
            failure = self.unavailable(error, "the message was not published.")
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(Unavailable(str(failure)))
            return
        for items, result in zip(calls, results, strict=True):
            if isinstance(result, BaseException):
                if "MOVED" in str(result) or "ASK" in str(result):
                    log.info("Redis Cluster moved a slot (%s); relearning the topology", result)
                    task = asyncio.ensure_future(self._rediscover())
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                failure = self.unavailable(result, "the message was not published.")
                for item in items:
                    if not item.future.done():
                        item.future.set_exception(Unavailable(str(failure)))
                continue
            clock, epochs, offsets = result
            bucket = items[0].bucket
            if int(clock) > self.clocks.get(bucket, 0):
                self.clocks[bucket] = int(clock)
            numbers: dict[str, int] = {}
            for item in items:
                numbers.setdefault(item.topic, len(numbers))
            for item, offset in zip(items, offsets, strict=True):
                message = Message(
                    item.topic,
                    int(offset),
                    int(epochs[numbers[item.topic]]),
                    item.ts,
                    item.data,
                    data_json=item.data_json,
                )
                if not item.future.done():
                    item.future.set_result(message)

    async def _run(self, node: Node, calls: list[list[_Pending]]) -> list[Any]:
        """One round trip: every call of the batch pipelined on ``node``; errors come back per call."""
        if len(calls) == 1:
            import redis.exceptions

            try:
                return [await execute_command(node.client, *self._command(calls[0][0].bucket, calls[0]))]
            except redis.exceptions.ResponseError as error:
                return [error]
        async with node.client.pipeline(transaction=False) as pipe:
            for items in calls:
                pipe.execute_command(*self._command(items[0].bucket, items))
            return list(await pipe.execute(raise_on_error=False))

    async def _rediscover(self) -> None:
        try:
            await self.topology.discover()
        except Exception as error:
            log.warning("could not relearn the Redis Cluster topology: %s", error)

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        for queue in self._queues.values():
            for item in queue:
                if not item.future.done():
                    item.future.set_exception(Unavailable("The Redis backplane stopped."))
        self._queues.clear()
