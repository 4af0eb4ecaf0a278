"""``rtnb subscribe``: print the messages of a pattern as they arrive.

::

    rtnb subscribe 'plant/#'                          # one JSON envelope per line
    rtnb subscribe 'plant/+/temp' --last 10 --format table
    rtnb subscribe 'plant/#' --count 100 > sample.jsonl

It reconnects by itself and resumes where it stopped; anything the hub could
not give back is printed as a gap (a ``gap`` object in JSON, a ``--`` line in
the table), never skipped silently. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import TextIO

import orjson

from ..core.errors import RtnbError
from ..core.history import Gap
from ..core.message import Message
from .publish import CLI_CONNECT_TIMEOUT, add_connection_arguments, client_options, hub_url

__all__ = ["format_item", "register"]

_DATA_WIDTH = 80


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "subscribe",
        help="print messages of a topic pattern as they arrive",
        description="Print every message of PATTERN until Ctrl-C (or --count), resuming after disconnections.",
    )
    parser.add_argument("pattern", metavar="PATTERN", help="topic pattern, e.g. 'plant/#' or 'plant/+/temp'")
    parser.add_argument("--last", type=int, default=None, metavar="N", help="first the last N messages of each topic")
    parser.add_argument("--format", choices=("json", "table"), default="json", help="output format (default: json)")
    parser.add_argument("--count", type=int, default=None, metavar="N", help="exit after N messages")
    add_connection_arguments(parser)
    parser.set_defaults(handler=run)


def format_item(item: Message | Gap, fmt: str) -> str:
    """One output line for a message or a gap."""
    if fmt == "json":
        return orjson.dumps(item.envelope() if isinstance(item, Message) else item.to_wire()).decode()
    if isinstance(item, Gap):
        upper = "?" if item.to_offset is None else item.to_offset
        return f"-- gap on {item.topic}: offsets {item.from_offset}..{upper} lost ({item.reason})"
    stamp = time.strftime("%H:%M:%S", time.localtime(item.ts)) + f".{int(item.ts * 1000) % 1000:03d}"
    data = orjson.dumps(item.data).decode()
    if len(data) > _DATA_WIDTH:
        data = data[: _DATA_WIDTH - 1] + "…"
    return f"{stamp}  {item.topic:<30} {item.offset:>8}  {data}"


async def print_items(args: argparse.Namespace, stdout: TextIO) -> int:
    from ..client import AsyncClient

    if args.format == "table":
        print(f"{'time':<12}  {'topic':<30} {'offset':>8}  data", file=stdout, flush=True)
    messages = 0
    async with AsyncClient(hub_url(args), connect_timeout=CLI_CONNECT_TIMEOUT, **client_options(args)) as client:
        subscription = await client.subscribe(args.pattern, last=args.last)
        async for item in subscription:
            print(format_item(item, args.format), file=stdout, flush=True)
            if isinstance(item, Message):
                messages += 1
                if args.count is not None and messages >= args.count:
                    break
    return 0


def run(args: argparse.Namespace) -> int:
    if args.count is not None and args.count < 1:
        print("rtnb subscribe: --count must be at least 1.", file=sys.stderr)
        return 2
    try:
        return asyncio.run(print_items(args, sys.stdout))
    except RtnbError as error:
        print(f"rtnb subscribe: {error.message}", file=sys.stderr)
        return 2 if error.http_status == 400 else 1
    except BrokenPipeError:
        return 0  # piped into `head`: the reader is gone, nothing left to do
