"""``jupyter nbconvert --to html`` of the tutorials shows each view's last frame, offline, in Chromium.

A page exported by nbconvert would load the widget renderer from a CDN and has
no hub: what it shows of a view is the static fallback the view leaves in its
output (an SVG of the chart, the value, the gauge, the table). Here every
request that leaves the file is aborted, as on a machine without a network.
Checked twice: the tutorials as shipped (what GitHub and nbviewer render), and
tutorial 2 executed afresh by ``nbconvert --execute``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hosts_harness import NOTEBOOKS, keep_screenshot, new_page

pytestmark = [pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]

#: tutorial -> views it displays (a Dashboard leaves one fallback for itself and one per view)
VIEWS = {"01-quickstart.ipynb": 1, "02-iot-dashboard.ipynb": 5, "03-recording-and-replay.ipynb": 1}

#: each visible static fallback: its kind, size, and what it holds
FALLBACKS = """(elements) => elements
    .filter((element) => element.getBoundingClientRect().height > 0)
    .map((element) => ({
        kind: [...element.classList].find((name) => name.startsWith('rtnb-static-')) || '',
        height: element.getBoundingClientRect().height,
        lines: element.querySelectorAll('polyline, path').length,
        text: element.innerText,
    }))"""


def export(notebook: Path, execute: bool) -> Path:
    command = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(notebook)]
    if execute:
        command.insert(-1, "--execute")
    subprocess.run(command, check=True, capture_output=True, timeout=150)
    return notebook.with_suffix(".html")


async def rendered_offline(browser: Any, page_path: Path, name: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The visible fallbacks of the exported page, with every network request refused; and those requests."""
    page = await new_page(browser)
    refused: list[str] = []

    async def offline(route: Any) -> None:
        if route.request.url.startswith("file:"):
            await route.continue_()
        else:
            refused.append(route.request.url)
            await route.abort("internetdisconnected")

    try:
        await page.route("**/*", offline)
        await page.goto(page_path.as_uri(), wait_until="load", timeout=60_000)
        fallbacks = list(await page.locator(".rtnb-static").evaluate_all(FALLBACKS))
        return fallbacks, refused
    except BaseException:
        await keep_screenshot(page, f"hosts_static_{name}_failure")
        raise
    finally:
        await page.context.close()


def check(fallbacks: list[dict[str, Any]], views: int) -> None:
    kinds = [fallback["kind"] for fallback in fallbacks]
    assert len([kind for kind in kinds if kind != "rtnb-static-dashboard"]) >= views, fallbacks
    for fallback in fallbacks:
        assert fallback["height"] > 20 and "no data yet" not in fallback["text"], fallback
        if fallback["kind"] == "rtnb-static-chart":
            assert fallback["lines"] >= 1, fallback  # the chart's last frame: its lines


@pytest.mark.parametrize("name", sorted(VIEWS))
async def test_shipped_tutorials_show_each_views_last_frame_offline(browser: Any, tmp_path: Path, name: str) -> None:
    notebook = tmp_path / name
    shutil.copy(NOTEBOOKS / name, notebook)
    fallbacks, _refused = await rendered_offline(browser, export(notebook, execute=False), name)
    check(fallbacks, VIEWS[name])


async def test_a_freshly_executed_tutorial_exports_every_views_last_frame(browser: Any, tmp_path: Path) -> None:
    name = "02-iot-dashboard.ipynb"
    notebook = tmp_path / name
    shutil.copy(NOTEBOOKS / name, notebook)
    fallbacks, refused = await rendered_offline(browser, export(notebook, execute=True), name)
    check(fallbacks, VIEWS[name])
    kinds = {fallback["kind"] for fallback in fallbacks}
    assert {"rtnb-static-chart", "rtnb-static-gauge", "rtnb-static-value", "rtnb-static-table"} <= kinds, kinds
    assert any("plant/boiler/temp" in fallback["text"] for fallback in fallbacks), fallbacks
    assert refused, "the exported page asked for nothing outside the file: was the network check in place?"
