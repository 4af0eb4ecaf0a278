"""What the live-view browser tests and ``benchmarks/views.py`` share.

* :func:`start_lab`: JupyterLab 4 with the rtnb server extension, launched by
  ``tests/jupyter/rtnb_jupyter_fixture.start_jupyter_server`` (the one
  launcher of the test suite; JupyterLab is a server extension of it), with
  lab settings that keep every cell in the DOM and, on demand, the dark theme.
* :func:`write_notebook`: a notebook of code cells, built with nbformat.
* :class:`Publisher`: a steady stream into the server extension's hub, from
  outside the kernel (ndjson ``POST /publish/<topic>`` from this process), so
  a kernel that blocks cannot slow the source down.
* :class:`IopubCounter`: every message the kernel publishes on IOPub, read
  by a ZeroMQ SUB socket of our own on the kernel's IOPub port (what a
  frontend sees, counted with its size in bytes).
* :func:`block_hub`: Playwright routes that abort every request and WebSocket
  from the page to the hub, so views can only run in relay mode.
* Pixels: :func:`screenshot_pixels` is an element's screenshot as RGB bytes,
  for "did it change" and "is it white" questions.

The DOM contract read here (issue 16): each view's root element has the class
``rtnb-view`` and the attributes ``data-rtnb-mode`` (``direct``/``relay``) and
``data-rtnb-points`` (points in its window now, updated every frame).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import json
import math
import re
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

REPOSITORY = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPOSITORY / "tests" / "jupyter"))
sys.path.insert(0, str(REPOSITORY / "tests"))  # chromium_support, when imported from benchmarks/

from chromium_support import CHROMIUM_ARGUMENTS as CHROMIUM_ARGUMENTS  # noqa: E402  (re-exported)
from rtnb_jupyter_fixture import JupyterServer, start_jupyter_server  # noqa: E402

DARK_THEME = "JupyterLab Dark"
LIGHT_THEME = "JupyterLab Light"


def require_chromium(config: Any) -> str:
    """Chromium's path through ``tests/conftest.py``'s rule (skip, or fail under RTNB_CI).

    For module-scoped fixtures, which cannot use its function-scoped ``chromium_path``.
    """
    rules = str(REPOSITORY / "tests" / "conftest.py")
    for plugin in config.pluginmanager.get_plugins():
        if getattr(plugin, "__file__", None) == rules:
            return str(plugin.require_chromium())
    raise RuntimeError(f"{rules} is not loaded as a conftest")


# -- JupyterLab ----------------------------------------------------------------------------


@dataclass
class Lab:
    """A running JupyterLab: its server, root directory and settings directory."""

    server: JupyterServer
    root: Path
    config: Path
    pages_opened: int = 0

    @property
    def token(self) -> str:
        return self.server.token

    def notebook_url(self, name: str) -> str:
        """``name`` in a workspace of its own, so the page holds that one notebook.

        JupyterLab restores a workspace's open tabs on load: a shared one would
        bring every notebook opened before (their views included) into the DOM.
        """
        self.pages_opened += 1
        workspace = f"page{self.pages_opened}"
        return f"{self.server.url}lab/workspaces/{workspace}/tree/{urllib.parse.quote(name)}?token={self.token}"

    def api(self, path: str, method: str = "GET", body: Any = None) -> Any:
        """Jupyter's REST API with the token (``path`` such as ``api/sessions``)."""
        request = urllib.request.Request(
            f"{self.server.url}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def kernel_id(self, notebook: str) -> str | None:
        """The id of the kernel of ``notebook``'s session, if it has one."""
        for session in self.api("api/sessions"):
            if session.get("path") == notebook and session.get("kernel"):
                return str(session["kernel"]["id"])
        return None

    def connection_file(self, kernel_id: str) -> Path:
        return self.server.runtime_dir / f"kernel-{kernel_id}.json"

    def shutdown_kernels(self) -> None:
        """Stop every session's kernel (they cost CPU on a shared 2-core machine)."""
        for session in self.api("api/sessions"):
            with contextlib.suppress(OSError):
                self.api(f"api/sessions/{session['id']}", method="DELETE")

    def set_theme(self, theme: str) -> None:
        """The theme pages opened from now on start with (JupyterLab reads the file on load)."""
        write_lab_settings(self.config, theme=theme)


def write_lab_settings(config_dir: Path, theme: str = LIGHT_THEME) -> None:
    """Keep every cell in the DOM (no windowing), no news prompt, ``theme``."""
    settings = config_dir / "lab" / "user-settings" / "@jupyterlab"
    files = {
        "notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
        "apputils-extension/themes.jupyterlab-settings": {"theme": theme},
        # a reload must find the outputs on disk: save often, and at once on demand
        "docmanager-extension/plugin.jupyterlab-settings": {"autosaveInterval": 5},
    }
    for relative, content in files.items():
        path = settings / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))


@contextlib.contextmanager
def start_lab(base: Path) -> Iterator[Lab]:
    """JupyterLab (``jupyter server`` with the lab and rtnb extensions) in ``base``, stopped on exit."""
    config = base / "config"
    write_lab_settings(config)
    with start_jupyter_server(base) as server:
        lab = Lab(server, base / "root", config)
        try:
            yield lab
        finally:
            with contextlib.suppress(OSError):
                lab.shutdown_kernels()


def write_notebook(lab: Lab, name: str, cells: Sequence[str]) -> str:
    """``name`` in the lab's root: one code cell per source, no outputs; returns ``name``."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(notebook, str(lab.root / name))
    return name


# -- the source: a steady stream into the hub, from outside the kernel ---------------------


@dataclass
class Publisher:
    """Publishes ``rate`` messages/s (``{"value": v, "seq": n}``) round-robin on ``topics``.

    Every ``tick`` seconds what is due goes as one ndjson ``POST /publish/<topic>``
    per topic (the hub's cheapest way in: one request, many messages) over one
    kept-alive HTTP connection with Jupyter's token, on a thread of its own (the
    test's event loop stays free for Playwright). Small ticks make a smooth
    stream, not bursts a chart could only redraw at the burst rate; when the
    hub is slow, batches grow instead. ``published`` counts what the hub accepted.
    """

    lab: Lab
    topics: Sequence[str]
    rate: float
    tick: float = 0.01
    published: int = 0
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    #: lines per request (the hub takes at most 10,000)
    MAX_LINES = 5_000

    def start(self) -> Publisher:
        self._thread = threading.Thread(target=self._run, name="rtnb-e2e-publisher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> int:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        return self.published

    def set_rate(self, rate: float) -> None:
        self.rate = rate

    def _post(self, connection: http.client.HTTPConnection, path: str, lines: list[bytes]) -> None:
        for first in range(0, len(lines), self.MAX_LINES):
            chunk = lines[first : first + self.MAX_LINES]
            headers = {"Authorization": f"token {self.lab.token}", "Content-Type": "application/x-ndjson"}
            connection.request("POST", path, body=b"\n".join(chunk), headers=headers)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"publish answered {response.status}: {body[:200]!r}")
            self.published += len(chunk)

    def _run(self) -> None:
        hub = urllib.parse.urlsplit(self.lab.server.hub_url)
        connection = http.client.HTTPConnection(hub.hostname or "127.0.0.1", hub.port, timeout=30)
        rate, since, sent_since, number = self.rate, time.monotonic(), 0, 0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if self.rate != rate:  # a new rate counts from now
                    rate, since, sent_since = self.rate, now, 0
                due = int(rate * (now - since)) - sent_since
                if due > 0:
                    lines: dict[str, list[bytes]] = {topic: [] for topic in self.topics}
                    for count in range(number, number + due):
                        value = 50 + 40 * math.sin(count / 50.0) + (count % 7)
                        lines[self.topics[count % len(self.topics)]].append(
                            orjson.dumps({"value": value, "seq": count})
                        )
                    for topic, topic_lines in lines.items():
                        if topic_lines:
                            self._post(connection, f"{hub.path}/publish/{topic}", topic_lines)
                    number += due
                    sent_since += due
                self._stop.wait(self.tick)
        except Exception as error:  # the tests read .errors and .published
            self.errors.append(repr(error))
        finally:
            connection.close()


# -- the kernel's IOPub channel ------------------------------------------------------------


@dataclass
class IopubMessage:
    time: float  # time.monotonic() when received
    msg_type: str
    size: int  # bytes of every frame of the message


class IopubCounter:
    """Every message on a kernel's IOPub channel, from a SUB socket of our own.

    A frontend receives exactly these (the server forwards IOPub to the
    browser's kernel WebSocket), so "IOPub messages per second" here is what
    the issue's budget counts.
    """

    def __init__(self, connection_file: Path) -> None:
        import zmq

        info = json.loads(connection_file.read_text())
        self.messages: list[IopubMessage] = []
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.SUBSCRIBE, b"")
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.connect(f"{info['transport']}://{info['ip']}:{info['iopub_port']}")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtnb-e2e-iopub", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import zmq

        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(100):
                continue
            frames = self._socket.recv_multipart()
            received = time.monotonic()
            msg_type = "?"
            with contextlib.suppress(ValueError, IndexError, KeyError):
                delimiter = frames.index(b"<IDS|MSG>")
                msg_type = json.loads(frames[delimiter + 2])["msg_type"]
            self.messages.append(IopubMessage(received, msg_type, sum(len(frame) for frame in frames)))

    def between(self, start: float, end: float) -> list[IopubMessage]:
        return [message for message in list(self.messages) if start <= message.time < end]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._socket.close(0)
        self._context.term()


def describe(messages: Sequence[IopubMessage]) -> str:
    """``comm_msg: 12 (3,456 B), status: 2 (...)`` for assertion messages."""
    kinds: dict[str, list[int]] = {}
    for message in messages:
        kinds.setdefault(message.msg_type, []).append(message.size)
    return ", ".join(f"{kind}: {len(sizes)} ({sum(sizes):,} B)" for kind, sizes in sorted(kinds.items())) or "none"


# -- the page --------------------------------------------------------------------------------

#: every view's public attributes, its box and its output area's box
VIEWS = """() => [...document.querySelectorAll('.rtnb-view')]
    // a Dashboard (itself a .rtnb-view) is a frame: its views count one by one, views inside others do not
    .filter((view) => !view.classList.contains('rtnb-dashboard'))
    .filter((view) => !view.parentElement.closest('.rtnb-view:not(.rtnb-dashboard)'))
    .map((view) => {
        const box = view.getBoundingClientRect();
        const output = view.closest('.jp-OutputArea-output') || view.closest('.jp-Cell');
        const outer = output ? output.getBoundingClientRect() : null;
        return {
            mode: view.getAttribute('data-rtnb-mode'),
            points: Number(view.getAttribute('data-rtnb-points') || 'NaN'),
            text: view.innerText,
            left: box.left, right: box.right, width: box.width, height: box.height,
            outputLeft: outer ? outer.left : null, outputRight: outer ? outer.right : null,
            scrollWidth: view.scrollWidth, clientWidth: view.clientWidth,
        };
    })"""

#: every code cell has run: each prompt shows a number, none is queued or running ([*])
ALL_CELLS_RAN = """() => {
    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map((p) => p.innerText);
    return prompts.length > 0 && prompts.every((text) => /\\[\\d+\\]/.test(text));
}"""
KERNEL_IDLE = """() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]
    .some((item) => /\\| Idle/.test(item.innerText))"""
FIRST_CELL_STARTED = """() => {
    const prompt = document.querySelector('.jp-CodeCell .jp-InputArea-prompt');
    return prompt !== null && /\\[(\\*|\\d+)\\]/.test(prompt.innerText);
}"""
NOTEBOOK_SAVED = """() => {
    const tab = [...document.querySelectorAll('.lm-DockPanel-tabBar .lm-TabBar-tab')]
        .find((item) => item.classList.contains('lm-mod-current'));
    return tab !== undefined && !tab.classList.contains('jp-mod-dirty');
}"""
ERRORS = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"


async def open_notebook(page: Any, lab: Lab, name: str, timeout_ms: float = 60_000) -> None:
    await page.goto(lab.notebook_url(name), timeout=timeout_ms)
    await page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=timeout_ms)


#: each code cell's prompt, and the text of its error outputs (a traceback stops Run All)
CELL_REPORT = """() => [...document.querySelectorAll('.jp-CodeCell')].map((cell) => {
    const prompt = cell.querySelector('.jp-InputArea-prompt');
    const errors = [...cell.querySelectorAll(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")].map((e) => e.innerText);
    const source = cell.querySelector('.jp-InputArea-editor');
    return {prompt: prompt ? prompt.innerText : '', errors,
            source: source ? source.innerText.split('\\n').slice(0, 2).join(' / ') : ''};
})"""


async def run_all_cells(page: Any, timeout_ms: float = 60_000, kernel_idle: str | None = KERNEL_IDLE) -> None:
    """Run ▸ Run All Cells through the menu bar (JupyterLab and Notebook 7), once the kernel is idle.

    A click in the instant between "kernel idle" and the session being wired
    to the notebook runs nothing (every prompt stays ``[ ]``); then the
    command is given again, which is safe because no cell has run.
    ``kernel_idle``: the host's idle check, or None when the caller waited already.
    """
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    if kernel_idle is not None:
        await page.wait_for_function(kernel_idle, timeout=timeout_ms)
    for attempt in range(4):
        await page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        await page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        try:
            await page.wait_for_function(FIRST_CELL_STARTED, timeout=10_000)
            return
        except PlaywrightTimeout:
            await page.keyboard.press("Escape")
            if attempt == 3:
                raise


async def wait_all_cells_ran(page: Any, timeout_ms: float = 120_000) -> None:
    """Wait until every code cell has run; fail at once, naming the cell, when one raised.

    A cell that raises stops Run All: the cells after it keep an empty prompt
    and would only time out. The failure says which cell stopped, with its
    error output, or which cells were still queued or running at the timeout.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        cells = await page.evaluate(CELL_REPORT)
        prompts = [cell["prompt"] for cell in cells]
        if cells and all(re.search(r"\[\d+\]", prompt) for prompt in prompts):
            return
        failed = [cell for cell in cells if cell["errors"] and "Traceback" in "".join(cell["errors"])]
        running = any("*" in prompt for prompt in prompts)
        if failed and not running:
            raise AssertionError(f"Run All stopped at a cell that raised: {failed[0]}")
        if time.monotonic() > deadline:
            pending = [cell for cell in cells if not re.search(r"\[\d+\]", cell["prompt"])]
            raise AssertionError(
                f"not every cell ran within {timeout_ms / 1000:.0f} s; still queued or running: {pending[:3]}"
            )
        await asyncio.sleep(0.5)


async def save_notebook(page: Any, timeout_ms: float = 30_000) -> None:
    """The notebook toolbar's Save button, then wait until its tab is no longer dirty."""
    await page.locator(".jp-NotebookPanel-toolbar [data-command='docmanager:save']").first.click()
    await page.wait_for_function(NOTEBOOK_SAVED, timeout=timeout_ms)


async def hide_left_sidebar(page: Any) -> None:
    """Close the file browser (open in a new workspace), as a user on a narrow screen would."""
    current = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
    if await current.count():
        await current.first.click()
        await page.wait_for_function(
            "() => document.querySelector('.jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current') === null"
        )


async def views(page: Any) -> list[dict[str, Any]]:
    return list(await page.evaluate(VIEWS))


async def wait_for_views(page: Any, count: int, condition: str, timeout_ms: float) -> list[dict[str, Any]]:
    """Wait until ``count`` views exist and each satisfies the JS expression ``condition`` on ``v``.

    ``v`` has the fields of :data:`VIEWS` (``mode``, ``points``, ``text``, ...).
    Raises AssertionError listing the views as they are when time runs out.
    """
    try:
        await page.wait_for_function(
            f"() => {{ const all = ({VIEWS})(); return all.length >= {count} && all.every((v) => {condition}); }}",
            timeout=timeout_ms,
        )
    except Exception as error:
        if type(error).__name__ != "TimeoutError":
            raise
        seen = [{key: view[key] for key in ("mode", "points", "text")} for view in await views(page)]
        raise AssertionError(
            f"not {count} views with {condition} after {timeout_ms / 1000:.0f}s; {len(seen)} views: {seen}"
        ) from None
    return await views(page)


async def wait_for_every_view_to_change(
    page: Any, before: list[dict[str, Any]], label: str, mode: str | None = None, timeout_ms: float = 20_000
) -> None:
    """Wait until each view of ``before`` shows other points or other text (and runs in ``mode``)."""
    signatures = [[view["points"], view["text"]] for view in before]
    try:
        await page.wait_for_function(
            f"""([old, mode]) => {{
                const now = ({VIEWS})();
                return now.length === old.length && now.every((v, i) =>
                    (mode === null || v.mode === mode) && (v.points !== old[i][0] || v.text !== old[i][1]));
            }}""",
            arg=[signatures, mode],
            timeout=timeout_ms,
        )
    except Exception as error:
        if type(error).__name__ != "TimeoutError":
            raise
        now = await views(page)
        stuck = [
            new
            for old, new in zip(before, now, strict=False)
            if [new["points"], new["text"]] == [old["points"], old["text"]]
        ]
        seconds = timeout_ms / 1000
        raise AssertionError(f"{label}: not every view updated in {seconds:.0f}s; stuck: {stuck}; all: {now}") from None


@dataclass
class HubBlock:
    """The page's access to the hub, cut by :func:`block_hub` until :meth:`lift` is called."""

    blocked: bool = True
    refused: list[str] = field(default_factory=list)

    def lift(self) -> None:
        """Let new requests and WebSockets through again (those refused stay refused)."""
        self.blocked = False


async def block_hub(page: Any, lab: Lab) -> HubBlock:
    """Abort every request and WebSocket from ``page`` to the hub, until ``.lift()``.

    The hub is the server extension's ``{base_url}rtnb/`` on Jupyter's own
    origin (and any embedded hub a kernel would start, on another port of
    127.0.0.1: every ``/rtnb/``-less URL there that is not Jupyter's is refused
    too). A refused WebSocket is closed (1011) before it opens, as the page
    sees a blocked port; a let-through one is connected to the real hub.
    """
    jupyter = urllib.parse.urlsplit(lab.server.url)
    block = HubBlock()

    def is_hub(url: str) -> bool:
        parts = urllib.parse.urlsplit(url)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            return False
        return "/rtnb/" in parts.path or parts.port != jupyter.port

    async def request(route: Any) -> None:
        if not block.blocked:
            await route.continue_()
            return
        block.refused.append(route.request.url)
        await route.abort("connectionrefused")

    async def socket(route: Any) -> None:
        if not block.blocked:
            route.connect_to_server()
            return
        block.refused.append(route.url)
        await route.close(code=1011, reason="blocked by the test")

    await page.route(is_hub, request)
    await page.route_web_socket(is_hub, socket)
    return block


# -- pixels -----------------------------------------------------------------------------------


@dataclass
class Pixels:
    width: int
    height: int
    rgb: bytes  # width * height * 3

    def fraction(self, predicate: Any) -> float:
        total = self.width * self.height
        hits = sum(1 for index in range(0, len(self.rgb), 3) if predicate(*self.rgb[index : index + 3]))
        return hits / total if total else 0.0

    def most_common(self) -> tuple[int, int, int]:
        counts: dict[bytes, int] = {}
        for index in range(0, len(self.rgb), 3):
            key = self.rgb[index : index + 3]
            counts[key] = counts.get(key, 0) + 1
        best = max(counts, key=counts.__getitem__)
        return best[0], best[1], best[2]

    def differs_from(self, other: Pixels) -> int:
        """Number of pixels that differ (sizes must match, else every pixel counts)."""
        if (self.width, self.height) != (other.width, other.height):
            return self.width * self.height
        mine, theirs = self.rgb, other.rgb
        return sum(1 for index in range(0, len(mine), 3) if mine[index : index + 3] != theirs[index : index + 3])


def is_white(red: int, green: int, blue: int) -> bool:
    return red >= 245 and green >= 245 and blue >= 245


#: decodes a PNG (base64) with the browser's own decoder; returns its RGB bytes, base64
DECODE_PNG = """async (png) => {
    const bytes = Uint8Array.from(atob(png), (c) => c.charCodeAt(0));
    const bitmap = await createImageBitmap(new Blob([bytes], {type: 'image/png'}));
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const context = canvas.getContext('2d');
    context.drawImage(bitmap, 0, 0);
    const rgba = context.getImageData(0, 0, bitmap.width, bitmap.height).data;
    const rgb = new Uint8Array(bitmap.width * bitmap.height * 3);
    for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
        rgb[j] = rgba[i]; rgb[j + 1] = rgba[i + 1]; rgb[j + 2] = rgba[i + 2];
    }
    let text = '';
    for (let i = 0; i < rgb.length; i += 0x8000) text += String.fromCharCode(...rgb.subarray(i, i + 0x8000));
    return [bitmap.width, bitmap.height, btoa(text)];
}"""


async def screenshot_pixels(locator: Any) -> Pixels:
    """The element's pixels as the user sees them (a Playwright screenshot, decoded by Chromium).

    The PNG is decoded in a page's script because the standard library has no
    PNG decoder and the test extra no imaging library.
    """
    png = await locator.screenshot(animations="disabled")
    width, height, rgb = await locator.page.evaluate(DECODE_PNG, base64.b64encode(png).decode())
    return Pixels(int(width), int(height), base64.b64decode(rgb))


async def wait_until(condition: Any, timeout: float, interval: float = 0.2) -> None:
    """Poll ``condition()`` (sync) until it is true; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met in {timeout}s")
        await asyncio.sleep(interval)
