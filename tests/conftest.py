"""Shared fixtures: a real hub on 127.0.0.1 and a free port for each test, and the
rule for tests that need a local service (Redis, Mosquitto, Chromium)."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import AsyncIterator

import pytest

from rtnb.server.runner import HubServer
from rtnb.testing import running_hub

#: set by .ci/run: a missing service fails the run instead of skipping tests
IN_CI = bool(os.environ.get("RTNB_CI"))


def require_service(name: str, host: str, port: int) -> None:
    """Skip the calling test when ``name`` is not reachable, with the reason; in CI, fail."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        reason = f"no {name} reachable at {host}:{port}"
        if IN_CI:
            pytest.fail(f"{reason} (CI must provide it)")
        pytest.skip(reason)


def require_chromium() -> str:
    """Path of Debian's Chromium; skip (fail in CI) when it is not installed."""
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if path is None:
        reason = "no Chromium at /usr/bin/chromium (apt-get install chromium)"
        if IN_CI:
            pytest.fail(f"{reason} (CI must provide it)")
        pytest.skip(reason)
    return path


@pytest.fixture
async def hub_server() -> AsyncIterator[HubServer]:
    async with running_hub() as server:
        yield server


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return "redis://127.0.0.1:6379/0"


@pytest.fixture
def mqtt_url() -> str:
    require_service("Mosquitto (MQTT)", "127.0.0.1", 1883)
    return "mqtt://127.0.0.1:1883"


@pytest.fixture
def chromium_path() -> str:
    return require_chromium()
