"""Profile the hub under fan-out load: where does a delivered message spend its time?

Runs the hub in this process (pinned to one core) under pyinstrument while
the Node load generator (pinned to the other) drives one publisher and N
subscribers, then prints the call tree. Example::

    python benchmarks/profile_hub.py --subscribers 100 --duration 5
    python benchmarks/profile_hub.py --subscribers 1000 --html hub.html

For a whole-process view including C frames, ``py-spy record --native`` on
``benchmarks/rtnb_server.py`` while ``fanout.py`` drives it works too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))

from common import new_event_loop
from fanout import PAYLOAD_BYTES, default_loop
from harness import SERVERS, ensure_loadgen, pick_cores, raise_open_file_limit, run_loadgen

from rtnb.server.hub import Hub
from rtnb.server.runner import HubServer


async def profile(arguments: argparse.Namespace) -> None:
    from pyinstrument import Profiler

    server_core, generator_core = pick_cores()
    os.sched_setaffinity(0, {server_core})
    server = await HubServer(Hub(), port=0).start()
    spec = SERVERS["rtnb-sse" if arguments.sse else "rtnb"]
    path = spec.subscribe_path
    subscribe_url = f"{'http' if arguments.sse else 'ws'}://127.0.0.1:{server.port}{path}"
    config: dict[str, Any] = {
        "mode": "throughput",
        "subscriber_kind": spec.subscriber_kind,
        "publisher_kind": spec.publisher_kind,
        "subscribe_url": subscribe_url,
        "publish_url": server.ws_url,
        "subscribers": arguments.subscribers,
        "payload_bytes": PAYLOAD_BYTES,
        "window": arguments.window,
        "warmup": 0.5,
        "duration": arguments.duration,
    }
    profiler = Profiler(interval=0.0005, async_mode="disabled")
    profiler.start()
    try:
        result = await asyncio.get_running_loop().run_in_executor(
            None, lambda: run_loadgen(config, core=generator_core, timeout=120.0, server_pid=os.getpid())
        )
    finally:
        profiler.stop()
        await server.stop()
    print(
        f"{result['delivered_per_second']:,.0f} delivered msg/s, "
        f"{result['published_per_second']:,.0f} published msg/s, "
        f"server CPU {result.get('server_cpu', 0):.0%}, loadgen CPU {result['loadgen_cpu']:.0%}"
    )
    if arguments.html:
        Path(arguments.html).write_text(profiler.output_html())
        print(f"wrote {arguments.html}")
    else:
        print(profiler.output_text(unicode=False, color=False, show_all=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--sse", action="store_true", help="subscribers on GET /sse instead of /ws")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default=default_loop())
    parser.add_argument("--html", help="write pyinstrument's HTML report here instead of printing text")
    arguments = parser.parse_args(argv)
    ensure_loadgen()
    raise_open_file_limit()
    loop = new_event_loop(arguments.loop)
    try:
        loop.run_until_complete(profile(arguments))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
