"""The Redis backplane: several hubs behaving as one, on one Redis or a Redis Cluster.

Offsets, epochs and history live in Redis, so every hub agrees on each topic's
order and a client can resume on any hub. Topics are spread over buckets whose
keys share a hash tag (:mod:`~rtnb.backplane._redis_keys`), so on a cluster a
topic lives on one shard; the same ``redis://host:port`` URL works for a
single Redis and for any node of a cluster (:mod:`~rtnb.backplane._redis_nodes`).

Publishing is batched per node, one script call per bucket and one round trip
per batch (:mod:`~rtnb.backplane._redis_publisher`). Each hub holds one
health-checked pub/sub listener per node (:mod:`~rtnb.backplane._redis_listener`),
subscribed (sharded, on Redis >= 7) only to the buckets its clients need, and
filters what arrives exactly. What this hub has delivered per topic, and
catching up from the streams, is in :mod:`~rtnb.backplane._redis_history`;
presence in :mod:`~rtnb.backplane._redis_presence`.

When a node goes away (killed, stalled past its ping timeout, or its listener
cut): publishes to its buckets raise :class:`~rtnb.core.errors.Unavailable`
(503), subscribers whose patterns reach its buckets get an ``error`` frame
``unavailable``, ``/healthz`` reports it, and a reconnect loop retries with
backoff. Other nodes keep serving. Once back, the hub re-subscribes and,
before any new live message, catches every tracked topic of that node up from
its stream; topics created meanwhile are found through the bucket indexes.
Nothing acknowledged is skipped silently: what the streams no longer hold
(trimmed, expired, a new epoch, or a Redis restored from an older file) reaches
live subscribers as a ``gap`` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ..core.errors import Unavailable
from ..core.history import Gap, HistoryLimits
from ..core.message import Message
from ..core.topics import Pattern
from ._redis_cursors import RedisCursorMirror
from ._redis_history import Delivered
from ._redis_keys import BUCKETS, RedisKeys, bucket_of
from ._redis_links import Links
from ._redis_listener import Listener
from ._redis_nodes import Node, Topology, redacted, redis_errors, split_prefix
from ._redis_presence import PresenceStore
from ._redis_publisher import Publisher
from ._redis_scripts import RESET_SCRIPT
from ._redis_subscriptions import Subscriptions
from ._tasks import cancel_and_wait
from .base import HubLink, ReadResult, TopicPosition

__all__ = ["BackplaneState", "RedisBackplane"]

log = logging.getLogger("rtnb.backplane.redis")


class BackplaneState(enum.Enum):
    """Lifecycle of the connection to Redis: ``CONNECTED`` when every node's listener is live."""

    STOPPED = "stopped"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


class RedisBackplane:
    """Offsets, history, fan-out and presence shared by every hub on one Redis or Redis Cluster.

    Args:
        url: ``redis://[:password@]host:port/db`` (``rediss://`` for TLS); any node of a
            cluster. A ``prefix=`` query parameter sets ``prefix`` too.
        prefix: start of every key and channel name; hubs that act as one use the same.
        limits: history bounds (stream length ``max_messages``, age ``max_age``), also
            bounding this hub's cache of recent messages.
        hub_id: this hub's name in presence answers; random when omitted.
        presence_ttl: seconds after which a silent hub's members vanish.
        reconnect_initial / reconnect_max: backoff bounds (seconds) between reconnects.
        command_timeout: seconds before a Redis command is given up as failed.
        start_timeout: how long :meth:`start` waits for Redis before running degraded.
        ping_interval / ping_timeout: health pings on each pub/sub listener, and the
            silence after which it is declared lost (reconnected, caught up).
        lost_retention: seconds an epoch lost by a topic reset is remembered (so a subscriber
            that never knew the topic hears of it when it resumes); ``None`` disables the limit.
        max_lost_per_bucket: most such epochs remembered per bucket (64 buckets), oldest
            dropped first; ``None`` disables the limit. Both are applied at each reset.
    """

    name = "redis"
    is_local = False

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str | None = None,
        limits: HistoryLimits | None = None,
        hub_id: str | None = None,
        presence_ttl: float = 10.0,
        reconnect_initial: float = 0.05,
        reconnect_max: float = 2.0,
        command_timeout: float = 5.0,
        start_timeout: float = 5.0,
        ping_interval: float = 1.0,
        ping_timeout: float = 3.0,
        lost_retention: float | None = 86_400.0,
        max_lost_per_bucket: int | None = 256,
    ) -> None:
        self.url, url_prefix = split_prefix(url)
        self.keys = RedisKeys(prefix if prefix is not None else (url_prefix or "rtnb:"))
        self.limits = limits or HistoryLimits()
        self.hub_id = hub_id or uuid.uuid4().hex[:12]
        self.presence_ttl = presence_ttl
        self.reconnect_initial = reconnect_initial
        self.reconnect_max = reconnect_max
        self.command_timeout = command_timeout
        self.start_timeout = start_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.lost_retention = lost_retention
        self.max_lost_per_bucket = max_lost_per_bucket
        self.presence_debounce = 0.02
        self.client_name = "rtnb-" + "".join(c if c.isalnum() else "-" for c in self.hub_id)
        self.state = BackplaneState.STOPPED
        self.reconnects = 0
        self.last_error: str | None = None
        self.delivered = Delivered(self.keys, self.limits)
        self.clocks: dict[int, int] = {}
        self._hub: HubLink | None = None
        self._topology: Topology | None = None
        self._publisher: Publisher | None = None
        self.presence_store = PresenceStore(
            self.keys,
            self.hub_id,
            presence_ttl,
            self._presence_client,
            lambda: "SPUBLISH" if self._sharded else "PUBLISH",
        )
        self.subscriptions = Subscriptions(
            self.keys,
            self.delivered,
            self.clocks,
            self.presence_store.channel,
            self.presence_store.received,
            command_timeout,
        )
        self._connected = asyncio.Event()
        self._presence_dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._links: Links | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._errors: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError, LookupError)
        self._read_errors: tuple[type[BaseException], ...] = (*self._errors, Unavailable)

    @property
    def _sharded(self) -> bool:
        return self._topology is not None and self._topology.sharded

    @property
    def cluster(self) -> bool:
        """True when the URL names a Redis Cluster (learnt from the server)."""
        return self._topology is not None and self._topology.cluster

    # -- lifecycle -------------------------------------------------------------------

    async def start(self, hub: HubLink) -> None:
        """Connect (waiting up to ``start_timeout``), then deliver messages to ``hub``."""
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self._errors = redis_errors()
        self._read_errors = (*self._errors, Unavailable)
        self._hub = self.delivered.link = self.presence_store.link = hub
        self.state = BackplaneState.CONNECTING
        # No retries inside redis-py: a failure must surface at once as Unavailable,
        # and the reconnect loops own the backoff.
        options = {
            "decode_responses": False,
            "socket_connect_timeout": min(2.0, self.command_timeout),
            "socket_timeout": self.command_timeout,
            "retry": Retry(NoBackoff(), 0),
            "health_check_interval": 0,
            "client_name": self.client_name,
        }
        self._topology = Topology(self.url, options)
        self._publisher = Publisher(self._topology, self.keys, self.limits, self.clocks, self._unavailable)
        self._links = Links(
            self._topology,
            self._new_listener,
            self._connect,
            self.subscriptions.handle,
            self._went_down,
            lambda: self.state is not BackplaneState.STOPPED,
            self._errors,
            (self.reconnect_initial, self.reconnect_max),
        )
        self._tasks = [
            asyncio.ensure_future(self._links.discover_forever()),
            asyncio.ensure_future(self._presence_forever()),
            asyncio.ensure_future(self.presence_store.send_events_forever(self._errors)),
        ]
        try:
            await asyncio.wait_for(self._connected.wait(), self.start_timeout)
        except asyncio.TimeoutError:
            log.warning(
                "no Redis at %s after %ss; running degraded and retrying (%s)",
                redacted(self.url),
                self.start_timeout,
                self.last_error,
            )

    async def stop(self) -> None:
        """Withdraw this hub's presence, stop listening, close connections."""
        if self.state is BackplaneState.STOPPED:
            return
        was_connected = self.state is BackplaneState.CONNECTED
        self.state = BackplaneState.STOPPED
        self._hub = self.delivered.link = self.presence_store.link = None
        await cancel_and_wait([*self._tasks, *self._background])
        self._tasks = []
        if self._links is not None:
            await self._links.stop()
        if self._publisher is not None:
            await self._publisher.stop()
        if was_connected:
            try:
                await self.presence_store.withdraw()
            except self._errors as error:
                log.info("could not withdraw presence at stop: %s", error)
        if self._topology is not None:
            await self._topology.close()

    def _unavailable(self, error: BaseException | str, what: str) -> Unavailable:
        self.last_error = str(error) or type(error).__name__
        return Unavailable(f"Redis at {redacted(self.url)} is unreachable ({self.last_error}); {what}")

    def _client_for(self, topic: str) -> Any:
        if self._topology is None:
            raise Unavailable("The Redis backplane is not running.")
        try:
            return self._topology.node_of(bucket_of(topic)).client
        except LookupError as error:
            raise self._unavailable(error, "try again when it is back.") from None

    def _presence_client(self) -> Any:
        if self._topology is None:
            raise LookupError("the Redis backplane is not running")
        return self._topology.node_for(self.keys.hubs).client

    # -- publish and history ---------------------------------------------------------

    async def publish(self, topic: str, data: Any, ts: float, data_json: bytes) -> Message:
        """Assign the next offset in Redis, store in the stream and publish (batched with others).

        Raises:
            Unavailable: Redis did not confirm the message; it was not acknowledged.
        """
        if self._publisher is None:
            raise Unavailable("The Redis backplane is not running.")
        return await self._publisher.publish(topic, data, ts, data_json)

    async def read_since(self, topic: str, offset: int, epoch: int | None) -> ReadResult:
        """Messages after ``offset`` up to what this hub has delivered, with gaps for what is gone.

        When Redis cannot be read, the range comes back as a gap with reason
        ``unavailable`` so the subscriber knows, and can ask again.
        """
        try:
            return await self.delivered.read_since(lambda: self._client_for(topic), topic, offset, epoch)
        except self._read_errors as error:
            self.last_error = str(error)
            tracked = self.delivered.tracked.get(topic)
            if tracked is None:
                return [Gap(topic, offset + 1, None, "unavailable")], [], None
            return (
                [Gap(topic, offset + 1, tracked.offset, "unavailable", tracked.epoch)],
                [],
                (tracked.epoch, tracked.offset),
            )

    def positions(self, pattern: Pattern) -> dict[str, TopicPosition]:
        """Topics this hub tracks that ``pattern`` matches (it watched them first)."""
        return self.delivered.positions(pattern)

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
            found = await self._redis_call(key, _hgetall(key))
            for raw_topic, raw_place in found.items():
                topic = raw_topic.decode() if isinstance(raw_topic, bytes) else str(raw_topic)
                if pattern.matches(topic):
                    place = raw_place.decode() if isinstance(raw_place, bytes) else str(raw_place)
                    epoch, _, offset = place.partition(":")
                    lost[topic] = (int(epoch), int(offset))
        return lost

    async def _redis_call(self, key: str, command: Callable[[Any], Awaitable[Any]]) -> Any:
        """``command`` on the client of the node that holds ``key``.

        Raises:
            Unavailable: the backplane is not running, or that node cannot be reached.
        """
        if self._topology is None:
            raise Unavailable("The Redis backplane is not running.")
        try:
            return await asyncio.wait_for(command(self._topology.node_for(key).client), self.command_timeout)
        except self._errors as error:
            raise self._unavailable(error, "try again when it is back.") from None

    def cursor_mirror(self) -> RedisCursorMirror:
        """Stored resume cursors shared through this Redis, so every hub of the cluster reads them."""
        return RedisCursorMirror(self)

    def reset_topic(self, topic: str) -> None:
        """Start a new epoch for ``topic`` in Redis (strictly greater than the old one)."""
        self.delivered.forget(topic)
        keys, bucket = self.keys, bucket_of(topic)
        with contextlib.suppress(Unavailable):
            client = self._client_for(topic)
            retention_ms = 0 if self.lost_retention is None else max(1, int(self.lost_retention * 1000))
            self._spawn(
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
                    retention_ms,
                    self.max_lost_per_bucket or 0,
                )
            )

    # -- watching: what this hub's clients need ---------------------------------------

    async def watch(self, patterns: set[Pattern]) -> None:
        """Listen in Redis for what ``patterns`` (and the hub's current subscriptions) need.

        New buckets are confirmed by Redis before this returns, and the topics
        new patterns match are then looked up, so :meth:`positions` knows them.

        Raises:
            Unavailable: a new pattern needs a node that cannot be reached now.
        """
        try:
            wanted = set(patterns) | (self._hub.watched_patterns() if self._hub is not None else set())
            adding = wanted - self.subscriptions.patterns
            nodes = self._topology.serving() if self._topology is not None else []
            try:
                added, missing = await self.subscriptions.update(wanted, nodes)
            except self._errors as error:
                if adding:
                    # Not watched: a retried subscribe must be refused too until Redis is back,
                    # not go live on topics whose positions this hub never looked up.
                    self.subscriptions.refuse(adding)
                    raise self._unavailable(error, "subscribe again when it is back.") from None
                log.info("could not unsubscribe in Redis (will resync on reconnect): %s", error)
                return
            exact_missing = any(not pattern.is_wildcard and bucket_of(pattern.text) in missing for pattern in added)
            if added and (not self.subscriptions.live or exact_missing):
                self.subscriptions.refuse(added)
                raise Unavailable(f"Redis at {redacted(self.url)} is unreachable; subscribe again when it is back.")
        finally:
            self._presence_dirty.set()

    # -- listening: one loop per node --------------------------------------------------

    def _new_listener(self, node: Node) -> Listener:
        return Listener(
            node.endpoint,
            self.client_name,
            sharded=self._sharded,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            connect_timeout=min(2.0, self.command_timeout),
        )

    async def _connect(self, node: Node, listener: Listener) -> None:
        """Open ``node``'s listener, subscribe, catch up, then go live (a hook tests gate)."""
        await listener.open()
        if self._topology is not None:
            with contextlib.suppress(LookupError):
                self.subscriptions.presence_node = self._topology.node_for(self.keys.hubs)
        await self.subscriptions.join(node, listener)
        if self.state is BackplaneState.DISCONNECTED:
            log.warning("Redis at %s is back; caught up and live again", node.name)
        self._update_state()
        self._presence_dirty.set()

    def _update_state(self) -> None:
        if self.state is BackplaneState.STOPPED or self._topology is None:
            return
        serving = self._topology.serving()
        if serving and all(node in self.subscriptions.live for node in serving):
            self.state = BackplaneState.CONNECTED
            self.last_error = None
            self._connected.set()
        elif self.state is not BackplaneState.CONNECTING:
            self.state = BackplaneState.DISCONNECTED
            self._connected.clear()

    def _went_down(self, node: Node, error: BaseException) -> None:
        self.last_error = str(error) or type(error).__name__
        was_live = node in self.subscriptions.live
        self.subscriptions.lost(node, self.last_error)
        if self.state is BackplaneState.STOPPED:
            return
        if was_live or self.state is BackplaneState.CONNECTED:
            self.state = BackplaneState.DISCONNECTED
            self._connected.clear()
        self.reconnects += 1
        if was_live and self._hub is not None:
            log.warning("lost Redis at %s (%s); reconnecting", node.name, self.last_error)
            lost = node.buckets

            def affected(pattern: Pattern) -> bool:
                return pattern.is_wildcard or bucket_of(pattern.text) in lost

            self._hub.backplane_unavailable(
                Unavailable(
                    "The Redis backplane is unreachable: publishing fails and live messages pause; "
                    "they resume, without loss, when it is back."
                ),
                affected,
            )

    # -- presence ----------------------------------------------------------------------

    async def _presence_forever(self) -> None:
        """Keep this hub's presence entry fresh: at once when it changes, else every ttl/3."""
        while self.state is not BackplaneState.STOPPED:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._presence_dirty.wait(), self.presence_ttl / 3)
                await asyncio.sleep(self.presence_debounce)  # coalesce a burst of changes
            self._presence_dirty.clear()
            if not self.subscriptions.live:
                continue
            try:
                await self._write_presence()
                await self._expire_silent_hubs()
            except self._errors as error:
                log.info("presence refresh failed: %s", error)

    async def _write_presence(self) -> None:
        await self.presence_store.write()

    async def _expire_silent_hubs(self) -> None:
        await self.presence_store.expire_silent_hubs()

    def announce_membership(self, client: str, before: list[str], after: list[str]) -> None:
        """Tell every hub (this one too, through Redis) that ``client``'s subscriptions changed."""
        self.presence_store.announce(client, before, after, connected=bool(self.subscriptions.live))

    async def presence(self, query: Pattern) -> list[dict[str, str]]:
        """Every client, on any hub, subscribed to what ``query`` names.

        Raises:
            Unavailable: Redis cannot be read.
        """
        if self.subscriptions.live:
            with contextlib.suppress(*self._errors):
                await self._write_presence()  # this hub's latest subscriptions first
        try:
            return await self.presence_store.read(query)
        except self._errors as error:
            raise self._unavailable(error, "try again when it is back.") from None

    # -- introspection -----------------------------------------------------------------

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("redis backplane task failed: %s", task.exception())

    def health(self) -> dict[str, Any]:
        topology = self._topology
        nodes = (
            {}
            if topology is None
            else {
                node.name: "connected" if node in self.subscriptions.live else "disconnected"
                for node in topology.serving()
            }
        )
        return {
            "backplane": self.name,
            "ok": self.state is BackplaneState.CONNECTED,
            "state": self.state.value,
            "redis": redacted(self.url),
            "cluster": self.cluster,
            "nodes": nodes,
            "prefix": self.keys.prefix,
            "hub_id": self.hub_id,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
            "topics": len(self.delivered.tracked),
            "history_bytes": self.delivered.cache.total_bytes,
            "watched_patterns": len(self.subscriptions.patterns),
        }


def _hgetall(key: str) -> Callable[[Any], Awaitable[Any]]:
    """A command reading hash ``key`` from a client (for :meth:`RedisBackplane._redis_call`)."""

    def command(client: Any) -> Awaitable[Any]:
        reply: Awaitable[Any] = client.hgetall(key)  # redis-py's asyncio client: an awaitable reply
        return reply

    return command
