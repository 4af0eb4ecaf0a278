"""``examples/marimo_dashboard.py`` under ``marimo run``: views render and stay live in a marimo app.

marimo has no Jupyter widget manager: it runs anywidgets itself, inside a
shadow root (Playwright's locators pierce it). The app starts an embedded hub
in marimo's kernel; the views draw from it directly.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from hosts_harness import REPOSITORY, free_port, keep_screenshot, new_page, running_process, wait_for_live_views

pytest.importorskip("marimo", reason="marimo is not installed (pip install -e '.[test]')")

pytestmark = [pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]

APP = REPOSITORY / "examples" / "marimo_dashboard.py"


async def test_marimo_app_shows_live_views(browser: Any, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "marimo.log"
    command = [
        sys.executable,
        "-m",
        "marimo",
        "run",
        str(APP),
        "--headless",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    environment = {"MARIMO_SKIP_UPDATE_CHECK": "1", "RTNB_HUB_INFO": "", "RTNB_URL": ""}
    with running_process(command, port, log, tmp_path, environment):
        page = await new_page(browser)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            await page.goto(f"http://127.0.0.1:{port}/", timeout=90_000)
            states = await wait_for_live_views(page, 5, timeout=90)
            kinds = sorted(view["kind"] for view in states)
            assert kinds == ["rtnb-chart", "rtnb-gauge", "rtnb-table", "rtnb-value", "rtnb-value"], states
            # the Dashboard's grid drew its two views from their models (marimo's widget manager)
            boards = page.locator(".rtnb-view.rtnb-dashboard")
            assert await boards.count() == 1
            assert await boards.first.get_attribute("data-rtnb-children") == "2"
            assert await page.locator(".rtnb-dashboard-cell > .rtnb-view").count() == 2
            assert all(view["mode"] == "direct" for view in states), states
            assert errors == []
        except BaseException:
            await keep_screenshot(page, "hosts_marimo_failure")
            raise
        finally:
            await page.context.close()
    output = log.read_text()
    assert "Traceback" not in output and "Error" not in output, output[-4000:]
