"""``rtnb record``: record topics from a hub into a Parquet or CSV file.

::

    rtnb record 'plant/#' -o run.parquet --duration 60
    rtnb record 'plant/+/temp' 'plant/status' -o run.csv --max-rows 100000
    rtnb record 'plant/#' -o run.parquet --token "$(rtnb token --sub recorder --subscribe 'plant/#')"

A progress line (rows, rate, elapsed) is kept up to date on stderr. Ctrl-C
stops the recording and still writes the file. Parquet output spills to disk
in row groups while recording, so memory stays bounded however long it runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from ..core.errors import AuthError, RtnbError, Timeout
from .publish import add_connection_arguments, client_options, hub_url

__all__ = ["describe_error", "exit_status", "register"]

#: seconds between progress updates
PROGRESS_INTERVAL = 0.5


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "record",
        help="record topics into a Parquet or CSV file",
        description="Record every message of the given patterns until Ctrl-C, --duration or --max-rows.",
    )
    parser.add_argument("patterns", nargs="+", metavar="PATTERN", help="topic pattern, e.g. 'plant/#'")
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="file to write: .parquet or .csv")
    add_connection_arguments(parser)
    parser.add_argument("--duration", type=float, default=None, metavar="SECONDS", help="stop after this long")
    parser.add_argument("--max-rows", type=int, default=None, metavar="N", help="stop after N messages")
    parser.add_argument(
        "--last", type=int, default=None, metavar="N", help="start with the last N retained messages per topic"
    )
    parser.add_argument("--raw", action="store_true", help="also keep each payload as JSON in a 'data' column")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    parser.set_defaults(handler=run)


def format_progress(rows: int, elapsed: float) -> str:
    rate = rows / elapsed if elapsed > 0 else 0.0
    minutes, seconds = divmod(int(elapsed), 60)
    return f"recorded {rows:,} rows  {rate:,.1f} rows/s  {minutes:d}:{seconds:02d}"


def describe_error(error: RtnbError, args: argparse.Namespace) -> str:
    """The error's sentence, plus what to do when the hub wants a token the command lacks."""
    if isinstance(error, AuthError):
        if client_options(args):
            return f"the hub at {hub_url(args)} refused the token: {error.message}"
        return f"the hub at {hub_url(args)} requires a token: pass --token TOKEN or set RTNB_TOKEN ({error.message})"
    return error.message


def exit_status(error: RtnbError) -> int:
    """2 for bad input (the command line is wrong), 1 for a refusal or a failure."""
    return 2 if error.http_status == 400 else 1


def run(args: argparse.Namespace) -> int:
    from ..record import Recorder
    from ..record._storage import file_format, write_table

    output = args.output
    try:
        spill = output if file_format(output) == "parquet" else None
        recorder = Recorder(
            hub_url(args),
            *args.patterns,
            max_rows=args.max_rows,
            spill=spill,
            raw=args.raw,
            last=args.last,
            **client_options(args),
        )
        recorder.start()
    except RtnbError as error:
        print(f"rtnb record: {describe_error(error, args)}", file=sys.stderr)
        return exit_status(error)
    stream: TextIO = sys.stderr
    live_line = stream.isatty()
    started = time.monotonic()
    deadline = None if args.duration is None else started + args.duration
    interrupted = False
    try:
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            try:
                recorder.wait(timeout=PROGRESS_INTERVAL if remaining is None else min(PROGRESS_INTERVAL, remaining))
                break  # full (max rows)
            except Timeout:
                pass
            if not args.quiet:
                line = format_progress(recorder.rows, time.monotonic() - started)
                stream.write(f"\r{line}\033[K" if live_line else f"{line}\n")
                stream.flush()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        recorder.stop()
    if spill is None:
        write_table(recorder.to_table(), output)
    if not args.quiet:
        line = format_progress(recorder.rows, time.monotonic() - started)
        ending = "  (interrupted)" if interrupted else ""
        stream.write(f"{chr(13) if live_line else ''}{line}  -> {output}{ending}\n")
        for gap in recorder.gaps:
            stream.write(f"gap on {gap.topic}: offsets {gap.from_offset}..{gap.to_offset or '?'} lost ({gap.reason})\n")
    return 0
