"""``rtnb serve``: run a hub until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from ..bridge.cli import add_mqtt_arguments, options_from_args, with_mqtt_bridge
from ..core.errors import RtnbError
from ..core.history import HistoryLimits
from ..core.limits import Limits
from ..server.hub import HubConfig
from ..server.runner import HubServer, ListenError, serve
from ._security import add_security_arguments, authenticator_from_args, binding_warning, ssl_context_from_args

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("serve", help="run a hub", description="Run an rtnb hub until Ctrl-C.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port, 0 for any free one (default: 8765)")
    parser.add_argument(
        "--history", type=int, default=1000, metavar="N", help="messages kept per topic (default: 1000)"
    )
    parser.add_argument(
        "--history-age", type=float, default=None, metavar="SECONDS", help="drop history older than this"
    )
    parser.add_argument(
        "--ping-interval", type=float, default=20.0, metavar="SECONDS", help="WebSocket ping interval, 0 disables"
    )
    parser.add_argument(
        "--ping-timeout", type=float, default=20.0, metavar="SECONDS", help="close peers silent this long after a ping"
    )
    parser.add_argument(
        "--max-frame-bytes",
        type=int,
        default=2**20,
        metavar="BYTES",
        help="largest accepted frame or body (default: 1 MiB)",
    )
    parser.add_argument(
        "--max-queue-bytes",
        type=int,
        default=4 * 2**20,
        metavar="BYTES",
        help="outbound buffer per subscriber before it is treated as slow",
    )
    parser.add_argument(
        "--max-lag",
        type=_seconds_or_off,
        default=60.0,
        metavar="SECONDS|off",
        help="close a slow subscriber whose queue does not drain for this long (default: 60)",
    )
    parser.add_argument(
        "--handshake-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="time a client has to send a request head or WebSocket upgrade (default: 10)",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="time a client has to send a request body (default: 30)",
    )
    parser.add_argument(
        "--write-timeout",
        type=_seconds_or_off,
        default=30.0,
        metavar="SECONDS|off",
        help="close a connection whose peer takes no bytes for this long (default: 30)",
    )
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="browser origin allowed besides same-origin (repeatable, '*' for any)",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="Host name answered besides localhost/127.0.0.1/[::1] (repeatable, '*' for any); "
        "guards against DNS rebinding",
    )
    parser.add_argument(
        "--demo", action="store_true", help="also run simulated sensors (rtnb.sim) so the page at / is alive at once"
    )
    parser.add_argument(
        "--demo-topic",
        action="append",
        default=[],
        metavar="PATTERN",
        help="simulated topic with '+' for the device (repeatable; default: plant/+/temp)",
    )
    parser.add_argument(
        "--demo-rate",
        type=float,
        default=10.0,
        metavar="HZ",
        help="messages per second per simulated topic (default: 10)",
    )
    parser.add_argument(
        "--redis",
        default=None,
        metavar="URL",
        help="share topics with other hubs through Redis, e.g. redis://127.0.0.1:6379/0",
    )
    parser.add_argument(
        "--redis-prefix",
        default="rtnb:",
        metavar="PREFIX",
        help="prefix of every Redis key; hubs of one cluster share it (default: rtnb:)",
    )
    parser.add_argument(
        "--hub-id", default=None, metavar="NAME", help="this hub's name in presence answers (default: random)"
    )
    parser.add_argument(
        "--presence-ttl",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="a killed hub's clients leave cluster presence after this (default: 10)",
    )
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="event loop: uvloop when installed (auto, the default) or asyncio's own",
    )
    add_mqtt_arguments(parser)
    add_security_arguments(parser)
    parser.set_defaults(handler=run)


def run_on_loop(coroutine: Any, loop: str = "auto") -> None:
    """Run ``coroutine`` to completion on uvloop when installed (``auto``) or asked, else asyncio's loop.

    uvloop's transports and callbacks cut the hub's per-write overhead; see docs/performance.md.
    """
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                raise SystemExit("rtnb serve: --loop uvloop needs the uvloop package (pip install uvloop)") from None
        else:
            uvloop.run(coroutine)
            return
    asyncio.run(coroutine)


def _seconds_or_off(text: str) -> float | None:
    """A positive number of seconds, or ``off`` (no limit)."""
    if text.strip().lower() in ("off", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds or 'off', got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0, or 'off'")
    return value


def _range_error(args: argparse.Namespace) -> str | None:
    """The first numeric option out of its range, as one sentence naming the flag; None when all fit."""
    checks: list[tuple[str, float | None, float, float | None, bool]] = [
        # flag, value, minimum, maximum, minimum allowed (>=) or not (>)
        ("--port", args.port, 0, 65535, True),
        ("--history", args.history, 0, None, True),
        ("--history-age", args.history_age, 0, None, False),
        ("--ping-interval", args.ping_interval, 0, None, True),
        ("--ping-timeout", args.ping_timeout, 0, None, True),
        ("--max-frame-bytes", args.max_frame_bytes, 0, None, False),
        ("--max-queue-bytes", args.max_queue_bytes, 0, None, False),
        ("--handshake-timeout", args.handshake_timeout, 0, None, False),
        ("--body-timeout", args.body_timeout, 0, None, False),
        ("--presence-ttl", args.presence_ttl, 0, None, False),
    ]
    for flag, value, minimum, maximum, inclusive in checks:
        if value is None:
            continue
        too_small = value < minimum if inclusive else value <= minimum
        if too_small or (maximum is not None and value > maximum):
            bound = (
                f"from {minimum:g} to {maximum:g}"
                if maximum is not None
                else (f">= {minimum:g}" if inclusive else f"> {minimum:g}")
            )
            return f"{flag} must be {bound}, got {value:g}"
    return None


def config_from_args(args: argparse.Namespace) -> HubConfig:
    return HubConfig(
        limits=Limits(
            max_frame_bytes=args.max_frame_bytes,
            max_queue_bytes=args.max_queue_bytes,
            max_lag_seconds=args.max_lag,
        ),
        history=HistoryLimits(max_messages=args.history, max_age=args.history_age),
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        handshake_timeout=args.handshake_timeout,
        body_timeout=args.body_timeout,
        write_timeout=args.write_timeout,
        websocket_compression=getattr(args, "websocket_compression", False),
    )


def run(args: argparse.Namespace) -> int:
    def announce(server: HubServer) -> None:
        warning = binding_warning(args.host, authenticator)  # once it really listens there
        if warning:
            print(warning, file=sys.stderr, flush=True)
        print(f"rtnb hub on {server.url}  (WebSocket: {server.ws_url}; Ctrl-C to stop)", file=sys.stderr, flush=True)
        if args.demo:
            from .. import sim

            devices = sim.sensors(server, args.demo_topic or ["plant/+/temp"], rate=args.demo_rate)
            print(
                f"demo: {len(devices.devices)} simulated devices at {args.demo_rate:g}/s; "
                f"open {server.url}/ in a browser",
                file=sys.stderr,
                flush=True,
            )

    problem = _range_error(args)
    if problem is not None:
        print(f"rtnb serve: {problem}", file=sys.stderr)
        return 2
    try:
        config = config_from_args(args)
    except ValueError as error:
        print(f"rtnb serve: {error}", file=sys.stderr)
        return 2
    on_ready: Any = announce
    try:
        mqtt_options = options_from_args(args)  # bad --mqtt* options fail here, before anything starts
    except RtnbError as error:
        print(f"rtnb serve: {error.message}", file=sys.stderr)
        return 2
    try:
        authenticator = authenticator_from_args(args)
        ssl_context = ssl_context_from_args(args)
    except (ValueError, OSError) as error:
        print(f"rtnb serve: {error}", file=sys.stderr)
        return 2
    if mqtt_options is not None:
        on_ready = with_mqtt_bridge(mqtt_options, announce)
    backplane: Any = None
    if args.hub_id and not args.redis:
        from ..backplane.memory import MemoryBackplane

        backplane = MemoryBackplane(config.history, hub_id=args.hub_id)
    if args.redis:
        from ..backplane.redis import RedisBackplane

        backplane = RedisBackplane(
            args.redis,
            prefix=args.redis_prefix,
            limits=config.history,
            hub_id=args.hub_id,
            presence_ttl=args.presence_ttl,
        )
    try:
        run_on_loop(
            serve(
                args.host,
                args.port,
                config,
                on_ready=on_ready,
                allowed_origins=args.allow_origin,
                allowed_hosts=args.allow_host,
                backplane=backplane,
                authenticator=authenticator,
                ssl_context=ssl_context,
            ),
            getattr(args, "loop", "auto"),
        )
    except ListenError as error:  # port in use, an address not on this machine, a name that does not resolve
        print(f"rtnb serve: {error}", file=sys.stderr)
        return 2
    return 0
