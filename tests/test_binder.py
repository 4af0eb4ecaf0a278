"""The Binder setup works: ``binder/requirements.txt`` installs into a fresh virtual
environment, ``binder/postBuild`` enables the server extension there, and the quickstart
runs in that environment's JupyterLab with live views.

This does what mybinder.org does (``pip install -r binder/requirements.txt`` from the
repository root, then ``binder/postBuild`` with the environment on ``PATH``), minus
Docker, then starts a Jupyter server from that environment to check that the hub
answers at ``/rtnb/healthz``, and ``jupyter lab`` from it, where Chromium runs the
quickstart (Run ▸ Run All Cells) and its chart's ``data-rtnb-points`` grows. pip runs
with ``--no-compile`` (no ``.pyc`` up front; Python writes them on first import): the
same packages, a shorter install. It downloads from PyPI (pip's cache makes repeats
fast), so it runs in CI (``RTNB_CI``) or when ``RTNB_BINDER_TEST=1``; elsewhere it is
skipped.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "jupyter"))
from rtnb_jupyter_fixture import start_jupyter_server  # the one Jupyter launcher

REPOSITORY = Path(__file__).resolve().parents[1]
BINDER = REPOSITORY / "binder"
#: seconds for the whole installation (one environment, all extras, JupyterLab)
INSTALL_TIMEOUT = 720
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")

pytestmark = [
    pytest.mark.timeout(INSTALL_TIMEOUT + 240),
    pytest.mark.skipif(
        not (os.environ.get("RTNB_CI") or os.environ.get("RTNB_BINDER_TEST")),
        reason="installs binder/requirements.txt from PyPI into a new environment (minutes); "
        "runs in CI, or set RTNB_BINDER_TEST=1",
    ),
]


def _run(command: list[str], env: dict[str, str], timeout: float) -> str:
    result = subprocess.run(
        command, cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)} failed ({result.returncode}):\n{output[-4000:]}"
    return output


@pytest.fixture(scope="module")
def binder_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A fresh virtual environment built the way Binder builds its image."""
    base = tmp_path_factory.mktemp("binder")
    prefix = base / "env"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("JUPYTER_", "RTNB_URL", "RTNB_TOKEN", "RTNB_HUB_INFO", "VIRTUAL_ENV", "PYTHON"))
    }
    env.update(
        PATH=os.pathsep.join([str(prefix / "bin"), env.get("PATH", "")]),
        JUPYTER_CONFIG_DIR=str(base / "config"),  # nothing from the user's ~/.jupyter
        JUPYTER_DATA_DIR=str(base / "data"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    _run([sys.executable, "-m", "venv", str(prefix)], env, 120)
    _run(
        [
            str(prefix / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-compile",
            "-r",
            str(BINDER / "requirements.txt"),
        ],
        env,
        INSTALL_TIMEOUT,
    )
    _run(["bash", str(BINDER / "postBuild")], env, 120)
    yield prefix, env


def test_requirements_install_and_post_build_enables_the_extension(
    binder_environment: tuple[Path, dict[str, str]],
) -> None:
    prefix, env = binder_environment
    # postBuild's own switch, in the environment's config (not only the one the wheel ships)
    enabled = json.loads((prefix / "etc" / "jupyter" / "jupyter_server_config.d" / "rtnb.notebook.json").read_text())
    assert enabled["ServerApp"]["jpserver_extensions"]["rtnb.notebook"] is True

    listing = ANSI_COLOUR.sub("", _run([str(prefix / "bin" / "jupyter"), "server", "extension", "list"], env, 120))
    assert re.search(r"rtnb\.notebook\s+enabled", listing), listing
    assert re.search(r"rtnb\.notebook\s+OK", listing), listing

    # what the tutorials import is there
    modules = "rtnb, rtnb.notebook, rtnb.record, rtnb.bridge, plotly, pandas, pyarrow, ipywidgets, redis, jupyterlab"
    _run([str(prefix / "bin" / "python"), "-c", f"import {modules}"], env, 120)


def test_the_hub_is_mounted_at_rtnb_in_a_server_of_that_environment(
    binder_environment: tuple[Path, dict[str, str]],
    tmp_path: Path,
) -> None:
    prefix, env = binder_environment
    # that environment's own jupyter, rtnb and config: nothing from this checkout
    with start_jupyter_server(
        tmp_path, command=(str(prefix / "bin" / "jupyter"), "server"), environment=env, from_repository=False
    ) as server:
        headers = {"Authorization": f"token {server.token}"}
        request = urllib.request.Request(f"{server.url}rtnb/healthz", headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
            assert json.loads(response.read())["status"] == "ok"


async def test_the_quickstart_runs_with_live_views_in_that_environments_jupyterlab(
    binder_environment: tuple[Path, dict[str, str]], tmp_path: Path, chromium_path: str
) -> None:
    """What a Binder visitor does: open the quickstart in JupyterLab, Run All, watch the chart move."""
    playwright_api = pytest.importorskip("playwright.async_api", reason="Playwright is not installed")
    sys.path.insert(0, str(REPOSITORY / "tests" / "hosts"))
    from hosts_harness import CHROMIUM_ARGUMENTS, KERNEL_IDLE, keep_screenshot, run_all, wait_for_live_views
    from views_harness import write_lab_settings

    prefix, env = binder_environment
    root = tmp_path / "root"
    root.mkdir()
    notebook = json.loads((REPOSITORY / "notebooks" / "01-quickstart.ipynb").read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    (root / "01-quickstart.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    write_lab_settings(tmp_path / "config")  # every cell in the DOM, no news prompt
    with start_jupyter_server(
        tmp_path, command=(str(prefix / "bin" / "jupyter"), "lab"), environment=env, from_repository=False
    ) as server:
        async with playwright_api.async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGUMENTS)
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            try:
                await page.goto(f"{server.url}lab/tree/01-quickstart.ipynb?token={server.token}", timeout=90_000)
                await page.wait_for_function(KERNEL_IDLE, timeout=90_000)
                await run_all(page)
                [chart] = await wait_for_live_views(page, 1, timeout=60)
                assert chart["kind"] == "rtnb-chart" and chart["mode"] in ("direct", "relay"), chart
            except BaseException:
                await keep_screenshot(page, "binder_quickstart_failure")
                raise
            finally:
                await browser.close()
