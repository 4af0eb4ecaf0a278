"""The hub: one object every transport talks to.

Transports (WebSocket, SSE, long polling, HTTP publish) are thin adapters. Each
connection registers a :class:`Sink` (how to write to it) and gets a
:class:`~rtnb.core.fanout.Member`; then it calls :meth:`Hub.publish`,
:meth:`Hub.subscribe` and :meth:`Hub.unsubscribe`. The hub owns the fan-out,
the backplane and the counters, and it runs on one asyncio event loop.

Flow of a message: ``publish`` -> backplane assigns the offset and stores it ->
``deliver`` -> fan-out queues it on every interested group -> at the end of the
loop turn ``flush`` hands each group's batch to its members' sinks, which write
the same pre-encoded bytes to every member.

This module holds the hub's lifecycle, connections, publish and the events the
backplane sends; the rest is split by job: ``_hub_config.py`` (:class:`HubConfig`,
:class:`HubStats`), ``_hub_protocols.py`` (:class:`Sink`, :class:`Component`),
``_hub_state.py`` (the fields every part shares), ``_hub_delivery.py`` (flush,
slow consumers, catch-up), ``_hub_presence.py`` and ``_hub_subscribe.py``
(subscribe, replay, resume cursors). Every name is re-exported from here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from ..core.backplane import Backplane
from ..core.close_codes import CloseCode
from ..core.cursor_store import CursorIssuer
from ..core.errors import MessageTooBig, Unavailable
from ..core.fanout import Fanout, Member, MemberState
from ..core.history import Gap
from ..core.memory_backplane import MemoryBackplane
from ..core.message import Message, check_payload, encode_json
from ..core.topics import Pattern, validate_topic
from ._hub_config import HubConfig, HubStats
from ._hub_protocols import Component, ComponentMetric, Sink
from ._hub_subscribe import HubSubscriptions
from .heartbeat import Heartbeat

if TYPE_CHECKING:
    from ..core.backplane import LocalBackplane

__all__ = ["Component", "ComponentMetric", "Hub", "HubConfig", "HubStats", "Sink"]

log = logging.getLogger("rtnb.hub")


class Hub(HubSubscriptions):
    """Topics, subscriptions, history and fan-out behind every transport.

    Args:
        config: limits and timings.
        backplane: where offsets and history live; in-memory by default. The caller
            builds any other, e.g. ``RedisBackplane(url, limits=config.history)``.
        clock: seconds since the epoch, for message timestamps.
    """

    def __init__(
        self,
        config: HubConfig | None = None,
        backplane: Backplane | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or HubConfig()
        self.limits = self.config.limits
        self.clock = clock
        self.backplane: Backplane = backplane or MemoryBackplane(self.config.history, clock)
        self.fanout = Fanout(on_dirty=self._schedule_flush)
        #: resume cursors for SSE and long polling (stored ones past the inline size)
        self.cursors = CursorIssuer()
        self.stats = HubStats()
        self.started_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_scheduled = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._trim_handle: asyncio.TimerHandle | None = None
        self._heartbeats: dict[str, Heartbeat] = {}
        self.components: dict[str, Component] = {}
        self._closing = False
        self._presence_watchers: dict[Member, set[Pattern]] = {}
        #: patterns whose subscribe awaits the backplane (in no group yet), with how many
        self._subscribing: Counter[Pattern] = Counter()

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Bind to the running loop and start the backplane."""
        self._loop = asyncio.get_running_loop()
        await self.backplane.start(self)
        mirror = self.backplane.cursor_mirror()
        if mirror is not None:
            self.cursors.store.mirror = mirror  # stored cursors readable by every hub
        self.started_at = self.clock()
        for component in list(self.components.values()):
            await component.start(self)
        if self.config.history.max_age is not None and isinstance(self.backplane, MemoryBackplane):
            self._trim_handle = self._loop.call_later(self.config.trim_interval, self._trim_by_age)

    async def stop(self) -> None:
        """Close every connection with 1001 and stop the backplane."""
        self._closing = True
        for component in list(self.components.values()):
            await component.stop()
        if self._trim_handle is not None:
            self._trim_handle.cancel()
        self.flush()
        for member in list(self.fanout.members.values()):
            if member.sink is not None:
                member.sink.close(CloseCode.GOING_AWAY, "hub shutting down")
        deadline = time.monotonic() + self.config.close_timeout
        while self.fanout.members and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for heartbeat in self._heartbeats.values():
            heartbeat.stop()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        mirror = self.cursors.store.mirror
        close_mirror = getattr(mirror, "close", None)
        if close_mirror is not None:
            await close_mirror()
        await self.backplane.stop()

    async def add_component(self, name: str, component: Component) -> None:
        """Register ``component`` under ``name``; start it now if the hub runs.

        Raises:
            ValueError: a component already has that name.
        """
        if name in self.components:
            raise ValueError(f"a component named {name!r} is already registered")
        self.components[name] = component
        if self.running:
            await component.start(self)

    async def remove_component(self, name: str) -> None:
        """Stop and forget the component ``name``; no-op when there is none."""
        component = self.components.pop(name, None)
        if component is not None:
            await component.stop()

    @property
    def running(self) -> bool:
        return self._loop is not None and not self._closing

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the hub runs on (``None`` before :meth:`start`); other threads go through it."""
        return self._loop

    def heartbeat(self, kind: str, interval: float, timeout: float | None) -> Heartbeat:
        """The shared keep-alive timer for connections of ``kind`` (``"ws"``, ``"sse"``...)."""
        heartbeat = self._heartbeats.get(kind)
        if heartbeat is None:
            heartbeat = self._heartbeats[kind] = Heartbeat(interval, timeout)
        return heartbeat

    def _trim_by_age(self) -> None:
        assert self._loop is not None and isinstance(self.backplane, MemoryBackplane)
        self.backplane.trim_by_age()
        self._trim_handle = self._loop.call_later(self.config.trim_interval, self._trim_by_age)

    # -- connections -----------------------------------------------------------------

    def connect(self, sink: Sink, member_id: str | None = None) -> Member:
        """Register a connection; returns its member (its ``id`` is the client id)."""
        if self._closing:
            raise Unavailable("The hub is shutting down.")
        member = Member(sink, member_id)
        self.fanout.add(member)
        self.stats.connections_opened += 1
        return member

    def disconnect(self, member: Member) -> None:
        """Forget a connection and its subscriptions; safe to call twice."""
        if member.state is MemberState.CLOSED:
            return
        # The fan-out refuses membership changes while batches are pending; a
        # connection that drops mid-stream must still be forgotten.
        self.flush()
        left = list(member.patterns)
        group = member.group
        self.fanout.remove(member)
        self._forget_cursors(member, group)
        self._presence_watchers.pop(member, None)
        self._announce_membership(member.id, left, [])
        self._watch_patterns()

    @property
    def connection_count(self) -> int:
        return len(self.fanout.members)

    @property
    def task_count(self) -> int:
        """Background tasks the hub runs (recoveries, backplane watches); for leak checks."""
        return len(self._tasks)

    @property
    def heartbeat_count(self) -> int:
        """Connections tracked by the hub's heartbeat timers; for leak checks."""
        return sum(len(heartbeat.connections) for heartbeat in self._heartbeats.values())

    # -- publish ---------------------------------------------------------------------

    def _prepare(self, topic: str, data: Any, trusted: bool) -> bytes:
        if not trusted:
            limits = self.limits
            validate_topic(topic, max_length=limits.max_topic_length, max_depth=limits.max_topic_depth)
            check_payload(data, limits.max_nesting)
        data_json = encode_json(data)
        if len(data_json) > self.limits.max_frame_bytes:
            raise MessageTooBig(f"Payload is {len(data_json)} bytes; the limit is {self.limits.max_frame_bytes}.")
        return data_json

    def publish_now(self, topic: str, data: Any, *, trusted: bool = False) -> Message:
        """Publish synchronously on a local backplane (the fast path).

        Args:
            topic: a concrete topic.
            data: any JSON value.
            trusted: the caller already validated topic and nesting.

        Raises:
            RtnbError: invalid input, or :class:`Unavailable` on a shared backplane
                (use :meth:`publish` there).
        """
        data_json = self._prepare(topic, data, trusted)
        backplane = self.backplane
        if not backplane.is_local:
            raise Unavailable("This hub's backplane is shared; use 'await hub.publish(...)'.")
        # is_local backplanes offer append (see Backplane); a protocol cannot say "when is_local"
        message = cast("LocalBackplane", backplane).append(topic, data, self.clock(), data_json)
        self.stats.messages_in += 1
        return message

    async def publish(self, topic: str, data: Any, *, trusted: bool = False) -> Message:
        """Publish ``data`` on ``topic``; returns the stored message with its offset.

        Raises:
            RtnbError: invalid input (see :func:`~rtnb.core.topics.validate_topic`),
                or :class:`Unavailable` when the backplane cannot take it.
        """
        if self.backplane.is_local:
            return self.publish_now(topic, data, trusted=trusted)
        data_json = self._prepare(topic, data, trusted)
        message = await self.backplane.publish(topic, data, self.clock(), data_json)
        self.stats.messages_in += 1
        return message

    # -- events from the backplane (the HubLink protocol) -----------------------------

    def deliver(self, message: Message) -> None:
        """A message from the backplane, in offset order per topic: route it to local subscribers."""
        self.fanout.route(message)

    def skip(self, topic: str, epoch: int, offset: int, gaps: Sequence[Gap]) -> None:
        """Live subscribers of ``topic`` missed ``gaps`` (history lost them); the topic moves on to ``offset``.

        Messages already routed go out first; the groups' cursors move too, so a
        subscriber catching up later reads the same gaps from history and meets
        its group there.
        """
        self.flush()
        told = 0
        for group in list(self.fanout.groups.values()):
            if group.matches(topic):
                group.cursor[topic] = (epoch, offset)
                self.cursors.forget(group)  # moved by no batch: its next stored cursor is a full one
                for member in list(group.members):
                    if member.state is MemberState.LIVE and member.sink is not None:
                        member.sink.send_items(list(gaps))
                        told += len(gaps)
        self.stats.gaps_sent += told

    def backplane_unavailable(self, error: Unavailable, affected: Callable[[Pattern], bool]) -> None:
        """Tell subscribers whose patterns ``affected`` selects that live messages pause (error frame)."""
        frame = error.to_wire()
        for member in list(self.fanout.members.values()):
            if member.sink is not None and any(affected(pattern) for pattern in member.patterns.values()):
                member.sink.send_control(dict(frame))

    def watched_patterns(self) -> set[Pattern]:
        """Every pattern this hub's subscribers hold."""
        return self._all_patterns()

    # -- introspection ---------------------------------------------------------------

    def queue_depths(self) -> list[int]:
        """Buffered outbound bytes of every connection."""
        return [member.sink.buffered_bytes() for member in self.fanout.members.values() if member.sink is not None]

    def health(self) -> dict[str, Any]:
        backplane = self.backplane.health()
        health = {
            "status": "ok" if backplane.get("ok") and self.running else "degraded",
            "connections": self.connection_count,
            "uptime": 0.0 if self.started_at is None else round(self.clock() - self.started_at, 3),
            **backplane,
        }
        if self.components:
            components = {name: component.health() for name, component in self.components.items()}
            health["components"] = components
            if not all(report.get("ok") for report in components.values()):
                health["status"] = "degraded"
        return health
