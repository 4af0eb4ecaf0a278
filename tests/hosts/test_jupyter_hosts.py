"""Views in the Jupyter hosts, in Chromium: JupyterLab 4 (every tutorial by Run All), Notebook 7,
Voilà under the Jupyter server, and the relay path with the hub out of the browser's reach.

One Jupyter server for the module serves all three frontends (JupyterLab at
``/lab``, Notebook 7 at ``/notebooks``, Voilà at ``/voila/render``) with the rtnb
extension. Each test copies its notebook into the server's root, runs it the way
a reader would, and reads the views' public DOM contract (``.rtnb-view``,
``data-rtnb-mode``, ``data-rtnb-points``). Kernels are shut down after each test.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hosts_harness import (
    KERNEL_IDLE,
    NOTEBOOK7_KERNEL_IDLE,
    NOTEBOOKS,
    Lab,
    Publisher,
    block_hub,
    keep_screenshot,
    new_page,
    run_all,
    start_lab,
    stderr_outputs,
    view_states,
    wait_for_live_views,
    write_notebook,
)

pytest.importorskip("jupyterlab", reason="JupyterLab is not installed (pip install -e '.[test]')")

pytestmark = [pytest.mark.timeout(240), pytest.mark.asyncio(loop_scope="module")]

#: tutorial -> (views it leaves on screen, whether they keep receiving data at the end)
TUTORIALS = {
    "01-quickstart.ipynb": (1, True),
    "02-iot-dashboard.ipynb": (5, True),  # chart, gauge, value, table, status (in the Dashboard's grid)
    "03-recording-and-replay.ipynb": (1, False),  # the replay has ended: the chart holds all of it
    "04-transports.ipynb": (0, False),
    "05-scaling-with-redis.ipynb": (0, False),
    "06-security.ipynb": (0, False),
}
#: tutorial -> (service, port) it cannot run without
SERVICES = {"05-scaling-with-redis.ipynb": ("Redis", 6379)}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, chromium: str) -> Iterator[Lab]:
    with start_lab(tmp_path_factory.mktemp("hosts-lab")) as started:
        yield started


def lab_url(lab: Lab, name: str) -> str:
    """``name`` in JupyterLab, in a fresh workspace (no tab of an earlier test is restored)."""
    return f"{lab.server.url}lab/workspaces/{uuid.uuid4().hex[:8]}/tree/{name}?reset&token={lab.token}"


def copy_tutorial(lab: Lab, name: str) -> str:
    """The tutorial in the server's root, without its saved outputs (so the prompts show what ran now)."""
    notebook = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    (lab.root / name).write_text(json.dumps(notebook), encoding="utf-8")
    return name


def require(name: str) -> None:
    service = SERVICES.get(name)
    if service is None:
        return
    try:
        socket.create_connection(("127.0.0.1", service[1]), timeout=1).close()
    except OSError:
        import os

        reason = f"{name} needs {service[0]} on 127.0.0.1:{service[1]}"
        if os.environ.get("RTNB_CI"):
            pytest.fail(f"{reason} (CI must provide it)")
        pytest.skip(reason)


@pytest.mark.parametrize("name", sorted(TUTORIALS))
async def test_run_all_leaves_every_view_live_and_no_stderr_in_jupyterlab(lab: Lab, browser: Any, name: str) -> None:
    require(name)
    count, receiving = TUTORIALS[name]
    copy_tutorial(lab, name)
    page = await new_page(browser)
    try:
        await page.goto(lab_url(lab, name), timeout=60_000)
        await page.wait_for_function(KERNEL_IDLE, timeout=60_000)
        await run_all(page)
        assert await page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']").count() == 0
        if count:
            states = await wait_for_live_views(page, count, timeout=45, grow=receiving)
            assert len(states) == count, states
        else:
            assert await view_states(page) == []
        assert await stderr_outputs(page) == []
        assert "lost the connection" not in (await page.locator("body").inner_text()).lower()
    except BaseException:
        await keep_screenshot(page, f"hosts_run_all_{name}_failure")
        raise
    finally:
        await page.context.close()
        lab.shutdown_kernels()


async def test_notebook_7_shows_the_live_dashboard(lab: Lab, browser: Any) -> None:
    name = copy_tutorial(lab, "02-iot-dashboard.ipynb")
    page = await new_page(browser)
    try:
        await page.goto(f"{lab.server.url}notebooks/{name}?token={lab.token}", timeout=60_000)
        await page.wait_for_function(NOTEBOOK7_KERNEL_IDLE, timeout=60_000)
        await run_all(page)
        await wait_for_live_views(page, 5, timeout=45)
        assert await stderr_outputs(page) == []
    except BaseException:
        await keep_screenshot(page, "hosts_notebook7_failure")
        raise
    finally:
        await page.context.close()
        lab.shutdown_kernels()


async def test_voila_under_the_jupyter_server_draws_from_the_extension_hub(lab: Lab, browser: Any) -> None:
    """Voilà's render route runs in the Jupyter server: views subscribe to its ``/rtnb/`` hub directly."""
    pytest.importorskip("voila", reason="Voila is not installed (pip install -e '.[test]')")
    name = write_notebook(
        lab,
        "hosts-voila.ipynb",
        ["import rtnb", 'rtnb.LiveChart("hosts/voila/+", window=5000, title="From the extension hub")'],
    )
    publisher = Publisher(lab, ["hosts/voila/a", "hosts/voila/b"], rate=20).start()
    page = await new_page(browser)
    try:
        await page.goto(f"{lab.server.url}voila/render/{name}?token={lab.token}", timeout=60_000)
        [chart] = await wait_for_live_views(page, 1, timeout=60, mode="direct")
        assert chart["kind"] == "rtnb-chart"
        assert publisher.errors == []
    except BaseException:
        await keep_screenshot(page, "hosts_voila_server_failure")
        raise
    finally:
        publisher.stop()
        await page.context.close()
        lab.shutdown_kernels()


async def test_views_relay_through_the_kernel_when_the_browser_cannot_reach_the_hub(lab: Lab, browser: Any) -> None:
    """What VS Code (remote) and Colab see: no server extension in reach, no route from the browser to the
    kernel's hub. The browser's every request to a hub is aborted; the dashboard still runs, relayed."""
    name = copy_tutorial(lab, "02-iot-dashboard.ipynb")
    page = await new_page(browser)
    try:
        refused = await block_hub(page, lab)
        await page.goto(lab_url(lab, name), timeout=60_000)
        await page.wait_for_function(KERNEL_IDLE, timeout=60_000)
        await run_all(page)
        await wait_for_live_views(page, 5, timeout=60, mode="relay")
        assert refused, "the views never tried to reach the hub"
        assert await stderr_outputs(page) == []
    except BaseException:
        await keep_screenshot(page, "hosts_relay_failure")
        raise
    finally:
        await page.context.close()
        lab.shutdown_kernels()
