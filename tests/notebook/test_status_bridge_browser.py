"""The Status panel's MQTT bridge row, drawn by its real JavaScript in Chromium.

The kernel's hub is a real embedded hub with a bridge (``start_hub(mqtt=...)``):
to a closed port (the row says disconnected and its attempts grow) and to the
real Mosquitto (connected; messages in grow). The row keeps updating from the
hub itself (direct: nothing crosses the kernel) and, when the page cannot reach
the hub, from the kernel's relay. See tests/notebook/views_page.py for the page.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from bridged_hub import BROKER, closed_port, kernel_hub_bridging, mosquitto_or_skip
from views_page import CHROMIUM, CHROMIUM_ARGUMENTS, PageServer, ViewPage, playwright_or_skip

import rtnb.notebook as notebook
from rtnb.client import connect

playwright_api = playwright_or_skip()

pytestmark = pytest.mark.timeout(90)

ROW = 'tr[data-rtnb-bridge="mqtt"]'


@pytest.fixture
def page_server() -> Iterator[PageServer]:
    server = PageServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGUMENTS)
        yield browser
        await browser.close()


@pytest.fixture
async def view_page(browser: Any, page_server: PageServer) -> ViewPage:
    # the browser fixture first: the page server then binds on the test's running loop
    page = await browser.new_page(viewport={"width": 1000, "height": 700})
    return await ViewPage(page).open(page_server.url)


async def row_data(view_page: ViewPage, selector: str) -> dict[str, Any]:
    """The bridge row's data attributes and cells' text."""
    return await view_page.page.evaluate(  # type: ignore[no-any-return]
        """(s) => {
          const row = document.querySelector(s);
          return row ? { ...row.dataset, cells: [...row.cells].map((c) => c.textContent) } : null;
        }""",
        selector,
    )


async def wait_attempts(view_page: ViewPage, selector: str, at_least: int, timeout: float = 15.0) -> None:
    await view_page.wait_for(
        "([s, n]) => { const r = document.querySelector(s);"
        " return r && r.dataset.rtnbState === 'disconnected' && +r.dataset.rtnbAttempts >= n; }",
        [selector, at_least],
        timeout,
    )


async def test_direct_row_shows_a_broker_that_refuses_and_its_growing_attempts(
    monkeypatch: pytest.MonkeyPatch, view_page: ViewPage
) -> None:
    port = closed_port()
    with kernel_hub_bridging(monkeypatch, f"mqtt://127.0.0.1:{port}") as (hub, _ns), connect(hub.url) as client:
        status = notebook.Status([], client=client)
        panel = await view_page.show(status)
        row = f"{panel} {ROW}"
        await wait_attempts(view_page, row, 1)
        first = await row_data(view_page, row)
        assert first["cells"][0] == f"MQTT bridge mqtt://127.0.0.1:{port}"
        assert "disconnected — retrying, attempt" in first["cells"][1] and "next in" in first["cells"][1]
        assert f"last error: cannot connect to mqtt://127.0.0.1:{port}" in first["cells"][2]
        # the page keeps following the hub's status topic: more failed attempts, newer text
        await wait_attempts(view_page, row, int(first["rtnbAttempts"]) + 3)
        later = await row_data(view_page, row)
        assert f"attempt {int(later['rtnbAttempts']) + 1}," in later["cells"][1]
        # all of it came from the hub itself: the page never asked the kernel, which never subscribed
        assert view_page.sent == []
        assert status.bridge_relay is not None and not status.bridge_relay.started
        # the bridge stops (the hub runs on): its last word is "stopped"
        await asyncio.to_thread(hub.call, hub.bridge.stop)  # type: ignore[union-attr]
        await view_page.wait_for("(s) => document.querySelector(s)?.dataset.rtnbState === 'stopped'", row)
        assert (await row_data(view_page, row))["cells"][1] == "stopped"
        status.close()


async def test_relayed_row_keeps_updating_when_the_page_cannot_reach_the_hub(
    monkeypatch: pytest.MonkeyPatch, view_page: ViewPage
) -> None:
    port = closed_port()
    with kernel_hub_bridging(monkeypatch, f"mqtt://127.0.0.1:{port}") as (hub, _ns), connect(hub.url) as client:
        status = notebook.Status([], client=client)
        # the page is told a hub address it cannot reach (as on VS Code or Colab without the proxy)
        panel = await view_page.show(status, hub={"url": "http://127.0.0.1:9", "transports": ["ws"]})
        row = f"{panel} {ROW}"
        await wait_attempts(view_page, row, 1)
        assert view_page.sent == [{"op": "bridge"}]
        first = int((await row_data(view_page, row))["rtnbAttempts"])
        await wait_attempts(view_page, row, first + 3)
        assert view_page.sent == [{"op": "bridge"}]  # asked once; the kernel forwards every later status
        assert status.bridge_relay is not None and status.bridge_relay.started
        status.close()


async def test_direct_row_shows_the_real_broker_connected_and_messages_in(
    monkeypatch: pytest.MonkeyPatch, view_page: ViewPage
) -> None:
    broker_url = mosquitto_or_skip()
    import aiomqtt

    with kernel_hub_bridging(monkeypatch, broker_url) as (hub, namespace), connect(hub.url) as client:
        hub.call(hub.bridge.wait_connected)  # type: ignore[union-attr]
        status = notebook.Status([], client=client)
        panel = await view_page.show(status)
        row = f"{panel} {ROW}"
        await view_page.wait_for("(s) => document.querySelector(s)?.dataset.rtnbState === 'connected'", row)
        data = await row_data(view_page, row)
        assert data["cells"][:2] == [f"MQTT bridge {broker_url}", "connected"]
        assert data["rtnbAttempts"] == "0" and "last error" not in data["cells"][2]
        before = int(data["rtnbMessagesIn"])
        async with aiomqtt.Client(BROKER[0], BROKER[1], identifier=f"device-{namespace}") as device:
            for index in range(5):
                await device.publish(f"{namespace}/boiler/temp", f'{{"value": {index}}}', qos=1)
        await view_page.wait_for(
            "([s, n]) => +(document.querySelector(s)?.dataset.rtnbMessagesIn || 0) >= n", [row, before + 5]
        )
        assert "in " in (await row_data(view_page, row))["cells"][2]
        assert view_page.sent == []
        status.close()
