"""Fixtures for the MQTT bridge tests: the shared broker, private brokers, a hub.

The shared Mosquitto on 127.0.0.1:1883 is used as is (topics carry a random
test prefix so concurrent runs never meet). Tests that restart a broker or
need special listeners start their own ``mosquitto`` on a free port and never
touch the shared one.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from mqtt_helpers import SHARED_HOST, SHARED_PORT, PrivateBroker, broker_reachable

from rtnb.server.hub import Hub


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``; in CI (``RTNB_CI``) the missing piece is an error instead."""
    if os.environ.get("RTNB_CI"):
        pytest.fail(f"{reason} (CI must provide it)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def broker_url() -> str:
    """The shared broker's URL; skips (fails in CI) when none is reachable."""
    if not broker_reachable():
        skip_or_fail(f"no MQTT broker reachable at {SHARED_HOST}:{SHARED_PORT} (start mosquitto to run these tests)")
    return f"mqtt://{SHARED_HOST}:{SHARED_PORT}"


@pytest.fixture
def namespace() -> str:
    """A topic level unique to this test, so tests sharing a broker never see each other."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    hub = Hub()
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


@pytest.fixture
def mosquitto_binary() -> str:
    path = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if path is None:
        skip_or_fail("the mosquitto binary is not installed (apt-get install mosquitto) to run private brokers")
    return path


@pytest.fixture
async def private_broker_factory(tmp_path: Path, mosquitto_binary: str) -> AsyncIterator[Callable[..., Any]]:
    """Start private brokers: ``await factory(extra_config="")``; all are stopped at teardown."""
    brokers: list[PrivateBroker] = []

    async def start(extra_config: str = "") -> PrivateBroker:
        directory = tmp_path / f"broker{len(brokers)}"
        directory.mkdir()
        broker = PrivateBroker(mosquitto_binary, directory, extra_config)
        brokers.append(broker)
        return await broker.start()

    yield start
    for broker in brokers:
        await broker.stop()
