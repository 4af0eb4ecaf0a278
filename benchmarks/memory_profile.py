"""Where an idle WebSocket connection's memory goes in the hub, line by line (tracemalloc).

Starts the hub in a child process with ``tracemalloc`` on, holds N idle
subscribed connections from the Node load generator (as ``memory.py`` does),
then prints the allocations still alive, per connection, grouped by the source
line that made them (and by file with ``--by file``). What Python allocates is
most of the RSS growth ``memory.py`` reports; the rest is the allocator's
overhead and the kernel's socket buffers. Example::

    python benchmarks/memory_profile.py --connections 2000 --top 40
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import default_loop
from harness import (
    ServerSpec,
    ensure_loadgen,
    hold_idle_connections,
    pick_cores,
    raise_open_file_limit,
    start_server,
)

__all__ = ["profile_idle_connections"]


def _serve(report: str, group_by: str, top: int) -> None:
    """Child process: the hub under tracemalloc; SIGUSR1 writes the report to ``report``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
    from common import announce, parse_arguments, run, wait_forever

    from rtnb.server.hub import Hub
    from rtnb.server.runner import HubServer

    arguments = parse_arguments(__doc__ or "")

    async def main() -> None:
        tracemalloc.start(1)
        server = HubServer(Hub(), host=arguments.host, port=0)
        await server.start()
        gc.collect()
        baseline = tracemalloc.take_snapshot()

        def write_report() -> None:
            gc.collect()
            ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
            snapshot = tracemalloc.take_snapshot().filter_traces(ignore)
            stats = snapshot.compare_to(baseline.filter_traces(ignore), group_by)
            lines = [f"{sum(stat.size_diff for stat in stats)}"]
            for stat in stats[:top]:
                frame = stat.traceback[0]
                source = frame.filename if group_by == "filename" else f"{frame.filename}:{frame.lineno}"
                lines.append(f"{stat.size_diff}\t{source}")
            Path(report + ".tmp").write_text("\n".join(lines))
            os.replace(report + ".tmp", report)

        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, write_report)
        assert server.port is not None
        announce(server.port)
        await wait_forever()

    run(main(), arguments.loop)


def profile_idle_connections(connections: int, *, loop: str, group_by: str = "lineno", top: int = 40) -> dict[str, Any]:
    """Bytes Python holds per idle connection: ``total`` and the ``top`` (bytes, source) pairs."""
    raise_open_file_limit(connections + 1000)
    server_core, generator_core = pick_cores()
    with tempfile.TemporaryDirectory() as directory:
        report = os.path.join(directory, "report.tsv")
        spec = ServerSpec(
            "rtnb-tracemalloc",
            "rtnb hub (tracemalloc)",
            "memory_profile.py",
            "rtnb",
            "rtnb",
            "/ws",
            "/ws",
            extra_arguments=("--serve", report, group_by, str(top)),
        )
        with start_server(spec, core=server_core, loop=loop) as server:

            def on_ready(status: dict[str, Any]) -> dict[str, Any]:
                time.sleep(1.0)  # the last handshakes finish
                os.kill(server.pid, signal.SIGUSR1)
                deadline = time.monotonic() + 120
                while not os.path.exists(report):
                    if time.monotonic() > deadline:
                        raise RuntimeError("the hub wrote no tracemalloc report")
                    time.sleep(0.2)
                total, *rows = Path(report).read_text().splitlines()
                held = status["connections"]
                return {
                    "connections": held,
                    "total": int(total) / held,
                    "top": [(int(size) / held, source) for size, source in (row.split("\t", 1) for row in rows)],
                }

            return hold_idle_connections(
                {
                    "subscriber_kind": "rtnb",
                    "publisher_kind": "rtnb",
                    "subscribe_url": server.subscribe_url(),
                    "publish_url": server.publish_url(),
                    "subscribers": connections,
                    "connect_concurrency": 200,
                    "connect_timeout": 120.0,
                },
                core=generator_core,
                on_ready=on_ready,
                timeout=240.0,
            )


def main(argv: list[str] | None = None) -> int:
    if "--serve" in sys.argv:  # the child started by profile_idle_connections
        at = sys.argv.index("--serve")
        report, group_by, top = sys.argv[at + 1], sys.argv[at + 2], int(sys.argv[at + 3])
        del sys.argv[at : at + 4]
        _serve(report, group_by, top)
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=2000, help="idle connections (default: 2000)")
    parser.add_argument("--top", type=int, default=40, help="lines to show (default: 40)")
    parser.add_argument("--by", choices=("lineno", "filename"), default="lineno", help="group by source line or file")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default=default_loop(), help="event loop of the hub")
    arguments = parser.parse_args(argv)
    ensure_loadgen()
    result = profile_idle_connections(
        arguments.connections, loop=arguments.loop, group_by=arguments.by, top=arguments.top
    )
    print(f"{result['connections']} idle connections: {result['total']:,.0f} bytes traced per connection")
    for size, source in result["top"]:
        print(f"{size:>8,.0f}  {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
