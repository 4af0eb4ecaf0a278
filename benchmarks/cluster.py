"""Cross-hub fan-out through the Redis backplane: throughput, latency, Redis cost per message.

For 1, 2 and 3 hub processes (``python -m rtnb serve --redis ...``) sharing one
Redis, a publisher process sends ~100-byte JSON payloads to the first hub and
subscribers spread evenly over all hubs receive every message (``bench/#``).
It reports:

* publish rate (acknowledged messages/s) and delivered messages/s, all subscribers together;
* publish -> deliver latency p50/p99 at a fixed low rate (every payload carries its send time);
* Redis commands per published message, from ``INFO commandstats`` around the
  run: ``evalsha`` is the one round trip a publish costs; "all" counts every
  command Redis executed (the script's own INCR/XADD/PUBLISH included). Both stay
  flat as subscribers and hubs are added: the cost is O(1), not O(subscribers).

A private ``redis-server`` on a free port is started so the counts are not
mixed with anyone else's traffic (or pass ``--redis URL``). Example::

    python benchmarks/cluster.py                         # 1, 2, 3 hubs x 30 and 150 subscribers
    python benchmarks/cluster.py --hubs 3 --subscribers 300 --messages 5000
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

PAYLOAD = "x" * 60  # with the other fields the payload is ~100 bytes of JSON


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Hubs:
    """N hub processes on one Redis and one key prefix."""

    def __init__(self, redis_url: str, count: int, directory: Path) -> None:
        self.prefix = f"rtnb:bench-{uuid.uuid4().hex[:8]}:"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []
        for index in range(count):
            log = (directory / f"hub{index}.log").open("wb")
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "rtnb", "--log-level", "WARNING", "serve", "--port", "0",
                     "--redis", redis_url, "--redis-prefix", self.prefix, "--hub-id", f"h{index}",
                     "--ping-interval", "0", "--max-queue-bytes", str(64 * 2**20)],
                    stdout=log, stderr=subprocess.STDOUT,
                )
            )
        deadline = time.monotonic() + 30
        for index in range(count):
            path = directory / f"hub{index}.log"
            while True:
                found = re.search(r"rtnb hub on (http://\S+)", path.read_text())
                if found:
                    self.urls.append(found.group(1).replace("http", "ws", 1) + "/ws")
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(path.read_text())
                time.sleep(0.05)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=10)


def publisher_main(url: str, messages: int, rate: float | None, window: int, start_at: float) -> None:
    """Separate process: publish ``messages`` with up to ``window`` unacknowledged, at ``rate`` if given."""
    asyncio.run(_publish(url, messages, rate, window, start_at))


async def _publish(url: str, messages: int, rate: float | None, window: int, start_at: float) -> None:
    import websockets

    async with websockets.connect(url, max_size=2**24) as connection:
        await connection.recv()  # welcome
        in_flight = asyncio.Semaphore(window)
        acked = 0
        done = asyncio.Event()

        async def read_acks() -> None:
            nonlocal acked
            async for frame in connection:
                for line in frame.split("\n") if isinstance(frame, str) else [frame]:
                    item = orjson.loads(line)
                    if item.get("op") in ("ack", "error"):
                        if item["op"] == "error":
                            print("publish error:", item, file=sys.stderr)
                        acked += 1
                        in_flight.release()
                        if acked == messages:
                            done.set()
                            return

        reader = asyncio.ensure_future(read_acks())
        while time.time() < start_at:
            await asyncio.sleep(0.005)
        began = time.perf_counter()
        for number in range(messages):
            if rate is not None:
                delay = began + number / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            await in_flight.acquire()
            frame = {"op": "publish", "topic": "bench/t", "id": number,
                     "data": {"n": number, "sent": time.time(), "pad": PAYLOAD}}
            await connection.send(orjson.dumps(frame).decode())
        await asyncio.wait_for(done.wait(), 120)
        reader.cancel()


async def subscribe_all(urls: list[str], count: int) -> list[Any]:
    import websockets

    connections = []
    for index in range(count):
        connection = await websockets.connect(urls[index % len(urls)], max_size=2**24)
        await connection.recv()  # welcome
        await connection.send('{"op":"subscribe","topic":"bench/#","id":"s"}')
        while True:
            reply = orjson.loads(await connection.recv())
            if reply.get("op") == "subscribed":
                break
        connections.append(connection)
    return connections


async def receive(connection: Any, messages: int, latencies: list[float] | None) -> float:
    """Read until ``messages`` messages arrived; returns the arrival time of the last."""
    received = 0
    while received < messages:
        frame = await connection.recv()
        now = time.time()
        for line in frame.split("\n"):
            item = orjson.loads(line)
            if item.get("op") == "message":
                received += 1
                if latencies is not None:
                    latencies.append(now - item["data"]["sent"])
    return time.perf_counter()


async def commandstats(redis_url: str, reset: bool = False) -> dict[str, int]:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        if reset:
            await client.config_resetstat()
            return {}
        stats = await client.info("commandstats")
        return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
    finally:
        await client.aclose()


async def run_case(redis_url: str, hubs: int, subscribers: int, messages: int, window: int,
                   latency_rate: float, directory: Path) -> dict[str, Any]:
    cluster = Hubs(redis_url, hubs, directory)
    try:
        connections = await subscribe_all(cluster.urls, subscribers)
        context = multiprocessing.get_context("spawn")

        async def one_run(count: int, rate: float | None, latencies: list[float] | None) -> tuple[float, float]:
            start_at = time.time() + 0.5
            process = context.Process(target=publisher_main, args=(cluster.urls[0], count, rate, window, start_at))
            process.start()
            receivers = [asyncio.ensure_future(receive(c, count, latencies)) for c in connections]
            while time.time() < start_at:
                await asyncio.sleep(0.005)
            began = time.perf_counter()
            finished = await asyncio.wait_for(asyncio.gather(*receivers), 300)
            await asyncio.get_running_loop().run_in_executor(None, process.join, 60)
            return began, max(finished)

        await commandstats(redis_url, reset=True)
        began, ended = await one_run(messages, None, None)
        calls = await commandstats(redis_url)
        elapsed = ended - began
        latencies: list[float] = []
        await one_run(max(200, int(latency_rate * 2)), latency_rate, latencies)
        latencies.sort()
        for connection in connections:
            await connection.close()
        total_commands = sum(calls.values()) - calls.get("info", 0) - calls.get("config|resetstat", 0)
        return {
            "hubs": hubs,
            "subscribers": subscribers,
            "messages": messages,
            "published_per_s": messages / elapsed,
            "delivered_per_s": messages * subscribers / elapsed,
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
            "evalsha_per_message": calls.get("evalsha", 0) / messages,
            "commands_per_message": total_commands / messages,
        }
    finally:
        cluster.stop()


def start_private_redis(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed; pass --redis URL")
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    return process, f"redis://127.0.0.1:{port}/0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", help="use this Redis instead of a private redis-server")
    parser.add_argument("--hubs", type=int, action="append", help="hub counts (default: 1 2 3)")
    parser.add_argument("--subscribers", type=int, action="append", help="subscriber counts (default: 30 150)")
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--window", type=int, default=200, help="unacknowledged publishes in flight")
    parser.add_argument("--latency-rate", type=float, default=200.0, help="messages/s for the latency run")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        redis_process = None
        redis_url = args.redis
        if redis_url is None:
            redis_process, redis_url = start_private_redis(directory)
        try:
            rows = []
            for subscribers in args.subscribers or [30, 150]:
                for hubs in args.hubs or [1, 2, 3]:
                    rows.append(asyncio.run(run_case(redis_url, hubs, subscribers, args.messages, args.window,
                                                     args.latency_rate, directory)))
                    print(f"done: {hubs} hubs, {subscribers} subscribers", file=sys.stderr)
        finally:
            if redis_process is not None:
                redis_process.terminate()
                redis_process.wait(timeout=10)
    header = (f"{'hubs':>4} {'subs':>5} {'msgs':>6} {'publish/s':>10} {'deliver/s':>10} {'p50 ms':>7} "
              f"{'p99 ms':>7} {'evalsha/msg':>11} {'redis cmds/msg':>14}")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['hubs']:>4} {row['subscribers']:>5} {row['messages']:>6} {row['published_per_s']:>10.0f} "
              f"{row['delivered_per_s']:>10.0f} {row['p50_ms']:>7.2f} {row['p99_ms']:>7.2f} "
              f"{row['evalsha_per_message']:>11.2f} {row['commands_per_message']:>14.2f}")


if __name__ == "__main__":
    main()
