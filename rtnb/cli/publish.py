"""``rtnb publish``: publish one message, or one per line of standard input.

::

    rtnb publish plant/boiler/temp '{"value": 71.5}'
    sensor-reader | rtnb publish plant/boiler/temp      # one JSON value per line

Each acknowledged message prints its offset on stdout. A line that is not JSON
stops the command with an error naming the line (the lines before it stay
published), rather than being skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import orjson

from ..core.errors import BadJson, RtnbError

__all__ = ["add_connection_arguments", "client_options", "hub_url", "register"]

DEFAULT_URL = "http://127.0.0.1:8765"


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """``--url`` and ``--token``, shared by the client verbs."""
    parser.add_argument("--url", default=None, help=f"hub URL (default: $RTNB_URL or {DEFAULT_URL})")
    parser.add_argument("--token", default=None, help="access token (default: $RTNB_TOKEN)")


def hub_url(args: argparse.Namespace) -> str:
    return str(args.url or os.environ.get("RTNB_URL") or DEFAULT_URL)


#: seconds a command retries a hub it cannot reach yet (one starting beside it), then fails
CLI_CONNECT_TIMEOUT = 3.0


def client_options(args: argparse.Namespace) -> dict[str, Any]:
    token = args.token or os.environ.get("RTNB_TOKEN") or None
    return {"token": token} if token else {}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "publish",
        help="publish a JSON message (or JSON lines from stdin)",
        description="Publish JSON to a topic: the JSON argument, or one JSON value per line of standard input.",
    )
    parser.add_argument("topic", metavar="TOPIC", help="a concrete topic, e.g. plant/boiler/temp")
    parser.add_argument("json", nargs="?", metavar="JSON", help="the payload; omit it to read JSON lines from stdin")
    add_connection_arguments(parser)
    parser.add_argument(
        "--no-ack", action="store_true", help="do not wait for acknowledgements (faster, prints nothing)"
    )
    parser.set_defaults(handler=run)


def parse_payload(text: str, where: str) -> Any:
    """One JSON value, or a :class:`BadJson` naming ``where`` it came from."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise BadJson(f"{where} is not JSON ({error}); quote strings, e.g. '\"on\"' or '{{\"value\": 1}}'.") from None


def payloads(args: argparse.Namespace, stdin: TextIO) -> Iterable[Any]:
    if args.json is not None:
        yield parse_payload(args.json, "The message")
        return
    for number, line in enumerate(stdin, start=1):
        if line.strip():
            yield parse_payload(line, f"Line {number}")


async def publish_all(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    from ..client import AsyncClient

    ack = not args.no_ack
    published = 0
    async with AsyncClient(hub_url(args), connect_timeout=CLI_CONNECT_TIMEOUT, **client_options(args)) as client:
        try:
            for data in payloads(args, stdin):
                offset = await client.publish(args.topic, data, ack=ack)
                published += 1
                if ack:
                    print(offset, file=stdout, flush=True)
        except RtnbError:
            if published:
                print(f"rtnb publish: {published} message(s) were published before the error.", file=sys.stderr)
            raise
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(publish_all(args, sys.stdin, sys.stdout))
    except RtnbError as error:
        print(f"rtnb publish: {error.message}", file=sys.stderr)
        return 2 if error.http_status == 400 else 1
