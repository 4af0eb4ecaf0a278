"""One live chart in a real JupyterLab in Chromium: what does each way of drawing it cost?

Side by side, in one run, for 1k, 10k and 100k points/s into one chart:

* **rtnb direct**: ``LiveChart(..., transport="direct")``, the browser subscribes to the hub;
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
* kernel CPU: the kernel process's CPU time over wall time (psutil);
* sent: the rate the publisher achieved (ndjson ``POST /publish`` from this process).

The JupyterLab is the test suite's (``tests/e2e/views_harness.start_lab``): ``jupyter server``
with the lab and the rtnb server extension, on 127.0.0.1.

    python benchmarks/views.py            # 1k, 10k, 100k points/s, 8 s each
    python benchmarks/views.py --quick    # 1k and 10k, 3 s each
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "tests" / "e2e"))

from views_harness import (  # noqa: E402
    CHROMIUM_ARGUMENTS,
    IopubCounter,
    Lab,
    Publisher,
    describe,
    open_notebook,
    run_all_cells,
    start_lab,
    wait_for_views,
    write_notebook,
)

WINDOW = 10_000
#: frames (and FigureWidget batches) a second at most, by default: rtnb's browser draws at most
#: ~30 frames/s whatever the mode (views.js MIN_FRAME_MS)
MAX_FPS = 30
WAIT_MS = 90_000


def figure_widget_cells(max_fps: float) -> list[str]:
    """The hand-written FigureWidget: a subscription callback collects, a task draws each batch."""
    return [
        f"""import asyncio
import numpy as np
import plotly.graph_objects as go
from rtnb.client import connect
from rtnb.core.message import Message

WINDOW = {WINDOW}
fig = go.FigureWidget(go.Scatter(x=[], y=[], mode="lines"), layout={{"height": 350}})
pending = []
client = connect()  # the Jupyter server's hub
client.subscribe("bench/figurewidget", callback=lambda item: isinstance(item, Message) and pending.append(item))
fig""",
        f"""xs, ys = np.empty(0), np.empty(0)

async def draw():
    global xs, ys
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

drawing = asyncio.get_running_loop().create_task(draw())""",
    ]


def rtnb_cells(transport: str, max_fps: float) -> list[str]:
    return [
        "from rtnb.notebook import LiveChart\n"
        f'LiveChart("bench/{transport}", window={WINDOW}, transport="{transport}", max_fps={max_fps})'
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


@dataclass
class Variant:
    label: str
    notebook: str
    cells: list[str]
    topic: str
    chart_selector: str  # the element whose DOM changes each frame
    ready: str  # JS condition, true once the chart is on the page


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
    sent_per_second: float
    browser_cpu: float
    script_cpu: float
    iopub_messages: float
    iopub_bytes: float
    frames: float
    animation_frames: float
    hub_frames: float
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
    write_notebook(lab, variant.notebook, variant.cells)
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    hub_frames = [0]  # WebSocket frames the page received from the hub (direct mode's data path)

    def watch(socket: Any) -> None:
        if "/rtnb/" in socket.url:
            socket.on("framereceived", lambda _payload: hub_frames.__setitem__(0, hub_frames[0] + 1))

    page.on("websocket", watch)
    publisher = Publisher(lab, [variant.topic], rate=10).start()
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
        cdp = await context.new_cdp_session(page)
        await cdp.send("Performance.enable", {"timeDomain": "threadTicks"})
        for rate in rates:
            publisher.set_rate(rate)
            await asyncio.sleep(warmup)
            before_metrics, before_frames = await metrics(cdp), await page.evaluate(FRAMES)
            before_kernel, before_sent, before_hub = cpu_seconds(kernel), publisher.published, hub_frames[0]
            start = time.monotonic()
            await asyncio.sleep(seconds)
            end = time.monotonic()
            after_metrics, after_frames = await metrics(cdp), await page.evaluate(FRAMES)
            after_kernel, after_sent, after_hub = cpu_seconds(kernel), publisher.published, hub_frames[0]
            wall = end - start
            messages = counter.between(start, end)
            rows.append(
                Row(
                    variant.label,
                    rate,
                    (after_sent - before_sent) / wall,
                    (after_metrics["TaskDuration"] - before_metrics["TaskDuration"]) / wall,
                    (after_metrics["ScriptDuration"] - before_metrics["ScriptDuration"]) / wall,
                    len(messages) / wall,
                    sum(message.size for message in messages) / wall,
                    (after_frames[0] - before_frames[0]) / wall,
                    (after_frames[1] - before_frames[1]) / wall,
                    (after_hub - before_hub) / wall,
                    None if after_kernel is None or before_kernel is None else (after_kernel - before_kernel) / wall,
                )
            )
            print(format_row(rows[-1]), flush=True)
            print(f"{'':<14}IOPub in {wall:.1f} s: {describe(messages)}", flush=True)
            publisher.set_rate(10)
            await asyncio.sleep(1.0)  # let the kernel and the page drain before the next rate
    finally:
        publisher.stop()
        if counter is not None:
            counter.close()
        await context.close()
        for session in lab.api("api/sessions"):
            if session.get("path") == variant.notebook:
                lab.api(f"api/sessions/{session['id']}", method="DELETE")
    return rows


HEADER = (
    f"{'chart':<14}{'points/s':>10}{'sent/s':>10}{'browser CPU':>13}{'script':>8}"
    f"{'IOPub msg/s':>13}{'IOPub B/s':>12}{'frames/s':>10}{'rAF/s':>7}{'hub WS/s':>10}{'kernel CPU':>12}"
)


def format_row(row: Row) -> str:
    kernel = "-" if row.kernel_cpu is None else f"{row.kernel_cpu:.0%}"
    return (
        f"{row.variant:<14}{row.rate:>10,}{row.sent_per_second:>10,.0f}{row.browser_cpu:>13.0%}"
        f"{row.script_cpu:>8.0%}{row.iopub_messages:>13,.1f}{row.iopub_bytes:>12,.0f}{row.frames:>10.1f}"
        f"{row.animation_frames:>7.0f}{row.hub_frames:>10.0f}{kernel:>12}"
    )


def markdown(rows: list[Row]) -> str:
    lines = [
        "| chart | points/s | browser CPU (one core) | IOPub msg/s | IOPub bytes/s | frames/s (rAF/s) | kernel CPU |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in sorted(rows, key=lambda item: (item.rate, item.variant)):
        kernel = "-" if row.kernel_cpu is None else f"{row.kernel_cpu:.0%}"
        lines.append(
            f"| {row.variant} | {row.rate:,} (sent {row.sent_per_second:,.0f}) | {row.browser_cpu:.0%} "
            f"| {row.iopub_messages:,.1f} | {row.iopub_bytes:,.0f} | {row.frames:.1f} ({row.animation_frames:.0f}) "
            f"| {kernel} |"
        )
    return "\n".join(lines)


async def run(
    rates: list[int], seconds: float, warmup: float, variants: list[Variant], chromium: str, max_fps: float
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
        "--only", default=None, help="variants to run, comma-separated: direct, relay, figurewidget (default all)"
    )
    parser.add_argument("--max-fps", type=float, default=MAX_FPS, help=f"frames/s cap (default {MAX_FPS})")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    rates = [int(rate) for rate in (args.rates or ("1000,10000" if args.quick else "1000,10000,100000")).split(",")]
    seconds = args.seconds or (3.0 if args.quick else 8.0)
    warmup = 1.5 if args.quick else 3.0
    variants = make_variants(args.max_fps)
    if args.only:
        wanted = {name.strip().lower() for name in args.only.split(",")}
        variants = [variant for variant in variants if variant.label.split()[-1].lower() in wanted]
    asyncio.run(run(rates, seconds, warmup, variants, args.chromium, args.max_fps))


if __name__ == "__main__":
    main()
