"""``LiveChart``: one line (or scatter, or bars) per matching topic, drawn in the browser.

The browser holds the window: per topic, typed-array ring buffers of up to
``max_points`` points (1,000,000 by default), drawn with a per-pixel min/max
downsample to the plot's width on a canvas (``static/views.js``). In direct
mode it subscribes to the hub itself; in relay mode the kernel sends it only the
points that are new since its previous frame (see :meth:`LiveChart.encode_since`).

The kernel keeps its own copy of the window (its *mirror*, unless
``transport="direct"``): it is the relay's buffer, what a browser rebuilds from
after a reload in relay mode, and what :attr:`LiveChart.topics` and
:meth:`LiveChart.window` read.
"""

from __future__ import annotations

import bisect
from array import array
from datetime import timedelta
from typing import Any, Literal

from ..core.errors import BadArgument
from ..core.message import Message
from ..core.position import Position
from ..core.protocol import MAX_LAST
from ._fields import MISSING, Field, extract, number, parse_window
from ._pump import Frame
from ._view import View

__all__ = ["DEFAULT_MAX_POINTS", "MAX_POINTS_PER_RELAY_MESSAGE", "LiveChart"]

ChartKind = Literal["line", "scatter", "bar"]

#: points held per topic in a time window (``window="60s"``), in the browser and in the kernel
DEFAULT_MAX_POINTS = 1_000_000
#: points in one relay message at most (a rebuild from the kernel's buffer is split)
MAX_POINTS_PER_RELAY_MESSAGE = 250_000
#: seconds a step of the relay's 16-bit time deltas stands for (10 us: up to 0.65 s between points)
RELAY_TIME_UNIT = 1e-5


class _Column:
    """One topic's points in the kernel: offsets, times, x and y, oldest first."""

    __slots__ = ("epoch", "offsets", "times", "xs", "ys")

    def __init__(self) -> None:
        self.epoch: int | None = None
        self.offsets = array("q")
        self.times = array("d")
        self.xs = array("d")
        self.ys = array("d")

    def __len__(self) -> int:
        return len(self.offsets)

    def append(self, message: Message, x: float, y: float) -> None:
        if message.epoch != self.epoch:  # the topic's history was reset: its old points mean nothing now
            self.epoch = message.epoch
            for column in (self.offsets, self.times, self.xs, self.ys):
                del column[:]
        self.offsets.append(message.offset)
        self.times.append(message.ts)
        self.xs.append(x)
        self.ys.append(y)

    def trim(self, capacity: int, horizon: float | None) -> None:
        drop = max(0, len(self.offsets) - capacity)
        if horizon is not None:
            drop = max(drop, bisect.bisect_left(self.times, horizon))
        if drop:
            for column in (self.offsets, self.times, self.xs, self.ys):
                del column[:drop]

    def start_after(self, position: Position | None) -> int:
        """Index of the first point after ``position`` (0 when it is of another epoch)."""
        if position is None:
            return 0
        epoch, offset = position  # a Position, or any (epoch, offset) pair
        return bisect.bisect_right(self.offsets, offset) if epoch == self.epoch else 0


class LiveChart(View):
    """A live chart of ``y`` (against ``x``) for every topic matching ``pattern``.

    Args:
        pattern: topic or pattern; each matching topic gets its own line (up to ``max_traces``).
        x: field for the x axis (numbers); None uses the message time, drawn as clock
            times in the browser's time zone (``utc=True`` for UTC).
        y: field for the y axis (``"value"``, a dotted path, a callable, or None for
            the payload itself). Messages without a number there are skipped.
            A callable field runs in the kernel only: the view then uses relay.
        window: the last N points per topic (``500``) or the last duration
            (``"60s"``, ``"5m"``, a ``timedelta``).
        kind: ``"line"``, ``"scatter"`` or ``"bar"``.
        max_fps: relay messages per second at most.
        transport: ``"auto"`` (default), ``"direct"`` or ``"relay"``; see docs/notebooks.md.
        max_traces: topics drawn at most; the view says when more arrive.
        max_points: points held per topic in a time window (the view says when it
            holds fewer than the window spans).
        utc: with ``x=None``, label times in UTC.
        title, height: the chart's title and plot height in pixels (the width follows the cell).
        layout: accepted for compatibility with the plotly-based views; only
            ``title`` and ``height`` keys are read from it.
        client, url, token, last, loop: see :class:`~rtnb.notebook._view.View`.
    """

    view_kind = "chart"

    def __init__(
        self,
        pattern: str,
        x: Field = None,
        y: Field = "value",
        window: int | str | float | timedelta = 500,
        kind: ChartKind = "line",
        max_fps: float = 10.0,
        *,
        transport: str = "auto",
        max_traces: int = 20,
        max_points: int = DEFAULT_MAX_POINTS,
        utc: bool = False,
        title: str | None = None,
        height: int = 300,
        layout: dict[str, Any] | None = None,
        client: Any = None,
        url: str | None = None,
        token: str | None = None,
        last: int | None = None,
        loop: Any = None,
    ) -> None:
        if kind not in ("line", "scatter", "bar"):
            raise BadArgument(f"kind must be 'line', 'scatter' or 'bar', not {kind!r}.")
        if max_points < 1 or max_traces < 1:
            raise BadArgument("max_points and max_traces must be at least 1.")
        super().__init__(
            pattern, transport=transport, client=client, url=url, token=token, max_fps=max_fps, last=last, loop=loop
        )
        layout = dict(layout or {})
        self.x, self.y, self.chart_kind = x, y, kind
        self.utc = utc
        self.title = title if title is not None else _layout_title(layout)
        self.height = int(layout.get("height", height))
        self.window_count, self.window_seconds = parse_window(window)
        self.max_points = self.window_count or max_points
        self.keep_per_topic = self.max_points
        self.max_topics = max_traces
        self.skipped = 0
        self._columns: dict[str, _Column] = {}
        self._start()

    # -- configuration ---------------------------------------------------------------

    def browser_config(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "x": self.x if isinstance(self.x, str) else None,
            "y": self.y if isinstance(self.y, str) else None,
            "window_count": self.window_count,
            "window_seconds": self.window_seconds,
            "capacity": self.max_points,
            "chart_kind": self.chart_kind,
            "max_traces": self.max_topics,
            "utc": self.utc,
            "title": self.title or "",
            "height": self.height,
            "last": self.history_last(),
            "max_fps": self.max_fps,
            "time_axis": self.x is None,
        }

    def direct_unsupported(self) -> str | None:
        if callable(self.x) or callable(self.y):
            return "x or y is a Python callable, which only the kernel can run"
        return None

    def history_last(self) -> int | None:
        """The user's ``last``, else enough to fill the window (at most what the protocol allows)."""
        return self.last if self.last is not None else min(self.max_points, MAX_LAST)

    # -- the kernel's buffer ---------------------------------------------------------

    def _point(self, message: Message) -> tuple[float, float] | None:
        y = number(extract(message.data, self.y))
        if y is None:
            return None
        if self.x is None:
            return message.ts, y
        x = extract(message.data, self.x)
        x_number = None if x is MISSING else number(x)
        return None if x_number is None else (x_number, y)

    def apply_frame(self, frame: Frame) -> None:
        newest = 0.0
        for topic, messages in frame.messages.items():
            column = self._columns.get(topic)
            if column is None:
                column = self._columns[topic] = _Column()
            for message in messages:
                point = self._point(message)
                if point is None:
                    self.skipped += 1
                else:
                    column.append(message, *point)
                newest = max(newest, message.ts)
        horizon = newest - self.window_seconds if self.window_seconds is not None and newest else None
        for column in self._columns.values():
            column.trim(self.max_points, horizon)

    def buffer_end(self) -> dict[str, Position]:
        return {
            topic: Position(column.epoch, column.offsets[-1])
            for topic, column in self._columns.items()
            if column.epoch is not None and len(column)
        }

    def encode_since(self, since: dict[str, Position]) -> list[tuple[dict[str, Any], list[bytes]]]:
        """``points`` messages: what the kernel holds after ``since``, as typed arrays.

        Content: ``{"op": "points", "base": t0, "series": [{"topic", "epoch",
        "count", "first", "last"}], "has_x": bool, "has_offsets": bool}``, and
        ``"time_unit": u`` when the times are 16-bit deltas.
        Buffers, each the concatenation over the series: times, values as
        float32, then x as float64 when the chart has an x field, then offsets
        as float64 when some series skipped messages (otherwise
        ``first``..``last`` are consecutive).

        Times are uint16 steps of ``time_unit`` seconds (10 us), each series'
        first after ``base`` and every other after the one before it, when all
        fit (points less than 0.65 s apart, what a stream fast enough for bytes
        to matter has): 6 bytes a point on a time axis. Otherwise float32
        milliseconds after ``base`` (8 bytes a point).
        """
        import numpy

        pieces: list[tuple[str, _Column, int]] = []
        for topic, column in self._columns.items():
            start = column.start_after(since.get(topic))
            if start < len(column):
                pieces.append((topic, column, start))
        messages: list[tuple[dict[str, Any], list[bytes]]] = []
        while pieces:
            batch, budget = [], MAX_POINTS_PER_RELAY_MESSAGE
            while pieces and budget > 0:
                topic, column, start = pieces[0]
                stop = min(len(column), start + budget)
                batch.append((topic, column, start, stop))
                budget -= stop - start
                if stop == len(column):
                    pieces.pop(0)
                else:
                    pieces[0] = (topic, column, stop)
            base = min(column.times[start] for _topic, column, start, _stop in batch)
            series, times, values, xs, offsets = [], [], [], [], []
            contiguous = True
            for topic, column, start, stop in batch:
                first, last = column.offsets[start], column.offsets[stop - 1]
                contiguous = contiguous and last - first + 1 == stop - start
                series.append(
                    {"topic": topic, "epoch": column.epoch, "count": stop - start, "first": first, "last": last}
                )
                times.append(numpy.frombuffer(column.times, dtype=numpy.float64)[start:stop])
                values.append(numpy.frombuffer(column.ys, dtype=numpy.float64)[start:stop])
                xs.append(numpy.frombuffer(column.xs, dtype=numpy.float64)[start:stop])
                offsets.append(numpy.frombuffer(column.offsets, dtype=numpy.int64)[start:stop])
            steps = _time_steps(times, base)
            buffers = [
                ((numpy.concatenate(times) - base) * 1000.0).astype(numpy.float32).tobytes()
                if steps is None
                else steps.tobytes(),
                numpy.concatenate(values).astype(numpy.float32).tobytes(),
            ]
            if self.x is not None:
                buffers.append(numpy.concatenate(xs).tobytes())
            if not contiguous:
                buffers.append(numpy.concatenate(offsets).astype(numpy.float64).tobytes())
            content = {
                "op": "points",
                "base": base,
                "series": series,
                "has_x": self.x is not None,
                "has_offsets": not contiguous,
            }
            if steps is not None:
                content["time_unit"] = RELAY_TIME_UNIT
            messages.append((content, buffers))
        return messages

    def static_html(self) -> str:
        from ._static import chart_svg, wrap

        series = [(topic, column.xs, column.ys) for topic, column in self._columns.items()]
        svg = chart_svg(series, time_axis=self.x is None, utc=self.utc, height=min(self.height, 300))
        return wrap("chart", self.title or self.pattern, svg)

    # -- reading back ----------------------------------------------------------------

    @property
    def topics(self) -> list[str]:
        """Topics in the kernel's buffer, first seen first (empty with ``transport="direct"``)."""
        return [topic for topic, column in self._columns.items() if len(column)]

    def window(self, topic: str) -> list[tuple[float, float]]:
        """The ``(x, y)`` points of ``topic`` in the kernel's buffer, oldest first (``x``: UNIX time on a time axis)."""
        column = self._columns.get(topic)
        return [] if column is None else list(zip(column.xs, column.ys, strict=True))


def _time_steps(times: list[Any], base: float) -> Any:
    """Per series, times as uint16 steps of :data:`RELAY_TIME_UNIT` (the first after ``base``, the others
    after the point before), concatenated; None when one does not fit (a pause, a clock going back).

    Steps are differences of rounded times, not rounded differences, so no error adds up along a series.
    """
    import numpy

    pieces = []
    for series_times in times:
        ticks = numpy.rint((series_times - base) / RELAY_TIME_UNIT).astype(numpy.int64)
        steps = numpy.diff(ticks, prepend=0)
        if len(steps) and (steps.min() < 0 or steps.max() > 0xFFFF):
            return None
        pieces.append(steps)
    return numpy.concatenate(pieces).astype(numpy.uint16)


def _layout_title(layout: dict[str, Any]) -> str | None:
    title = layout.get("title")
    if isinstance(title, dict):
        title = title.get("text")
    return title if isinstance(title, str) else None
