"""The rtnb hub as a benchmark server: ``HubServer`` with its defaults.

Prints ``READY <port>`` once listening (as the peers in ``peers/`` do) and
serves ``/ws`` (and ``/sse`` when the installed rtnb has it) until killed.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))

from common import announce, parse_arguments, run, wait_forever

from rtnb.server.hub import Hub
from rtnb.server.runner import HubServer


async def main(host: str) -> None:
    server = HubServer(Hub(), host=host, port=0)
    await server.start()
    assert server.port is not None
    announce(server.port)
    try:
        await wait_forever()
    finally:
        await server.stop()


if __name__ == "__main__":
    arguments = parse_arguments(__doc__ or "")
    run(main(arguments.host), arguments.loop)
