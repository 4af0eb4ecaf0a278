"""Memory per idle connection: a server's RSS growth when it holds N subscribers.

The load generator opens N WebSocket connections (10,000 by default), each
subscribed as in the fan-out test, and holds them idle; the harness reads the
server's resident memory before any connection and once they are all open,
and divides the difference by N. The open-file limit is raised for the
server and the generator (children inherit it). Example::

    python benchmarks/memory.py --server rtnb --server websockets --connections 10000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import default_loop
from harness import (
    SERVERS,
    ServerSpec,
    ensure_loadgen,
    hold_idle_connections,
    pick_cores,
    raise_open_file_limit,
    rss_bytes,
    start_server,
)

__all__ = ["measure_idle_memory"]


def _settled_rss(pid: int, seconds: float = 0.5) -> int:
    """RSS once it stops moving (the server may still be finishing handshakes)."""
    previous = rss_bytes(pid)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        time.sleep(seconds)
        current = rss_bytes(pid)
        if abs(current - previous) < 64 * 1024:
            return current
        previous = current
    return previous


def measure_idle_memory(spec: ServerSpec, connections: int = 10_000, *, loop: str) -> dict[str, Any]:
    """RSS of ``spec``'s server with no client and with ``connections`` idle subscribers.

    Returns:
        ``baseline_rss_bytes``, ``loaded_rss_bytes`` and ``bytes_per_connection``.
    """
    raise_open_file_limit(connections + 1000)
    server_core, generator_core = pick_cores()
    with start_server(spec, core=server_core, loop=loop) as server:
        baseline = _settled_rss(server.pid)

        def measure(status: dict[str, Any]) -> dict[str, Any]:
            loaded = _settled_rss(server.pid)
            return {
                "connections": status["connections"],
                "baseline_rss_bytes": baseline,
                "loaded_rss_bytes": loaded,
                "bytes_per_connection": (loaded - baseline) / max(1, status["connections"]),
            }

        return hold_idle_connections(
            {
                "subscriber_kind": spec.subscriber_kind,
                "publisher_kind": spec.publisher_kind,
                "subscribe_url": server.subscribe_url(),
                "publish_url": server.publish_url(),
                "subscribers": connections,
                "connect_concurrency": 200,
                "connect_timeout": 120.0,
            },
            core=generator_core,
            on_ready=measure,
            timeout=180.0,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--server", action="append", choices=sorted(SERVERS), help="server(s) (default: rtnb, websockets)"
    )
    parser.add_argument("--connections", type=int, default=10_000, help="idle connections (default: 10000)")
    parser.add_argument(
        "--loop", choices=("asyncio", "uvloop"), default=default_loop(), help="event loop of every server"
    )
    arguments = parser.parse_args(argv)
    ensure_loadgen()
    header = f"{'server':<28} {'connections':>11} {'RSS before':>11} {'RSS after':>11} {'KiB/connection':>15}"
    print(header)
    print("-" * len(header))
    for name in arguments.server or ["rtnb", "websockets"]:
        spec = SERVERS[name]
        result = measure_idle_memory(spec, arguments.connections, loop=arguments.loop)
        print(
            f"{spec.label:<28} {result['connections']:>11} {result['baseline_rss_bytes'] / 2**20:>9.1f}Mi "
            f"{result['loaded_rss_bytes'] / 2**20:>9.1f}Mi {result['bytes_per_connection'] / 1024:>15.1f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
