"""The static fallback: what a saved notebook shows of a view without a kernel or a widget renderer.

nbviewer, GitHub and ``jupyter nbconvert --to html`` cannot run the views'
JavaScript (a page exported by nbconvert would load the widget renderer from a
CDN, and has no hub anyway). So each view, when displayed, also leaves a plain
``text/html`` output beside its widget: an SVG of the chart's lines, the value,
the gauge's reading, the table's rows. The kernel refreshes it (Jupyter's
``update_display``, one small message) at the end of every cell when data
changed, so the file holds the frame of the last cell's end. (Only then: an
update sent while no cell runs is dropped by JupyterLab and nbclient, which
route display updates through the running execution.) Live pages hide it (``.rtnb-static`` in the
views' CSS): the live view is right above it.

Everything from payloads is HTML-escaped; numbers are formatted by Python.
"""

from __future__ import annotations

import html
import math
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

__all__ = ["StaticDisplay", "chart_svg", "table_html", "wrap"]
#: the chart's static SVG: width in user units, and points per line at most (min/max per bucket)
SVG_WIDTH, SVG_BUCKETS = 600, 300
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def wrap(kind: str, title: str, body: str) -> str:
    """The fallback's frame: a titled box that says it is a snapshot."""
    heading = f'<div style="font-weight:600">{html.escape(title)}</div>' if title else ""
    return (
        f'<div class="rtnb-static rtnb-static-{kind}" style="font-family:sans-serif;font-size:13px;'
        'border:1px solid rgba(128,128,128,0.3);border-radius:4px;padding:6px 8px;max-width:100%;overflow:hidden">'
        f"{heading}{body}"
        '<div style="font-size:10px;opacity:0.6">rtnb view, last frame saved with the notebook (live when run)</div>'
        "</div>"
    )


def _bucketed(xs: Sequence[float], ys: Sequence[float], low: float, high: float) -> list[tuple[float, float]]:
    """Min and max of each of :data:`SVG_BUCKETS` x buckets, in x order: the line's shape at any width."""
    buckets: dict[int, tuple[float, float, float, float]] = {}
    span = (high - low) or 1.0
    for x, y in zip(xs, ys, strict=True):
        index = min(SVG_BUCKETS - 1, int((x - low) / span * SVG_BUCKETS))
        found = buckets.get(index)
        if found is None:
            buckets[index] = (x, y, x, y)
        else:
            min_x, min_y, max_x, max_y = found
            if y < min_y:
                min_x, min_y = x, y
            if y > max_y:
                max_x, max_y = x, y
            buckets[index] = (min_x, min_y, max_x, max_y)
    points: list[tuple[float, float]] = []
    for index in sorted(buckets):
        min_x, min_y, max_x, max_y = buckets[index]
        points.extend(sorted({(min_x, min_y), (max_x, max_y)}))
    return points


def _label(value: float) -> str:
    return f"{value:.4g}"


def chart_svg(
    series: Sequence[tuple[str, Sequence[float], Sequence[float]]], *, time_axis: bool, utc: bool, height: int
) -> str:
    """An SVG of each ``(topic, xs, ys)`` line, scaled to fit, with its y range and x ends labelled."""
    lines = [(topic, xs, ys) for topic, xs, ys in series if len(xs)]
    if not lines:
        return '<div style="opacity:0.7">no data yet</div>'
    x_low = min(min(xs) for _t, xs, _y in lines)
    x_high = max(max(xs) for _t, xs, _y in lines)
    y_low = min(min(ys) for _t, _x, ys in lines)
    y_high = max(max(ys) for _t, _x, ys in lines)
    if not (math.isfinite(y_low) and math.isfinite(y_high)):
        return '<div style="opacity:0.7">no finite values</div>'
    if y_high == y_low:
        y_low, y_high = y_low - 1, y_high + 1
    left, right, top, bottom = 50, 8, 6, 18
    width, plot_height = SVG_WIDTH - left - right, max(40, height - top - bottom)
    x_span = (x_high - x_low) or 1.0

    def place(x: float, y: float) -> str:
        px = left + (x - x_low) / x_span * width
        py = top + plot_height - (y - y_low) / (y_high - y_low) * plot_height
        return f"{px:.1f},{py:.1f}"

    parts = [
        f'<svg viewBox="0 0 {SVG_WIDTH} {height}" width="100%" style="max-width:{SVG_WIDTH * 2}px;display:block"'
        ' xmlns="http://www.w3.org/2000/svg" font-size="10" fill="currentColor">',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{_label(y_high)}</text>',
        f'<text x="{left - 4}" y="{top + plot_height}" text-anchor="end">{_label(y_low)}</text>',
    ]
    for index, (_topic, xs, ys) in enumerate(lines):
        points = " ".join(place(x, y) for x, y in _bucketed(xs, ys, x_low, x_high))
        colour = PALETTE[index % len(PALETTE)]
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>')
    for x, anchor in ((x_low, "start"), (x_high, "end")):
        text = _time_text(x, utc) if time_axis else _label(x)
        parts.append(
            f'<text x="{left if anchor == "start" else left + width}" y="{height - 4}" '
            f'text-anchor="{anchor}">{html.escape(text)}</text>'
        )
    parts.append("</svg>")
    legend = " ".join(
        f'<span style="white-space:nowrap"><span style="display:inline-block;width:12px;height:3px;'
        f'background:{PALETTE[index % len(PALETTE)]};vertical-align:middle"></span> {html.escape(topic)}</span>'
        for index, (topic, _xs, _ys) in enumerate(lines)
    )
    return "".join(parts) + f'<div style="font-size:11px">{legend}</div>'


def _time_text(timestamp: float, utc: bool) -> str:
    moment = datetime.fromtimestamp(timestamp, timezone.utc if utc else None)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if utc else "")


def table_html(columns: Sequence[str], rows: Sequence[tuple[str, float, Any]]) -> str:
    """An escaped HTML table of ``(topic, timestamp, payload)`` rows."""
    from .table import cell_text

    head = "".join(f"<th>{html.escape(name)}</th>" for name in ("topic", "time", *columns))
    body = []
    for topic, ts, data in rows:
        when = datetime.fromtimestamp(ts).strftime("%H:%M:%S.%f")[:-3]
        if isinstance(data, dict):
            cells = [data.get(column) for column in columns]
        else:
            cells = [data if column == "value" else None for column in columns]
        body.append(
            f"<tr><td>{html.escape(topic)}</td><td>{when}</td>"
            + "".join(f"<td>{html.escape(cell_text(cell))}</td>" for cell in cells)
            + "</tr>"
        )
    return (
        '<table style="border-collapse:collapse;font-size:12px">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


class StaticDisplay:
    """One static fallback output, shown beside a view and refreshed with ``update_display``.

    Refreshed at the end of every cell (IPython's ``post_run_cell``) when data changed.

    Args:
        render: returns the fallback's HTML now.
        catch_up: applies what has arrived but waits for the kernel's loop (a cell that
            just ended kept the loop busy); called at the end of each cell.
    """

    def __init__(self, render: Callable[[], str], catch_up: Callable[[], None] | None = None) -> None:
        self.render = render
        self.catch_up = catch_up
        self.display_id = uuid.uuid4().hex
        self.shown = False
        self.changed = False
        self.refreshed_at = 0.0
        self.refreshes = 0
        self._shell: Any = None

    def show(self) -> None:
        """Display the fallback in the current cell's output."""
        from IPython import get_ipython

        from ._ipython import display

        display({"text/html": self.render()}, raw=True, display_id=self.display_id)
        self.shown = True
        self.changed = False
        self.refreshed_at = time.monotonic()
        shell = get_ipython()
        if shell is not None and self._shell is None:
            self._shell = shell
            shell.events.register("post_run_cell", self._at_cell_end)

    def _at_cell_end(self, _result: Any) -> None:
        if self.catch_up is not None:
            self.catch_up()
        if self.changed:
            self.refresh()

    def refresh(self) -> None:
        from ._ipython import update_display

        if not self.shown:
            return
        self.refreshed_at = time.monotonic()
        self.refreshes += 1
        self.changed = False
        update_display({"text/html": self.render()}, raw=True, display_id=self.display_id)

    def data_changed(self) -> None:
        """Note new data: the fallback is refreshed at the end of the next cell."""
        self.changed = True

    def close(self) -> None:
        """Stop refreshing (the view stopped); the last fallback stays in the output."""
        shell, self._shell = self._shell, None
        if shell is not None:
            try:
                shell.events.unregister("post_run_cell", self._at_cell_end)
            except ValueError:  # already gone
                pass
