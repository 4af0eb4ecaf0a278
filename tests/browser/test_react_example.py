"""examples/react in Chromium: built with esbuild from npm, served from its own origin,
it shows live data from a real hub with simulated sensors, publishes a command, and
after the hub restarts (empty history, new epochs) it resumes and shows the gaps.

The build is React's development build under ``<StrictMode>``, so every effect runs,
is cleaned up and runs again: the hub must still see one connection and one
subscription per topic (the provider's first client, closed in the tick that made
it, never connects; two hooks on one pattern share one subscription).
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import tornado.httpserver
import tornado.netutil
import tornado.web
from chromium_helpers import WAIT_MS, chromium, open_page
from node_tools import REACT_EXAMPLE, npm_installed, require_node

from rtnb import sim
from rtnb.server.runner import HubServer
from rtnb.testing import wait_until

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def built_example() -> Path:
    npm_installed(REACT_EXAMPLE)
    result = subprocess.run(
        [require_node(), "build.mjs"], cwd=REACT_EXAMPLE, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return REACT_EXAMPLE / "dist"


@pytest.fixture
async def dashboard_origin(built_example: Path) -> AsyncIterator[str]:
    """The built dashboard on a static server of its own (another origin than the hub)."""
    app = tornado.web.Application([(r"/(.*)", tornado.web.StaticFileHandler, {"path": str(built_example)})])
    server = tornado.httpserver.HTTPServer(app)
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server.add_sockets(sockets)
    try:
        yield f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    finally:
        server.stop()
        await server.close_all_connections()


class RestartableHub:
    """A hub with simulated sensors that can restart on the same port (a new history epoch)."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.port = 0
        self.server: HubServer | None = None
        self.simulation: sim.Simulation | None = None

    async def start(self) -> HubServer:
        server = self.server = await HubServer(port=self.port, allowed_origins=[self.origin]).start()
        assert server.port is not None
        self.port = server.port
        self.simulation = sim.sensors(server, ["plant/+/temp"], rate=20.0, seed=1)
        # The simulated devices hold one in-hub connection of their own (they obey commands).
        await wait_until(lambda: server.hub.connection_count == 1)
        return server

    async def stop(self) -> None:
        if self.simulation is not None:
            self.simulation.stop()
        if self.server is not None:
            await self.server.stop()
        self.server = self.simulation = None


ROWS = "[...document.querySelectorAll('#readings tbody tr')]"


async def wait_live(page: Any) -> list[str]:
    """The dashboard is open with three rows whose offsets move; returns their topics."""
    await page.wait_for_function("() => document.getElementById('status')?.dataset.status === 'open'", timeout=WAIT_MS)
    await page.wait_for_function(f"() => {ROWS}.length === 3", timeout=WAIT_MS)
    offsets = await page.evaluate(f"() => {ROWS}.map((row) => Number(row.dataset.offset))")
    await page.wait_for_function(
        f"(before) => {ROWS}.every((row, index) => Number(row.dataset.offset) > before[index] + 5)",
        arg=offsets,
        timeout=WAIT_MS,
    )
    return await page.evaluate(f"() => {ROWS}.map((row) => row.dataset.topic)")


def assert_one_subscription(server: HubServer, topics: list[str]) -> None:
    """One browser connection beside the devices', holding the pattern once."""
    assert server.hub.connection_count == 2
    assert [server.hub.fanout.subscribers_of(topic) for topic in topics] == [1, 1, 1]
    holders = [patterns for patterns in server.hub.local_subscriptions().values() if "plant/+/temp" in patterns]
    assert holders == [["plant/+/temp"]]


@pytest.mark.timeout(300)
async def test_the_react_dashboard_shows_live_data_publishes_and_reports_gaps(
    dashboard_origin: str, chromium_path: str
) -> None:
    hub = RestartableHub(dashboard_origin)
    server = await hub.start()
    try:
        async with chromium(chromium_path) as browser:
            page = await open_page(browser, f"{dashboard_origin}/index.html?hub={server.url}")
            topics = await wait_live(page)
            # StrictMode ran every effect twice; the hub sees one client and one subscription.
            assert_one_subscription(server, topics)

            # usePublish: a new setpoint reaches the simulated device, whose readings show it.
            await page.fill("#setpoint input", "91")
            await page.click("#setpoint button")
            await page.wait_for_function(
                "() => document.querySelector('#setpoint output').textContent.startsWith('sent to')", timeout=WAIT_MS
            )
            await page.wait_for_function(
                f"(topic) => {ROWS}.some((row) => row.dataset.topic === topic && row.dataset.setpoint === '91')",
                arg=topics[0],
                timeout=WAIT_MS,
            )
            assert await page.text_content("#latest") != "latest: waiting"
            assert await page.get_attribute("#gaps", "data-count") == "0"

            # The hub restarts with empty history: the client resumes, and useTopic reports
            # the new epoch of each topic as a gap instead of losing it silently.
            await hub.stop()
            server = await hub.start()
            await page.wait_for_function(
                "() => Number(document.getElementById('gaps').dataset.count) >= 3", timeout=WAIT_MS
            )
            assert await wait_live(page) == topics
            assert_one_subscription(server, topics)
            reasons = await page.text_content("#gaps")
            assert reasons is not None and "epoch_changed" in reasons
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "react-dashboard.png"))
            assert page.errors == []
    finally:
        await hub.stop()
