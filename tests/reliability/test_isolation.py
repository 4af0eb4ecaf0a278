"""Isolation: one subscriber that stops reading must cost the others nothing.

10 MB is published to healthy subscribers twice: once alone, once with a
subscriber that never reads. With it, the hub must keep that subscriber's
buffered bytes within its queue limit, apply the slow-consumer policy (skip it,
then close it with 1008 after ``max_lag_seconds`` without progress), deliver
every message to the others in order, and keep their p99 latency within 2x of
the run without it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import orjson
import websockets
from raw_websocket import RawWebSocket, build_frame, open_raw

from rtnb.core.limits import Limits
from rtnb.server.hub import Hub, HubConfig
from rtnb.server.runner import HubServer
from rtnb.testing import wait_until

SUBSCRIBERS = 10
MESSAGES = 1000
PAYLOAD = 10 * 1024  # 1000 x 10 KiB = 10 MB
BURST = 10  # messages per 10 ms: 1000 messages/s, 10 MB/s
QUEUE_LIMIT = 512 * 1024
BATCH_LIMIT = 64 * 1024
#: how far over the queue limit a subscriber may get: the batch that crossed it
OVERSHOOT = BURST * (PAYLOAD + 200) + BATCH_LIMIT
#: floor for the baseline p99, so that scheduler noise on a busy machine is not read as a 2x
LATENCY_FLOOR = 0.020


@dataclass
class Receiver:
    """A healthy subscriber: records publish-to-receive latency of every message."""

    offsets: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    gaps: int = 0

    async def run(self, url: str, ready: asyncio.Event, subscribed: list[int]) -> None:
        async with websockets.connect(url, max_size=2**22) as connection:
            await connection.recv()  # welcome
            await connection.send(orjson.dumps({"op": "subscribe", "topic": "iso/#"}).decode())
            while len(self.offsets) < MESSAGES:
                frame = await asyncio.wait_for(connection.recv(), 10)
                now = time.perf_counter()
                for line in frame.split("\n"):
                    item = orjson.loads(line)
                    if item["op"] == "subscribed":
                        subscribed.append(1)
                        if len(subscribed) == SUBSCRIBERS:
                            ready.set()
                    elif item["op"] == "message":
                        self.offsets.append(item["offset"])
                        self.latencies.append(now - item["data"]["sent"])
                    elif item["op"] == "gap":
                        self.gaps += 1


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def publish_10_mb(hub: Hub, stuck_sink: object | None, samples: list[int]) -> None:
    blob = "z" * PAYLOAD
    for start in range(0, MESSAGES, BURST):
        for index in range(start, start + BURST):
            hub.publish_now("iso/data", {"index": index, "sent": time.perf_counter(), "blob": blob})
        await asyncio.sleep(0.01)  # the publisher's steady pace
        if stuck_sink is not None:
            samples.append(stuck_sink.buffered_bytes())  # type: ignore[attr-defined]


async def run_once(with_stuck_subscriber: bool) -> tuple[list[Receiver], Hub, list[int]]:
    config = HubConfig(
        limits=Limits(max_queue_bytes=QUEUE_LIMIT, max_batch_bytes=BATCH_LIMIT, max_lag_seconds=1.0),
        write_timeout=None,  # this test is about the slow-consumer policy alone
        ping_interval=0,
    )
    async with HubServer(Hub(config)) as server:
        hub = server.hub
        stuck: RawWebSocket | None = None
        stuck_sink = None
        if with_stuck_subscriber:
            stuck = await open_raw(server.ws_url, receive_buffer=4096)
            await stuck.send(build_frame(0x1, orjson.dumps({"op": "subscribe", "topic": "iso/#"})))
            await wait_until(lambda: hub.fanout.subscription_count() == 1)
            (stuck_sink,) = [member.sink for member in hub.fanout.members.values()]
        receivers = [Receiver() for _ in range(SUBSCRIBERS)]
        ready, subscribed = asyncio.Event(), []
        tasks = [asyncio.ensure_future(receiver.run(server.ws_url, ready, subscribed)) for receiver in receivers]
        samples: list[int] = []
        try:
            await asyncio.wait_for(ready.wait(), 10)
            await publish_10_mb(hub, stuck_sink, samples)
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
            if with_stuck_subscriber:
                # The policy: skipped while over its limit, closed with 1008 once it made
                # no progress for max_lag_seconds.
                await wait_until(lambda: hub.stats.slow_consumer_closes == 1, timeout=10)
                assert stuck is not None
                code, _reason = await stuck.read_close(timeout=10)
                assert code == 1008
                await wait_until(lambda: all(member.sink is not stuck_sink for member in hub.fanout.members.values()))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if stuck is not None:
                stuck.close()
        return receivers, hub, samples


async def test_a_subscriber_that_stops_reading_costs_the_others_nothing() -> None:
    baseline, _hub, _samples = await run_once(with_stuck_subscriber=False)
    loaded, hub, samples = await run_once(with_stuck_subscriber=True)

    for receiver in baseline + loaded:  # every message, in order, no gap
        assert receiver.offsets == list(range(1, MESSAGES + 1))
        assert receiver.gaps == 0
    assert hub.stats.lag_events >= 1
    assert max(samples) > 0, "the stuck subscriber never held bytes: the test proved nothing"
    assert max(samples) <= QUEUE_LIMIT + OVERSHOOT, f"stuck subscriber buffered {max(samples)} bytes"

    baseline_p99 = percentile([value for receiver in baseline for value in receiver.latencies], 0.99)
    loaded_p99 = percentile([value for receiver in loaded for value in receiver.latencies], 0.99)
    bound = 2 * max(baseline_p99, LATENCY_FLOOR)
    report = (
        f"p99 {loaded_p99 * 1000:.1f} ms with the stuck subscriber, {baseline_p99 * 1000:.1f} ms without; "
        f"the stuck one buffered at most {max(samples)} bytes"
    )
    print(report)
    assert loaded_p99 <= bound, report
