"""``voila notebooks/02-iot-dashboard.ipynb``: the tutorial's dashboard as a standalone Voilà app, live.

Standalone Voilà runs no other server extension: the rtnb extension's
``/rtnb/`` is not there (Voilà answers 403 "File not allowlisted" or 404). The
tutorial starts an embedded hub in its kernel, and the views draw from it
directly (or relayed by the kernel, where the browser cannot reach it).
"""

from __future__ import annotations

import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from hosts_harness import NOTEBOOKS, free_port, keep_screenshot, new_page, running_process, wait_for_live_views

pytest.importorskip("voila", reason="Voila is not installed (pip install -e '.[test]')")

pytestmark = [pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


async def test_standalone_voila_shows_the_live_iot_dashboard(browser: Any, tmp_path: Path) -> None:
    name = "02-iot-dashboard.ipynb"
    shutil.copy(NOTEBOOKS / name, tmp_path / name)
    port = free_port()
    runtime = tmp_path / "runtime"
    environment = {
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "RTNB_HUB_INFO": "",
        "RTNB_URL": "",
    }
    command = [sys.executable, "-m", "voila", name, "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1"]
    with running_process(command, port, tmp_path / "voila.log", tmp_path, environment):
        url = f"http://127.0.0.1:{port}/"
        assert status_of(f"{url}rtnb/healthz") in (403, 404)  # no rtnb server extension in standalone Voilà
        page = await new_page(browser)
        try:
            await page.goto(url, timeout=90_000)
            states = await wait_for_live_views(page, 5, timeout=90)
            kinds = sorted(view["kind"] for view in states)
            assert kinds == ["rtnb-chart", "rtnb-gauge", "rtnb-status", "rtnb-table", "rtnb-value"], states
            assert all(view["mode"] == "direct" for view in states), states  # from the kernel's embedded hub
            text = await page.locator("body").inner_text()
            assert "Traceback" not in text and "Error" not in text, text[:2000]
        except BaseException:
            await keep_screenshot(page, "hosts_voila_standalone_failure")
            print((tmp_path / "voila.log").read_text()[-4000:])
            raise
        finally:
            await page.context.close()
