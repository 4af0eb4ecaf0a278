"""The Redis backplane alone, without WebSockets: how many acknowledged publishes a second it carries.

Two :class:`~rtnb.backplane.redis.RedisBackplane` objects in this process, as
two hubs would hold them: one publishes (``--window`` publishes in flight, as a
busy hub's connections keep them), the other is subscribed to everything and
counts what it receives. Each round publishes ``--messages`` ~100-byte messages
over 8 topics and waits until every one was acknowledged *and* delivered, then
prints the rate, the messages per Redis round trip and this process's CPU per
message (publisher and receiver side together). Compare with the ``publish/s``
column of ``cluster.py`` to see how much of a hub's publish cost lies in the
backplane and how much in the WebSocket path around it. Example::

    python benchmarks/redis_backplane.py                                  # the Redis on 127.0.0.1:6379
    python benchmarks/redis_backplane.py --redis redis://127.0.0.1:7000   # any node of a cluster

Keys go under a prefix of their own, deleted at the end (on a single Redis; on a
cluster they expire with the history limits).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable, Sequence

import orjson

from rtnb.backplane.redis import RedisBackplane
from rtnb.core.errors import Unavailable
from rtnb.core.history import Gap
from rtnb.core.message import Message
from rtnb.core.topics import Pattern

TOPICS = [f"bench/{n}" for n in range(8)]


class Counter:
    """The hub side of a backplane (a ``HubLink``) that only counts deliveries."""

    def __init__(self) -> None:
        self.delivered = 0

    def deliver(self, message: Message) -> None:
        self.delivered += 1

    def skip(self, topic: str, epoch: int, offset: int, gaps: Sequence[Gap]) -> None:
        raise AssertionError(f"a gap on {topic}: {gaps}")

    def backplane_unavailable(self, error: Unavailable, affected: Callable[[Pattern], bool]) -> None:
        raise AssertionError(f"Redis went away: {error}")

    def watched_patterns(self) -> set[Pattern]:
        return set()

    def local_subscriptions(self) -> dict[str, list[str]]:
        return {}

    def membership_changed(self, client: str, before: list[str], after: list[str], hub_id: str | None = None) -> None:
        pass

    def topic_reset(self, topic: str) -> None:
        pass


async def run(url: str, messages: int, window: int, rounds: int) -> None:
    prefix = f"bench-backplane-{os.getpid()}:"
    publisher, receiver = RedisBackplane(url, prefix=prefix), RedisBackplane(url, prefix=prefix)
    counter = Counter()
    await publisher.start(Counter())
    await receiver.start(counter)
    try:
        await receiver.watch({Pattern.parse("bench/#")})
        data = {"n": 0, "sent": 0.0, "pad": "x" * 60}
        data_json = orjson.dumps(data)
        for number in range(rounds):
            counter.delivered = 0
            batches_before = publisher._publisher.batches if publisher._publisher else 0
            cpu, began = time.process_time(), time.perf_counter()
            in_flight: set[asyncio.Future[Message]] = set()
            for index in range(messages):
                in_flight.add(asyncio.ensure_future(publisher.publish(TOPICS[index % 8], data, time.time(), data_json)))
                if len(in_flight) >= window:
                    _, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            await asyncio.gather(*in_flight)
            while counter.delivered < messages:
                await asyncio.sleep(0.001)
            elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
            batches = (publisher._publisher.batches if publisher._publisher else 0) - batches_before
            print(
                f"round {number + 1}: {messages / elapsed:8.0f} acknowledged and delivered/s, "
                f"{messages / max(1, batches):6.0f} messages per round trip, {cpu / messages * 1e6:5.1f} µs CPU each"
            )
    finally:
        await publisher.stop()
        await receiver.stop()
        if not publisher.cluster:
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(url)
            try:
                keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
                for start in range(0, len(keys), 500):
                    await client.delete(*keys[start : start + 500])
            finally:
                await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis URL (any node of a cluster)")
    parser.add_argument("--messages", type=int, default=50_000, help="messages per round")
    parser.add_argument("--window", type=int, default=1000, help="publishes in flight")
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    asyncio.run(run(arguments.redis, arguments.messages, arguments.window, arguments.rounds))


if __name__ == "__main__":
    main()
