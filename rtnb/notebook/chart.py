"""``LiveChart``: a plotly ``FigureWidget`` with one trace per matching topic.

Each frame (at most ``max_fps`` a second) appends the frame's points to each
topic's rolling window and sends every changed trace in one
``fig.batch_update()``: one widget state message per frame, whatever the
message rate. Numbers travel as float64 numpy arrays, which plotly's widget
sends as binary buffers (8 bytes a number instead of ~20 as JSON text).

Times travel as date strings (``"2026-11-27 12:29:59.760"``, the kernel's
local time, or UTC with ``utc=True``), not as epoch milliseconds: every
``restyle`` of ``x`` makes plotly.js forget the axis type it was given and guess
it again from the data, and numbers are guessed to be a linear axis (ticks
like ``1.795781958T``). Date strings are guessed to be dates, whatever layout
the user passes.

The figure autosizes its width to its container: ``layout.autosize`` is set
explicitly, so plotly.js measures the container again on every update (the
widget is first drawn before the page lays it out, at plotly's default 700 px,
which overflowed a dashboard cell), and ``responsive`` redraws it when the
window resizes.

The legend lies in rows below the plot, not in a column on its right: in a
narrow dashboard cell (320 px) a right-hand legend of two topic names took
more than half the width. It is placed against the bottom of the figure
(``yref="container"``), and plotly.js grows the bottom margin to fit it, so
it never covers the time axis's tick labels, however many rows it has. (A
paper-referenced ``y=-0.1`` overlapped them by 7-14 px in Chromium with
two-line date ticks in a 320 px cell: its distance scales with the plot's
height, the labels' height does not.) A
``layout`` that places the legend itself (``orientation``, ``x``, ``y``,
anchors or refs) is left alone.
"""

from __future__ import annotations

import time
from collections import deque
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from ..core.errors import BadField
from ..core.message import Message
from ._fields import MISSING, Field, extract, number, parse_window
from ._pump import Frame
from ._view import View

__all__ = ["LiveChart"]

ChartKind = Literal["line", "scatter", "bar"]

#: points kept per topic in a time window, whatever the rate
DEFAULT_MAX_POINTS = 5000

#: legend in horizontal rows at the bottom of the figure, below the x axis
LEGEND_BELOW: dict[str, Any] = {
    "orientation": "h",
    "x": 0,
    "xanchor": "left",
    "y": 0,
    "yanchor": "bottom",
    "yref": "container",
}
#: legend keys that say where the legend goes; a user layout with any of them places it
_LEGEND_PLACEMENT_KEYS = frozenset({"orientation", "x", "y", "xanchor", "yanchor", "xref", "yref"})


def _legend_placed_by(layout: dict[str, Any]) -> bool:
    """Whether ``layout`` (a user's plotly layout dict) says where the legend goes."""
    legend = layout.get("legend")
    if legend is not None and not isinstance(legend, dict):
        return True  # a plotly Legend object: the user's, whole
    if legend and _LEGEND_PLACEMENT_KEYS & set(legend):
        return True
    return any(key.removeprefix("legend_") in _LEGEND_PLACEMENT_KEYS for key in layout if key.startswith("legend_"))


class _Series:
    """One topic's rolling window of ``(timestamp, x, y)`` points."""

    __slots__ = ("points", "trace_index")

    def __init__(self, trace_index: int, max_points: int) -> None:
        self.trace_index = trace_index
        self.points: deque[tuple[float, Any, float]] = deque(maxlen=max_points)


class LiveChart(View):
    """A live plotly chart of ``y`` (against ``x``) for every topic matching ``pattern``.

    Args:
        pattern: topic or pattern; each matching topic gets its own trace, added
            when it first appears (up to ``max_traces``).
        x: field for the x axis; None uses the message timestamp, drawn on a date
            axis in the kernel's local time (see ``utc``).
        y: field for the y axis (``"value"``, a dotted path, a callable, or None
            for the payload itself). Messages without a number there are skipped
            and counted in :attr:`skipped`.
        window: the last N points per trace (``500``) or the last duration
            (``"60s"``, ``"5m"``, a ``timedelta``).
        kind: ``"line"``, ``"scatter"`` or ``"bar"``.
        max_fps: chart updates per second at most.
        max_traces: topics drawn at most; further topics are counted as conflated.
        max_points: points kept per trace in a time window.
        utc: with ``x=None``, show times in UTC instead of the kernel's local time.
        title, height: figure layout (the width follows the container);
            ``layout`` takes any other plotly layout keys. The legend goes in
            rows below the plot unless ``layout`` places it (e.g.
            ``layout={"legend": {"orientation": "v"}}`` for plotly's column on
            the right).
        client, url, token, last, loop: see :class:`~rtnb.notebook._view.View`.
    """

    def __init__(
        self,
        pattern: str,
        x: Field = None,
        y: Field = "value",
        window: int | str | float | timedelta = 500,
        kind: ChartKind = "line",
        max_fps: float = 10.0,
        *,
        max_traces: int = 20,
        max_points: int = DEFAULT_MAX_POINTS,
        utc: bool = False,
        title: str | None = None,
        height: int = 350,
        layout: dict[str, Any] | None = None,
        client: Any = None,
        url: str | None = None,
        token: str | None = None,
        last: int | None = None,
        loop: Any = None,
    ) -> None:
        if kind not in ("line", "scatter", "bar"):
            raise BadField(f"kind must be 'line', 'scatter' or 'bar', not {kind!r}.")
        super().__init__(pattern, client=client, url=url, token=token, max_fps=max_fps, last=last, loop=loop)
        import plotly.graph_objects as go

        self.x, self.y, self.kind = x, y, kind
        self.time_zone = timezone.utc if utc else None
        self.window_count, self.window_seconds = parse_window(window)
        self.max_points = self.window_count or max_points
        self.keep_per_topic = self.max_points
        self.max_topics = max_traces
        self.skipped = 0
        self._series: dict[str, _Series] = {}
        figure_layout: dict[str, Any] = {
            "height": height,
            "autosize": True,  # explicit: plotly.js then re-measures the container on every update
            "margin": {"l": 50, "r": 20, "t": 40 if title else 20, "b": 40},
            "showlegend": True,
            "uirevision": "rtnb",  # keep the user's zoom and legend clicks across updates
        }
        if title:
            figure_layout["title"] = {"text": title}
        if x is None:
            figure_layout["xaxis"] = {"type": "date"}
        user_layout = dict(layout or {})
        if not _legend_placed_by(user_layout):
            # keep the user's other legend settings (font, title...), add the placement
            user_layout["legend"] = {**LEGEND_BELOW, **(user_layout.get("legend") or {})}
        figure_layout.update(user_layout)
        self.figure = go.FigureWidget(layout=figure_layout)
        # the widget's plotly.js config: redraw at the container's width when the window resizes
        self.figure._config = {**self.figure._config, "responsive": True}
        self.widget = self.figure
        self._start()

    # -- frames ----------------------------------------------------------------------

    def _point(self, message: Message) -> tuple[float, Any, float] | None:
        y = number(extract(message.data, self.y))
        if y is None:
            return None
        if self.x is None:
            x: Any = self._time_text(message.ts)
        else:
            x = extract(message.data, self.x)
            if x is MISSING:
                return None
            x = number(x) if isinstance(x, (int, float)) else x
        return message.ts, x, y

    def _time_text(self, timestamp: float) -> str:
        """``timestamp`` as a date string plotly.js reads as a date (millisecond precision)."""
        moment = datetime.fromtimestamp(timestamp, self.time_zone)
        return moment.replace(tzinfo=None).isoformat(sep=" ", timespec="milliseconds")

    def _new_trace(self, topic: str) -> Any:
        import plotly.graph_objects as go

        if self.kind == "bar":
            return go.Bar(name=topic)
        return go.Scatter(name=topic, mode="lines" if self.kind == "line" else "markers")

    def apply_frame(self, frame: Frame) -> None:
        changed: list[_Series] = []
        new_topics: list[str] = []
        for topic, messages in frame.messages.items():
            series = self._series.get(topic)
            if series is None:
                series = self._series[topic] = _Series(len(self._series), self.max_points)
                new_topics.append(topic)
            before = len(series.points), series.points[-1] if series.points else None
            for message in messages:
                point = self._point(message)
                if point is None:
                    self.skipped += 1
                else:
                    series.points.append(point)
            if (len(series.points), series.points[-1] if series.points else None) != before:
                changed.append(series)
        if self.window_seconds is not None:
            horizon = time.time() - self.window_seconds
            for series in self._series.values():
                points = series.points
                if points and points[0][0] < horizon:
                    while points and points[0][0] < horizon:
                        points.popleft()
                    if series not in changed:
                        changed.append(series)
        figure = self.figure
        if new_topics:
            figure.add_traces([self._new_trace(topic) for topic in new_topics])
        if changed:
            traces = figure.data
            with figure.batch_update():
                for series in changed:
                    xs, ys = self._arrays(series)
                    trace = traces[series.trace_index]
                    trace.x = xs
                    trace.y = ys

    @staticmethod
    def _arrays(series: _Series) -> tuple[Any, Any]:
        import numpy

        xs = [point[1] for point in series.points]
        ys = numpy.fromiter((point[2] for point in series.points), dtype=numpy.float64, count=len(series.points))
        if all(isinstance(value, float) for value in xs):
            return numpy.array(xs, dtype=numpy.float64), ys
        return xs, ys

    # -- reading back ----------------------------------------------------------------

    @property
    def topics(self) -> list[str]:
        """Topics drawn, in trace order."""
        return list(self._series)

    def window(self, topic: str) -> list[tuple[Any, float]]:
        """The ``(x, y)`` points of ``topic``'s trace, oldest first.

        With ``x=None``, ``x`` is the date string drawn (``"2026-11-27 12:29:59.760"``).
        """
        series = self._series.get(topic)
        return [] if series is None else [(point[1], point[2]) for point in series.points]
