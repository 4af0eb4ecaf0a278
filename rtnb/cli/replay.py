"""``rtnb replay``: publish a recorded session into a hub again.

::

    rtnb replay run.parquet --speed 10 --url http://127.0.0.1:8765
    rtnb replay run.csv --fast --topic-map plant/boiler/temp=demo/boiler/temp --loop
    RTNB_TOKEN=... rtnb replay run.parquet --url https://hub.example:8765
"""

from __future__ import annotations

import argparse
import sys

from ..core.errors import BadArgument, RtnbError, Timeout
from .publish import add_connection_arguments, client_options, hub_url
from .record import describe_error, exit_status

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="replay a recording into a hub",
        description="Publish a recording (.parquet or .csv) again, with its original spacing scaled by --speed.",
    )
    parser.add_argument("path", metavar="FILE", help="recording made by 'rtnb record' or Recorder.save()")
    add_connection_arguments(parser)
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=1.0, help="time factor: 10 plays ten times faster (default: 1)")
    pace.add_argument("--fast", action="store_true", help="as fast as possible, ignoring the recorded spacing")
    parser.add_argument("--loop", action="store_true", help="start over at the end, until Ctrl-C")
    parser.add_argument(
        "--topic-map", action="append", default=[], metavar="OLD=NEW", help="publish OLD's messages on NEW (repeatable)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def parse_topic_map(pairs: list[str]) -> dict[str, str]:
    """``["a/b=c/d", ...]`` as a mapping.

    Raises:
        BadArgument: an item without ``=``.
    """
    mapping: dict[str, str] = {}
    for pair in pairs:
        old, separator, new = pair.partition("=")
        if not separator or not old or not new:
            raise BadArgument(f"--topic-map takes OLD=NEW, not {pair!r}.")
        mapping[old] = new
    return mapping


def run(args: argparse.Namespace) -> int:
    from ..record import replay

    try:
        handle = replay(
            args.path,
            hub_url(args),
            speed=None if args.fast else args.speed,
            topic_map=parse_topic_map(args.topic_map) or None,
            loop=args.loop,
            progress=not args.quiet,
            **client_options(args),
        )
    except RtnbError as error:
        print(f"rtnb replay: {error.message}", file=sys.stderr)
        return 2
    try:
        while True:
            try:
                handle.wait(timeout=0.25)  # bounded waits so Ctrl-C is noticed promptly
                break
            except Timeout:
                continue
    except KeyboardInterrupt:
        handle.stop()
        print(f"rtnb replay: stopped after {handle.published:,} messages", file=sys.stderr)
        return 130
    except RtnbError as error:
        print(f"rtnb replay: {describe_error(error, args)}", file=sys.stderr)
        return exit_status(error)
    if not args.quiet:
        print(f"replayed {handle.published:,} messages ({handle.loops} pass(es))", file=sys.stderr)
    return 0
