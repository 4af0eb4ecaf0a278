"""The demo page in a real browser: headless Debian Chromium driven by Playwright.

The page loads from a running hub with simulated sensors; the chart and the
values table must update, the page must reconnect by itself when the hub
restarts, and it must fall back to SSE when WebSocket is blocked (and to long
polling when SSE is blocked too). A screenshot goes to ``test-artifacts/``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from chromium_support import CHROMIUM_ARGUMENTS

from rtnb import sim
from rtnb.server.runner import HubServer

if os.environ.get("RTNB_CI"):
    import playwright.async_api as playwright_api  # CI installs the test extra: a missing one fails
else:
    playwright_api = pytest.importorskip(
        "playwright.async_api", reason="Playwright is not installed (pip install -e '.[test]')"
    )

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
#: generous for a loaded CI machine; conditions are polled, so passing runs are fast
WAIT_MS = 15_000


class LiveHub:
    """A hub with simulated sensors that can be restarted on the same port."""

    def __init__(self) -> None:
        self.server: HubServer | None = None
        self.simulation: sim.Simulation | None = None
        self.port = 0

    async def start(self) -> LiveHub:
        self.server = HubServer(port=self.port)
        await self.server.start()
        assert self.server.port is not None
        self.port = self.server.port
        self.simulation = sim.sensors(self.server, ["plant/+/temp"], rate=20.0, seed=1)
        return self

    async def stop(self) -> None:
        if self.simulation is not None:
            self.simulation.stop()
        if self.server is not None:
            await self.server.stop()
        self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def live_hub() -> AsyncIterator[LiveHub]:
    hub = await LiveHub().start()
    yield hub
    await hub.stop()


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGUMENTS)
        try:
            yield launched
        finally:
            await launched.close()


async def open_page(browser: Any, url: str) -> Any:
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    await page.goto(url)
    return page


async def wait_open(page: Any, transport: str) -> None:
    await page.wait_for_function(
        f"() => document.getElementById('status').dataset.status === 'open'"
        f" && document.getElementById('transport').textContent === '{transport}'",
        timeout=WAIT_MS,
    )


async def wait_values_update(page: Any) -> None:
    """The three devices' rows exist, and their offsets grow while we watch."""
    await page.wait_for_function("() => document.querySelectorAll('#values tbody tr').length === 3", timeout=WAIT_MS)
    before = await page.evaluate("() => rtnbDemo.stats.messages")
    await page.wait_for_function(f"() => rtnbDemo.stats.messages >= {before + 30}", timeout=WAIT_MS)
    offsets = await page.evaluate(
        "() => [...document.querySelectorAll('#values tbody tr')].map((row) => Number(row.dataset.offset))"
    )
    await page.wait_for_function(
        "(previous) => [...document.querySelectorAll('#values tbody tr')]"
        ".every((row, index) => Number(row.dataset.offset) > previous[index])",
        arg=offsets,
        timeout=WAIT_MS,
    )


async def chart_points(page: Any) -> list[int]:
    return await page.evaluate("() => document.getElementById('chart').data.map((trace) => trace.x.length)")


async def test_chart_and_values_update_and_survive_a_hub_restart(live_hub: LiveHub, browser: Any) -> None:
    page = await open_page(browser, live_hub.url + "/?topic=plant/%2B/temp&last=50")
    await wait_open(page, "ws")
    await wait_values_update(page)
    # The chart has one trace per device and keeps growing.
    await page.wait_for_function("() => document.getElementById('chart').data.length === 3", timeout=WAIT_MS)
    first = await chart_points(page)
    await page.wait_for_function(
        "(previous) => document.getElementById('chart').data.every((trace, index) => trace.x.length > previous[index])",
        arg=first,
        timeout=WAIT_MS,
    )
    names = await page.evaluate("() => document.getElementById('chart').data.map((trace) => trace.name).sort()")
    assert names == ["plant/boiler/temp", "plant/pump/temp", "plant/turbine/temp"]
    # The topics panel lists the devices with their subscriber count.
    await page.wait_for_function(
        "() => { const rows = [...document.querySelectorAll('#topics tbody tr')];"
        " return rows.length === 3 && rows.every((row) => Number(row.cells[1].textContent) > 5"
        " && Number(row.cells[2].textContent) >= 1); }",
        timeout=WAIT_MS,
    )
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "demo_page.png"), full_page=True)

    # Restart the hub on the same port: the page notices, reconnects by itself and updates again.
    old_epochs = set(await page.evaluate("() => [...rtnbDemo.client.positions.values()].map((p) => p[0])"))
    await live_hub.stop()
    await page.wait_for_function("() => document.getElementById('status').dataset.status !== 'open'", timeout=WAIT_MS)
    await live_hub.start()
    await wait_open(page, "ws")
    await wait_values_update(page)
    new_epochs = set(await page.evaluate("() => [...rtnbDemo.client.positions.values()].map((p) => p[0])"))
    assert new_epochs and not new_epochs & old_epochs  # it follows the restarted hub's topics
    gaps = await page.evaluate("() => rtnbDemo.stats.gaps")
    assert gaps >= 1  # the lost history of the old epochs is reported, not hidden
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "demo_page_after_restart.png"), full_page=True)
    assert page.errors == []


async def test_falls_back_to_sse_when_websocket_is_blocked(live_hub: LiveHub, browser: Any) -> None:
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    async def refuse(route: Any) -> None:  # a proxy that will not carry WebSockets
        await route.close(code=1008, reason="blocked by proxy")

    await page.route_web_socket("**/ws", refuse)
    await page.goto(live_hub.url + "/?topic=plant/%2B/temp")
    await wait_open(page, "sse")
    await wait_values_update(page)
    # Publishing without WebSocket goes over HTTP POST: a command reaches a device.
    offset = await page.evaluate(
        "async () => (await rtnbDemo.client.publish('plant/boiler/cmd', {setpoint: 77})).offset"
    )
    assert offset == 1
    assert live_hub.simulation is not None
    assert live_hub.simulation.devices["boiler"].metrics[0].setpoint == 77.0
    assert errors == []


async def test_falls_back_to_long_polling_when_sse_is_blocked_too(live_hub: LiveHub, browser: Any) -> None:
    page = await browser.new_page()

    async def refuse(route: Any) -> None:
        await route.close(code=1008, reason="blocked by proxy")

    await page.route_web_socket("**/ws", refuse)
    await page.route("**/sse?**", lambda route: route.abort())
    await page.goto(live_hub.url + "/?topic=plant/%2B/temp")
    await wait_open(page, "poll")
    await wait_values_update(page)


async def test_client_helpers_agree_with_the_hub(live_hub: LiveHub, browser: Any) -> None:
    """rtnb.js's pattern matching and cursor codec give the same answers as the Python core."""
    from rtnb.core.cursor import decode_cursor, encode_cursor
    from rtnb.core.topics import Pattern

    page = await browser.new_page()
    await page.goto(live_hub.url + "/static/demo.css")  # any page of the hub's origin
    cases = [
        ("plant/+/temp", "plant/boiler/temp"),
        ("plant/+/temp", "plant/boiler/pressure"),
        ("plant/#", "plant"),
        ("plant/#", "plant/a/b/c"),
        ("#", "$rtnb/bridge"),
        ("+/x", "$sys/x"),
        ("$rtnb/#", "$rtnb/bridge"),
        ("a/b", "a/b/c"),
    ]
    results = await page.evaluate(
        "async (cases) => { const m = await import('/rtnb.js');"
        " return cases.map(([pattern, topic]) => m.topicMatches(pattern, topic)); }",
        cases,
    )
    assert results == [Pattern.parse(pattern).matches(topic) for pattern, topic in cases]
    positions = {"plant/boiler/temp": [1795780476836, 42], "café/ünïcode": [7, 0]}
    from_js = await page.evaluate(
        "async (positions) => { const m = await import('/rtnb.js');"
        " return m.encodeCursor(new Map(Object.entries(positions))); }",
        positions,
    )
    assert decode_cursor(from_js) == {topic: tuple(place) for topic, place in positions.items()}
    from_python = encode_cursor({topic: (epoch, offset) for topic, (epoch, offset) in positions.items()})
    decoded = await page.evaluate(
        "async (cursor) => { const m = await import('/rtnb.js'); return Object.fromEntries(m.decodeCursor(cursor)); }",
        from_python,
    )
    assert decoded == positions


@pytest.mark.parametrize("transport", ["ws", "sse", "poll"])
async def test_publishes_made_offline_wait_in_a_bounded_queue_and_keep_their_order(
    live_hub: LiveHub, browser: Any, transport: str
) -> None:
    page = await browser.new_page()
    await page.goto(live_hub.url + "/static/demo.css")
    outcome = await page.evaluate(
        """async (transport) => {
            const { RtnbClient } = await import('/rtnb.js');
            const client = new RtnbClient(undefined, { autoConnect: false, maxQueue: 5, transports: [transport] });
            const results = [];
            const publishes = [1, 2, 3, 4, 5, 6].map((n) => client.publish('queue/test', { n })
                .then((ack) => results.push(['ok', n, ack.offset]), (error) => results.push(['error', n, error.code])));
            const queuedWhileOffline = client.queue.length;
            client.connect();
            const late = new Promise((_, reject) => setTimeout(
                () => reject(new Error(
                    `not settled in 10 s over ${client.transport}: ${JSON.stringify(results)}`)), 10000));
            await Promise.race([Promise.all(publishes), late]);
            const usedTransport = client.transport;
            client.close();
            return { queuedWhileOffline, results, usedTransport };
        }""",
        transport,
    )
    assert outcome["usedTransport"] == transport
    assert outcome["queuedWhileOffline"] == 5
    # The oldest is dropped past the bound; the rest reach the hub in the order of the calls.
    assert sorted(outcome["results"]) == [["error", 1, "queue_full"]] + [["ok", n, n - 1] for n in range(2, 7)]
