"""One listening loop per Redis node, reconnecting with backoff.

The topology is learnt first (retrying until some node answers); then each
node that holds buckets gets a loop that opens a health-checked listener,
hands it to ``connect`` (subscribe, catch up, go live), feeds every push to
``handle``, and on any failure reports it to ``went_down``, relearns a
cluster's slot map, waits (exponential backoff with jitter) and starts again.
A node that appears after a slot change gets its own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from typing import Any

from ._redis_listener import Listener
from ._redis_nodes import Node, Topology
from ._tasks import cancel_and_wait

__all__ = ["Links"]


class Links:
    """The listening loops of one hub, one per node.

    Args:
        topology: the nodes.
        new_listener: a fresh, unopened listener for a node.
        connect: opens, subscribes and catches up a listener (raises on failure).
        handle: one push read from a live listener.
        went_down: a node's listener failed (or fell silent) with this error.
        record_error: no node answered the topology discovery, with this error.
        running: False once the backplane stops.
        errors: the exceptions that mean "Redis is unreachable".
        backoff: (initial, maximum) seconds between reconnects.
    """

    def __init__(
        self,
        topology: Topology,
        new_listener: Callable[[Node], Listener],
        connect: Callable[[Node, Listener], Awaitable[None]],
        handle: Callable[[Node, list[Any]], Awaitable[None]],
        went_down: Callable[[Node, BaseException], None],
        record_error: Callable[[BaseException], object],
        running: Callable[[], bool],
        errors: tuple[type[BaseException], ...],
        backoff: tuple[float, float],
    ) -> None:
        self.topology = topology
        self.new_listener = new_listener
        self.connect = connect
        self.handle = handle
        self.went_down = went_down
        self.record_error = record_error
        self.running = running
        self.errors = errors
        self.initial, self.maximum = backoff
        self._tasks: dict[Node, asyncio.Task[None]] = {}

    async def discover_forever(self) -> None:
        """Learn the topology (retrying with backoff), then start one loop per node."""
        delay = self.initial
        while self.running():
            try:
                await self.topology.discover()
            except self.errors as error:
                self.record_error(error)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self.maximum)
                continue
            self.listen_to_every_node()
            return

    def listen_to_every_node(self) -> None:
        for node in self.topology.serving():
            task = self._tasks.get(node)
            if task is None or task.done():
                self._tasks[node] = asyncio.ensure_future(self._listen_forever(node))

    async def _listen_forever(self, node: Node) -> None:
        """Hold ``node``'s listener; reconnect with backoff whenever it fails or falls silent."""
        delay = self.initial
        while self.running():
            listener = self.new_listener(node)
            try:
                await self.connect(node, listener)
                delay = self.initial
                while self.running():
                    await self.handle(node, await listener.read())
            except self.errors as error:  # ListenerLost is an OSError
                self.went_down(node, error)
                # Idle pooled connections went to the Redis we lost: drop them, so the
                # first publish after it returns does not fail on a dead socket.
                with contextlib.suppress(*self.errors):
                    await node.client.connection_pool.disconnect(inuse_connections=False)
                if self.topology.cluster:
                    with contextlib.suppress(*self.errors):
                        await self.topology.discover()
                        self.listen_to_every_node()
            finally:
                await listener.close()
            if not self.running() or not node.buckets:
                return
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.maximum)

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks.values())
        self._tasks.clear()
