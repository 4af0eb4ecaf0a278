"""A LiveChart's figure drawn by plotly.js in headless Chromium, updated as the widget does.

The widget draws the figure before the page lays it out (so at plotly's
default 700 px), then applies each frame with ``Plotly.update``, which makes
plotly.js guess the x axis type again from the new data. This test replays
that sequence with the figure a LiveChart built from real messages, in a
320 px wide cell, and checks what a reader sees: a date axis with clock
ticks, a plot as wide as its cell, and the legend below the axis's labels.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import rtnb.notebook as notebook
from rtnb.notebook.embedded import EmbeddedHub
from rtnb.testing import wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGUMENTS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CELL_WIDTH = 320

if os.environ.get("RTNB_CI"):
    import playwright.async_api as playwright_api  # CI installs the test extra: a missing one fails
else:
    playwright_api = pytest.importorskip(
        "playwright.async_api", reason="Playwright is not installed (pip install -e '.[test]')"
    )
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} to draw the chart in", allow_module_level=True)

pytestmark = pytest.mark.timeout(60)

# As the widget: draw while detached, attach into the cell, then apply a frame with Plotly.update.
DRAW_LIKE_THE_WIDGET = """async ([figure, cellWidth]) => {
  const box = element => {
    const r = element.getBoundingClientRect();
    return {left: r.left, top: r.top, right: r.right, bottom: r.bottom};
  };
  const graph = document.createElement('div');
  const emptyTraces = figure.data.map(trace => ({type: trace.type, name: trace.name, mode: trace.mode}));
  await Plotly.newPlot(graph, emptyTraces, figure.layout, figure.config);
  const drawnWidth = graph._fullLayout.width;
  const cell = document.createElement('div');
  cell.style.width = cellWidth + 'px';
  document.body.appendChild(cell);
  cell.appendChild(graph);
  const indexes = figure.data.map((_trace, index) => index);
  await Plotly.update(graph, {x: figure.data.map(t => t.x), y: figure.data.map(t => t.y)}, {}, indexes);
  return {
    drawnWidth,
    width: graph._fullLayout.width,
    axisType: graph._fullLayout.xaxis.type,
    ticks: Array.from(graph.querySelectorAll('.xtick text')).map(tick => tick.textContent),
    svgWidth: graph.querySelector('svg.main-svg').getBoundingClientRect().width,
    plotBox: box(graph.querySelector('.nsewdrag')),
    legendBox: box(graph.querySelector('.legend')),
    tickLabelsBottom: Math.max(
      ...Array.from(graph.querySelectorAll('.xtick text')).map(tick => tick.getBoundingClientRect().bottom)
    ),
  };
}"""


async def test_time_axis_shows_clock_times_and_the_chart_fits_its_cell(embedded: EmbeddedHub, client: Any) -> None:
    import plotly
    import plotly.io

    chart = notebook.LiveChart("browser/+/temp", window=50, client=client, max_fps=50)
    try:
        for index in range(30):  # readings spread over time, as a device sends them
            embedded.call(embedded.hub.publish_now, f"browser/{index % 2}/temp", {"value": float(index)})
        await wait_until(lambda: sum(len(chart.window(topic)) for topic in chart.topics) == 30)
        figure = json.loads(plotly.io.to_json(chart.figure))
    finally:
        chart.stop()
    figure["config"] = chart.figure._config
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGUMENTS)
        try:
            page = await browser.new_page(viewport={"width": 1000, "height": 700})
            await page.set_content("<html><body style='margin:0'></body></html>")
            await page.add_script_tag(path=str(plotly_js))
            drawn = await page.evaluate(DRAW_LIKE_THE_WIDGET, [figure, CELL_WIDTH])
        finally:
            await browser.close()
    assert drawn["axisType"] == "date", drawn
    assert drawn["ticks"] and all(":" in tick and not tick.endswith("T") for tick in drawn["ticks"]), drawn
    assert drawn["drawnWidth"] == 700  # plotly's default while the widget is not laid out yet
    assert drawn["width"] == CELL_WIDTH and drawn["svgWidth"] <= CELL_WIDTH, drawn
    # the legend lies below the time axis's labels and leaves the plot the cell's width (less the y axis)
    plot, legend = drawn["plotBox"], drawn["legendBox"]
    assert legend["top"] >= drawn["tickLabelsBottom"] >= plot["bottom"], drawn
    assert plot["right"] - plot["left"] >= CELL_WIDTH - 80, drawn
