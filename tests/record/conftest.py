"""A real hub on its own thread, so tests can drive the blocking Recorder/replay API directly."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future

import pytest

from rtnb.core.history import HistoryLimits
from rtnb.server.hub import Hub, HubConfig
from rtnb.server.runner import HubServer


class ThreadedHub:
    """A HubServer on 127.0.0.1:0 served by an event loop on a private thread."""

    def __init__(self, config: HubConfig | None = None) -> None:
        self.server = HubServer(Hub(config))
        self.loop = asyncio.new_event_loop()
        self._ready: Future[None] = Future()
        self.thread = threading.Thread(target=self._run, name="test-hub", daemon=True)
        self.thread.start()
        self._ready.result(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            await self.server.start()
            self._ready.set_result(None)

        self.loop.run_until_complete(start())
        self.loop.run_forever()
        self.loop.close()

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        assert not self.thread.is_alive()


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
