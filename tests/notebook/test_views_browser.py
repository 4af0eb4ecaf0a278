"""The views' JavaScript in Chromium: direct from the embedded hub, relayed by the kernel, and auto between them.

See tests/notebook/views_page.py for how a page stands in for the notebook frontend.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from views_page import CHROMIUM, CHROMIUM_ARGUMENTS, PageServer, TcpForwarder, ViewPage, playwright_or_skip

import rtnb.notebook as notebook
from rtnb.notebook.embedded import EmbeddedHub
from rtnb.notebook.testing import recording_comms
from rtnb.testing import wait_until

playwright_api = playwright_or_skip()

pytestmark = pytest.mark.timeout(90)


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
    page = await browser.new_page(viewport={"width": 1000, "height": 900})
    return await ViewPage(page).open(page_server.url)


def publish(embedded: EmbeddedHub, topic: str, count: int, start: int = 0) -> None:
    for index in range(start, start + count):
        embedded.call(embedded.hub.publish_now, topic, {"value": float(index), "seq": index})


async def publishing(embedded: EmbeddedHub, topic: str, rate: float, seconds: float) -> None:
    """Publish ``rate`` messages a second for ``seconds`` (from a thread, the test's loop stays free)."""
    count = int(rate * seconds)
    for index in range(count):
        await asyncio.to_thread(embedded.call, embedded.hub.publish_now, topic, {"value": float(index % 50)})
        await asyncio.sleep(1 / rate)


async def test_direct_chart_draws_from_the_hub_with_nothing_through_the_kernel(
    embedded: EmbeddedHub, client: Any, view_page: ViewPage
) -> None:
    publish(embedded, "vb-direct/a", 30)
    with recording_comms() as comms:
        chart = notebook.LiveChart("vb-direct/+", window=500, transport="direct", client=client)
        selector = await view_page.show(chart)
        await view_page.wait_mode(selector, "direct")
        await view_page.wait_points(selector, 30)
        before = await view_page.points(selector)
        publish(embedded, "vb-direct/a", 20, start=30)
        await view_page.wait_for(
            "([s, n]) => +document.querySelector(s).dataset.rtnbPoints >= n", [selector, before + 20]
        )
        assert await view_page.attribute(selector, "data-rtnb-mode") == "direct"
        assert await view_page.page.text_content(f"{selector} .rtnb-badge") == "direct"
        # the kernel neither subscribed nor sent anything per message
        assert chart.subscription is None and chart.stats.received == 0
        assert [m for m in comms.messages if m.msg_type == "comm_msg" and m.data.get("method") == "custom"] == []
        assert view_page.sent == []
        chart.close()


async def test_relay_sends_only_new_points_as_typed_arrays(
    embedded: EmbeddedHub, client: Any, view_page: ViewPage
) -> None:
    publish(embedded, "vb-relay/a", 40)
    chart = notebook.LiveChart("vb-relay/+", window=1000, transport="relay", client=client, max_fps=10)
    sent: list[tuple[dict[str, Any], list[bytes]]] = []
    selector = await view_page.show(chart)
    relay_to_page = chart.widget.send
    chart.widget.send = lambda content, buffers=None: (
        sent.append((content, buffers or [])),
        relay_to_page(content, buffers),
    )
    await view_page.wait_mode(selector, "relay")
    await view_page.wait_points(selector, 40)
    first = len(sent)
    publish(embedded, "vb-relay/a", 25, start=40)
    await view_page.wait_for("(s) => +document.querySelector(s).dataset.rtnbPoints >= 65", selector)
    later = [content for content, _buffers in sent[first:]]
    assert later and all(content["op"] == "points" for content in later)
    # every point once: the new messages' offsets, in order, none of the first 40 again
    offsets = [o for content in later for s in content["series"] for o in range(s["first"], s["last"] + 1)]
    assert offsets == list(range(41, 66))
    # times as 16-bit steps (a steady stream), values as float32: 6 bytes a point
    assert all(c.get("time_unit") for c, _buffers in sent[first:])
    assert all(len(buffers[0]) == 2 * sum(s["count"] for s in c["series"]) for c, buffers in sent[first:])
    assert all(len(buffers[1]) == 4 * sum(s["count"] for s in c["series"]) for c, buffers in sent[first:])
    # the page decoded the times: its newest point is the hub's newest message's time, to 10 us
    newest = max(m.ts for m in embedded.call(lambda: embedded.hub.backplane.store.lookup("vb-relay/a").last(1)))
    page_newest = await view_page.page.evaluate(
        "() => [...globalThis.__rtnb_view_feeds__.values()]"
        ".find((f) => f.store.series?.has('vb-relay/a')).store.newestTime"
    )
    assert abs(page_newest - newest) < 2e-5
    assert await view_page.points(selector) == 65
    chart.close()


async def test_auto_falls_back_to_relay_when_the_hub_is_unreachable_and_loses_nothing(
    embedded: EmbeddedHub, client: Any, view_page: ViewPage
) -> None:
    publish(embedded, "vb-auto/a", 10)
    chart = notebook.LiveChart("vb-auto/+", window=1000, client=client)
    await asyncio.sleep(0.5)  # the kernel's mirror has the history
    # the browser is told a hub address it cannot reach: direct fails, relay takes over
    selector = await view_page.show(chart, hub={"url": "http://127.0.0.1:9", "transports": ["ws"]})
    started = asyncio.get_running_loop().time()
    await view_page.wait_for("(s) => document.querySelector(s).dataset.rtnbMode === 'relay'", selector, timeout=5)
    assert asyncio.get_running_loop().time() - started < 4.0
    publish(embedded, "vb-auto/a", 15, start=10)
    await view_page.wait_for("(s) => +document.querySelector(s).dataset.rtnbPoints >= 25", selector)
    await asyncio.sleep(0.5)
    assert await view_page.points(selector) == 25
    assert view_page.sent[0]["op"] == "relay"
    chart.close()


async def test_value_gauge_and_table_draw_in_a_narrow_cell(
    embedded: EmbeddedHub, client: Any, view_page: ViewPage
) -> None:
    publish(embedded, "vb-narrow/a", 3)
    publish(embedded, "vb-narrow/b", 2)
    value = notebook.LiveValue("vb-narrow/a", fmt="{value:.1f} °C", sparkline=True, client=client)
    gauge = notebook.Gauge("vb-narrow/a", min=0, max=10, thresholds=[(5, "green"), (10, "red")], client=client)
    table = notebook.LiveTable("vb-narrow/+", client=client)
    selectors = [await view_page.show(view, width=400) for view in (value, gauge, table)]
    for selector in selectors:
        await view_page.wait_for("(s) => document.querySelector(s).dataset.rtnbMode === 'direct'", selector)
    await view_page.wait_for(
        "(s) => document.querySelector(s + ' .rtnb-value-text').textContent === '2.0 °C'", selectors[0]
    )
    await view_page.wait_for("(s) => document.querySelectorAll(s + ' tbody tr').length === 2", selectors[2])
    for selector in selectors:
        box = await view_page.page.eval_on_selector(selector, "(e) => [e.getBoundingClientRect().width, e.scrollWidth]")
        assert box[0] <= 400 and box[1] <= 400, (selector, box)
    # sort by topic, descending, with two clicks; then filter
    header = f"{selectors[2]} th[data-rtnb-column='topic']"
    await view_page.page.click(header)
    await view_page.page.click(header)
    descending = "(s) => document.querySelector(s + \" th[data-rtnb-column='topic']\").ariaSort === 'descending'"
    await view_page.wait_for(descending, selectors[2])  # drawn at the next animation frame
    first = await view_page.page.inner_text(f"{selectors[2]} tbody tr td")
    assert first == "vb-narrow/b"
    await view_page.page.fill(f"{selectors[2]} .rtnb-filter", "vb-narrow/a")
    await view_page.wait_for("(s) => document.querySelectorAll(s + ' tbody tr').length === 1", selectors[2])
    for view in (value, gauge, table):
        view.close()


async def test_auto_goes_back_to_direct_when_the_hub_answers_again_without_losing_a_point(
    embedded: EmbeddedHub, client: Any, view_page: ViewPage
) -> None:
    forwarder = TcpForwarder(embedded.port)
    await forwarder.start()
    port = forwarder.port
    await forwarder.stop()  # the browser's way to the hub is cut
    publish(embedded, "vb-back/a", 10)
    chart = notebook.LiveChart("vb-back/+", window=1000, client=client)
    await wait_until(lambda: len(chart.window("vb-back/a")) == 10)
    hub = {**chart.widget.hub, "url": f"http://127.0.0.1:{port}"}
    selector = await view_page.show(chart, hub=hub)
    await view_page.wait_mode(selector, "relay", timeout=5)
    publish(embedded, "vb-back/a", 10, start=10)
    await view_page.wait_points(selector, 20)
    forwarder.port = port
    await forwarder.start()  # the hub answers again: the page goes back to direct (client backoff <= 5 s)
    try:
        await view_page.wait_mode(selector, "direct", timeout=12)
        assert [m["op"] for m in view_page.sent] == ["relay", "direct"]
        assert chart.relaying == set()
        publish(embedded, "vb-back/a", 10, start=20)
        await view_page.wait_points(selector, 30)
        await asyncio.sleep(0.5)
        assert await view_page.points(selector) == 30  # none lost, none twice
    finally:
        chart.close()
        await forwarder.stop()


async def test_a_new_page_rebuilds_the_window_direct_from_history_and_relay_from_the_kernel(
    embedded: EmbeddedHub, client: Any, browser: Any, page_server: PageServer
) -> None:
    publish(embedded, "vb-reload/a", 40)
    direct = notebook.LiveChart("vb-reload/+", window=30, transport="direct", client=client)
    relayed = notebook.LiveChart("vb-reload/+", window=25, transport="relay", client=client)
    await wait_until(lambda: len(relayed.window("vb-reload/a")) == 25)
    for _attempt in range(2):  # a page, then a reload (a new page, nothing re-run in the kernel)
        page = await browser.new_page()
        view_page = await ViewPage(page).open(page_server.url)
        direct_selector = await view_page.show(direct)
        relay_selector = await view_page.show(relayed)
        await view_page.wait_points(direct_selector, 30, timeout=5)
        await view_page.wait_points(relay_selector, 25, timeout=5)
        assert await view_page.attribute(direct_selector, "data-rtnb-mode") == "direct"
        assert await view_page.attribute(relay_selector, "data-rtnb-mode") == "relay"
        await page.close()
    direct.close()
    relayed.close()


async def test_pause_keeps_receiving_and_follow_returns_to_live(
    embedded: EmbeddedHub, client: Any, view_page: ViewPage
) -> None:
    publish(embedded, "vb-pause/a", 5)
    chart = notebook.LiveChart("vb-pause/+", window=100, transport="direct", client=client)
    selector = await view_page.show(chart)
    await view_page.wait_points(selector, 5)
    await view_page.page.click(f"{selector} .rtnb-pause")
    assert await view_page.attribute(selector, "data-rtnb-paused") == "true"
    frozen = await view_page.page.eval_on_selector(f"{selector} canvas", "(c) => c.toDataURL()")
    publish(embedded, "vb-pause/a", 5, start=5)
    await view_page.wait_points(selector, 10)  # paused views keep receiving
    await asyncio.sleep(0.2)
    assert await view_page.page.eval_on_selector(f"{selector} canvas", "(c) => c.toDataURL()") == frozen
    await view_page.page.click(f"{selector} .rtnb-follow")
    await view_page.wait_for(
        "([s, before]) => document.querySelector(s + ' canvas').toDataURL() !== before", [selector, frozen]
    )
    chart.close()


async def test_a_dark_theme_paints_the_plot_dark_and_payloads_stay_text(
    embedded: EmbeddedHub, client: Any, view_page: ViewPage
) -> None:
    await view_page.page.add_style_tag(
        content="body { --jp-layout-color0: #111111; --jp-ui-font-color1: #eeeeee; background: #111111; }"
    )
    publish(embedded, "vb-dark/a", 5)
    embedded.call(embedded.hub.publish_now, "vb-dark/b", {"value": "<img src=x onerror=window.hacked=1>"})
    chart = notebook.LiveChart("vb-dark/+", window=100, transport="direct", client=client)
    table = notebook.LiveTable("vb-dark/+", transport="direct", client=client)
    selector = await view_page.show(chart)
    table_selector = await view_page.show(table)
    await view_page.wait_points(selector, 5)
    await view_page.wait_points(table_selector, 2)
    corner = await view_page.page.eval_on_selector(
        f"{selector} canvas", "(c) => Array.from(c.getContext('2d').getImageData(2, 2, 1, 1).data)"
    )
    assert corner[:3] == [17, 17, 17], corner
    cells = await view_page.page.eval_on_selector_all(
        f"{table_selector} td", "(cells) => cells.map(c => c.textContent)"
    )
    assert "<img src=x onerror=window.hacked=1>" in cells
    assert await view_page.page.evaluate("() => window.hacked === undefined")
    chart.close()
    table.close()


async def test_controls_in_the_browser_publish_through_the_kernel(
    embedded: EmbeddedHub, client: Any, view_page: ViewPage
) -> None:
    commands = client.subscribe("vb-cmd/boiler")
    slider = notebook.Slider("vb-cmd/boiler", 0, 100, value=20, field="setpoint", client=client)
    button = notebook.Button("vb-cmd/boiler", {"reset": True}, description="Reset", client=client)
    toggle = notebook.Toggle("vb-cmd/boiler", field="on", client=client)
    try:
        slider_selector = await view_page.show(slider)
        button_selector = await view_page.show(button)
        toggle_selector = await view_page.show(toggle)
        assert await view_page.page.get_attribute(slider_selector, "class") == "rtnb-control rtnb-control-slider"
        await view_page.page.fill(f"{slider_selector} input[type=range]", "80")
        await view_page.page.dispatch_event(f"{slider_selector} input[type=range]", "change")
        await view_page.page.click(f"{button_selector} button")
        await view_page.page.click(f"{toggle_selector} button")
        received = [commands.get(timeout=5).data for _ in range(3)]
        assert received == [{"setpoint": 80.0}, {"reset": True}, {"on": True}]
        assert await view_page.page.get_attribute(f"{toggle_selector} button", "aria-pressed") == "true"
    finally:
        commands.close()
        for control in (slider, button, toggle):
            control.close()


async def test_on_colab_direct_mode_goes_through_the_kernel_port_proxy(
    embedded: EmbeddedHub, client: Any, view_page: ViewPage
) -> None:
    """Colab pages reach a kernel-side port only via ``google.colab.kernel.proxyPort``; stood in for here."""
    proxy = TcpForwarder(embedded.port)
    await proxy.start()
    await view_page.page.evaluate(
        """(proxyPort) => { window.proxied = [];
        window.google = {colab: {kernel: {proxyPort: async (port, options) => {
          window.proxied.push(port); return `http://127.0.0.1:${proxyPort}/`; }}}}; }""",
        proxy.port,
    )
    publish(embedded, "vb-colab/a", 7)
    chart = notebook.LiveChart("vb-colab/+", window=100, transport="direct", client=client)
    try:
        selector = await view_page.show(chart)
        await view_page.wait_mode(selector, "direct")
        await view_page.wait_points(selector, 7)
        assert await view_page.page.evaluate("() => window.proxied") == [embedded.port]
        assert proxy.tasks  # the page's WebSocket went through the proxy
    finally:
        chart.close()
        await proxy.stop()


async def test_views_say_when_a_limit_applies(embedded: EmbeddedHub, client: Any, view_page: ViewPage) -> None:
    publish(embedded, "vb-limit/a", 3)
    publish(embedded, "vb-limit/b", 3)
    table = notebook.LiveTable("vb-limit/+", max_topics=1, transport="direct", client=client)
    chart = notebook.LiveChart("vb-limit/+", max_traces=1, transport="direct", client=client)
    try:
        table_selector = await view_page.show(table)
        chart_selector = await view_page.show(chart)
        note = "([s, text]) => document.querySelector(s + ' .rtnb-note').textContent.includes(text)"
        await view_page.wait_for(note, [table_selector, "1 more topic(s) not shown (max_topics=1)"])
        await view_page.wait_for(note, [chart_selector, "1 more topic(s) not drawn (max_traces=1)"])
    finally:
        table.close()
        chart.close()


async def test_a_window_larger_than_the_hubs_history_says_it_came_back_partly(
    embedded: EmbeddedHub, client: Any, view_page: ViewPage
) -> None:
    # the embedded hub keeps 1,000 messages per topic: offsets 1..500 of these 1,500 are gone
    publish(embedded, "vb-history/a", 1500)
    big = notebook.LiveChart("vb-history/+", window=5000, transport="direct", client=client)
    relayed = notebook.LiveChart("vb-history/+", window=5000, transport="relay", client=client)
    small = notebook.LiveChart("vb-history/+", window=200, transport="direct", client=client)
    try:
        selectors = [await view_page.show(view) for view in (big, relayed, small)]
        for selector in selectors:
            await view_page.wait_for("(s) => +document.querySelector(s).dataset.rtnbFrames > 0", selector)
        await view_page.wait_points(selectors[0], 1000)
        await view_page.wait_points(selectors[1], 1000)
        await view_page.wait_points(selectors[2], 200)
        note = "(s) => document.querySelector(s + ' .rtnb-note').textContent"
        expected = "the hub's history held only part of the window for vb-history/a (from offset 501)"
        for selector in selectors[:2]:  # direct and relay alike
            await view_page.wait_for(f"(s) => ({note})(s).includes({expected!r})", selector)
        assert await view_page.page.evaluate(note, selectors[2]) == ""  # its window is whole: nothing to say
    finally:
        for view in (big, relayed, small):
            view.close()
