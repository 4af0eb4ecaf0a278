"""What every benchmark server shares: its event loop, its socket, its ready line.

Each server binds 127.0.0.1 on a free port itself and prints ``READY <port>``
on stdout; the harness (``benchmarks/harness.py``) waits for that line. All
servers of one run use the same event loop implementation, so a difference
between two rows is the server's, not the loop's.
"""

from __future__ import annotations

import argparse
import asyncio
import socket


def parse_arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio", help="event loop implementation")
    return parser.parse_args()


def new_event_loop(name: str) -> asyncio.AbstractEventLoop:
    """A fresh event loop of the named implementation (``uvloop`` must be installed)."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run(main: object, loop_name: str) -> None:
    """Run coroutine ``main`` to completion on a new loop of ``loop_name``."""
    loop = new_event_loop(loop_name)
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        pass
    finally:
        loop.close()


def listening_socket(host: str) -> socket.socket:
    """A TCP socket bound to ``host`` on a free port, listening with a deep backlog."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def announce(port: int) -> None:
    """Tell the harness the server accepts connections on ``port``."""
    print(f"READY {port}", flush=True)


def wait_forever() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


__all__ = ["announce", "listening_socket", "new_event_loop", "parse_arguments", "run", "wait_forever"]
