"""Fixtures for security tests: a hub requiring JWTs, and tokens for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from security_helpers import TokenFactory, jwt_authenticator, make_token

from rtnb.server.hub import HubConfig
from rtnb.server.runner import HubServer
from rtnb.testing import running_hub


@pytest.fixture
def token() -> TokenFactory:
    return make_token


@pytest.fixture
async def jwt_hub() -> AsyncIterator[HubServer]:
    """A hub with ``--auth jwt`` defaults (1000/s burst 2000) and a 1 s auth deadline."""
    async with running_hub(HubConfig(), authenticator=jwt_authenticator(auth_timeout=1.0)) as server:
        yield server
