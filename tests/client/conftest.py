"""Fixtures for client tests: a hub behind a cuttable proxy, and a hub on its own thread."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from client_helpers import ThreadedHub
from tcp_proxy import TcpProxy

from rtnb.core.history import HistoryLimits
from rtnb.server.hub import HubConfig
from rtnb.server.runner import HubServer
from rtnb.testing import running_hub


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


@pytest.fixture
def threaded_hub() -> Iterator[ThreadedHub]:
    hub = ThreadedHub().start()
    try:
        yield hub
    finally:
        hub.stop()
