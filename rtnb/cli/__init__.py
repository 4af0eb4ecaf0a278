"""The ``rtnb`` command: one module per verb, each with ``register(subparsers)``.

A verb module adds its parser and sets ``handler`` to a function taking the
parsed arguments and returning the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]

#: verb modules, in the order ``rtnb --help`` lists them
VERB_MODULES = ("serve", "publish", "subscribe", "sim", "record", "replay", "token")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rtnb", description="Live data hub for Jupyter notebooks.")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="logging verbosity"
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"rtnb {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in VERB_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
