"""What the host tests share: reading views in any host's page, Run All, processes on free ports.

Hosts render a view's root element (class ``rtnb-view``, attributes
``data-rtnb-mode`` and ``data-rtnb-points``) in different places: JupyterLab,
Notebook 7 and Voilà in the page's DOM, marimo inside a shadow root. Playwright
locators pierce open shadow roots, so :func:`view_states` reads views through a
locator, the same way in every host.

JupyterLab itself comes from ``tests/e2e/views_harness.py`` (the live views'
browser tests): :func:`start_lab` there runs a Jupyter server with the rtnb
extension, which also serves Notebook 7 (``/notebooks/``) and Voilà
(``/voila/render/``) when those packages are installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPOSITORY / "notebooks"
ARTIFACTS = REPOSITORY / "test-artifacts"
sys.path.insert(0, str(REPOSITORY / "tests" / "e2e"))

from views_harness import (  # noqa: E402
    CHROMIUM_ARGUMENTS,
    KERNEL_IDLE,
    Lab,
    Publisher,
    block_hub,
    require_chromium,
    run_all_cells,
    start_lab,
    wait_all_cells_ran,
    write_notebook,
)

__all__ = [
    "ARTIFACTS",
    "CHROMIUM_ARGUMENTS",
    "KERNEL_IDLE",
    "NOTEBOOK7_KERNEL_IDLE",
    "NOTEBOOKS",
    "REPOSITORY",
    "Lab",
    "Publisher",
    "block_hub",
    "free_port",
    "keep_screenshot",
    "new_page",
    "require_chromium",
    "run_all",
    "running_process",
    "start_lab",
    "stderr_outputs",
    "view_states",
    "wait_for_live_views",
    "write_notebook",
]

#: a view's public state; ``kind`` is its second class (rtnb-chart, rtnb-value...)
_VIEW_STATE = """(elements) => elements
    // a Dashboard (itself a .rtnb-view) is a frame: its views count one by one, views inside others do not
    .filter((view) => !view.classList.contains('rtnb-dashboard'))
    .filter((view) => !view.parentElement || !view.parentElement.closest('.rtnb-view:not(.rtnb-dashboard)'))
    .map((view) => ({
        kind: [...view.classList].find((name) => name.startsWith('rtnb-') && name !== 'rtnb-view') || '',
        mode: view.getAttribute('data-rtnb-mode'),
        points: Number(view.getAttribute('data-rtnb-points') || 'NaN'),
        text: view.innerText,
    }))"""

#: Notebook 7 has no status bar: its toolbar names the kernel, and the status text fades once it is idle
NOTEBOOK7_KERNEL_IDLE = """() => {
    const name = document.querySelector('.jp-KernelName');
    return name !== null && /Python/.test(name.innerText)
        && document.querySelector('.jp-NotebookKernelStatus.jp-NotebookKernelStatus-fade') !== null;
}"""
STDERR = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"


async def new_page(browser: Any, width: int = 1400, height: int = 1000) -> Any:
    """A page in a context of its own (its own cookies and routes)."""
    context = await browser.new_context(viewport={"width": width, "height": height})
    return await context.new_page()


async def view_states(page: Any) -> list[dict[str, Any]]:
    """Every top-level view on the page (shadow roots included), in document order."""
    return list(await page.locator(".rtnb-view").evaluate_all(_VIEW_STATE))


async def wait_for_live_views(
    page: Any, count: int, timeout: float = 60.0, grow: bool = True, mode: str | None = None
) -> list[dict[str, Any]]:
    """Wait for ``count`` views with data (a mode and points > 0), then until each is live.

    Live: every chart's ``data-rtnb-points`` grows, and every other view's
    points or text change (with ``grow``); with ``mode``, every view runs in it.
    A ``Status`` view holds no points and subscribes to nothing: its text (the
    others' rates, lag) must change, whatever its own mode.
    Returns the last states read. Raises AssertionError with the states on timeout.
    """
    deadline = time.monotonic() + timeout
    states: list[dict[str, Any]] = []

    def has_data(view: dict[str, Any]) -> bool:
        if view["kind"] == "rtnb-status":  # holds no points and receives nothing itself: it reports the others
            return view["mode"] in ("direct", "relay")
        return view["mode"] in ("direct", "relay") and view["points"] > 0 and (mode is None or view["mode"] == mode)

    while True:
        states = await view_states(page)
        if len(states) >= count and all(has_data(view) for view in states):
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {count} views with data{f' in {mode} mode' if mode else ''}: {states}")
        await asyncio.sleep(0.25)
    if not grow:
        return states
    first = states
    while True:
        await asyncio.sleep(0.25)
        states = await view_states(page)
        live = len(states) == len(first) and all(
            has_data(new) and (new["points"] > old["points"] if new["kind"] == "rtnb-chart" else new != old)
            for old, new in zip(first, states, strict=True)
        )
        if live:
            return states
        if time.monotonic() > deadline:
            raise AssertionError(f"not every view kept updating: before {first}, now {states}")


async def run_all(page: Any, timeout_ms: float = 120_000) -> None:
    """Run ▸ Run All Cells from the menu bar (JupyterLab and Notebook 7; the caller waited for an idle
    kernel), then wait until every cell ran, failing at once on a cell that raised."""
    await run_all_cells(page, kernel_idle=None)
    await wait_all_cells_ran(page, timeout_ms)


async def stderr_outputs(page: Any) -> list[str]:
    """The text of every stderr output on the page (red in JupyterLab)."""
    return list(await page.locator(STDERR).all_inner_texts())


async def keep_screenshot(page: Any, name: str) -> None:
    """A full-page screenshot in ``test-artifacts/``, for a failing test's report."""
    ARTIFACTS.mkdir(exist_ok=True)
    with contextlib.suppress(Exception):
        await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_process(
    command: Sequence[str],
    port: int,
    log_path: Path,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``command`` (a server), wait until it listens on ``port``, stop it on exit."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(command), cwd=cwd, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    log_text = log_path.read_text()
                    raise TimeoutError(f"{command[0]} did not listen within {timeout}s:\n{log_text}") from None
                time.sleep(0.1)  # polling a subprocess's port: no event to wait on
        yield process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
