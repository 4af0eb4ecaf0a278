"""A real hub and real subscribers driven step by step, with a model of what was published.

Used by ``test_delivery_model.py`` (a hypothesis state machine). Everything runs on one
event loop in a background thread: the hub (memory or Redis backplane), WebSocket
subscribers (``AsyncClient``), SSE subscribers (``SSEClient``) and long-poll subscribers
(a plain loop of ``GET /poll`` requests, as a browser without a library would do).

The invariant checked (:func:`violations`): for each subscriber and topic, what the
application saw is in order, has no duplicate, and every message published after the
subscription started was either delivered or covered by an explicit gap; no message
arrives that an earlier gap said was lost.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from tornado.httpclient import AsyncHTTPClient

from rtnb.client import AsyncClient, BackoffPolicy
from rtnb.client.sse import SSEClient
from rtnb.core.errors import RtnbError
from rtnb.core.history import Gap, HistoryLimits
from rtnb.core.message import Message
from rtnb.core.topics import Pattern
from rtnb.server.hub import Hub, HubConfig
from rtnb.server.runner import HubServer

FAST = BackoffPolicy(initial=0.02, cap=0.1)


@dataclass(frozen=True)
class Published:
    topic: str
    epoch: int
    offset: int
    step: int


@dataclass
class Seen:
    """One item an application saw: a message or a gap (as plain data)."""

    kind: str  # "message" | "gap"
    topic: str
    epoch: int | None
    offset: int  # message offset, or gap start
    to: int | None = None
    reason: str = ""


@dataclass
class Subscriber:
    kind: str
    pattern: str
    last: int | None
    start_step: int
    seen: list[Seen] = field(default_factory=list)
    handle: Any = None
    away_until: float = 0.0


def seen_item(item: Message | Gap) -> Seen:
    if isinstance(item, Message):
        return Seen("message", item.topic, item.epoch, item.offset)
    return Seen("gap", item.topic, item.epoch, item.from_offset, item.to_offset, item.reason)


def seen_wire(item: dict[str, Any]) -> list[Seen]:
    if item.get("op") == "message":
        return [Seen("message", item["topic"], item["epoch"], item["offset"])]
    entries = item.get("gaps")
    if entries is None:
        entries = [[item["topic"], item["from"], item["to"], item["reason"], item.get("epoch")]]
    return [Seen("gap", topic, epoch, start, end, reason) for topic, start, end, reason, epoch in entries]


class Driver:
    """The hub and the subscribers, on a loop in a background thread."""

    def __init__(self, redis_url: str | None, history: HistoryLimits) -> None:
        self.redis_url = redis_url
        self.prefix = f"rtnb:model-{uuid.uuid4().hex[:10]}:"
        self.config = HubConfig(history=history, ping_interval=0, poll_timeout=0.2, sse_retry=0.05)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="model-driver", daemon=True)
        self.thread.start()
        self.server: HubServer | None = None
        self.port = 0
        self.subscribers: list[Subscriber] = []
        self.published: list[Published] = []
        self.step = 0
        self.http: AsyncHTTPClient | None = None
        self.run(self._start_hub())

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    @property
    def hub(self) -> Hub:
        assert self.server is not None
        return self.server.hub

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _start_hub(self) -> None:
        if self.redis_url is None:
            hub = Hub(self.config)
        else:
            from rtnb.backplane.redis import RedisBackplane

            backplane = RedisBackplane(self.redis_url, prefix=self.prefix, hub_id="model", limits=self.config.history)
            hub = Hub(self.config, backplane)
        self.server = HubServer(hub, port=self.port)
        await self.server.start()
        assert self.server.port is not None
        self.port = self.server.port

    # -- actions -------------------------------------------------------------------------

    def publish(self, topic: str) -> None:
        self.step += 1

        async def publish() -> Message | None:
            try:
                return await self.hub.publish(topic, self.step)
            except RtnbError:
                return None  # the backplane is down: nothing was published

        message = self.run(publish())
        if message is not None:
            self.published.append(Published(topic, message.epoch, message.offset, self.step))

    def subscribe(self, kind: str, pattern: str, last: int | None) -> None:
        self.step += 1
        subscriber = Subscriber(kind, pattern, last, self.step)
        self.run(self._open(subscriber))
        self.subscribers.append(subscriber)

    async def _open(self, subscriber: Subscriber) -> None:
        if subscriber.kind == "ws":
            client = AsyncClient(self.url, backoff=FAST, ping_interval=None, request_timeout=3.0)
            await client.connect()
            await client.subscribe(
                subscriber.pattern, last=subscriber.last, callback=lambda item: subscriber.seen.append(seen_item(item))
            )
            subscriber.handle = client
        elif subscriber.kind == "sse":
            stream = SSEClient(self.url, subscriber.pattern, last=subscriber.last, backoff=FAST)
            await stream.connect()

            async def read() -> None:
                async for item in stream:
                    subscriber.seen.append(seen_item(item))

            subscriber.handle = (stream, asyncio.ensure_future(read()))
            deadline = time.monotonic() + 5
            while stream.last_event_id is None and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        else:
            cursor: dict[str, str | None] = {"cursor": None}
            await self._poll_once(subscriber, cursor, 0)
            subscriber.handle = (cursor, asyncio.ensure_future(self._poll_forever(subscriber, cursor)))

    async def _poll_once(self, subscriber: Subscriber, cursor: dict[str, str | None], timeout: float) -> None:
        if self.http is None:
            self.http = AsyncHTTPClient(force_instance=True)
        query = f"topic={quote(subscriber.pattern, safe='')}&timeout={timeout}"
        if subscriber.last is not None:
            query += f"&last={subscriber.last}"  # left in the URL on every poll, as a browser would
        if cursor["cursor"] is not None:
            query += f"&cursor={quote(cursor['cursor'], safe='')}"
        response = await self.http.fetch(f"{self.url}/poll?{query}", raise_error=False, request_timeout=5)
        if response.code != 200:
            return  # e.g. 503 while Redis is down: poll again later with the same cursor
        body = orjson.loads(response.body)
        for item in body["messages"]:
            subscriber.seen.extend(seen_wire(item))
        cursor["cursor"] = body["cursor"]

    async def _poll_forever(self, subscriber: Subscriber, cursor: dict[str, str | None]) -> None:
        while True:
            if time.monotonic() < subscriber.away_until:
                await asyncio.sleep(0.02)
                continue
            try:
                await self._poll_once(subscriber, cursor, 0.2)
            except Exception:  # the hub restarting, a dropped request: poll again with the same cursor
                await asyncio.sleep(0.05)

    def cut(self) -> None:
        """Every connection is cut; pollers stay away a moment."""
        self.step += 1

        async def cut() -> None:
            for member in list(self.hub.fanout.members.values()):
                if member.sink is not None:
                    member.sink.close(1011, "model: connection cut")
            for subscriber in self.subscribers:
                subscriber.away_until = time.monotonic() + 0.3

        self.run(cut())

    def reset(self, topic: str) -> None:
        self.step += 1

        async def reset() -> None:
            self.hub.backplane.reset_topic(topic)
            await asyncio.sleep(0.05)  # a Redis reset is written in the background

        self.run(reset())

    def restart_hub(self) -> None:
        self.step += 1

        async def restart() -> None:
            assert self.server is not None
            await self.server.stop()
            await self._start_hub()
            await self._backplane_back()

        self.run(restart())

    def outage(self, redis: Any) -> None:
        """Redis stops; clients are cut and come back while it is down; Redis restarts."""
        self.step += 1
        redis.stop()
        self.cut()
        time.sleep(0.4)
        self.publish("m/a")  # refused: not published
        self.run(redis.start())
        self.run(self._backplane_back())

    async def _backplane_back(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.hub.backplane.health().get("ok") and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    # -- checking ------------------------------------------------------------------------

    def settle(self, timeout: float = 15.0) -> list[str]:
        deadline = time.monotonic() + timeout
        problems = violations(self.published, self.subscribers)
        while problems and time.monotonic() < deadline:
            time.sleep(0.1)
            problems = violations(self.published, self.subscribers)
        return problems

    def close(self) -> None:
        async def close() -> None:
            for subscriber in self.subscribers:
                if subscriber.kind == "ws":
                    await subscriber.handle.close()
                elif subscriber.kind == "sse":
                    await subscriber.handle[0].close()
                    subscriber.handle[1].cancel()
                else:
                    subscriber.handle[1].cancel()
            if self.http is not None:
                self.http.close()
            if self.server is not None:
                await self.server.stop()
            if self.redis_url is not None:
                import redis.asyncio

                client = redis.asyncio.Redis.from_url(self.redis_url)
                try:
                    keys = [key async for key in client.scan_iter(match=self.prefix + "*", count=1000)]
                    if keys:
                        await client.delete(*keys)
                finally:
                    await client.aclose()

        try:
            self.run(close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


def _covers(gap: Seen, old_epoch: int | None, next_epoch: int | None, message: Published) -> bool:
    """Does ``gap`` (seen after ``old_epoch``, before ``next_epoch``) account for ``message``?"""
    if gap.reason == "epoch_changed":
        newer = gap.epoch if gap.epoch is not None else next_epoch
        if newer is not None and message.epoch >= newer:
            return False
        return old_epoch is None or message.epoch != old_epoch or message.offset >= gap.offset
    if gap.epoch is not None and gap.epoch != message.epoch:
        return False
    return gap.offset <= message.offset and (gap.to is None or message.offset <= gap.to)


def violations(published: list[Published], subscribers: list[Subscriber]) -> list[str]:
    """Everything that breaks the delivery promise, as sentences (empty: all is well)."""
    problems: list[str] = []
    for index, subscriber in enumerate(subscribers):
        pattern = Pattern.parse(subscriber.pattern)
        name = f"subscriber {index} ({subscriber.kind} {subscriber.pattern} last={subscriber.last})"
        by_topic: dict[str, list[Seen]] = {}
        for item in list(subscriber.seen):
            by_topic.setdefault(item.topic, []).append(item)
        for topic, items in by_topic.items():
            delivered: set[tuple[int | None, int]] = set()
            position: tuple[int, int] | None = None
            told: list[tuple[Seen, int | None]] = []  # gaps seen so far, with the epoch before each
            for item in items:
                if item.kind == "gap":
                    told.append((item, position[0] if position is not None else None))
                    continue
                for gap, before in told:
                    if gap.reason == "epoch_changed":
                        false = before is not None and item.epoch == before
                    else:
                        false = (
                            (gap.epoch is None or gap.epoch == item.epoch)
                            and gap.offset <= item.offset
                            and (gap.to is not None and item.offset <= gap.to)
                        )
                    if false:
                        problems.append(
                            f"{name}: {topic} {item.epoch}/{item.offset} arrived after a gap said it was lost"
                        )
                if item.kind == "message":
                    key = (item.epoch, item.offset)
                    if key in delivered:
                        problems.append(f"{name}: {topic} {key} delivered twice")
                    delivered.add(key)
                    assert item.epoch is not None
                    if position is not None and position[0] == item.epoch and item.offset <= position[1]:
                        problems.append(f"{name}: {topic} offset {item.offset} after {position[1]} (out of order)")
                    if position is not None and item.epoch < position[0]:
                        problems.append(f"{name}: {topic} went back to epoch {item.epoch} from {position[0]}")
                    position = (item.epoch, item.offset)
        for message in published:
            if message.step <= subscriber.start_step or not pattern.matches(message.topic):
                continue
            items = by_topic.get(message.topic, [])
            if any(
                item.kind == "message" and (item.epoch, item.offset) == (message.epoch, message.offset)
                for item in items
            ):
                continue
            if not _explained(items, message):
                lost = f"{message.topic} {message.epoch}/{message.offset}"
                problems.append(f"{name}: {lost} neither delivered nor in a gap")
    return problems


def _explained(items: list[Seen], message: Published) -> bool:
    old_epoch: int | None = None
    for position, item in enumerate(items):
        if item.kind == "message":
            old_epoch = item.epoch
            continue
        next_epoch = next((later.epoch for later in items[position + 1 :] if later.kind == "message"), None)
        if _covers(item, old_epoch, next_epoch, message):
            return True
    return False


def private_redis_directory(base: Path) -> Path:
    directory = base / f"redis-{uuid.uuid4().hex[:6]}"
    directory.mkdir()
    return directory
