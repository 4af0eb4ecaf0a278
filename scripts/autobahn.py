"""Run Autobahn|Testsuite cases (through kosoku) against the hub's WebSocket stack.

The core groups (1-7, 10) run in the test suite (tests/reliability/test_autobahn.py).
This script runs the rest — 9 (big and many messages, performance), 12 and 13
(permessage-deflate) — or any cases you name::

    python scripts/autobahn.py                          # groups 9, 12, 13
    python scripts/autobahn.py --cases '1.*' '7.9.*'    # any selection
    python scripts/autobahn.py --max-frame-bytes 1048576  # the hub's default limit
    python scripts/autobahn.py --cases '7.*' --plain-tornado  # the baseline: Tornado's own handler
    python scripts/autobahn.py --compression            # with permessage-deflate accepted

The server is ``EchoHubServer`` from tests/reliability/echo_server.py: the hub's HTTP server,
WebSocket handler, frame reader and limits with an echo in place of the hub
protocol. Group 9 sends messages up to 16 MiB, so by default the frame limit is
raised to 16 MiB; with a lower limit the cases over it are closed with 1009 as
configured and are reported as ``REFUSED`` rather than failures. Prints one line
per verdict and group, writes a JSON summary (``--output``) and exits 1 when a
case FAILED. docs/compliance.md explains every verdict that is not OK.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import tornado
import tornado.web
import tornado.websocket

from rtnb.core.limits import Limits
from rtnb.server.hub import Hub, HubConfig

# the echo server is a test helper, not part of the installed package
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reliability"))
from echo_server import EchoHubServer

LARGEST_AUTOBAHN_MESSAGE = 16 * 2**20


def verdict(result: Any, max_frame_bytes: int) -> str:
    """``OK``, ``NON-STRICT``, ``INFORMATIONAL``, ``UNIMPLEMENTED``, ``REFUSED``, ``ERROR`` or ``FAILED``."""
    behavior, closing = result.behavior.value, result.behavior_close.value
    if result.passed:
        return behavior if behavior != "OK" else closing
    if behavior in ("UNIMPLEMENTED", "ERROR"):  # ERROR: the runner could not reach a verdict
        return behavior
    if result.remote_close_code == 1009 and max_frame_bytes < LARGEST_AUTOBAHN_MESSAGE:
        return "REFUSED"
    return "FAILED"


class _PlainTornadoServer(EchoHubServer):
    """The same server with Tornado's stock ``WebSocketHandler`` echoing: the baseline."""

    def make_app(self) -> tornado.web.Application:
        max_size = self.hub.limits.max_frame_bytes

        class PlainEcho(tornado.websocket.WebSocketHandler):
            max_message_size = max_size  # type: ignore[assignment]

            def on_message(self, message: str | bytes) -> None:
                self.write_message(message, binary=isinstance(message, bytes))

        return tornado.web.Application([("/ws", PlainEcho)])


async def run(
    cases: list[str], max_frame_bytes: int, concurrency: int, plain_tornado: bool = False, compression: bool = False
) -> tuple[list[Any], float]:
    import kosoku

    config = HubConfig(
        limits=Limits(max_frame_bytes=max_frame_bytes), ping_interval=0, websocket_compression=compression
    )
    server = (_PlainTornadoServer if plain_tornado else EchoHubServer)(Hub(config))
    await server.start()
    started = time.perf_counter()
    try:
        try:
            results = list(await kosoku.run_fuzzingclient(server.ws_url, cases=cases, concurrency=concurrency))
        except kosoku.FailureError as failure:
            results = list(failure.results)
    finally:
        await server.stop()
    return results, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=["9.*", "12.*", "13.*"], help="case ids or globs")
    parser.add_argument("--max-frame-bytes", type=int, default=LARGEST_AUTOBAHN_MESSAGE, help="hub frame limit")
    parser.add_argument("--concurrency", type=int, default=2, help="cases run in parallel")
    parser.add_argument("--output", type=Path, default=None, help="write a JSON summary here")
    parser.add_argument("--plain-tornado", action="store_true", help="test Tornado's stock handler instead (baseline)")
    parser.add_argument(
        "--compression", action="store_true", help="accept permessage-deflate (HubConfig.websocket_compression)"
    )
    args = parser.parse_args(argv)

    results, elapsed = asyncio.run(
        run(args.cases, args.max_frame_bytes, args.concurrency, args.plain_tornado, args.compression)
    )
    if not results:
        print("no case ran", file=sys.stderr)
        return 1
    verdicts = {result.case_id: verdict(result, args.max_frame_bytes) for result in results}
    by_group: Counter[tuple[str, str]] = Counter((case.split(".")[0], found) for case, found in verdicts.items())
    print(f"{len(results)} cases in {elapsed:.1f} s (max_frame_bytes={args.max_frame_bytes})")
    for (group, found), count in sorted(by_group.items(), key=lambda item: (int(item[0][0]), item[0][1])):
        print(f"  group {group:>2}  {found:<14} {count}")
    unusual = [result for result in results if verdicts[result.case_id] not in ("OK", "UNIMPLEMENTED")]
    for result in unusual:
        print(f"  {result.case_id:<8} {verdicts[result.case_id]:<14} close={result.remote_close_code} {result.result}")
    slowest = sorted(results, key=lambda result: result.duration, reverse=True)[:5]
    print("  slowest: " + ", ".join(f"{result.case_id} {result.duration} ms" for result in slowest))
    if args.output is not None:
        summary = {
            "server": "plain tornado WebSocketHandler" if args.plain_tornado else "rtnb EchoHubServer",
            "cases": args.cases,
            "max_frame_bytes": args.max_frame_bytes,
            "compression": args.compression,
            "seconds": round(elapsed, 2),
            "python": platform.python_version(),
            "tornado": tornado.version,
            "totals": dict(Counter(verdicts.values())),
            "results": [
                {
                    "case": result.case_id,
                    "verdict": verdicts[result.case_id],
                    "behavior": result.behavior.value,
                    "behavior_close": result.behavior_close.value,
                    "remote_close_code": result.remote_close_code,
                    "duration_ms": result.duration,
                }
                for result in results
            ],
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(summary, indent=1) + "\n")
        print(f"summary written to {args.output}")
    failed = [case for case, found in verdicts.items() if found in ("FAILED", "ERROR")]
    if failed:
        print(f"FAILED or ERROR: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
