"""A real hub on its own thread, so tests can drive the blocking Recorder/replay API directly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rtnb.client._loop_thread import LoopThread
from rtnb.core.history import HistoryLimits
from rtnb.server.hub import Hub, HubConfig
from rtnb.server.runner import HubServer


class ThreadedHub:
    """A HubServer on 127.0.0.1:0 served by an event loop on a private thread."""

    def __init__(self, config: HubConfig | None = None) -> None:
        self.server = HubServer(Hub(config))
        self.loop_thread = LoopThread("test-hub").start()
        self.loop = self.loop_thread.loop
        self.thread = self.loop_thread.thread
        self.loop_thread.run(self.server.start(), timeout=10)

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.loop_thread.run(self.server.stop(), timeout=10)
        self.loop_thread.stop(10)
        assert not self.thread.is_alive() and self.loop.is_closed()


@pytest.fixture
def threaded_hub() -> Iterator[ThreadedHub]:
    hub = ThreadedHub()
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def small_history_hub() -> Iterator[ThreadedHub]:
    """A hub that keeps only 5 messages per topic, to provoke real gaps."""
    hub = ThreadedHub(HubConfig(history=HistoryLimits(max_messages=5)))
    try:
        yield hub
    finally:
        hub.stop()
