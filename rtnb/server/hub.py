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
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, cast

from ..backplane import Backplane, MemoryBackplane
from ..core.close_codes import CloseCode
from ..core.cursor_store import CursorIssuer
from ..core.errors import CursorExpired, MessageTooBig, RtnbError, SlowConsumer, TooManySubscriptions, Unavailable
from ..core.fanout import Batch, Cursor, Fanout, Member, MemberState
from ..core.history import Gap, HistoryLimits
from ..core.limits import Limits
from ..core.message import Message, check_payload, encode_json
from ..core.presence import is_present
from ..core.protocol import SinceCursor, Subscribe
from ..core.topics import Pattern, validate_topic
from .heartbeat import Heartbeat

if TYPE_CHECKING:
    from ..backplane.base import LocalBackplane

__all__ = ["Component", "ComponentMetric", "Hub", "HubConfig", "HubStats", "Sink"]

log = logging.getLogger("rtnb.hub")


class Sink(Protocol):
    """How the hub writes to one subscriber; implemented by each transport."""

    transport: str

    def send_batch(self, batch: Batch) -> bool:
        """Write a group batch; return False, writing nothing, when over the queue limit."""

    def send_items(self, items: Sequence[Message | Gap]) -> None:
        """Write messages and gaps meant for this subscriber alone (replay, catch-up)."""

    def send_control(self, frame: dict[str, Any]) -> None:
        """Write a control frame (welcome, subscribed, ack, error, pong...)."""

    def buffered_bytes(self) -> int:
        """Bytes written but not yet accepted by the peer's socket."""

    async def drained(self) -> None:
        """Return once everything written so far has left the buffer."""

    def close(self, code: int, reason: str) -> None:
        """End the connection (WebSocket close code; others map it as they can)."""


@dataclass(frozen=True)
class ComponentMetric:
    """One number a component exports on ``/metrics`` (labelled with the component's name)."""

    name: str
    documentation: str
    kind: str  # "counter" or "gauge"
    value: float
    labels: dict[str, str] = field(default_factory=dict)


class Component(Protocol):
    """A part that runs beside the hub on its loop (e.g. an MQTT bridge).

    Registered with :meth:`Hub.add_component`; the hub starts it with itself,
    stops it first at shutdown, merges its :meth:`health` into ``/healthz``
    (``"ok": False`` makes the hub ``degraded``) and exports its :meth:`metrics`.
    """

    async def start(self, hub: Hub) -> None:
        """Begin work on the running loop; must not wait for remote peers."""

    async def stop(self) -> None:
        """End work and release connections; safe to call twice."""

    def health(self) -> dict[str, Any]:
        """State for ``/healthz``, with at least ``"ok": bool``."""

    def metrics(self) -> Sequence[ComponentMetric]:
        """Numbers for ``/metrics``."""


@dataclass(frozen=True)
class HubConfig:
    """Everything a hub can be told. Defaults suit a local notebook.

    Attributes:
        limits: input and queue bounds, see :class:`~rtnb.core.limits.Limits`.
        history: history bounds, see :class:`~rtnb.core.history.HistoryLimits`.
        ping_interval: seconds between WebSocket pings (0 disables them).
        ping_timeout: seconds without a pong before a peer is declared dead.
        close_timeout: seconds to wait for clients' close handshakes at shutdown.
        trim_interval: seconds between applications of ``history.max_age``.
        keepalive_interval: seconds between SSE keep-alive comments (0 disables them).
        sse_retry: seconds an SSE client should wait before reconnecting (sent as ``retry:``).
        poll_timeout: seconds a long poll waits when the client gives no ``timeout``.
        poll_max_timeout: longest wait a long poll may ask for; larger requests are capped.
        handshake_timeout: seconds a client has to send a complete request head (a
            WebSocket upgrade included, TLS handshake too); also how long an idle
            keep-alive connection stays open. Applied by ``HubServer``.
        body_timeout: seconds a client has to send a request body (HTTP publish).
        write_timeout: seconds a connection may hold unsent bytes while its peer takes
            none; then it is closed (any transport). ``None`` disables it. Readers that
            are merely slow are handled by the slow-consumer policy instead.
        websocket_compression: accept permessage-deflate from clients (off by
            default: decompression bombs). When on, a message's decompressed size is
            bounded by ``limits.max_frame_bytes`` (over it: close 1009); the hub's own
            frames still go out uncompressed, so fan-out keeps encoding once.
    """

    limits: Limits = field(default_factory=Limits)
    history: HistoryLimits = field(default_factory=HistoryLimits)
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    close_timeout: float = 2.0
    trim_interval: float = 1.0
    keepalive_interval: float = 15.0
    sse_retry: float = 2.0
    poll_timeout: float = 25.0
    poll_max_timeout: float = 60.0
    handshake_timeout: float = 10.0
    body_timeout: float = 30.0
    write_timeout: float | None = 30.0
    websocket_compression: bool = False


@dataclass
class HubStats:
    """Counters exported on ``/metrics``; plain ints so the hot path stays cheap."""

    messages_in: int = 0
    messages_out: int = 0
    batches_out: int = 0
    lag_events: int = 0
    slow_consumer_closes: int = 0
    gaps_sent: int = 0
    connections_opened: int = 0
    write_timeouts: int = 0
    errors: Counter[str] = field(default_factory=Counter)


class Hub:
    """Topics, subscriptions, history and fan-out behind every transport.

    Args:
        config: limits and timings.
        backplane: where offsets and history live; in-memory by default.
        clock: seconds since the epoch, for message timestamps.
        redis: a Redis URL (``redis://127.0.0.1:6379/0``, ``?prefix=...`` allowed);
            shorthand for ``backplane=RedisBackplane(redis, limits=config.history)``.
    """

    def __init__(
        self,
        config: HubConfig | None = None,
        backplane: Backplane | None = None,
        clock: Callable[[], float] = time.time,
        *,
        redis: str | None = None,
    ) -> None:
        self.config = config or HubConfig()
        self.limits = self.config.limits
        self.clock = clock
        if backplane is None and redis is not None:
            from ..backplane.redis import RedisBackplane

            backplane = RedisBackplane(redis, limits=self.config.history)
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

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

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

    def _forget_cursors(self, member: Member | None, group: Any) -> None:
        """Drop the cursor chains of a member that left and of a group that is gone."""
        if member is not None:
            self.cursors.forget(member)
        if group is not None and self.fanout.groups.get(group.key) is not group:
            self.cursors.forget(group)

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

    # -- subscribe -------------------------------------------------------------------

    async def subscribe(self, member: Member, request: Subscribe) -> None:
        """Add ``request.pattern`` to ``member``, reply ``subscribed``, replay, go live.

        Replay (``last`` or ``since``) and live messages meet without loss or
        duplicates: the member is fed from history until it reaches its group's
        position, then joins the group's batches. A topic already covered by
        another of the member's patterns is not replayed again, unless this
        request asks for it with ``last``/``since`` (honoured on every subscribe).

        Raises:
            TooManySubscriptions: the connection holds ``max_subscriptions`` patterns.
        """
        pattern = request.pattern
        if pattern.text not in member.patterns and len(member.patterns) >= self.limits.max_subscriptions:
            raise TooManySubscriptions(
                f"A connection may hold at most {self.limits.max_subscriptions} subscriptions.",
                request_id=request.id,
            )
        # While this awaits, the pattern is in no group yet: counted as subscribing, so that a
        # watch made meanwhile (another connection leaving) keeps it watched.
        self._subscribing[pattern] += 1
        try:
            await self.backplane.watch({*self._all_patterns(), pattern})
            # Read before the member joins its group: from there to its catch-up nothing may await,
            # or live batches would reach it ahead of its replay.
            lost_epochs = await self.lost_epochs(pattern, request.since) if request.since is not None else []
        finally:
            self._subscribing[pattern] -= 1
            if not self._subscribing[pattern]:
                del self._subscribing[pattern]
        if member.state is MemberState.CLOSED:
            return
        self.flush()
        start: Cursor = member.position()
        patterns = dict(member.patterns)
        patterns[pattern.text] = pattern
        before = list(member.patterns)
        old_group = member.group
        group = self.fanout.set_patterns(member, patterns)
        assert group is not None
        self._forget_cursors(None, old_group)
        self._announce_membership(member.id, before, list(patterns))
        lost: list[Gap] = []
        positions = self.backplane.positions(pattern)
        tracked = len(group.cursor)
        for known in group.patterns:
            for topic, position in (positions if known is pattern else self.backplane.positions(known)).items():
                group.cursor.setdefault(topic, (position.epoch, position.last_offset))
        if len(group.cursor) != tracked:
            self.cursors.forget(group)  # its next stored cursor is a full one
        for topic, position in positions.items():
            # ``last``/``since`` are honoured on every subscribe, even on topics this
            # connection already receives through another (or the same) pattern: the
            # requested range is sent again (clients drop what they already had).
            if request.since is not None and topic in request.since:
                offset, epoch = request.since[topic]
                start[topic] = (position.epoch if epoch is None else epoch, offset)
            elif request.last is not None:
                start[topic] = (position.epoch, max(position.first_offset - 1, position.last_offset - request.last))
            elif topic in start:
                continue
            elif request.since is not None:
                # A resuming client lists every topic it has seen; a matching topic it
                # does not list is new to it (e.g. created while it was offline), so it
                # gets that topic's retained history rather than losing it silently.
                start[topic] = (position.epoch, 0)
            else:
                start[topic] = (position.epoch, position.last_offset)
        if request.since is not None:
            for topic, (offset, _epoch) in request.since.items():
                if offset and topic not in positions and pattern.matches(topic):
                    lost.append(Gap(topic, offset + 1, None, "epoch_changed"))
            lost += lost_epochs
        reply: dict[str, Any] = {"op": "subscribed", "topic": pattern.text}
        if request.id is not None:
            reply["id"] = request.id
        # Where this subscription starts on each matching topic, so a client can
        # resume later from there even on topics it has not received anything from.
        # Omitted when no topic matches yet.
        starts = {topic: {"offset": start[topic][1], "epoch": start[topic][0]} for topic in positions if topic in start}
        if starts:
            reply["positions"] = starts
        member.sink.send_control(reply)
        if lost:
            self._send_gaps(member, lost)
        was_live = member.state is MemberState.LIVE
        member.cursor = start
        if was_live:
            member.transition(MemberState.CATCHING_UP)
            await self._catch_up(member)
            if member.state is MemberState.LAGGING:
                self._spawn(self._recover(member))
        # Otherwise a recovery is already under way and will read the new cursor.

    def checkpoint(self, member: Member) -> dict[str, Any]:
        """A ``checkpoint`` reply: a resume cursor for everything written to ``member`` so far.

        Pending batches are written first, so a live member stands exactly at its
        group's position, and the reply goes out after them, in stream order. A
        member still catching up (or lagging) gets no cursor: its position is
        moving under a replay, and it may simply ask again later.
        """
        self.flush()
        group = member.group
        reply: dict[str, Any] = {"op": "checkpoint", "patterns": sorted(member.patterns)}
        if member.state is MemberState.LIVE and group is not None:
            reply["cursor"] = self.cursors.issue(group.cursor, group.key, member)
        return reply

    async def resume_from_cursor(self, request: Subscribe) -> Subscribe:
        """``request`` with its cursor (``since: "~ID"`` plus ``delta``) turned into a ``since`` map.

        The cursor's positions on topics ``request.pattern`` matches, overridden by the
        delta. A topic the cursor does not list is new to the client (as with a full map).

        Raises:
            CursorExpired: a stored cursor this hub (and the backplane's mirror) no longer holds.
        """
        point = request.cursor
        if point is None:
            return request
        positions: SinceCursor = dict(point.positions)
        if point.stored_id is not None:
            head = await self.cursors.load(point.stored_id)
            if head is None:
                raise CursorExpired(
                    "The hub no longer holds this stored cursor; subscribe again with the full 'since' map.",
                    request_id=request.id,
                )
            positions = {topic: (offset, epoch) for topic, (epoch, offset) in head.positions.items()}
        pattern = request.pattern
        since: SinceCursor = {topic: place for topic, place in positions.items() if pattern.matches(topic)}
        since.update(request.since or {})
        return replace(request, since=since, cursor=None)

    async def lost_epochs(self, pattern: Pattern, listed: Any) -> list[Gap]:
        """Gaps for epochs that reset topics lost, on topics a resuming client does not list.

        It never saw the topic, so the lost epoch was created after its cursor: all of it
        was owed (``epoch_changed`` from offset 1). The gap carries no ``epoch``: the
        ``subscribed`` reply already named the current one as where the subscription
        starts, and a client must not take this notice for one it already handled.
        """
        gaps = []
        for topic, _place in (await self.backplane.lost_epochs(pattern)).items():
            if topic not in listed:
                gaps.append(Gap(topic, 1, None, "epoch_changed"))
        return gaps

    async def watch(self, patterns: Sequence[Pattern]) -> None:
        """Make the backplane follow ``patterns`` now, so :meth:`Backplane.positions` knows
        their topics before a resume is planned (a shared backplane learns them on watch).

        Raises:
            Unavailable: the backplane cannot follow them now (e.g. Redis is down).
        """
        if not self.backplane.is_local:
            await self.backplane.watch({*self._all_patterns(), *patterns})

    def unsubscribe(self, member: Member, pattern: str) -> bool:
        """Drop ``pattern`` from ``member``; returns False if it was not subscribed."""
        if pattern not in member.patterns:
            return False
        self.flush()
        if member.state is MemberState.LIVE:
            member.cursor = {}
        patterns = dict(member.patterns)
        del patterns[pattern]
        old_group = member.group
        self.fanout.set_patterns(member, patterns)
        self._forget_cursors(None, old_group)
        self._announce_membership(member.id, [*list(member.patterns), pattern], list(patterns))
        self._watch_patterns()
        return True

    def _all_patterns(self) -> set[Any]:
        """Every pattern a group holds, and those whose subscribe is under way."""
        return {pattern for group in self.fanout.groups.values() for pattern in group.patterns} | set(self._subscribing)

    def _watch_patterns(self) -> None:
        if not self.backplane.is_local and not self._closing:
            self._spawn(self.backplane.watch(self._all_patterns()))

    # -- delivery --------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write every pending batch to its group's live members."""
        self._flush_scheduled = False
        fanout = self.fanout
        if not fanout.has_pending:
            return
        live = MemberState.LIVE
        delivered = 0
        batches = fanout.take_batches()
        for batch in batches:
            count = len(batch.messages)
            for member in tuple(batch.group.members):
                if member.state is live:
                    if member.sink.send_batch(batch):
                        delivered += count
                    else:
                        self._lag(member, batch.messages)
        self.stats.messages_out += delivered
        self.stats.batches_out += len(batches)

    def _lag(self, member: Member, skipped: list[Message]) -> None:
        Fanout.mark_lagging(member, skipped)
        self.stats.lag_events += 1
        log.info("subscriber %s is slow; skipping it until it drains", member.id)
        self._spawn(self._recover(member))

    async def _recover(self, member: Member) -> None:
        """Wait for a lagging member to drain, then catch it up from history.

        A member that makes no progress (its buffer does not drain) for
        ``max_lag_seconds`` is closed with 1008; one that drains slowly is
        caught up round after round, each round bounded by its queue limit.
        """
        sink = member.sink
        limit = self.limits.max_lag_seconds
        while member.state is MemberState.LAGGING:
            try:
                await asyncio.wait_for(sink.drained(), limit)
            except asyncio.TimeoutError:
                self.stats.slow_consumer_closes += 1
                log.warning("closing subscriber %s: its queue did not drain for %ss", member.id, limit)
                self.record_error(SlowConsumer.code)
                sink.send_control(
                    SlowConsumer(
                        f"Closing (1008): this connection took nothing from its queue for {limit:g} s;"
                        " resume from your cursor to get what you missed."
                    ).to_wire()
                )
                sink.close(CloseCode.POLICY_VIOLATION, "slow consumer: outbound queue over its limit")
                return
            except RtnbError:
                return
            if member.state is not MemberState.LAGGING:
                return
            member.transition(MemberState.CATCHING_UP)
            await self._catch_up(member)

    async def _catch_up(self, member: Member) -> None:
        """Feed a CATCHING_UP member from history until it meets its group.

        What history gives is written in chunks of about ``max_batch_bytes`` that
        may span several topics (per-topic order is kept), so a catch-up over
        thousands of topics costs a few writes, not one per topic. Gaps of topics
        with nothing after them go first in a chunk, together, so transports can
        coalesce them.

        Ends with the member ``LIVE``, or ``LAGGING`` when its buffer went over
        the limit (the caller then waits for it to drain), or closed.
        """
        sink, limits = member.sink, self.limits
        chunk_bytes = min(limits.max_batch_bytes, limits.max_queue_bytes)
        while member.state is MemberState.CATCHING_UP:
            self.flush()
            behind = Fanout.behind(member)
            if not behind:
                member.cursor = {}
                member.transition(MemberState.LIVE)
                return
            lone_gaps: list[Gap] = []
            chunk: list[Message | Gap] = []
            size = 0
            for topic, (epoch, offset) in behind.items():
                gaps, messages, position = await self.backplane.read_since(topic, offset, epoch)
                if member.state is not MemberState.CATCHING_UP:
                    return
                if not messages:
                    lone_gaps.extend(gaps)
                else:
                    chunk.extend(gaps)
                    size += 64 * len(gaps)
                group_position = member.group.cursor.get(topic) if member.group is not None else None
                for message in messages:
                    chunk.append(message)
                    size += message.size
                    if size < chunk_bytes:
                        continue
                    self._send_chunk(member, lone_gaps, chunk)
                    lone_gaps, chunk, size = [], [], 0
                    if sink.buffered_bytes() > limits.max_queue_bytes:
                        member.cursor[topic] = (message.epoch, message.offset)
                        member.transition(MemberState.LAGGING)
                        self.stats.lag_events += 1
                        return
                member.cursor[topic] = position or group_position or (epoch, offset)
            self._send_chunk(member, lone_gaps, chunk)
            if sink.buffered_bytes() > limits.max_queue_bytes:
                member.transition(MemberState.LAGGING)
                self.stats.lag_events += 1
                return

    def _send_chunk(self, member: Member, lone_gaps: list[Gap], chunk: list[Message | Gap]) -> None:
        """Write one catch-up chunk: the lone gaps first, then the rest in order."""
        if not lone_gaps and not chunk:
            return
        gaps = len(lone_gaps) + sum(1 for item in chunk if isinstance(item, Gap))
        self.stats.gaps_sent += gaps
        self.stats.messages_out += len(chunk) + len(lone_gaps) - gaps
        member.sink.send_items([*lone_gaps, *chunk])

    def _send_gaps(self, member: Member, gaps: list[Gap]) -> None:
        """Send ``gaps`` to one member in one call (transports coalesce long runs of them)."""
        self.stats.gaps_sent += len(gaps)
        member.sink.send_items(gaps)

    def topic_reset(self, topic: str) -> None:
        """``topic``'s history was reset: tell its live subscribers now (``epoch_changed``).

        Groups keep the old epoch's position: a cursor issued from it resumes with an
        ``epoch_changed`` gap and the new epoch from its start. Members catching up or
        lagging learn of the reset when their catch-up reads the topic.
        """
        self.flush()
        for group in list(self.fanout.groups.values()):
            position = group.cursor.get(topic)
            if position is None:
                continue
            gap = Gap(topic, position[1] + 1, None, "epoch_changed")
            for member in tuple(group.members):
                if member.state is MemberState.LIVE:
                    self.stats.gaps_sent += 1
                    member.sink.send_items([gap])

    # -- presence --------------------------------------------------------------------

    def local_subscriptions(self) -> dict[str, list[str]]:
        """Client id -> patterns, for every connection of this hub that subscribes."""
        return {member.id: list(member.patterns) for member in self.fanout.members.values() if member.patterns}

    async def presence(self, query: Pattern) -> list[dict[str, str]]:
        """Clients subscribed to what ``query`` names: cluster-wide on a shared backplane.

        Returns:
            ``[{"client": ID, "hub": HUB_ID}, ...]``, the same shape on every backplane.

        Raises:
            Unavailable: the shared backplane cannot be read.
        """
        return list(await self.backplane.presence(query))

    def watch_presence(self, member: Member, query: Pattern, enabled: bool) -> None:
        """Send ``member`` join/leave events for ``query`` from now on (or stop)."""
        queries = self._presence_watchers.setdefault(member, set())
        if enabled:
            queries.add(query)
        else:
            queries.discard(query)
            if not queries:
                del self._presence_watchers[member]

    def _announce_membership(self, client: str, before: list[str], after: list[str]) -> None:
        if sorted(before) == sorted(after):
            return
        self.backplane.announce_membership(client, before, after)  # every hub, this one included, hears it

    def membership_changed(self, client: str, before: list[str], after: list[str], hub_id: str | None = None) -> None:
        """A client's subscriptions changed (here or, via the backplane, on ``hub_id``): tell watchers."""
        if not self._presence_watchers:
            return

        old = [Pattern.parse(text) for text in before]
        new = [Pattern.parse(text) for text in after]
        for member, queries in list(self._presence_watchers.items()):
            for query in queries:
                was = any(is_present(pattern, query) for pattern in old)
                now = any(is_present(pattern, query) for pattern in new)
                if was != now and member.sink is not None:
                    event = {"op": "join" if now else "leave", "topic": query.text, "client": client}
                    if hub_id is not None:
                        event["hub"] = hub_id
                    member.sink.send_control(event)

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

    def record_error(self, code: str) -> None:
        self.stats.errors[code] += 1

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
