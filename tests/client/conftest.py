"""Fixtures for client tests: a hub behind a cuttable proxy, and a hub on its own thread."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from tcp_proxy import TcpProxy

from rtnb.client._loop_thread import LoopThread
from rtnb.core.history import HistoryLimits
from rtnb.server.hub import Hub, HubConfig
from rtnb.server.runner import HubServer
from rtnb.testing import running_hub

#: reconnect fast in tests; the policy itself is tested with a fake clock
FAST_BACKOFF = {"initial": 0.01, "cap": 0.05}


@pytest.fixture
async def big_history_hub() -> AsyncIterator[HubServer]:
    """A hub keeping 20,000 messages per topic, so cuts never outlast history."""
    async with running_hub(HubConfig(history=HistoryLimits(max_messages=20_000))) as server:
        yield server


@pytest.fixture
async def proxy(big_history_hub: HubServer) -> AsyncIterator[TcpProxy]:
    assert big_history_hub.port is not None
    async with TcpProxy("127.0.0.1", big_history_hub.port) as started:
        yield started


class ThreadedHub:
    """A HubServer running on its own thread and event loop (like a kernel's embedded hub)."""

    def __init__(self) -> None:
        self.loop_thread = LoopThread("test-hub")
        self.loop = self.loop_thread.loop
        self.server = HubServer(Hub(HubConfig(history=HistoryLimits(max_messages=10_000))))

    def start(self) -> ThreadedHub:
        self.loop_thread.start().run(self.server.start(), timeout=10)
        return self

    def stop(self) -> None:
        self.loop_thread.run(self.server.stop(), timeout=10)
        self.loop_thread.stop(10)
        assert self.loop_thread.finished

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
def threaded_hub() -> Iterator[ThreadedHub]:
    hub = ThreadedHub().start()
    try:
        yield hub
    finally:
        hub.stop()
