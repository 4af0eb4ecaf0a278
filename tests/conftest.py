"""Shared fixtures: a real hub on 127.0.0.1 and a free port for each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from rtnb.server.runner import HubServer
from rtnb.testing import running_hub


@pytest.fixture
async def hub_server() -> AsyncIterator[HubServer]:
    async with running_hub() as server:
        yield server
