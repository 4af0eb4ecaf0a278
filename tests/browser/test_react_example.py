"""examples/react in Chromium: built with esbuild from npm, served from its own origin,
it shows live data from a real hub with simulated sensors, and publishes a command.

The build is React's development build under ``<StrictMode>``, so every effect runs,
is cleaned up and runs again: the hub must still see one connection and one
subscription per topic (the provider's first client, closed in the tick that made
it, never connects; two hooks on one pattern share one subscription).
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import tornado.httpserver
import tornado.netutil
import tornado.web
from chromium_helpers import WAIT_MS, chromium, open_page
from node_tools import REACT_EXAMPLE, npm_installed, require_node

from rtnb import sim
from rtnb.testing import running_hub, wait_until

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


@pytest.mark.timeout(300)
async def test_the_react_dashboard_shows_live_data_and_publishes(dashboard_origin: str, chromium_path: str) -> None:
    async with running_hub(allowed_origins=[dashboard_origin]) as server, chromium(chromium_path) as browser:
        simulation = sim.sensors(server, ["plant/+/temp"], rate=20.0, seed=1)
        try:
            # The simulated devices hold one in-hub connection of their own (they obey commands).
            await wait_until(lambda: server.hub.connection_count == 1)
            devices_only = server.hub.connection_count
            page = await open_page(browser, f"{dashboard_origin}/index.html?hub={server.url}")
            await page.wait_for_function(
                "() => document.getElementById('status')?.dataset.status === 'open'", timeout=WAIT_MS
            )
            await page.wait_for_function(
                "() => document.querySelectorAll('#readings tbody tr').length === 3", timeout=WAIT_MS
            )
            rows = "[...document.querySelectorAll('#readings tbody tr')]"
            offsets = await page.evaluate(f"() => {rows}.map((row) => Number(row.dataset.offset))")
            await page.wait_for_function(
                f"(before) => {rows}.every((row, index) => Number(row.dataset.offset) > before[index] + 5)",
                arg=offsets,
                timeout=WAIT_MS,
            )
            # StrictMode ran every effect twice; the hub sees one client and one subscription.
            topics = await page.evaluate(f"() => {rows}.map((row) => row.dataset.topic)")
            assert server.hub.connection_count == devices_only + 1
            assert [server.hub.fanout.subscribers_of(topic) for topic in topics] == [1, 1, 1]
            holders = [patterns for patterns in server.hub.local_subscriptions().values() if "plant/+/temp" in patterns]
            assert holders == [["plant/+/temp"]]

            # usePublish: a new setpoint reaches the simulated device, whose readings show it.
            await page.fill("#setpoint input", "91")
            await page.click("#setpoint button")
            await page.wait_for_function(
                "() => document.querySelector('#setpoint output').textContent.startsWith('sent to')", timeout=WAIT_MS
            )
            await page.wait_for_function(
                f"(topic) => {rows}.some((row) => row.dataset.topic === topic && row.dataset.setpoint === '91')",
                arg=topics[0],
                timeout=WAIT_MS,
            )
            assert await page.text_content("#latest") != "latest: waiting"
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "react-dashboard.png"))
            assert page.errors == []
        finally:
            simulation.stop()
