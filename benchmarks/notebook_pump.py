"""A 10,000 messages/s stream into a LiveChart (and a LiveValue): what reaches the browser?

Runs an embedded hub, floods it from inside (so the publisher is not the
bottleneck), subscribes a LiveChart through the real sync client, records
every widget message on a recording comm, and measures the lag of the loop
that applies the frames (the kernel's loop in a notebook). Prints comm
messages/s, bytes/s and loop lag p50/p99.

    python benchmarks/notebook_pump.py [--rate 10000] [--seconds 5] [--fps 10] [--window 500] [--topics 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from rtnb.client import connect
from rtnb.notebook import LiveChart, LiveValue, start_hub
from rtnb.notebook.testing import recording_comms, start_flood


async def run(rate: float, seconds: float, fps: float, window: int, topic_count: int) -> None:
    hub = start_hub()
    topics = [f"bench/device{index}/temp" for index in range(topic_count)]
    client = connect(hub.url)
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    try:
        with recording_comms() as recorder:
            chart = LiveChart("bench/+/temp", window=window, max_fps=fps, client=client)
            value = LiveValue(topics[0], fmt="{value:.1f}", max_fps=fps, client=client, last=None)
            started = time.monotonic()
            flood = start_flood(hub, topics, rate=rate, seconds=seconds)
            while not flood.done():
                before = loop.time()
                await asyncio.sleep(0.005)
                lags.append(loop.time() - before - 0.005)
            published = flood.result()
            deadline = time.monotonic() + 30
            while chart.stats.applied + chart.stats.conflated < published and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            elapsed = time.monotonic() - started
            messages = [m for m in recorder.since(started) if m.msg_type == "comm_msg"]
            chart.stop()
            value.stop()
    finally:
        client.close()
        hub.stop()
    total_bytes = sum(m.size for m in messages)
    quantiles = statistics.quantiles(lags, n=100)
    print(
        f"stream: {published:,} messages in {seconds:.1f}s ({published / seconds:,.0f} msg/s), "
        f"{topic_count} topics, LiveChart window={window} + LiveValue, max_fps={fps}"
    )
    print(f"{'metric':<34}{'value':>14}")
    print(f"{'messages received by the chart':<34}{chart.stats.received:>14,}")
    print(f"{'chart frames':<34}{chart.stats.frames:>14,}")
    print(f"{'chart conflated':<34}{chart.stats.conflated:>14,}")
    print(f"{'value conflated':<34}{value.stats.conflated:>14,}")
    print(f"{'comm messages/s (all widgets)':<34}{len(messages) / elapsed:>14,.1f}")
    print(f"{'comm bytes/s (all widgets)':<34}{total_bytes / elapsed:>14,.0f}")
    print(f"{'loop lag p50 (ms)':<34}{quantiles[49] * 1000:>14.2f}")
    print(f"{'loop lag p99 (ms)':<34}{quantiles[98] * 1000:>14.2f}")
    print(f"{'loop lag max (ms)':<34}{max(lags) * 1000:>14.2f}")
    print("Jupyter IOPub limits for comparison: ~1000 messages/s, 1,000,000 bytes/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument("--topics", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.rate, args.seconds, args.fps, args.window, args.topics))


if __name__ == "__main__":
    main()
