"""``rtnb serve``: run a hub until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import sys

from ..core.history import HistoryLimits
from ..core.limits import Limits
from ..server.hub import HubConfig
from ..server.runner import HubServer, serve

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("serve", help="run a hub", description="Run an rtnb hub until Ctrl-C.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port, 0 for any free one (default: 8765)")
    parser.add_argument("--history", type=int, default=1000, metavar="N", help="messages kept per topic (default: 1000)")
    parser.add_argument("--history-age", type=float, default=None, metavar="SECONDS", help="drop history older than this")
    parser.add_argument("--ping-interval", type=float, default=20.0, metavar="SECONDS", help="WebSocket ping interval, 0 disables")
    parser.add_argument("--ping-timeout", type=float, default=20.0, metavar="SECONDS", help="close peers silent this long after a ping")
    parser.add_argument("--max-frame-bytes", type=int, default=2**20, metavar="BYTES", help="largest accepted frame or body (default: 1 MiB)")
    parser.add_argument("--max-queue-bytes", type=int, default=4 * 2**20, metavar="BYTES", help="outbound buffer per subscriber before it is treated as slow")
    parser.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN", help="browser origin allowed besides same-origin (repeatable, '*' for any)")
    parser.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace) -> HubConfig:
    return HubConfig(
        limits=Limits(max_frame_bytes=args.max_frame_bytes, max_queue_bytes=args.max_queue_bytes),
        history=HistoryLimits(max_messages=args.history, max_age=args.history_age),
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
    )


def run(args: argparse.Namespace) -> int:
    def announce(server: HubServer) -> None:
        print(f"rtnb hub on {server.url}  (WebSocket: {server.ws_url}; Ctrl-C to stop)", file=sys.stderr, flush=True)

    asyncio.run(
        serve(args.host, args.port, config_from_args(args), on_ready=announce, allowed_origins=args.allow_origin)
    )
    return 0
