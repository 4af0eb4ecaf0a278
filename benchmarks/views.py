"""One live chart in a real JupyterLab in Chromium: what does each way of drawing it cost?

Side by side, in one run, for 1k, 10k and 100k points/s into one chart:

* **rtnb direct**: ``LiveChart(..., transport="direct")``, the browser subscribes to the hub;
* **direct, own hub**: the same with ``url=`` an ``rtnb serve`` of its own (a process, so a share of
  the CPU, of its own; the Jupyter server's hub shares its process with Jupyter's own work);
* **rtnb relay**: ``LiveChart(..., transport="relay")``, the kernel forwards new points over the comm;
* **FigureWidget**: what users write by hand: a plotly ``FigureWidget`` whose trace's x/y are
  extended (to the same window) inside ``batch_update()`` with each batch the kernel received
  (at most 30 batches a second, from a subscription callback).

Every chart keeps a window of the last 10,000 points and draws at most 30 frames/s.
Measured over ``--seconds`` after a warm-up at each rate:

* browser CPU: share of one core used by the page's main thread, from Chromium's own
  ``Performance.getMetrics`` (``TaskDuration`` delta over wall time), via a CDP session;
  ``script`` is the ``ScriptDuration`` part of it;
* IOPub messages/s and bytes/s: every message on the kernel's IOPub channel (a ZeroMQ SUB
  socket of our own on its port, what the browser's kernel WebSocket carries);
* frames/s: animation frames in which the chart's DOM changed (the rtnb view's
  ``data-rtnb-points`` attribute is set every frame; plotly's SVG changes on every redraw),
  beside rAF/s, the animation frames the page got at all (what a busy machine leaves it);
* hub WS/s: WebSocket frames the page received from the hub (``/rtnb/`` sockets: direct mode);
* hub CPU, kernel CPU: the hub's process's (the Jupyter server, where the extension's hub runs, or
  for "direct, own hub" an ``rtnb serve`` of its own) and the kernel's CPU time over wall time (psutil);
* offered / accepted / delivered: points/s the publisher put in requests, that the hub answered 200
  for, and that reached the chart (the rtnb views' own count of points received, direct or relayed;
  for the FigureWidget, the points its kernel task drew, which it writes to a file). The publisher
  (ndjson ``POST /publish`` every 10 ms, at most 5,000 lines a request) runs in a process of its own;
  when the hub cannot keep up it lets a backlog over 0.25 s go rather than sending ever bigger
  requests, so *offered* below the asked rate means the hub took requests that slowly.

The JupyterLab is the test suite's (``tests/e2e/views_harness.start_lab``): ``jupyter server``
with the lab and the rtnb server extension, on 127.0.0.1.

    python benchmarks/views.py            # 1k, 10k, 100k points/s, 8 s each
    python benchmarks/views.py --only own-hub --rates 100000
    python benchmarks/views.py --quick    # 1k and 10k, 3 s each
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import multiprocessing
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "tests" / "e2e"))

from views_harness import (  # noqa: E402
    CHROMIUM_ARGUMENTS,
    IopubCounter,
    Lab,
    describe,
    open_notebook,
    run_all_cells,
    start_lab,
    wait_for_views,
    write_notebook,
)

WINDOW = 10_000
#: where the FigureWidget's kernel writes how many points it drew (in the lab's root)
RECEIVED_FILE = "bench-figurewidget.received"
#: lines per ndjson request at most (the hub takes 10,000)
MAX_LINES = 5_000
#: the publisher's tick: what is due goes every 10 ms (a smooth stream, not bursts)
TICK = 0.01
#: a publisher this far behind (seconds of the asked rate) lets the backlog go: what it could not
#: send in time is not "offered" any more, and the next requests stay small
MAX_BACKLOG = 0.25
#: frames (and FigureWidget batches) a second at most, by default: rtnb's browser draws at most
#: ~30 frames/s whatever the mode (views.js MIN_FRAME_MS)
MAX_FPS = 30
WAIT_MS = 90_000


def figure_widget_cells(max_fps: float) -> list[str]:
    """The hand-written FigureWidget: a subscription callback collects, a task draws each batch."""
    return [
        f"""import asyncio
import os
import numpy as np
import plotly.graph_objects as go
from rtnb import connect
from rtnb.core.message import Message

WINDOW = {WINDOW}
fig = go.FigureWidget(go.Scatter(x=[], y=[], mode="lines"), layout={{"height": 350}})
pending = []
client = connect()  # the Jupyter server's hub
client.subscribe("bench/figurewidget", callback=lambda item: isinstance(item, Message) and pending.append(item))
fig""",
        f"""xs, ys = np.empty(0), np.empty(0)

received = 0  # points drawn so far, read by the benchmark (what reached the figure)

async def draw():
    global xs, ys, received
    while True:
        await asyncio.sleep({1 / max_fps})
        if not pending:
            continue
        batch = pending[:]
        del pending[: len(batch)]
        xs = np.concatenate([xs, [message.ts for message in batch]])[-WINDOW:]
        ys = np.concatenate([ys, [message.data["value"] for message in batch]])[-WINDOW:]
        with fig.batch_update():
            fig.data[0].x = xs
            fig.data[0].y = ys
        received += len(batch)
        with open("{RECEIVED_FILE}.part", "w") as out:
            out.write(str(received))
        os.replace("{RECEIVED_FILE}.part", "{RECEIVED_FILE}")  # whole numbers only for the reader

drawing = asyncio.get_running_loop().create_task(draw())""",
    ]


def rtnb_cells(transport: str, max_fps: float, topic: str | None = None, url: str | None = None) -> list[str]:
    where = "" if url is None else f', url="{url}"'
    return [
        "from rtnb.notebook import LiveChart\n"
        f'LiveChart("{topic or "bench/" + transport}", window={WINDOW}, transport="{transport}", '
        f"max_fps={max_fps}{where})"
    ]


#: counts animation frames in which the chart's DOM changed (window.rtnbBenchFrames) and all
#: animation frames (window.rtnbBenchTicks)
COUNT_FRAMES = """(selector) => {
    const target = document.querySelector(selector);
    if (!target) throw new Error('no chart matches ' + selector);
    window.rtnbBenchFrames = 0;
    window.rtnbBenchTicks = 0;
    const tick = () => { window.rtnbBenchTicks += 1; requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
    let pending = false;
    new MutationObserver(() => {
        if (pending) return;
        pending = true;
        requestAnimationFrame(() => { window.rtnbBenchFrames += 1; pending = false; });
    }).observe(target, {subtree: true, attributes: true, childList: true, characterData: true});
}"""


FRAMES = "() => [window.rtnbBenchFrames, window.rtnbBenchTicks]"

#: points the page's rtnb views received so far (each view's Feed counts them, direct or relayed)
RECEIVED = "() => [...(globalThis.__rtnb_view_feeds__ || new Map()).values()].reduce((sum, f) => sum + f.received, 0)"


async def received(page: Any, lab: Lab, variant: Variant) -> int:
    """Points delivered so far: to the page (rtnb views) or to the figure (the FigureWidget's kernel)."""
    if variant.topic.endswith("figurewidget"):
        path = lab.root / RECEIVED_FILE
        try:
            return int(path.read_text() or 0)
        except (OSError, ValueError):
            return 0
    return int(await page.evaluate(RECEIVED))


# -- the source: its own process, so neither its work nor the GIL of this one (Playwright) slows it


def publish_forever(
    url: str, token: str, topic: str, rate: Any, accepted: Any, offered: Any, errors: Any, stop: Any
) -> None:
    """Publish ``rate.value`` messages/s (``{"value": v, "seq": n}``) on ``topic`` until ``stop`` is set.

    Every :data:`TICK` what is due goes as one ndjson ``POST /publish`` (at most
    :data:`MAX_LINES` lines) over one kept-alive connection. ``offered`` counts
    the messages put in requests, ``accepted`` those the hub answered 200 for.
    Lines are cheap to build (one of 1,000 precomputed values, then the sequence
    number), so the publisher costs ~1 us a message, not the hub's share.
    """
    import math

    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    headers = {"Authorization": f"token {token}", "Content-Type": "application/x-ndjson"}
    values = [b'{"value":%.4f,"seq":' % (50 + 40 * math.sin(count / 50.0) + count % 7) for count in range(1000)]
    path = f"{parts.path.rstrip('/')}/publish/{topic}"
    current, since, due_since, number = rate.value, time.monotonic(), 0, 0
    try:
        while not stop.is_set():
            now = time.monotonic()
            if rate.value != current:  # a new rate counts from now
                current, since, due_since = rate.value, now, 0
            due = int(current * (now - since)) - due_since
            if due > current * MAX_BACKLOG:  # too far behind: let the backlog go (not offered)
                due_since += due - int(current * MAX_BACKLOG)
                due = int(current * MAX_BACKLOG)
            if due <= 0:
                stop.wait(TICK)
                continue
            due = min(due, MAX_LINES)
            body = b"\n".join(values[count % 1000] + b"%d}" % count for count in range(number, number + due))
            with offered.get_lock():
                offered.value += due
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            if response.status != 200:
                raise RuntimeError(f"publish answered {response.status}: {answer[:200]!r}")
            with accepted.get_lock():
                accepted.value += due
            number += due
            due_since += due
    except Exception as error:  # the benchmark reads .errors
        errors.put(repr(error))
    finally:
        connection.close()


class ProcessPublisher:
    """:func:`publish_forever` in a process of its own; ``published`` counts what the hub accepted."""

    def __init__(self, url: str, token: str, topic: str, rate: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._rate = context.Value("d", rate)
        self._accepted = context.Value("q", 0)
        self._offered = context.Value("q", 0)
        self._errors = context.Queue()
        self._stop = context.Event()
        arguments = (url, token, topic, self._rate, self._accepted, self._offered)
        self._process = context.Process(
            target=publish_forever, args=(*arguments, self._errors, self._stop), name="rtnb-bench-publisher"
        )

    def start(self) -> ProcessPublisher:
        self._process.start()
        return self

    def set_rate(self, rate: float) -> None:
        self._rate.value = rate

    @property
    def published(self) -> int:
        return int(self._accepted.value)

    @property
    def offered(self) -> int:
        return int(self._offered.value)

    def errors(self) -> list[str]:
        found = []
        while not self._errors.empty():
            found.append(self._errors.get())
        return found

    def stop(self) -> None:
        self._stop.set()
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()


@dataclass
class Variant:
    label: str
    notebook: str
    cells: list[str]
    topic: str
    chart_selector: str  # the element whose DOM changes each frame
    ready: str  # JS condition, true once the chart is on the page
    #: the chart's hub: the Jupyter server's (False), or an ``rtnb serve`` of its own (True, its URL
    #: replaces ``HUB_URL`` in the cells), so the hub has a process (and a share of the CPU) of its own
    own_hub: bool = False


HUB_URL = "@HUB_URL@"


@contextlib.contextmanager
def own_hub(lab: Lab) -> Iterator[tuple[str, int]]:
    """``rtnb serve`` on a free port, answering the lab's pages (its origin allowed): (URL, pid)."""
    import socket
    import subprocess

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    origin = lab.server.url.rstrip("/")
    origin = origin[: origin.index("/", len("http://"))] if "/" in origin[len("http://") :] else origin
    command = [sys.executable, "-m", "rtnb", "serve", "--port", str(port), "--history", "100000"]
    process = subprocess.Popen(
        [*command, "--allow-origin", origin], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("rtnb serve did not start")
            time.sleep(0.2)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(10)


def make_variants(max_fps: float) -> list[Variant]:
    return [
        Variant(
            "rtnb direct",
            "bench-direct.ipynb",
            rtnb_cells("direct", max_fps),
            "bench/direct",
            ".jp-OutputArea-output .rtnb-view",
            "document.querySelector('.rtnb-view[data-rtnb-mode=\"direct\"]') !== null",
        ),
        Variant(
            "direct, own hub",
            "bench-own-hub.ipynb",
            rtnb_cells("direct", max_fps, "bench/own-hub", HUB_URL),
            "bench/own-hub",
            ".jp-OutputArea-output .rtnb-view",
            "document.querySelector('.rtnb-view[data-rtnb-mode=\"direct\"]') !== null",
            own_hub=True,
        ),
        Variant(
            "rtnb relay",
            "bench-relay.ipynb",
            rtnb_cells("relay", max_fps),
            "bench/relay",
            ".jp-OutputArea-output .rtnb-view",
            "document.querySelector('.rtnb-view[data-rtnb-mode=\"relay\"]') !== null",
        ),
        Variant(
            "FigureWidget",
            "bench-figurewidget.ipynb",
            figure_widget_cells(max_fps),
            "bench/figurewidget",
            ".jp-OutputArea-output .js-plotly-plot",
            "document.querySelector('.jp-OutputArea-output .js-plotly-plot .scatterlayer') !== null",
        ),
    ]


@dataclass
class Row:
    variant: str
    rate: int
    offered_per_second: float
    sent_per_second: float
    delivered_per_second: float
    browser_cpu: float
    script_cpu: float
    iopub_messages: float
    iopub_bytes: float
    frames: float
    animation_frames: float
    hub_frames: float
    server_cpu: float | None
    kernel_cpu: float | None


def kernel_process(lab: Lab, kernel_id: str) -> Any:
    """The kernel's process (a child of the Jupyter server started with its connection file)."""
    import psutil

    for child in psutil.Process(lab.server.process.pid).children(recursive=True):
        try:
            if any(kernel_id in argument for argument in child.cmdline()):
                return child
        except psutil.Error:
            continue
    return None


def cpu_seconds(process: Any) -> float | None:
    if process is None:
        return None
    times = process.cpu_times()
    return float(times.user + times.system)


async def metrics(cdp: Any) -> dict[str, float]:
    result = await cdp.send("Performance.getMetrics")
    return {item["name"]: float(item["value"]) for item in result["metrics"]}


async def measure_variant(
    lab: Lab, browser: Any, variant: Variant, rates: list[int], seconds: float, warmup: float
) -> list[Row]:
    if not variant.own_hub:
        return await measure_on_hub(lab, browser, variant, rates, seconds, warmup, lab.server.hub_url, None)
    with own_hub(lab) as (url, pid):
        return await measure_on_hub(lab, browser, variant, rates, seconds, warmup, url, pid)


async def measure_on_hub(
    lab: Lab,
    browser: Any,
    variant: Variant,
    rates: list[int],
    seconds: float,
    warmup: float,
    hub_url: str,
    hub_pid: int | None,
) -> list[Row]:
    """One variant at each rate, its source publishing to ``hub_url`` (run by ``hub_pid``, else Jupyter)."""
    import psutil

    write_notebook(lab, variant.notebook, [cell.replace(HUB_URL, hub_url) for cell in variant.cells])
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    hub_frames = [0]  # WebSocket frames the page received from the hub (direct mode's data path)

    def watch(socket: Any) -> None:
        if "/rtnb/" in socket.url or socket.url.startswith(hub_url.replace("http", "ws", 1)):
            socket.on("framereceived", lambda _payload: hub_frames.__setitem__(0, hub_frames[0] + 1))

    page.on("websocket", watch)
    publisher = ProcessPublisher(hub_url, lab.token, variant.topic, rate=10).start()
    counter = None
    rows: list[Row] = []
    try:
        await open_notebook(page, lab, variant.notebook, WAIT_MS)
        await run_all_cells(page, WAIT_MS)
        await page.wait_for_function(f"() => {variant.ready}", timeout=WAIT_MS)
        if variant.chart_selector.endswith(".rtnb-view"):
            await wait_for_views(page, 1, "v.points > 0", WAIT_MS)
        await page.evaluate(COUNT_FRAMES, variant.chart_selector)
        kernel_id = lab.kernel_id(variant.notebook)
        assert kernel_id is not None, "the notebook has no kernel"
        counter = IopubCounter(lab.connection_file(kernel_id))
        kernel = kernel_process(lab, kernel_id)
        # the hub's process: the Jupyter server (the extension's hub runs in it), or the own hub
        server = psutil.Process(hub_pid or lab.server.process.pid)
        cdp = await context.new_cdp_session(page)
        await cdp.send("Performance.enable", {"timeDomain": "threadTicks"})
        for rate in rates:
            publisher.set_rate(rate)
            await asyncio.sleep(warmup)
            before_metrics, before_frames = await metrics(cdp), await page.evaluate(FRAMES)
            before_server = cpu_seconds(server)
            before_kernel, before_sent, before_hub = cpu_seconds(kernel), publisher.published, hub_frames[0]
            before_offered, before_received = publisher.offered, await received(page, lab, variant)
            start = time.monotonic()
            await asyncio.sleep(seconds)
            end = time.monotonic()
            after_metrics, after_frames = await metrics(cdp), await page.evaluate(FRAMES)
            after_server = cpu_seconds(server)
            after_kernel, after_sent, after_hub = cpu_seconds(kernel), publisher.published, hub_frames[0]
            after_offered, after_received = publisher.offered, await received(page, lab, variant)
            wall = end - start
            messages = counter.between(start, end)
            rows.append(
                Row(
                    variant.label,
                    rate,
                    (after_offered - before_offered) / wall,
                    (after_sent - before_sent) / wall,
                    (after_received - before_received) / wall,
                    (after_metrics["TaskDuration"] - before_metrics["TaskDuration"]) / wall,
                    (after_metrics["ScriptDuration"] - before_metrics["ScriptDuration"]) / wall,
                    len(messages) / wall,
                    sum(message.size for message in messages) / wall,
                    (after_frames[0] - before_frames[0]) / wall,
                    (after_frames[1] - before_frames[1]) / wall,
                    (after_hub - before_hub) / wall,
                    None if after_server is None or before_server is None else (after_server - before_server) / wall,
                    None if after_kernel is None or before_kernel is None else (after_kernel - before_kernel) / wall,
                )
            )
            print(format_row(rows[-1]), flush=True)
            print(f"{'':<14}IOPub in {wall:.1f} s: {describe(messages)}", flush=True)
            publisher.set_rate(10)
            await asyncio.sleep(1.0)  # let the kernel and the page drain before the next rate
    except BaseException:
        shot = Path(tempfile.gettempdir()) / f"rtnb-bench-views-{variant.topic.split('/')[-1]}-failure.png"
        with contextlib.suppress(Exception):  # a screenshot is a courtesy; the error matters
            await page.screenshot(path=str(shot))
            print(f"{variant.label}: the page at the failure: {shot}", flush=True)
        raise
    finally:
        publisher.stop()
        for error in publisher.errors():
            print(f"{variant.label}: publisher: {error}", flush=True)
        if counter is not None:
            counter.close()
        await context.close()
        for session in lab.api("api/sessions"):
            if session.get("path") == variant.notebook:
                lab.api(f"api/sessions/{session['id']}", method="DELETE")
    return rows


#: the browser alone at a given rate: a Web Worker (off the page's main thread, so not in its CPU) makes
#: hub frames of ``{"op": "message", ...}`` lines every 10 ms and hands each to the direct view's own
#: WebSocket ``onmessage``, as if the hub had sent it: the page parses, dedupes and draws them all
SYNTHETIC_FEED = """([topic, rate]) => {
    const feed = [...globalThis.__rtnb_view_feeds__.values()].find((f) => f.config.pattern === topic);
    const socket = feed.client._active.socket;
    const known = feed.client.positions.get(topic);
    const source = `
        let epoch = ${known ? known[0] : 1}, offset = ${known ? known[1] : 0}, sent = 0;
        let rate = ${rate}, start = performance.now();
        onmessage = (event) => { rate = event.data; start = performance.now(); sent = 0; };
        setInterval(() => {
            const due = Math.floor(rate * (performance.now() - start) / 1000) - sent;
            if (due <= 0) return;
            const now = Date.now() / 1000, lines = [];
            for (let i = 0; i < due; i++) {
                offset += 1;
                const value = 50 + 40 * Math.sin(offset / 50) + (offset % 7);
                lines.push('{"op":"message","topic":"${topic}","offset":' + offset + ',"epoch":' + epoch +
                    ',"ts":' + (now - (due - i) / rate) + ',"data":{"value":' + value + ',"seq":' + offset + '}}');
            }
            sent += due;
            postMessage(lines.join(String.fromCharCode(10)));
        }, 10);`;
    const worker = new Worker(URL.createObjectURL(new Blob([source], {type: "text/javascript"})));
    worker.onmessage = (event) => socket.onmessage({data: event.data});
    worker.onerror = (event) => { globalThis.rtnbSyntheticError = event.message; };
    globalThis.rtnbSynthetic = worker;
}"""


async def measure_browser_only(
    lab: Lab, browser: Any, rates: list[int], seconds: float, warmup: float, max_fps: float
) -> list[Row]:
    """The direct view's browser side alone at each rate (see :data:`SYNTHETIC_FEED`): no hub in the way."""
    topic, notebook = "bench/synthetic", "bench-synthetic.ipynb"
    write_notebook(lab, notebook, rtnb_cells("direct", max_fps, topic))
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    rows: list[Row] = []
    try:
        await open_notebook(page, lab, notebook, WAIT_MS)
        await run_all_cells(page, WAIT_MS)
        await page.wait_for_function(
            "() => document.querySelector('.rtnb-view[data-rtnb-mode=\"direct\"]') !== null", timeout=WAIT_MS
        )
        await page.evaluate(COUNT_FRAMES, ".jp-OutputArea-output .rtnb-view")
        await page.evaluate(SYNTHETIC_FEED, [topic, 10])
        cdp = await context.new_cdp_session(page)
        await cdp.send("Performance.enable", {"timeDomain": "threadTicks"})
        for rate in rates:
            await page.evaluate("(rate) => globalThis.rtnbSynthetic.postMessage(rate)", rate)
            await asyncio.sleep(warmup)
            before_metrics, before_frames = await metrics(cdp), await page.evaluate(FRAMES)
            before_received = int(await page.evaluate(RECEIVED))
            start = time.monotonic()
            await asyncio.sleep(seconds)
            wall = time.monotonic() - start
            after_metrics, after_frames = await metrics(cdp), await page.evaluate(FRAMES)
            delivered = (int(await page.evaluate(RECEIVED)) - before_received) / wall
            rows.append(
                Row(
                    "direct, browser only",
                    rate,
                    delivered,
                    delivered,
                    delivered,
                    (after_metrics["TaskDuration"] - before_metrics["TaskDuration"]) / wall,
                    (after_metrics["ScriptDuration"] - before_metrics["ScriptDuration"]) / wall,
                    0.0,
                    0.0,
                    (after_frames[0] - before_frames[0]) / wall,
                    (after_frames[1] - before_frames[1]) / wall,
                    0.0,
                    None,
                    None,
                )
            )
            print(format_row(rows[-1]), flush=True)
            error = await page.evaluate("() => globalThis.rtnbSyntheticError || null")
            if error:
                raise RuntimeError(f"the synthetic feed failed: {error}")
            await page.evaluate("() => globalThis.rtnbSynthetic.postMessage(10)")
            await asyncio.sleep(1.0)
    finally:
        await context.close()
        for session in lab.api("api/sessions"):
            if session.get("path") == notebook:
                lab.api(f"api/sessions/{session['id']}", method="DELETE")
    return rows


HEADER = (
    f"{'chart':<14}{'points/s':>10}{'offered':>10}{'accepted':>10}{'delivered':>11}{'browser CPU':>13}{'script':>8}"
    f"{'IOPub msg/s':>13}{'IOPub B/s':>12}{'frames/s':>10}{'rAF/s':>7}{'hub WS/s':>10}{'hub CPU':>12}"
    f"{'kernel CPU':>12}"
)


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def format_row(row: Row) -> str:
    return (
        f"{row.variant:<14}{row.rate:>10,}{row.offered_per_second:>10,.0f}{row.sent_per_second:>10,.0f}"
        f"{row.delivered_per_second:>11,.0f}{row.browser_cpu:>13.0%}"
        f"{row.script_cpu:>8.0%}{row.iopub_messages:>13,.1f}{row.iopub_bytes:>12,.0f}{row.frames:>10.1f}"
        f"{row.animation_frames:>7.0f}{row.hub_frames:>10.0f}{percent(row.server_cpu):>12}{percent(row.kernel_cpu):>12}"
    )


def markdown(rows: list[Row]) -> str:
    lines = [
        "| chart | points/s asked: offered / accepted / delivered | browser CPU (one core) | IOPub msg/s "
        "| IOPub bytes/s | frames/s (rAF/s) | hub CPU | kernel CPU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in sorted(rows, key=lambda item: (item.rate, item.variant)):
        lines.append(
            f"| {row.variant} | {row.rate:,}: {row.offered_per_second:,.0f} / {row.sent_per_second:,.0f} "
            f"/ {row.delivered_per_second:,.0f} | {row.browser_cpu:.0%} "
            f"| {row.iopub_messages:,.1f} | {row.iopub_bytes:,.0f} | {row.frames:.1f} ({row.animation_frames:.0f}) "
            f"| {percent(row.server_cpu)} | {percent(row.kernel_cpu)} |"
        )
    return "\n".join(lines)


async def run(
    rates: list[int],
    seconds: float,
    warmup: float,
    variants: list[Variant],
    chromium: str,
    max_fps: float,
    browser_only: bool = False,
) -> None:
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory(prefix="rtnb-bench-views-") as base, start_lab(Path(base)) as lab:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGUMENTS)
            rows: list[Row] = []
            print(
                f"window {WINDOW:,} points, at most {max_fps:g} frames/s; {seconds:.0f} s per rate after {warmup:.0f} s"
            )
            print(HEADER, flush=True)
            try:
                for variant in variants:
                    try:
                        rows += await measure_variant(lab, browser, variant, rates, seconds, warmup)
                    except Exception as error:  # one broken variant must not hide the others' numbers
                        print(f"{variant.label}: failed: {type(error).__name__}: {error}".splitlines()[0], flush=True)
                if browser_only:
                    rows += await measure_browser_only(lab, browser, rates, seconds, warmup, max_fps)
            finally:
                await browser.close()
    print()
    print(markdown(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k points/s, 3 s each")
    parser.add_argument("--rates", default=None, help="points/s, comma-separated (default 1000,10000,100000)")
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per rate (default 8)")
    parser.add_argument(
        "--only",
        default=None,
        help="variants to run, comma-separated: direct, own-hub, relay, figurewidget (default all)",
    )
    parser.add_argument("--max-fps", type=float, default=MAX_FPS, help=f"frames/s cap (default {MAX_FPS})")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument(
        "--browser-only",
        action="store_true",
        help="also the direct view's browser side alone: frames made in a Web Worker, no hub (with --only: just that)",
    )
    args = parser.parse_args()
    rates = [int(rate) for rate in (args.rates or ("1000,10000" if args.quick else "1000,10000,100000")).split(",")]
    seconds = args.seconds or (3.0 if args.quick else 8.0)
    warmup = 1.5 if args.quick else 3.0
    variants = make_variants(args.max_fps)
    if args.only:
        wanted = {name.strip().lower() for name in args.only.split(",")}
        keys = {"rtnb direct": "direct", "direct, own hub": "own-hub", "rtnb relay": "relay"}
        variants = [variant for variant in variants if keys.get(variant.label, "figurewidget") in wanted]
    asyncio.run(run(rates, seconds, warmup, variants, args.chromium, args.max_fps, args.browser_only))


if __name__ == "__main__":
    main()
