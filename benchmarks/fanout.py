"""Fan-out benchmark: delivered messages/s to N subscribers, and publish->deliver latency.

One publisher sends ~100-byte JSON payloads; N subscribers (N = 100 and 1000
by default) receive them. Throughput is measured in a closed loop: the
publisher keeps at most ``--window`` messages that some subscriber still
lacks, so what is measured is what the server sustains with every subscriber
receiving every message (nothing dropped, nothing piling up). Latency is
measured at a fixed low rate (200 messages/s to 100 subscribers): every payload
carries its publish time, every subscriber computes the delay on arrival.

The server runs pinned to one core, the Node load generator (``loadgen/``) to
the other. Examples::

    python benchmarks/fanout.py                       # the rtnb hub, N=100 and 1000
    python benchmarks/fanout.py --server websockets   # a peer, same harness
    python benchmarks/fanout.py --server rtnb --server raw --subscribers 100

``benchmarks/run.py`` runs every peer three times and writes the results.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    SERVERS,
    ServerSpec,
    ensure_loadgen,
    pick_cores,
    raise_open_file_limit,
    rss_bytes,
    run_loadgen,
    start_server,
)

__all__ = ["measure_latency", "measure_throughput", "server_nanoseconds_per_message"]

PAYLOAD_BYTES = 100


def default_loop() -> str:
    """``uvloop`` when installed (for every server alike), else asyncio's own loop."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def measure_throughput(
    spec: ServerSpec,
    subscribers: int,
    *,
    loop: str,
    duration: float = 3.0,
    warmup: float = 1.0,
    window: int = 200,
    payload_bytes: int = PAYLOAD_BYTES,
) -> dict[str, Any]:
    """Delivered messages/s of ``spec``'s server to ``subscribers`` subscribers.

    Returns:
        The generator's result (``delivered_per_second``, ``published_per_second``,
        ``loadgen_cpu`` as a fraction of one core...) plus the server's CPU use
        over the measured window (``server_cpu``) and its resident memory at the end.
    """
    server_core, generator_core = pick_cores()
    with start_server(spec, core=server_core, loop=loop) as server:
        result = run_loadgen(
            {
                "mode": "throughput",
                "subscriber_kind": spec.subscriber_kind,
                "publisher_kind": spec.publisher_kind,
                "subscribe_url": server.subscribe_url(),
                "publish_url": server.publish_url(),
                "subscribers": subscribers,
                "payload_bytes": payload_bytes,
                "window": window,
                "warmup": warmup,
                "duration": duration,
            },
            core=generator_core,
            timeout=60.0 + 0.05 * subscribers + warmup + duration,
            server_pid=server.pid,
        )
        result["server_rss_bytes"] = rss_bytes(server.pid)
    return result


def server_nanoseconds_per_message(result: dict[str, Any]) -> float:
    """Server CPU time per delivered message: unlike msg/s, barely moved by other jobs on the machine."""
    delivered = result.get("delivered_per_second") or 0.0
    return result.get("server_cpu", 0.0) / delivered * 1e9 if delivered else 0.0


def measure_latency(
    spec: ServerSpec,
    subscribers: int = 100,
    *,
    loop: str,
    rate: float = 200.0,
    duration: float = 3.0,
    warmup: float = 0.5,
    payload_bytes: int = PAYLOAD_BYTES,
) -> dict[str, Any]:
    """Publish->deliver latency (ms: p50, p90, p99, max) at ``rate`` messages/s."""
    server_core, generator_core = pick_cores()
    with start_server(spec, core=server_core, loop=loop) as server:
        return run_loadgen(
            {
                "mode": "latency",
                "subscriber_kind": spec.subscriber_kind,
                "publisher_kind": spec.publisher_kind,
                "subscribe_url": server.subscribe_url(),
                "publish_url": server.publish_url(),
                "subscribers": subscribers,
                "payload_bytes": payload_bytes,
                "rate": rate,
                "warmup": warmup,
                "duration": duration,
            },
            core=generator_core,
            timeout=60.0 + 0.05 * subscribers + warmup + duration,
            server_pid=server.pid,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--server", action="append", choices=sorted(SERVERS), help="server(s) to measure (default: rtnb)"
    )
    parser.add_argument("--subscribers", type=int, nargs="+", default=[100, 1000], help="N values (default: 100 1000)")
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per point (default: 3)")
    parser.add_argument("--window", type=int, default=200, help="messages in flight in the closed loop (default: 200)")
    parser.add_argument("--rate", type=float, default=200.0, help="messages/s of the latency test (default: 200)")
    parser.add_argument(
        "--loop", choices=("asyncio", "uvloop"), default=default_loop(), help="event loop of every server"
    )
    parser.add_argument("--no-latency", action="store_true", help="skip the latency test")
    parser.add_argument("--no-throughput", action="store_true", help="skip the throughput test")
    parser.add_argument(
        "--repeat", type=int, default=1, help="latency runs per server, interleaved across servers (default: 1)"
    )
    arguments = parser.parse_args(argv)
    ensure_loadgen()
    raise_open_file_limit()
    names = arguments.server or ["rtnb"]
    header = (
        f"{'server':<28} {'N':>5} {'delivered msg/s':>16} {'published msg/s':>16} "
        f"{'server CPU':>11} {'ns CPU/msg':>11} {'loadgen CPU':>12} {'other CPU':>10}"
    )
    print(f"loop: {arguments.loop}; payload {PAYLOAD_BYTES} bytes; window {arguments.window}")
    print(header)
    print("-" * len(header))
    for name in [] if arguments.no_throughput else names:
        spec = SERVERS[name]
        for subscribers in arguments.subscribers:
            result = measure_throughput(
                spec, subscribers, loop=arguments.loop, duration=arguments.duration, window=arguments.window
            )
            print(
                f"{spec.label:<28} {subscribers:>5} {result['delivered_per_second']:>16,.0f} "
                f"{result['published_per_second']:>16,.0f} {result.get('server_cpu', 0):>11.0%} "
                f"{server_nanoseconds_per_message(result):>11,.0f} "
                f"{result['loadgen_cpu']:>12.0%} {result.get('other_cpu', 0):>10.0%}",
                flush=True,
            )
    if not arguments.no_latency:
        print()
        header = (
            f"{'server':<28} {'N':>5} {'rate':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} "
            f"{'other CPU':>10}"
        )
        print(header)
        print("-" * len(header))
        for _ in range(max(1, arguments.repeat)):
            for name in names:
                spec = SERVERS[name]
                result = measure_latency(spec, loop=arguments.loop, rate=arguments.rate)
                print(
                    f"{spec.label:<28} {result['subscribers']:>5} {arguments.rate:>6.0f} {result['p50_ms']:>8.2f} "
                    f"{result['p90_ms']:>8.2f} {result['p99_ms']:>8.2f} {result['max_ms']:>8.2f} "
                    f"{result.get('other_cpu', 0):>10.0%}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
