"""A Dashboard drawn by the views library in headless Chromium: its children render, update and fit.

The page stands in for the notebook frontend (see tests/notebook/views_page.py):
each child's model is on the page, as a host's widget manager holds it, and the
Dashboard draws every rtnb child with the library's own render, fetching the
child's model by the widget reference it holds. A bare ipywidget cannot be drawn
by a host without ``create_view`` (this page): its cell says so. The real
JupyterLab (create_view included) is in tests/e2e.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import ipywidgets
import pytest
from views_page import CHROMIUM, CHROMIUM_ARGUMENTS, PageServer, ViewPage, playwright_or_skip

import rtnb.notebook as notebook
from rtnb.notebook.embedded import EmbeddedHub

playwright_api = playwright_or_skip()

pytestmark = pytest.mark.timeout(90)

#: the layout of the grid's cells and the root: boxes, and how far anything sticks out
GEOMETRY = """(s) => {
  const root = document.querySelector(s);
  const box = root.getBoundingClientRect();
  const cells = [...root.querySelectorAll('.rtnb-dashboard-cell')].map((c) => c.getBoundingClientRect());
  const outside = [...root.querySelectorAll('*')].filter((e) => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && (r.right > box.right + 0.5 || r.left < box.left - 0.5);
  }).length;
  return {width: box.width, scroll: root.scrollWidth, lefts: cells.map((c) => Math.round(c.left)),
          widths: cells.map((c) => c.width), outside};
}"""


@pytest.fixture
async def page_server() -> AsyncIterator[PageServer]:
    """Started inside the test's event loop, which serves it."""
    server = PageServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def view_page(page_server: PageServer) -> AsyncIterator[ViewPage]:
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGUMENTS)
        page = await browser.new_page(viewport={"width": 1500, "height": 1200})
        yield await ViewPage(page).open(page_server.url)
        await browser.close()


def publish(embedded: EmbeddedHub, topic: str, count: int, start: int = 0) -> None:
    for index in range(start, start + count):
        embedded.call(embedded.hub.publish_now, topic, {"value": float(index)})


async def points_of(view_page: ViewPage, selector: str) -> list[int]:
    """``data-rtnb-points`` of each child view in the grid, in grid order."""
    return await view_page.page.eval_on_selector_all(  # type: ignore[no-any-return]
        f"{selector} .rtnb-dashboard-cell > .rtnb-view", "(views) => views.map((v) => +v.dataset.rtnbPoints)"
    )


async def test_a_dashboard_draws_its_children_which_update_and_fit_a_narrow_cell(
    embedded: EmbeddedHub, client: Any, view_page: ViewPage
) -> None:
    publish(embedded, "dash-b/a", 5)
    chart = notebook.LiveChart("dash-b/+", window=500, transport="direct", client=client)
    value = notebook.LiveValue("dash-b/a", sparkline=True, transport="relay", client=client, max_fps=50)
    table = notebook.LiveTable("dash-b/#", rows=50, client=client)
    status = notebook.Status([chart, value, table])
    note = ipywidgets.HTML("<b>not an rtnb view</b>")
    board = notebook.Dashboard([chart, value, table, status, note], columns=2, title="Plant <1>")
    try:
        for child in (chart, value, table, status, note):
            await view_page.show(child, draw=False)
        narrow = await view_page.show(board, width=480)
        for selector in (narrow,):
            await view_page.wait_for("(s) => document.querySelector(s)?.dataset.rtnbChildren === '5'", selector)
            assert await view_page.page.inner_text(f"{selector} > .rtnb-dashboard-title") == "Plant <1>"
            kinds = await view_page.page.eval_on_selector_all(
                f"{selector} .rtnb-dashboard-cell", "(cells) => cells.map((c) => c.dataset.rtnbKind || null)"
            )
            assert kinds == ["chart", "value", "table", "status", None]
            assert "cannot draw an ipywidget" in await view_page.page.inner_text(
                f"{selector} .rtnb-dashboard-cell[data-rtnb-child='4']"
            )
            await view_page.wait_for(
                "(s) => [...document.querySelectorAll(s + ' .rtnb-dashboard-cell > .rtnb-view')]"
                ".slice(0, 3).every((v) => +v.dataset.rtnbPoints >= 5)",
                selector,
            )
        before = await points_of(view_page, narrow)
        publish(embedded, "dash-b/a", 10, start=5)
        # the chart and the table end at all 15 messages (each takes them frame by frame);
        # the relayed value's sparkline grows
        await view_page.wait_for(
            "([s, before]) => {"
            " const v = [...document.querySelectorAll(s + ' .rtnb-dashboard-cell > .rtnb-view')]"
            ".slice(0, 3).map((v) => +v.dataset.rtnbPoints);"
            " return v[0] === 15 && v[1] > before[1] && v[2] === 15; }",
            [narrow, before],
        )
        after = await points_of(view_page, narrow)
        # the root: points of its views (Status left out), relay since the value is relayed
        await view_page.wait_for(
            "([s, n]) => +document.querySelector(s).dataset.rtnbPoints === n", [narrow, sum(after[:3])]
        )
        assert await view_page.attribute(narrow, "data-rtnb-mode") == "relay"
        assert await view_page.attribute(f"{narrow} .rtnb-chart", "data-rtnb-mode") == "direct"
        assert "relay" in await view_page.page.inner_text(f"{narrow} .rtnb-status-table")
        # 480 px: one column, nothing sticks out; 1,400 px: two columns
        small = await view_page.page.evaluate(GEOMETRY, narrow)
        assert small["width"] <= 480 and small["scroll"] <= 480 and small["outside"] == 0, small
        assert len(set(small["lefts"])) == 1, small
        # the same grid in a wider cell (the cell is resized: the grid follows without a new render)
        await view_page.page.eval_on_selector(narrow, "(root) => (root.parentElement.style.width = '1400px')")
        large = await view_page.page.evaluate(GEOMETRY, narrow)
        assert large["scroll"] <= 1400 and large["outside"] == 0 and len(set(large["lefts"])) == 2, large
        assert all(width >= 320 for width in large["widths"]), large
    finally:
        board.close()
    assert chart.state is notebook.ViewState.STOPPED and value.state is notebook.ViewState.STOPPED
