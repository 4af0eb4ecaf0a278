"""Crash and restart: ``python -m rtnb serve`` killed with SIGKILL while a publisher
and subscribers (WebSocket JSON and MessagePack, SSE) run, then started again on
the same port. The clients must reconnect by themselves, and every message the
publisher got an ack for must reach every subscriber or be covered by a gap it
was told about: with the in-memory backplane a restart loses history, and that
loss is reported (``epoch_changed``), never hidden.

The hub command is built by :func:`serve_command`; a Redis variant (where no
acknowledged message may be lost at all) adds ``--redis URL`` and asserts
``lost_without_gap == []`` and no gaps: see ``test_crash_restart_with_redis``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from rtnb.client import AsyncClient, BackoffPolicy, ClientState
from rtnb.client.sse import SSEClient
from rtnb.core.history import Gap
from rtnb.core.message import Message
from rtnb.testing import wait_until

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAST_RECONNECT = BackoffPolicy(initial=0.05, cap=0.25)
TOPIC = "crash/line/count"


async def topic_epoch(url: str) -> int:
    """The current epoch of :data:`TOPIC`, read over long polling."""

    def read() -> int:
        with urllib.request.urlopen(f"{url}/poll?topic={TOPIC}&last=1&timeout=0", timeout=5) as response:
            return int(json.loads(response.read())["messages"][-1]["epoch"])

    return await asyncio.to_thread(read)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_command(port: int, *extra: str) -> list[str]:
    """The hub under test: the real CLI in its own process."""
    return [sys.executable, "-m", "rtnb", "--log-level", "WARNING", "serve", "--port", str(port), *extra]


class HubProcess:
    """Starts, kills (SIGKILL) and restarts ``rtnb serve`` on one port."""

    def __init__(self, command: list[str], port: int) -> None:
        self.command = command
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{port}"

    async def start(self) -> None:
        self.process = subprocess.Popen(self.command, cwd=REPOSITORY, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        await wait_until(self._accepting, timeout=20, interval=0.05)

    def _accepting(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            stderr = self.process.stderr.read().decode() if self.process.stderr else ""
            raise AssertionError(f"the hub exited with {self.process.returncode}: {stderr[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
        except OSError:
            return False
        return True

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()


@dataclass
class Received:
    """What one subscriber's application got."""

    name: str
    messages: list[Message] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)

    def take(self, item: Any) -> None:
        if isinstance(item, Gap):
            self.gaps.append(item)
        else:
            self.messages.append(item)

    def has(self, epoch: int, offset: int) -> bool:
        return any(message.epoch == epoch and message.offset == offset for message in self.messages)

    def told_lost(self, epoch: int, offset: int) -> bool:
        """Whether a gap this subscriber received covers ``offset`` of ``epoch``."""
        for gap in self.gaps:
            same_epoch = gap.epoch is None or gap.epoch == epoch
            if gap.reason == "epoch_changed":
                # the range is in the old epoch, open-ended when to_offset is None
                if gap.from_offset <= offset and (gap.to_offset is None or offset <= gap.to_offset):
                    return True
            elif same_epoch and gap.from_offset <= offset <= (gap.to_offset or offset):
                return True
        return False


async def collect(source: Any, received: Received) -> None:
    async for item in source:
        received.take(item)


@pytest.fixture
def hub_port() -> Iterator[int]:
    yield free_port()


async def run_crash_scenario(command: list[str], port: int) -> dict[str, Any]:
    """Publish through a SIGKILL and a restart; return what was acked and what each subscriber got."""
    hub = HubProcess(command, port)
    await hub.start()
    clients: list[Any] = []
    tasks: list[asyncio.Task[Any]] = []
    in_flight: asyncio.Future[None] | None = None
    acked: list[tuple[int, int, int]] = []  # (index, hub process 0/1 then epoch, offset) from the acks
    try:
        receivers = [Received("ws-json"), Received("ws-msgpack"), Received("sse")]
        for received, fmt in zip(receivers[:2], ("json", "msgpack"), strict=True):
            client = AsyncClient(hub.url, format=fmt, backoff=FAST_RECONNECT, ping_interval=1.0, ping_timeout=1.0)
            await client.connect()
            clients.append(client)
            tasks.append(asyncio.ensure_future(collect(await client.subscribe("crash/#"), received)))
        sse = SSEClient(hub.url, "crash/#", backoff=FAST_RECONNECT, idle_timeout=5.0)
        await sse.connect()
        clients.append(sse)
        tasks.append(asyncio.ensure_future(collect(sse, receivers[2])))
        publisher = AsyncClient(hub.url, backoff=FAST_RECONNECT, ack_timeout=15.0, ping_interval=1.0, ping_timeout=1.0)
        await publisher.connect()
        clients.append(publisher)

        async def publish(index: int) -> None:
            offset = await publisher.publish(TOPIC, {"index": index})
            # An ack that resolves before the publisher reconnected came from the first
            # hub process; the publisher cannot reconnect before the restart.
            acked.append((index, 0 if publisher.reconnects == 0 else 1, offset))

        index = 0

        async def publish_for(seconds: float) -> None:
            nonlocal index
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                await asyncio.wait_for(publish(index), 20)
                index += 1
                await asyncio.sleep(0.005)  # the publisher's pace: ~150 messages/s

        await publish_for(1.0)
        before_crash = len(acked)
        first_epoch = await topic_epoch(hub.url)
        in_flight = asyncio.ensure_future(publish_for(1.5))  # keeps publishing through the crash
        await wait_until(lambda: len(acked) > before_crash + 20, timeout=10)
        hub.kill()
        await wait_until(lambda: all(client.state is not ClientState.CONNECTED for client in clients), timeout=10)
        await hub.start()
        await asyncio.wait_for(in_flight, 30)
        await wait_until(lambda: all(client.state is ClientState.CONNECTED for client in clients), timeout=15)
        epochs = (first_epoch, await topic_epoch(hub.url))
        acked[:] = [(index, epochs[phase], offset) for index, phase, offset in acked]
        last_epoch, last_offset = acked[-1][1], acked[-1][2]
        await wait_until(lambda: all(received.has(last_epoch, last_offset) for received in receivers), timeout=15)
        reconnects = [client.reconnects for client in clients]
    finally:
        if in_flight is not None and not in_flight.done():
            in_flight.cancel()
            await asyncio.gather(in_flight, return_exceptions=True)
        for client in clients:
            await client.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        hub.stop()
    return {"acked": acked, "receivers": receivers, "reconnects": reconnects, "before_crash": before_crash}


def losses(outcome: dict[str, Any]) -> dict[str, list[tuple[int, int, int]]]:
    """Per subscriber: acked messages neither delivered nor covered by a gap it was told about."""
    return {
        received.name: [
            (index, epoch, offset)
            for index, epoch, offset in outcome["acked"]
            if not received.has(epoch, offset) and not received.told_lost(epoch, offset)
        ]
        for received in outcome["receivers"]
    }


def assert_in_order(received: Received) -> None:
    seen: dict[int, int] = {}
    for message in received.messages:
        previous = seen.get(message.epoch, 0)
        assert message.offset > previous, f"{received.name}: offset {message.offset} after {previous}"
        seen[message.epoch] = message.offset


async def test_sigkill_and_restart_without_redis_reports_every_loss(hub_port: int) -> None:
    outcome = await run_crash_scenario(serve_command(hub_port), hub_port)

    assert all(count >= 1 for count in outcome["reconnects"]), outcome["reconnects"]
    assert losses(outcome) == {"ws-json": [], "ws-msgpack": [], "sse": []}
    epochs = sorted({epoch for _index, epoch, _offset in outcome["acked"]})
    assert len(epochs) == 2, "the restarted in-memory hub must start a new epoch"
    for received in outcome["receivers"]:
        assert_in_order(received)
        old, new = epochs
        # Messages of the new epoch are all delivered: the restarted hub keeps its own history.
        assert all(received.has(epoch, offset) for _index, epoch, offset in outcome["acked"] if epoch == new)
        # The history before the crash is gone: whatever the subscriber had seen, it is told
        # so (it cannot know whether it missed something), from its last old offset on.
        last_seen_old = max(message.offset for message in received.messages if message.epoch == old)
        changes = [gap for gap in received.gaps if gap.reason == "epoch_changed"]
        assert [(gap.from_offset, gap.to_offset) for gap in changes] == [(last_seen_old + 1, None)], received.name


async def test_crash_restart_with_redis(hub_port: int, redis_url: str) -> None:
    """With the Redis backplane, history and offsets survive the hub: no acked message is lost."""
    prefix = f"rtnb-crash-{uuid.uuid4().hex[:8]}:"
    command = serve_command(hub_port, "--redis", redis_url, "--redis-prefix", prefix)
    outcome = await run_crash_scenario(command, hub_port)
    try:
        assert all(count >= 1 for count in outcome["reconnects"]), outcome["reconnects"]
        assert len({epoch for _index, epoch, _offset in outcome["acked"]}) == 1, "the epoch must survive the restart"
        for received in outcome["receivers"]:
            assert_in_order(received)
            missing = [ack for ack in outcome["acked"] if not received.has(ack[1], ack[2])]
            assert missing == [], f"{received.name} lost acknowledged messages: {missing[:5]}"
            assert received.gaps == [], f"{received.name} was told of losses: {received.gaps}"
    finally:
        import redis

        connection = redis.Redis.from_url(redis_url)
        keys = list(connection.scan_iter(f"{prefix}*"))
        if keys:
            connection.delete(*keys)
        connection.close()
