"""The Redis backplane: several hubs behaving as one.

Offsets, epochs and history live in Redis, so every hub agrees on each topic's
order and a client can resume on any hub. One Lua script per publish (one
round trip, whatever the number of subscribers or hubs) INCRs the topic's
offset, appends the envelope to the topic's stream with the offset as entry
id, and PUBLISHes it; see :mod:`rtnb.backplane._redis_scripts`.

Each hub holds one pub/sub connection and subscribes only to what its clients
need: exact channels for plain topics, escaped globs for wildcard patterns,
filtered exactly on arrival. Each message is decoded once per hub and handed
to the hub's fan-out with its JSON bytes as received, so it is not re-encoded.

What this hub has delivered is tracked per topic (epoch, offset). That cursor
is the truth for :meth:`RedisBackplane.positions` and caps
:meth:`RedisBackplane.read_since`, so a subscriber catching up from history
meets the live stream without loss or duplicates: a message Redis holds but
this hub has not yet delivered is left to the live path. Duplicate pub/sub
deliveries (a message matching two subscriptions) are dropped by offset.

When Redis goes away: publishes raise :class:`~rtnb.core.errors.Unavailable`,
subscribers get an ``error`` frame with code ``unavailable``, ``/healthz``
reports it, and a reconnect loop retries with exponential backoff. Once back,
the hub re-subscribes and, before any new live message, catches every tracked
topic up from its stream by offset; topics created while it was away (or a
Redis that restarted empty, which gives new epochs) are found through the
topic index. Nothing acknowledged is skipped silently: what the streams no
longer hold (trimmed, expired, or a new epoch) reaches live subscribers as a
``gap`` before the messages that are still there.

Presence is cluster-wide: each hub writes its connections' subscriptions to a
hash with an expiry it keeps refreshing, so a hub killed with SIGKILL loses its
members within ``presence_ttl`` seconds. A separate heartbeat key, refreshed
with it, says the hub is alive even when it has no members: only a hub whose
heartbeat expired is declared gone by the others.

Not supported: Redis Cluster (the publish script touches keys of several hash
slots). A single Redis, or Redis with Sentinel failover, works.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from ..core.errors import BadField, Unavailable
from ..core.history import Gap, HistoryLimits, HistoryStore
from ..core.message import Message
from ..core.topics import Pattern
from ._redis_keys import RedisKeys, topic_prefix
from ._redis_presence import decode_memberships, encode_memberships, present_members
from ._redis_scripts import PUBLISH_SCRIPT, RESET_SCRIPT
from .base import Deliver, ReadResult, TopicPosition

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["BackplaneState", "RedisBackplane"]

log = logging.getLogger("rtnb.backplane.redis")

#: Errors that mean "Redis is not reachable right now" (filled in lazily with redis' own).
_NETWORK_ERRORS: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError)


def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis.exceptions

    return (redis.exceptions.RedisError, *_NETWORK_ERRORS)


class BackplaneState(enum.Enum):
    """Lifecycle of the connection to Redis.

    ``STOPPED -> CONNECTING -> CONNECTED <-> DISCONNECTED``, and back to
    ``STOPPED`` from any state. Only ``CONNECTED`` is healthy.
    """

    STOPPED = "stopped"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


_ALLOWED = {
    BackplaneState.STOPPED: {BackplaneState.CONNECTING},
    BackplaneState.CONNECTING: {BackplaneState.CONNECTED, BackplaneState.DISCONNECTED, BackplaneState.STOPPED},
    BackplaneState.CONNECTED: {BackplaneState.DISCONNECTED, BackplaneState.STOPPED},
    BackplaneState.DISCONNECTED: {BackplaneState.CONNECTED, BackplaneState.DISCONNECTED, BackplaneState.STOPPED},
}


@dataclass
class _Tracked:
    """How far this hub has delivered a topic, and where its history starts."""

    epoch: int
    offset: int
    first: int


def _redacted(url: str) -> str:
    """``url`` without its password, for logs and ``/healthz``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def _split_prefix(url: str) -> tuple[str, str | None]:
    """Take an rtnb ``prefix=`` query parameter out of a Redis URL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((value for name, value in query if name == "prefix"), None)
    rest = urlencode([(name, value) for name, value in query if name != "prefix"])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment)), prefix


def _offset_of(entry_id: bytes) -> int:
    return int(entry_id.split(b"-", 1)[0])


class RedisBackplane:
    """Offsets, history, fan-out and presence shared by every hub on one Redis.

    Args:
        url: ``redis://[:password@]host:port/db`` (``rediss://`` for TLS). A
            ``prefix=`` query parameter sets ``prefix`` too.
        prefix: start of every key and channel name; hubs that should act as
            one cluster use the same prefix.
        limits: history bounds. ``max_messages`` bounds each topic's stream
            (trimmed approximately, never below it), ``max_age`` trims by age
            (``None``: no age limit); the same limits bound this hub's local
            cache of recent messages.
        hub_id: this hub's name in presence answers; random when omitted.
        presence_ttl: seconds after which a silent hub's members vanish.
        reconnect_initial / reconnect_max: backoff bounds (seconds) between
            reconnect attempts; the delay doubles, with jitter, up to the max.
        command_timeout: seconds before a Redis command is given up as failed.
        start_timeout: how long :meth:`start` waits for the first connection
            before running degraded (reconnecting in the background).
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
    ) -> None:
        self.url, url_prefix = _split_prefix(url)
        self.keys = RedisKeys(prefix if prefix is not None else (url_prefix or "rtnb:"))
        self.limits = limits or HistoryLimits()
        self.hub_id = hub_id or uuid.uuid4().hex[:12]
        self.presence_ttl = presence_ttl
        self.reconnect_initial = reconnect_initial
        self.reconnect_max = reconnect_max
        self.command_timeout = command_timeout
        self.start_timeout = start_timeout
        self.presence_debounce = 0.02
        self.cache = HistoryStore(self.limits)
        self.state = BackplaneState.STOPPED
        self.reconnects = 0
        self.last_error: str | None = None
        self._deliver: Deliver | None = None
        self._hub: Any = None
        self._redis: redis.asyncio.Redis | None = None
        self._publish_script: Any = None
        self._reset_script: Any = None
        self._pubsub: Any = None
        self._tracked: dict[str, _Tracked] = {}
        self._patterns: set[Pattern] = set()
        self._wanted_cache: dict[str, bool] = {}
        self._confirmations: dict[tuple[bytes, bytes], asyncio.Future[None]] = {}
        self._watch_lock = asyncio.Lock()
        self._connected = asyncio.Event()
        self._presence_dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._redis_time_ms: int | None = None
        self._errors: tuple[type[BaseException], ...] = _NETWORK_ERRORS
        self._control_channel = f"{self.keys.prefix}control:{self.hub_id}".encode()
        self._presence_channel = f"{self.keys.prefix}presence-events".encode()
        #: other hubs' members as their join/leave events told us, and when each hub last spoke
        self._remote_members: dict[str, dict[str, list[str]]] = {}
        self._remote_heard: dict[str, float] = {}
        #: (hub, client) whose leave this hub's watchers were told, and when: a late event or a
        #: stale presence snapshot about them must not make a second leave
        self._remote_left: dict[tuple[str, str], float] = {}
        self._outgoing_events: asyncio.Queue[bytes] = asyncio.Queue(maxsize=10_000)

    # -- lifecycle -------------------------------------------------------------------

    def _transition(self, new_state: BackplaneState) -> None:
        if new_state not in _ALLOWED[self.state]:
            raise RuntimeError(f"redis backplane: illegal transition {self.state.value} -> {new_state.value}")
        self.state = new_state

    def bind_hub(self, hub: Any) -> None:
        """Let the backplane read the hub's subscriptions (presence) and tell its subscribers of outages."""
        self._hub = hub

    async def start(self, deliver: Deliver) -> None:
        """Connect (waiting up to ``start_timeout``), then deliver messages to ``deliver``."""
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self._errors = _redis_errors()
        self._deliver = deliver
        self._transition(BackplaneState.CONNECTING)
        # No retries inside redis-py: a failure must surface at once as Unavailable,
        # and the reconnect loop below owns the backoff.
        self._redis = redis.asyncio.Redis.from_url(
            self.url,
            decode_responses=False,
            socket_connect_timeout=min(2.0, self.command_timeout),
            socket_timeout=self.command_timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
            client_name="rtnb-" + "".join(character if character.isalnum() else "-" for character in self.hub_id),
        )
        self._publish_script = self._redis.register_script(PUBLISH_SCRIPT)
        self._reset_script = self._redis.register_script(RESET_SCRIPT)
        self._tasks = [
            asyncio.ensure_future(self._listen_forever()),
            asyncio.ensure_future(self._presence_forever()),
            asyncio.ensure_future(self._send_events_forever()),
        ]
        try:
            await asyncio.wait_for(self._connected.wait(), self.start_timeout)
        except asyncio.TimeoutError:
            log.warning(
                "no Redis at %s after %ss; running degraded and retrying (%s)",
                _redacted(self.url), self.start_timeout, self.last_error,
            )

    async def stop(self) -> None:
        """Withdraw this hub's presence, stop listening, close connections."""
        if self.state is BackplaneState.STOPPED:
            return
        was_connected = self.state is BackplaneState.CONNECTED
        self._transition(BackplaneState.STOPPED)
        self._deliver = None
        for task in [*self._tasks, *self._background]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)
        self._tasks = []
        redis_client, self._redis = self._redis, None
        if redis_client is not None:
            if was_connected:
                try:
                    async with redis_client.pipeline(transaction=True) as pipe:
                        pipe.delete(self.keys.presence(self.hub_id), self.keys.alive(self.hub_id))
                        pipe.zrem(self.keys.hubs, self.hub_id)
                        await asyncio.wait_for(pipe.execute(), 1.0)
                except self._errors as error:
                    log.info("could not withdraw presence at stop: %s", error)
            await redis_client.aclose()

    # -- publish ---------------------------------------------------------------------

    def _unavailable(self, error: BaseException | str, what: str) -> Unavailable:
        self.last_error = str(error) or type(error).__name__
        return Unavailable(f"Redis at {_redacted(self.url)} is unreachable ({self.last_error}); {what}")

    async def publish(self, topic: str, data: Any, ts: float, data_json: bytes) -> Message:
        """Assign the next offset in Redis, store in the stream and PUBLISH, in one round trip.

        Raises:
            Unavailable: Redis did not confirm the message; it was not acknowledged.
        """
        if self._redis is None:
            raise Unavailable("The Redis backplane is not running.")
        keys = self.keys
        max_age = self.limits.max_age
        try:
            offset, epoch = await self._publish_script(
                keys=[keys.epoch(topic), keys.offset(topic), keys.stream(topic), keys.topics],
                args=[
                    keys.channel(topic),
                    topic,
                    orjson.dumps(topic),
                    orjson.dumps(ts),
                    data_json,
                    self.limits.max_messages,
                    int(ts * 1000),
                    0 if max_age is None else int(max_age * 1000),
                ],
            )
        except self._errors as error:
            raise self._unavailable(error, "the message was not published.") from None
        return Message(topic, int(offset), int(epoch), ts, data, data_json=data_json)

    # -- history ---------------------------------------------------------------------

    async def read_since(self, topic: str, offset: int, epoch: int | None) -> ReadResult:
        """Messages after ``offset`` up to what this hub has delivered, with gaps for what is gone.

        Reads the local cache when it holds the whole range, else the topic's
        stream. When Redis cannot be read, the range comes back as a gap with
        reason ``unavailable`` so the subscriber knows, and can ask again.
        """
        tracked = self._tracked.get(topic)
        if tracked is None:
            try:
                found = await self._fetch_position(topic)
            except self._errors as error:
                self.last_error = str(error)
                return [Gap(topic, offset + 1, None, "unavailable")], [], None
            if found is None:
                return ([Gap(topic, offset + 1, None, "epoch_changed")] if offset else []), [], None
            tracked = found
        current_epoch, last = tracked.epoch, tracked.offset
        gaps: list[Gap] = []
        if (epoch is not None and epoch != current_epoch) or offset > last:
            gaps.append(Gap(topic, offset + 1, None, "epoch_changed", current_epoch))
            offset = 0
        if offset >= last:
            return gaps, [], (current_epoch, last)
        cached = self.cache.get(topic)
        if (
            cached is not None
            and cached.epoch == current_epoch
            and cached.last_offset == last
            and cached.first_offset <= offset + 1
        ):
            more_gaps, messages = cached.since(offset, current_epoch)
            return gaps + more_gaps, messages, (current_epoch, last)
        try:
            entries = await self._redis_call(
                lambda client: client.xrange(self.keys.stream(topic), f"{offset + 1}-0", f"{last}-0")
            )
        except Unavailable:
            return [*gaps, Gap(topic, offset + 1, last, "unavailable", current_epoch)], [], (current_epoch, last)
        messages = [message for message in self._decode_entries(entries) if message.epoch == current_epoch]
        first = messages[0].offset if messages else last + 1
        if first > offset + 1:
            gaps.append(Gap(topic, offset + 1, first - 1, "trimmed", current_epoch))
        return gaps, messages, (current_epoch, last)

    def positions(self, pattern: Pattern) -> dict[str, TopicPosition]:
        """Topics this hub tracks that ``pattern`` matches (it watched them first)."""
        if not pattern.is_wildcard:
            tracked = self._tracked.get(pattern.text)
            found = {} if tracked is None else {pattern.text: tracked}
        else:
            found = {topic: tracked for topic, tracked in self._tracked.items() if pattern.matches(topic)}
        return {
            topic: TopicPosition(tracked.epoch, min(tracked.first, tracked.offset + 1), tracked.offset)
            for topic, tracked in found.items()
        }

    @property
    def _lost_key(self) -> str:
        return f"{self.keys.prefix}lost"

    async def lost_epochs(self, pattern: Pattern) -> dict[str, tuple[int, int]]:
        """Epochs reset topics matching ``pattern`` lost: topic -> (epoch, last offset).

        Raises:
            Unavailable: Redis cannot be read.
        """
        found = await self._redis_call(lambda redis: redis.hgetall(self._lost_key))
        lost = {}
        for raw_topic, raw_place in found.items():
            topic = raw_topic.decode() if isinstance(raw_topic, bytes) else str(raw_topic)
            if pattern.matches(topic):
                place = raw_place.decode() if isinstance(raw_place, bytes) else str(raw_place)
                epoch, _, offset = place.partition(":")
                lost[topic] = (int(epoch), int(offset))
        return lost

    def cursor_mirror(self) -> Any:
        """Stored resume cursors shared through this Redis, so every hub of the cluster reads them."""
        from ._redis_cursors import RedisCursorMirror

        return RedisCursorMirror(self)

    def reset_topic(self, topic: str) -> None:
        """Start a new epoch for ``topic`` in Redis (strictly greater than the old one)."""
        self._tracked.pop(topic, None)
        self.cache.reset(topic)
        if self._reset_script is not None:
            keys = self.keys
            self._spawn(
                self._reset_script(
                    keys=[keys.epoch(topic), keys.offset(topic), keys.stream(topic), keys.topics, self._lost_key],
                    args=[topic],
                )
            )

    async def _fetch_position(self, topic: str) -> _Tracked | None:
        """Where ``topic`` stands in Redis now, or None when Redis never saw it."""
        assert self._redis is not None
        keys = self.keys
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(keys.epoch(topic))
            pipe.get(keys.offset(topic))
            pipe.xrange(keys.stream(topic), "-", "+", count=1)
            epoch, offset, first = await pipe.execute()
        if epoch is None:
            return None
        last = int(offset or 0)
        return _Tracked(int(epoch), last, _offset_of(first[0][0]) if first else last + 1)

    def _decode_entries(self, entries: Iterable[tuple[bytes, dict[bytes, bytes]]]) -> list[Message]:
        messages = []
        for _entry_id, fields in entries:
            raw = fields.get(b"m")
            if raw is None:
                continue
            try:
                messages.append(Message.from_envelope(orjson.loads(raw), json=raw))
            except (orjson.JSONDecodeError, BadField) as error:
                log.warning("skipping an unreadable history entry: %s", error)
        return messages

    async def _redis_call(self, command: Callable[[Any], Any]) -> Any:
        if self._redis is None:
            raise Unavailable("The Redis backplane is not running.")
        try:
            return await command(self._redis)
        except self._errors as error:
            raise self._unavailable(error, "try again when it is back.") from None

    # -- watching: what this hub's clients need ---------------------------------------

    def _targets(self) -> tuple[set[bytes], set[bytes]]:
        """(channels, globs) covering every watched pattern, plus the control channel."""
        channels, globs = {self._control_channel, self._presence_channel}, set()
        for pattern in self._patterns:
            if pattern.is_wildcard:
                globs.add(self.keys.channel_glob(pattern).encode())
            else:
                channels.add(self.keys.channel(pattern.text).encode())
        return channels, globs

    async def watch(self, patterns: set[Pattern]) -> None:
        """Listen in Redis for exactly what ``patterns`` (and the hub's current subscriptions) need.

        New patterns are confirmed by Redis before this returns, and the
        topics they match are then looked up, so :meth:`positions` knows them.

        Raises:
            Unavailable: a new pattern could not be subscribed (Redis is down).
        """
        try:
            await self._watch(patterns)
        finally:
            # Set last, with no await before the caller goes on to change its
            # groups, so the presence writer sees the new subscriptions.
            self._presence_dirty.set()

    async def _watch(self, patterns: set[Pattern]) -> None:
        async with self._watch_lock:
            wanted = set(patterns)
            if self._hub is not None:
                wanted |= self._hub_patterns()
            old_channels, old_globs = self._targets()
            added = wanted - self._patterns
            removed = self._patterns - wanted
            self._patterns = wanted
            self._wanted_cache.clear()
            if removed:
                self._forget_unwatched()
            new_channels, new_globs = self._targets()
            pubsub = self._pubsub
            if pubsub is None or self.state is not BackplaneState.CONNECTED:
                if added:
                    # Not watched: a retried subscribe must be refused too until Redis is back,
                    # not go live on topics whose positions this hub never looked up.
                    self._patterns -= added
                    raise Unavailable(
                        f"Redis at {_redacted(self.url)} is unreachable; subscribe again when it is back."
                    )
                return
            try:
                if old_channels - new_channels:
                    await pubsub.unsubscribe(*(old_channels - new_channels))
                if old_globs - new_globs:
                    await pubsub.punsubscribe(*(old_globs - new_globs))
                waits = [self._expect(b"subscribe", name) for name in new_channels - old_channels]
                waits += [self._expect(b"psubscribe", name) for name in new_globs - old_globs]
                if new_channels - old_channels:
                    await pubsub.subscribe(*(new_channels - old_channels))
                if new_globs - old_globs:
                    await pubsub.psubscribe(*(new_globs - old_globs))
                if waits:
                    await asyncio.wait_for(asyncio.gather(*waits), self.command_timeout)
                if added:
                    await self._discover(added, missed_since_ms=None)
            except self._errors as error:
                if added:
                    raise self._unavailable(error, "subscribe again when it is back.") from None
                log.info("could not unsubscribe in Redis (will resync on reconnect): %s", error)

    def _hub_patterns(self) -> set[Pattern]:
        groups = self._hub.fanout.groups.values()
        return {pattern for group in groups for pattern in group.patterns}

    def _forget_unwatched(self) -> None:
        """Stop tracking topics no watched pattern matches any more."""
        for topic in list(self._tracked):
            if not self._wanted(topic):
                del self._tracked[topic]
                self.cache.reset(topic)

    def _wanted(self, topic: str) -> bool:
        cache = self._wanted_cache
        wanted = cache.get(topic)
        if wanted is None:
            if len(cache) > 100_000:
                cache.clear()
            wanted = cache[topic] = any(pattern.matches(topic) for pattern in self._patterns)
        return wanted

    def _expect(self, kind: bytes, name: bytes) -> asyncio.Future[None]:
        future = self._confirmations.get((kind, name))
        if future is None or future.done():
            future = self._confirmations[(kind, name)] = asyncio.get_running_loop().create_future()
        return future

    async def _topics_matching(self, pattern: Pattern) -> list[str]:
        """Every topic in the index ``pattern`` matches (read by literal prefix)."""
        assert self._redis is not None
        prefix = topic_prefix(pattern)
        if not pattern.is_wildcard:
            known = await self._redis.zscore(self.keys.topics, prefix) is not None
            return [pattern.text] if known else []
        low, high = (b"[" + prefix.encode(), b"[" + prefix.encode() + b"\xff") if prefix else (b"-", b"+")
        found = await self._redis.zrangebylex(self.keys.topics, low, high)  # type: ignore[arg-type]
        names = (name.decode() if isinstance(name, bytes) else name for name in found)
        return [topic for topic in names if pattern.matches(topic)]

    async def _discover(self, patterns: Iterable[Pattern], missed_since_ms: int | None) -> None:
        """Start tracking the untracked topics ``patterns`` match.

        With ``missed_since_ms`` (a reconnect), a topic whose epoch began after
        that Redis time was created while this hub was away: its whole stream
        is delivered. Otherwise tracking starts at the topic's current offset.
        """
        topics: set[str] = set()
        for pattern in patterns:
            topics.update(await self._topics_matching(pattern))
        for topic in sorted(topics):
            if topic in self._tracked:
                continue
            position = await self._fetch_position(topic)
            if position is None or topic in self._tracked:
                continue
            if missed_since_ms is not None and position.epoch >= missed_since_ms:
                await self._catch_up_topic(topic, position.epoch, position.offset)
            else:
                self._tracked[topic] = position

    # -- the listening loop ------------------------------------------------------------

    async def _listen_forever(self) -> None:
        """Hold the pub/sub connection; reconnect with backoff whenever it fails."""
        delay = self.reconnect_initial
        while self.state is not BackplaneState.STOPPED:
            assert self._redis is not None
            pubsub = self._redis.pubsub()
            try:
                await self._connect(pubsub)
                delay = self.reconnect_initial
                await self._listen(pubsub)
            except self._errors as error:
                self._went_down(error)
                # Idle pooled connections went to the Redis we lost: drop them, so the
                # first publish after it returns does not fail on a dead socket.
                with contextlib.suppress(*self._errors):
                    await self._redis.connection_pool.disconnect(inuse_connections=False)
            finally:
                self._pubsub = None
                with contextlib.suppress(*self._errors):
                    await pubsub.aclose()
            if self.state is BackplaneState.STOPPED:
                return
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.reconnect_max)

    async def _connect(self, pubsub: Any) -> None:
        """Subscribe to every target, wait for Redis to confirm, then catch up, then go live."""
        channels, globs = self._targets()
        expected = {(b"subscribe", name) for name in channels} | {(b"psubscribe", name) for name in globs}
        await pubsub.subscribe(*channels)
        if globs:
            await pubsub.psubscribe(*globs)
        early: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.command_timeout
        while expected:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ConnectionError("Redis did not confirm the subscriptions in time")
            item = await pubsub.get_message(timeout=remaining)
            if item is None:
                continue
            kind = item["type"].encode() if isinstance(item["type"], str) else item["type"]
            if kind in (b"subscribe", b"psubscribe"):
                expected.discard((kind, item["channel"]))
            else:
                early.append(item)
        self._pubsub = pubsub
        missed_since = self._redis_time_ms
        await self._resync(missed_since)
        for item in early:
            await self._handle(item)
        if self.state is BackplaneState.DISCONNECTED:
            log.warning("Redis at %s is back; caught up and live again", _redacted(self.url))
        self._transition(BackplaneState.CONNECTED)
        self.last_error = None
        self._connected.set()
        self._presence_dirty.set()

    async def _resync(self, missed_since_ms: int | None) -> None:
        """After a (re)connect: deliver what tracked topics missed, find topics created meanwhile."""
        assert self._redis is not None
        for topic, tracked in list(self._tracked.items()):
            position = await self._fetch_position(topic)
            if position is None:
                continue  # Redis lost the topic; its next message starts a new epoch
            if position.epoch >= tracked.epoch:
                await self._catch_up_topic(topic, position.epoch, position.offset)
        if missed_since_ms is not None:
            await self._discover(list(self._patterns), missed_since_ms)
        self._redis_time_ms = await self._redis_time()

    async def _redis_time(self) -> int:
        assert self._redis is not None
        seconds, microseconds = await self._redis.time()
        return int(seconds) * 1000 + int(microseconds) // 1000

    async def _catch_up_topic(self, topic: str, epoch: int, upto: int) -> None:
        """Bring ``topic`` to offset ``upto`` of ``epoch``, from its stream, with a gap for whatever is gone.

        Delivers the entries the stream retains after this hub's position. Live
        subscribers are first told, in order, of a new epoch (``epoch_changed``)
        and of the offsets history no longer holds (``trimmed``): a start trimmed
        away, or nothing retained at all (a stream expired under its age limit).
        """
        assert self._redis is not None
        tracked = self._tracked.get(topic)
        gaps: list[Gap] = []
        after = 0
        if tracked is not None:
            if tracked.epoch > epoch:
                return  # an older epoch than the one delivered: nothing to catch up
            if tracked.epoch == epoch:
                after = tracked.offset
            else:
                gaps.append(Gap(topic, tracked.offset + 1, None, "epoch_changed", epoch))
        messages: list[Message] = []
        if upto > after:
            entries = await self._redis.xrange(self.keys.stream(topic), f"{after + 1}-0", f"{upto}-0")
            decoded = self._decode_entries(entries)  # type: ignore[arg-type]
            messages = [message for message in decoded if message.epoch == epoch]
        first = messages[0].offset if messages else max(upto, after) + 1
        if first > after + 1:
            gaps.append(Gap(topic, after + 1, first - 1, "trimmed", epoch))
        if gaps:
            self._skip_to(topic, epoch, first - 1, gaps)
        for message in messages:
            self._accept(message)

    def _skip_to(self, topic: str, epoch: int, offset: int, gaps: list[Gap]) -> None:
        """Tell live subscribers of ``topic`` the ``gaps``, and move this hub's position to ``offset`` of ``epoch``.

        The groups' cursors move too: a subscriber catching up later reads the
        same gaps from history and meets its group there.
        """
        for gap in gaps:
            log.warning("live subscribers of %r missed what history no longer holds: %s gap %s..%s (epoch %s)",
                        topic, gap.reason, gap.from_offset, gap.to_offset, gap.epoch)
        tracked = self._tracked.get(topic)
        if tracked is not None and tracked.epoch == epoch:
            # Streams lose their oldest entries first: history now starts after the gap.
            tracked.offset = max(tracked.offset, offset)
            tracked.first = max(tracked.first, offset + 1)
        else:
            self._tracked[topic] = _Tracked(epoch, offset, offset + 1)
        hub = self._hub
        if hub is None:
            return
        from ..core.fanout import MemberState

        hub.flush()  # messages already routed go out before the gaps that follow them
        told = 0
        for group in list(hub.fanout.groups.values()):
            if group.matches(topic):
                group.cursor[topic] = (epoch, offset)
                hub.cursors.forget(group)  # moved by no batch: its next stored cursor is a full one
                for member in list(group.members):
                    if member.state is MemberState.LIVE and member.sink is not None:
                        member.sink.send_items(gaps)
                        told += len(gaps)
        hub.stats.gaps_sent += told

    async def _listen(self, pubsub: Any) -> None:
        while self.state is not BackplaneState.STOPPED:
            item = await pubsub.get_message(timeout=None)
            if item is not None:
                await self._handle(item)

    async def _handle(self, item: dict[str, Any]) -> None:
        kind = item["type"]
        if kind in ("message", "pmessage", b"message", b"pmessage"):
            channel = item["channel"]
            if channel == self._control_channel:
                return
            if channel == self._presence_channel:
                self._membership_event(item["data"])
                return
            topic = self.keys.topic_of(channel)
            if not self._wanted(topic):
                return
            data = item["data"]
            try:
                message = Message.from_envelope(orjson.loads(data), json=data)
            except (orjson.JSONDecodeError, BadField) as error:
                log.warning("ignoring an unreadable message on %r: %s", topic, error)
                return
            tracked = self._tracked.get(topic)
            if tracked is not None and (
                message.epoch > tracked.epoch
                or (message.epoch == tracked.epoch and message.offset > tracked.offset + 1)
            ):
                # Something between what we delivered and this: fetch it first, in order.
                await self._catch_up_topic(topic, message.epoch, message.offset - 1)
            self._accept(message)
        elif kind in ("subscribe", "psubscribe", b"subscribe", b"psubscribe"):
            key = (kind.encode() if isinstance(kind, str) else kind, item["channel"])
            future = self._confirmations.pop(key, None)
            if future is not None and not future.done():
                future.set_result(None)

    def _accept(self, message: Message) -> None:
        """Deliver ``message`` unless this hub already did (or it is from an older epoch)."""
        topic = message.topic
        tracked = self._tracked.get(topic)
        if tracked is not None:
            if message.epoch < tracked.epoch or (message.epoch == tracked.epoch and message.offset <= tracked.offset):
                return
            if message.epoch == tracked.epoch:
                tracked.offset = message.offset
            else:
                self._tracked[topic] = _Tracked(message.epoch, message.offset, message.offset)
        else:
            first = 1 if message.offset == 1 else max(1, message.offset - self.limits.max_messages + 1)
            self._tracked[topic] = _Tracked(message.epoch, message.offset, min(first, message.offset))
        self.cache.insert(message)
        deliver = self._deliver
        if deliver is not None:
            deliver(message)

    def _went_down(self, error: BaseException) -> None:
        self.last_error = str(error) or type(error).__name__
        self._connected.clear()
        for future in self._confirmations.values():
            if not future.done():
                future.set_exception(ConnectionError(self.last_error))
        self._confirmations.clear()
        if self.state is BackplaneState.STOPPED:
            return
        was_connected = self.state is BackplaneState.CONNECTED
        self._transition(BackplaneState.DISCONNECTED)
        self.reconnects += 1
        if was_connected:
            log.warning("lost Redis at %s (%s); reconnecting", _redacted(self.url), self.last_error)
            self._tell_subscribers(
                Unavailable(
                    "The Redis backplane is unreachable: publishing fails and live messages pause; "
                    "they resume, without loss, when it is back."
                ).to_wire()
            )

    def _tell_subscribers(self, frame: dict[str, Any]) -> None:
        hub = self._hub
        if hub is None:
            return
        for member in list(hub.fanout.members.values()):
            if member.patterns and member.sink is not None:
                member.sink.send_control(dict(frame))

    # -- presence ----------------------------------------------------------------------

    def _memberships(self) -> dict[str, list[str]]:
        hub = self._hub
        return {} if hub is None else dict(hub.local_subscriptions())

    async def _presence_forever(self) -> None:
        """Keep this hub's presence entry fresh: at once when it changes, else every ttl/3."""
        interval = self.presence_ttl / 3
        while self.state is not BackplaneState.STOPPED:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._presence_dirty.wait(), interval)
                # Coalesce a burst of (un)subscriptions into one write.
                await asyncio.sleep(self.presence_debounce)
            self._presence_dirty.clear()
            if self.state is not BackplaneState.CONNECTED:
                continue
            try:
                await self._write_presence()
                self._redis_time_ms = await self._redis_time()
                await self._expire_silent_hubs()
            except self._errors as error:
                log.info("presence refresh failed: %s", error)

    async def _write_presence(self) -> None:
        assert self._redis is not None
        key = self.keys.presence(self.hub_id)
        fields = encode_memberships(self._memberships())
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if fields:
                pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
                pipe.pexpire(key, int(self.presence_ttl * 1000))
            # Alive even with no members: the others must not take an empty hub for a dead one.
            pipe.set(self.keys.alive(self.hub_id), b"1", px=int(self.presence_ttl * 1000))
            pipe.zadd(self.keys.hubs, {self.hub_id: 0})
            await pipe.execute()

    def announce_membership(self, client: str, before: list[str], after: list[str]) -> None:
        """Tell every hub (this one too, through Redis) that ``client``'s subscriptions changed."""
        if self._redis is None or self.state is not BackplaneState.CONNECTED:
            # No Redis, no cluster events; tell this hub's own watchers directly.
            if self._hub is not None:
                self._hub.membership_changed(client, before, after, self.hub_id)
            return
        event = orjson.dumps({"hub": self.hub_id, "client": client, "before": before, "after": after})
        try:
            self._outgoing_events.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("presence events are backing up; dropping one (presence queries stay exact)")

    async def _send_events_forever(self) -> None:
        """Publish presence events one at a time, so every hub hears them in order."""
        while self.state is not BackplaneState.STOPPED:
            event = await self._outgoing_events.get()
            if self._redis is None:
                return
            try:
                await self._redis.publish(self._presence_channel, event)
            except self._errors as error:
                log.info("could not publish a presence event: %s", error)

    def _membership_event(self, data: bytes) -> None:
        try:
            event = orjson.loads(data)
            hub_id, client = str(event["hub"]), str(event["client"])
            before, after = list(event["before"]), list(event["after"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as error:
            log.warning("ignoring an unreadable presence event: %s", error)
            return
        if hub_id != self.hub_id:
            now = asyncio.get_running_loop().time()
            members = self._remote_members.setdefault(hub_id, {})
            key = (hub_id, client)
            if key in self._remote_left:
                before = []  # its leave was already told (its hub looked gone): never twice
            if after:
                members[client] = after
                self._remote_left.pop(key, None)
            else:
                members.pop(client, None)
                self._remote_left.setdefault(key, now)
            self._remote_heard[hub_id] = now
        if self._hub is not None:
            self._hub.membership_changed(client, before, after, hub_id)

    async def _expire_silent_hubs(self) -> None:
        """Send leave events for the members of hubs whose presence entry expired (killed hubs)."""
        assert self._redis is not None
        now = asyncio.get_running_loop().time()
        forget = now - max(60.0, 6 * self.presence_ttl)
        self._remote_left = {key: when for key, when in self._remote_left.items() if when > forget}
        quiet = [hub_id for hub_id, members in self._remote_members.items()
                 if members and now - self._remote_heard.get(hub_id, now) > self.presence_ttl]
        for hub_id in quiet:
            # The heartbeat, not the members' hash: a live hub whose last client just left has
            # no hash, and its leave event may still be on its way.
            if await self._redis.exists(self.keys.alive(hub_id)):
                self._remote_heard[hub_id] = now
                continue
            members = self._remote_members.pop(hub_id, {})
            self._remote_heard.pop(hub_id, None)
            log.info("hub %s vanished; its %d clients left", hub_id, len(members))
            # No await from the pop to here: an event read meanwhile would be told twice.
            for client, patterns in members.items():
                self._remote_left[(hub_id, client)] = now
                if self._hub is not None:
                    self._hub.membership_changed(client, patterns, [], hub_id)
            await self._redis.zrem(self.keys.hubs, hub_id)

    async def presence(self, query: Pattern) -> list[dict[str, str]]:
        """Every client, on any hub, subscribed to what ``query`` names.

        Returns:
            ``[{"client": ID, "hub": HUB_ID}, ...]`` sorted by hub then client.

        Raises:
            Unavailable: Redis cannot be read.
        """
        if self.state is BackplaneState.CONNECTED:
            # Make this hub's own latest subscriptions visible before answering.
            with contextlib.suppress(*self._errors):
                await self._write_presence()

        async def read(client: Any) -> list[dict[str, str]]:
            hub_ids = sorted(name.decode() for name in await client.zrange(self.keys.hubs, 0, -1))
            async with client.pipeline(transaction=False) as pipe:
                for hub_id in hub_ids:
                    pipe.hgetall(self.keys.presence(hub_id))
                hashes = await pipe.execute()
            members: list[dict[str, str]] = []
            now = asyncio.get_running_loop().time()
            for hub_id, fields in zip(hub_ids, hashes, strict=True):
                memberships = decode_memberships(fields)
                members.extend(present_members(memberships, query, hub_id))
                if hub_id != self.hub_id and memberships:
                    # Learn members no event told us of, so a hub killed later yields leave events
                    # for them too. Events stay the truth for the others: the hash is written a
                    # little after them, so it may still hold a client whose leave was told.
                    known = self._remote_members.setdefault(hub_id, {})
                    for client, patterns in memberships.items():
                        if client not in known and (hub_id, client) not in self._remote_left:
                            known[client] = patterns
                    self._remote_heard[hub_id] = now
            return members

        return await self._redis_call(read)

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
        return {
            "backplane": self.name,
            "ok": self.state is BackplaneState.CONNECTED,
            "state": self.state.value,
            "redis": _redacted(self.url),
            "prefix": self.keys.prefix,
            "hub_id": self.hub_id,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
            "topics": len(self._tracked),
            "history_bytes": self.cache.total_bytes,
            "watched_patterns": len(self._patterns),
        }

