"""WebSocket resume over many topics: the subscribe frame a reconnecting client sends.

A hub holds ``--topics`` topics under ``wide/#``; an :class:`~rtnb.client.AsyncClient`
subscribes, 1 topic in ``--moved`` gets a message, the connection is cut, and the client
resubscribes. Printed: the size of that resume frame and the time from the cut to the
client being connected again (or why it was not), with checkpoints (the default) and with the full ``since``
map (checkpoints turned off), so the two can be compared. Example::

    python benchmarks/resume.py --topics 10000 --moved 500
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from typing import Any

import orjson

import rtnb.client._resume as resume
from rtnb.client import AsyncClient, BackoffPolicy, ClientState
from rtnb.core.history import HistoryLimits
from rtnb.server.hub import HubConfig
from rtnb.testing import running_hub, wait_until


class SubscribeSizes(logging.Handler):
    """Sizes of the subscribe frames a client sends (from its frame log)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.sizes: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        direction, _client, data = record.args  # type: ignore[misc]  # as AsyncClient logs frames
        if direction == "->" and orjson.loads(data).get("op") == "subscribe":
            self.sizes.append(len(data))


async def measure(topics: int, moved: int, checkpoints: bool) -> dict[str, Any]:
    sizes = SubscribeSizes()
    frame_log = logging.getLogger("rtnb.client.frames")
    frame_log.addHandler(sizes)
    frame_log.setLevel(logging.DEBUG)
    minimum = resume.CHECKPOINT_MIN_TOPICS
    if not checkpoints:
        resume.CHECKPOINT_MIN_TOPICS = topics + 1
    try:
        async with running_hub(HubConfig(ping_interval=0, history=HistoryLimits(max_messages=16))) as server:
            hub = server.hub
            for index in range(topics):
                hub.publish_now(f"wide/{index}", 0)
            backoff = BackoffPolicy(initial=0.01, cap=0.05)
            async with AsyncClient(server.url, backoff=backoff, ping_interval=None) as client:
                await client.subscribe("wide/#")
                if checkpoints:
                    await wait_until(lambda: client.status()["checkpoint"] is not None, timeout=30)
                for index in range(0, topics, moved):
                    hub.publish_now(f"wide/{index}", 1)
                await wait_until(lambda: client.status()["positions"].get("wide/0", (0, 0))[1] == 2, timeout=30)
                started = time.perf_counter()
                for member in list(hub.fanout.members.values()):
                    member.sink.close(1011, "benchmark: cut")
                try:
                    await wait_until(lambda: client.reconnects == 1 and client.state is ClientState.CONNECTED, 20)
                    outcome = f"connected again after {time.perf_counter() - started:.3f} s"
                except TimeoutError:  # e.g. the frame is over the hub's 1 MiB limit: closed with 1009
                    outcome = f"NOT resumed in 20 s (last error: {client.last_error!r})"
        return {"checkpoints": checkpoints, "resume_frame_bytes": sizes.sizes[-1], "outcome": outcome}
    finally:
        resume.CHECKPOINT_MIN_TOPICS = minimum
        frame_log.removeHandler(sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, default=10_000)
    parser.add_argument("--moved", type=int, default=500, help="1 topic in MOVED gets a message before the cut")
    options = parser.parse_args()
    for checkpoints in (True, False):
        result = asyncio.run(measure(options.topics, options.moved, checkpoints))
        print(
            f"{options.topics} topics, checkpoints={result['checkpoints']}: "
            f"resume frame {result['resume_frame_bytes']:,} bytes, {result['outcome']}"
        )


if __name__ == "__main__":
    main()
