"""Soak: hours-long use compressed into minutes, with nothing lost silently and memory bounded.

Starts ``python -m rtnb serve`` in its own process and drives it from this one
for ``--duration`` seconds (default 10 minutes): one publisher at a steady
``--rate`` (acknowledged publishes, round-robin over ``--topics`` topics) and
``--clients`` subscribers on every transport — WebSocket JSON and MessagePack
(:class:`rtnb.client.AsyncClient`), SSE (:class:`rtnb.client.sse.SSEClient`)
and long polling (a cursor loop). Every ``--sample-interval`` seconds it
records the hub's RSS, open files and CPU, and each transport's deliveries and
publish-to-receive latency (p50/p99 of that window).

At the end it checks, for every subscriber, that each acknowledged message was
delivered or lies in a gap the subscriber was told about (a *silent loss*
fails the run), and that the hub's RSS stopped growing: the median of the last
quarter of samples may exceed the median of the second quarter by at most
``--max-rss-growth-mib``. It writes ``NAME.json`` (summary and samples) and
``NAME.png`` (latency, RSS and deliveries over time) to ``--output-dir`` and
exits 1 when a check fails. Not part of CI: ::

    python benchmarks/soak.py                         # 10 minutes
    python benchmarks/soak.py --duration 180          # the run in benchmarks/results/soak.*

Only 127.0.0.1 is used; the run is bounded by ``--duration`` plus a drain of at
most 60 seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
TRANSPORTS = ("ws-json", "ws-msgpack", "sse", "poll")


@dataclass
class Subscriber:
    """What one subscriber received: offsets per topic, gaps, duplicates, latencies."""

    transport: str
    offsets: dict[str, set[int]] = field(default_factory=dict)
    gaps: list[tuple[str, int, int | None, str]] = field(default_factory=list)
    duplicates: int = 0
    delivered: int = 0
    window_latencies: list[float] = field(default_factory=list)

    def message(self, topic: str, offset: int, data: Any) -> None:
        seen = self.offsets.setdefault(topic, set())
        if offset in seen:
            self.duplicates += 1
            return
        seen.add(offset)
        self.delivered += 1
        if isinstance(data, dict) and "sent" in data:
            self.window_latencies.append(time.time() - data["sent"])

    def gap(self, topic: str, first: int, last: int | None, reason: str) -> None:
        self.gaps.append((topic, first, last, reason))

    def covered(self, topic: str, offset: int) -> bool:
        if offset in self.offsets.get(topic, ()):
            return True
        return any(
            gap_topic == topic and first <= offset and (last is None or offset <= last)
            for gap_topic, first, last, _reason in self.gaps
        )


def take_item(subscriber: Subscriber, item: Any) -> None:
    from rtnb.core.history import Gap

    if isinstance(item, Gap):
        subscriber.gap(item.topic, item.from_offset, item.to_offset, item.reason)
    else:
        subscriber.message(item.topic, item.offset, item.data)


async def run_client_subscriber(url: str, subscriber: Subscriber, fmt: str, stop: asyncio.Event) -> None:
    from rtnb.client import AsyncClient

    async with AsyncClient(url, format=fmt) as client:  # type: ignore[arg-type]
        subscription = await client.subscribe("soak/#", callback=lambda item: take_item(subscriber, item))
        await stop.wait()
        await subscription.close()


async def run_sse_subscriber(url: str, subscriber: Subscriber, stop: asyncio.Event) -> None:
    from rtnb.client.sse import SSEClient

    async with SSEClient(url, "soak/#") as stream:

        async def read() -> None:
            async for item in stream:
                take_item(subscriber, item)

        reader = asyncio.ensure_future(read())
        await stop.wait()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


async def run_poll_subscriber(url: str, subscriber: Subscriber, stop: asyncio.Event) -> None:
    import tornado.httpclient

    client = tornado.httpclient.AsyncHTTPClient(force_instance=True)
    cursor: str | None = None
    try:
        while not stop.is_set():
            query = [("topic", "soak/#"), ("timeout", "0" if cursor is None else "2")]
            if cursor is not None:
                query.append(("cursor", cursor))
            response = await client.fetch(f"{url}/poll?{urllib.parse.urlencode(query)}", request_timeout=10)
            body = json.loads(response.body)
            for item in body["messages"]:
                if item["op"] == "message":
                    subscriber.message(item["topic"], item["offset"], item["data"])
                else:
                    subscriber.gap(item["topic"], item["from"], item["to"], item["reason"])
            cursor = body["cursor"]
    finally:
        client.close()


@dataclass
class Publisher:
    acked: dict[str, list[int]] = field(default_factory=dict)
    errors: int = 0

    async def run(self, url: str, rate: float, topics: list[str], payload: str, stop: asyncio.Event) -> None:
        from rtnb.client import AsyncClient
        from rtnb.core.errors import RtnbError

        async with AsyncClient(url) as client:
            started = time.monotonic()
            for index in range(10**12):
                if stop.is_set():
                    return
                topic = topics[index % len(topics)]
                try:
                    offset = await client.publish(topic, {"index": index, "sent": time.time(), "pad": payload})
                except RtnbError:
                    self.errors += 1
                    continue
                assert offset is not None
                self.acked.setdefault(topic, []).append(offset)
                delay = started + (index + 1) / rate - time.monotonic()  # a steady schedule, no drift
                if delay > 0:
                    try:
                        await asyncio.wait_for(stop.wait(), delay)
                    except asyncio.TimeoutError:
                        pass


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Hub:
    """``python -m rtnb serve`` in its own process, on a free port."""

    def __init__(self, history: int) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable,
            "-m",
            "rtnb",
            "--log-level",
            "WARNING",
            "serve",
            "--port",
            str(self.port),
            "--history",
            str(history),
        ]
        self.process = subprocess.Popen(command, cwd=ROOT)
        self.stats = psutil.Process(self.process.pid)

    async def ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the hub exited with {self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise SystemExit("the hub did not start within 30 s")

    def stop(self) -> int:
        self.process.send_signal(2)  # SIGINT: the hub's clean shutdown
        try:
            return self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(15)


async def sample_loop(
    hub: Hub, subscribers: list[Subscriber], samples: list[dict[str, Any]], interval: float, stop: asyncio.Event
) -> None:
    started = time.monotonic()
    hub.stats.cpu_percent()
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except asyncio.TimeoutError:
            pass
        sample: dict[str, Any] = {
            "t": round(time.monotonic() - started, 2),
            "rss_mib": round(hub.stats.memory_info().rss / 2**20, 2),
            "fds": hub.stats.num_fds(),
            "cpu_percent": hub.stats.cpu_percent(),
        }
        for transport in TRANSPORTS:
            group = [subscriber for subscriber in subscribers if subscriber.transport == transport]
            latencies = [value for subscriber in group for value in subscriber.window_latencies]
            for subscriber in group:
                subscriber.window_latencies = []
            p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
            sample[transport] = {
                "delivered": sum(subscriber.delivered for subscriber in group),
                "p50_ms": None if p50 is None else round(p50 * 1000, 2),
                "p99_ms": None if p99 is None else round(p99 * 1000, 2),
            }
        samples.append(sample)
        line = "  ".join(f"{name} p99 {sample[name]['p99_ms']} ms" for name in TRANSPORTS)
        print(f"t={sample['t']:>6.0f}s rss={sample['rss_mib']:.1f} MiB fds={sample['fds']} {line}", flush=True)


def plot(samples: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = [sample["t"] / 60 for sample in samples]
    figure, (latency, memory, rate) = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    for transport in TRANSPORTS:
        latency.plot(times, [sample[transport]["p99_ms"] for sample in samples], label=f"{transport} p99")
    latency.set_ylabel("publish→receive p99 (ms)")
    latency.legend(fontsize=8)
    latency.set_title(title)
    memory.plot(times, [sample["rss_mib"] for sample in samples], color="black")
    memory.set_ylabel("hub RSS (MiB)")
    memory.set_ylim(bottom=0)
    previous = {transport: 0 for transport in TRANSPORTS}
    for transport in TRANSPORTS:
        rates = []
        for index, sample in enumerate(samples):
            elapsed = sample["t"] - (samples[index - 1]["t"] if index else 0)
            rates.append((sample[transport]["delivered"] - previous[transport]) / max(elapsed, 1e-9))
            previous[transport] = sample[transport]["delivered"]
        rate.plot(times, rates, label=transport)
    rate.set_ylabel("deliveries/s")
    rate.set_xlabel("minutes")
    rate.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


async def soak(args: argparse.Namespace) -> int:
    hub = Hub(history=args.history)
    await hub.ready()
    stop_clients, stop_publisher, stop_sampling = asyncio.Event(), asyncio.Event(), asyncio.Event()
    subscribers = [Subscriber(transport) for transport in TRANSPORTS for _ in range(args.clients)]
    runners: list[Awaitable[None]] = []
    starters: dict[str, Callable[[Subscriber], Awaitable[None]]] = {
        "ws-json": lambda subscriber: run_client_subscriber(hub.url, subscriber, "json", stop_clients),
        "ws-msgpack": lambda subscriber: run_client_subscriber(hub.url, subscriber, "msgpack", stop_clients),
        "sse": lambda subscriber: run_sse_subscriber(hub.url, subscriber, stop_clients),
        "poll": lambda subscriber: run_poll_subscriber(hub.url, subscriber, stop_clients),
    }
    for subscriber in subscribers:
        runners.append(asyncio.ensure_future(starters[subscriber.transport](subscriber)))
    await asyncio.sleep(1.0)  # let every subscription settle before the first publish
    samples: list[dict[str, Any]] = []
    sampler = asyncio.ensure_future(sample_loop(hub, subscribers, samples, args.sample_interval, stop_sampling))
    publisher = Publisher()
    topics = [f"soak/device{index}/value" for index in range(args.topics)]
    padding = "x" * args.payload_bytes
    publishing = asyncio.ensure_future(publisher.run(hub.url, args.rate, topics, padding, stop_publisher))
    started = time.monotonic()
    try:
        await asyncio.wait_for(asyncio.shield(publishing), args.duration)
    except asyncio.TimeoutError:
        pass
    stop_publisher.set()
    await publishing
    elapsed = time.monotonic() - started

    def caught_up() -> bool:
        return all(
            subscriber.covered(topic, offsets[-1])
            for subscriber in subscribers
            for topic, offsets in publisher.acked.items()
        )

    drain_deadline = time.monotonic() + 60
    while not caught_up() and time.monotonic() < drain_deadline:
        await asyncio.sleep(0.2)
    stop_sampling.set()
    await sampler
    stop_clients.set()
    results = await asyncio.gather(*runners, return_exceptions=True)
    exit_code = hub.stop()

    expected = sum(len(offsets) for offsets in publisher.acked.values())
    report: dict[str, Any] = {"transports": {}}
    silent_losses = 0
    for transport in TRANSPORTS:
        group = [subscriber for subscriber in subscribers if subscriber.transport == transport]
        lost = sum(
            1
            for subscriber in group
            for topic, offsets in publisher.acked.items()
            for offset in offsets
            if not subscriber.covered(topic, offset)
        )
        silent_losses += lost
        all_latencies = [sample[transport]["p99_ms"] for sample in samples if sample[transport]["p99_ms"] is not None]
        report["transports"][transport] = {
            "subscribers": len(group),
            "delivered": sum(subscriber.delivered for subscriber in group),
            "expected": expected * len(group),
            "delivered_ratio": round(sum(s.delivered for s in group) / max(1, expected * len(group)), 6),
            "gaps": sum(len(subscriber.gaps) for subscriber in group),
            "duplicates": sum(subscriber.duplicates for subscriber in group),
            "silent_losses": lost,
            "p99_ms_median_window": round(statistics.median(all_latencies), 2) if all_latencies else None,
            "p99_ms_worst_window": max(all_latencies) if all_latencies else None,
        }
    rss = [sample["rss_mib"] for sample in samples]
    quarter = max(1, len(rss) // 4)
    second_quarter = statistics.median(rss[quarter : 2 * quarter] or rss)
    last_quarter = statistics.median(rss[-quarter:])
    growth = last_quarter - second_quarter
    failures = []
    if silent_losses:
        failures.append(f"{silent_losses} acknowledged deliveries lost without a gap")
    if growth > args.max_rss_growth_mib:
        failures.append(f"hub RSS grew {growth:.1f} MiB between the second and last quarter")
    errors = [repr(result) for result in results if isinstance(result, BaseException)]
    if errors:
        failures.append(f"subscriber errors: {errors[:3]}")
    if exit_code != 0:
        failures.append(f"the hub exited with {exit_code} on SIGINT")
    report.update(
        {
            "duration_s": round(elapsed, 1),
            "rate": args.rate,
            "topics": args.topics,
            "payload_bytes": args.payload_bytes,
            "clients_per_transport": args.clients,
            "published_acked": expected,
            "publish_errors": publisher.errors,
            "rss_mib": {
                "first": rss[0] if rss else None,
                "max": max(rss, default=None),
                "second_quarter_median": second_quarter,
                "last_quarter_median": last_quarter,
                "growth": round(growth, 2),
                "budget": args.max_rss_growth_mib,
            },
            "hub_exit_code": exit_code,
            "failures": failures,
            "passed": not failures,
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
            "samples": samples,
        }
    )
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    (output / f"{args.name}.json").write_text(json.dumps(report, indent=1) + "\n")
    title = (
        f"rtnb soak: {args.clients} subscribers x {len(TRANSPORTS)} transports, "
        f"{args.rate:g} msg/s, {elapsed / 60:.1f} min"
    )
    plot(samples, output / f"{args.name}.png", title)

    header = ("transport", "delivered/expected", "gaps", "dups", "silent", "p99 (median window)")
    print("\n{:<11} {:>22} {:>5} {:>5} {:>6} {:>20}".format(*header))
    for transport, row in report["transports"].items():
        print(
            f"{transport:<11} {row['delivered']:>10}/{row['expected']:<11} {row['gaps']:>5} {row['duplicates']:>5} "
            f"{row['silent_losses']:>6} {row['p99_ms_median_window']!s:>17} ms"
        )
    print(
        f"hub RSS {rss[0] if rss else '?'} -> {rss[-1] if rss else '?'} MiB (growth {growth:+.1f} MiB, "
        f"budget {args.max_rss_growth_mib}); written {output / args.name}.json/.png"
    )
    if failures:
        print("FAILED: " + "; ".join(failures), file=sys.stderr)
        return 1
    print("PASSED")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of publishing (default 600)")
    parser.add_argument("--clients", type=int, default=5, help="subscribers per transport (default 5)")
    parser.add_argument("--rate", type=float, default=50.0, help="messages per second, all topics (default 50)")
    parser.add_argument("--topics", type=int, default=4, help="topics published round-robin (default 4)")
    parser.add_argument("--payload-bytes", type=int, default=200, help="padding per message (default 200)")
    parser.add_argument("--history", type=int, default=1000, help="the hub's --history (default 1000)")
    parser.add_argument("--sample-interval", type=float, default=5.0, help="seconds per sample (default 5)")
    parser.add_argument("--max-rss-growth-mib", type=float, default=32.0, help="allowed late RSS growth (default 32)")
    parser.add_argument("--output-dir", default=str(ROOT / "benchmarks" / "results"), help="where to write results")
    parser.add_argument("--name", default="soak", help="file name of the results, without extension")
    args = parser.parse_args(argv)
    return asyncio.run(soak(args))


if __name__ == "__main__":
    sys.exit(main())
