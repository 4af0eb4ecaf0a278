"""``LiveValue`` (a formatted latest value, optional sparkline) and ``Gauge``.

Both show the latest value only: whatever the message rate, each frame sends
one small widget update, and the messages in between are counted as conflated.
"""

from __future__ import annotations

import html
from collections import deque
from collections.abc import Sequence
from typing import Any

from ..core.errors import BadField
from ..core.message import Message
from ._fields import MISSING, Field, extract, number
from ._pump import Frame
from ._view import View

__all__ = ["Gauge", "LiveValue", "format_value"]

SPARKLINE_WIDTH, SPARKLINE_HEIGHT = 120, 28


def format_value(message: Message, field: Field, fmt: str | None) -> str:
    """The text a value view shows for ``message`` (not yet HTML-escaped).

    ``fmt`` is a :meth:`str.format` template over the payload's keys (a
    non-object payload is ``value``), plus ``topic`` and ``ts``; without it,
    numbers print with 4 significant digits.
    """
    value = extract(message.data, field)
    if fmt is not None:
        context: dict[str, Any] = dict(message.data) if isinstance(message.data, dict) else {}
        context.setdefault("value", value if value is not MISSING else message.data)
        context.setdefault("topic", message.topic)
        context.setdefault("ts", message.ts)
        try:
            return fmt.format_map(context)
        except (KeyError, IndexError, ValueError, TypeError) as error:
            return f"[format error: {error!s}]"
    if value is MISSING:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def sparkline_svg(values: Sequence[float]) -> str:
    """A small inline SVG polyline of ``values`` (numbers only; safe to embed)."""
    if len(values) < 2:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = SPARKLINE_WIDTH / (len(values) - 1)
    points = " ".join(
        f"{index * step:.1f},{SPARKLINE_HEIGHT - 2 - (value - low) / span * (SPARKLINE_HEIGHT - 4):.1f}"
        for index, value in enumerate(values)
    )
    return (
        f'<svg width="{SPARKLINE_WIDTH}" height="{SPARKLINE_HEIGHT}" style="vertical-align:middle">'
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{points}"/></svg>'
    )


class LiveValue(View):
    """The latest value of ``topic`` (or of any topic matching a pattern), formatted.

    Args:
        topic: topic or pattern.
        fmt: a :meth:`str.format` template, e.g. ``"{value:.1f} °C"``.
        field: the value's field (dotted path, callable, or None for the payload).
        label: text shown before the value (defaults to the topic).
        sparkline: False, True (the last 50 values) or the number of values to draw.
        max_fps, client, url, token, last, loop: see :class:`~rtnb.notebook._view.View`.
    """

    def __init__(
        self,
        topic: str,
        fmt: str | None = None,
        *,
        field: Field = "value",
        label: str | None = None,
        sparkline: bool | int = False,
        max_fps: float = 10.0,
        client: Any = None,
        url: str | None = None,
        token: str | None = None,
        last: int | None = 1,
        loop: Any = None,
    ) -> None:
        super().__init__(topic, client=client, url=url, token=token, max_fps=max_fps, last=last, loop=loop)
        import ipywidgets

        self.fmt, self.field = fmt, field
        self.label = topic if label is None else label
        length = 50 if sparkline is True else int(sparkline)
        self.history: deque[float] | None = deque(maxlen=length) if length > 1 else None
        # the sparkline needs every value of a frame, not just the last
        self.keep_per_topic = max(1, length) if self.history is not None else 1
        self.text = "—"
        self.latest: Message | None = None
        self.widget = ipywidgets.HTML(value=self._render())
        self._start()

    def _render(self) -> str:
        spark = sparkline_svg(list(self.history)) if self.history is not None else ""
        return (
            '<div class="rtnb-value" style="font-family:sans-serif">'
            f'<div style="font-size:0.85em;opacity:0.7">{html.escape(self.label)}</div>'
            f'<span style="font-size:1.8em;font-weight:600">{html.escape(self.text)}</span> {spark}</div>'
        )

    def apply_frame(self, frame: Frame) -> None:
        if self.history is not None:
            arrived = sorted((m for ms in frame.messages.values() for m in ms), key=lambda m: m.ts)
            for message in arrived:
                value = number(extract(message.data, self.field))
                if value is not None:
                    self.history.append(value)
        latest = frame.latest()
        if latest is None:
            return
        self.latest = latest
        self.text = format_value(latest, self.field, self.fmt)
        self.widget.value = self._render()


Threshold = tuple[float, str]


class Gauge(View):
    """A plotly gauge of the latest value of ``topic``, with coloured threshold bands.

    Args:
        topic: topic or pattern.
        field: the value's field.
        min, max: the gauge's range.
        thresholds: ``[(upper_bound, colour), ...]`` in increasing order, e.g.
            ``[(60, "green"), (85, "orange"), (100, "red")]``; the bar takes the
            colour of the band the value is in.
        label: the gauge's title (defaults to the topic).
        units: suffix after the number.
        max_fps, client, url, token, last, loop: see :class:`~rtnb.notebook._view.View`.
    """

    def __init__(
        self,
        topic: str,
        *,
        field: Field = "value",
        min: float = 0.0,
        max: float = 100.0,
        thresholds: Sequence[Threshold] = (),
        label: str | None = None,
        units: str = "",
        height: int = 220,
        max_fps: float = 10.0,
        client: Any = None,
        url: str | None = None,
        token: str | None = None,
        last: int | None = 1,
        loop: Any = None,
    ) -> None:
        if not max > min:
            raise BadField(f"Gauge max ({max}) must be greater than min ({min}).")
        bounds = [bound for bound, _colour in thresholds]
        if bounds != sorted(bounds):
            raise BadField("Gauge thresholds must be in increasing order of their upper bounds.")
        super().__init__(topic, client=client, url=url, token=token, max_fps=max_fps, last=last, loop=loop)
        import plotly.graph_objects as go

        self.field, self.minimum, self.maximum = field, min, max
        self.thresholds = list(thresholds)
        self.value: float | None = None
        steps, lower = [], min
        for bound, colour in self.thresholds:
            steps.append({"range": [lower, bound], "color": colour, "thickness": 0.25})
            lower = bound
        indicator = go.Indicator(
            mode="gauge+number",
            value=None,
            title={"text": topic if label is None else label},
            number={"suffix": units},
            gauge={"axis": {"range": [min, max]}, "steps": steps, "bar": {"color": "#444"}},
        )
        layout = {"height": height, "margin": {"l": 30, "r": 30, "t": 50, "b": 10}}
        self.figure = go.FigureWidget(data=[indicator], layout=layout)
        self.widget = self.figure
        self._start()

    def colour_for(self, value: float) -> str:
        """The colour of the threshold band ``value`` falls in (dark grey without bands)."""
        for bound, colour in self.thresholds:
            if value <= bound:
                return colour
        return self.thresholds[-1][1] if self.thresholds else "#444"

    def apply_frame(self, frame: Frame) -> None:
        latest = frame.latest()
        value = None if latest is None else number(extract(latest.data, self.field))
        if value is None:
            return
        self.value = value
        trace = self.figure.data[0]
        with self.figure.batch_update():
            trace.value = value
            trace.gauge.bar.color = self.colour_for(value)
