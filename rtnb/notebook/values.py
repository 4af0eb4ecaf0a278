"""``LiveValue`` (a formatted latest value, optional sparkline) and ``Gauge``.

Both are drawn in the browser (``static/views.js``): the value as text, the
sparkline as an SVG polyline, the gauge as an SVG arc with its threshold bands,
all sized by their cell. The kernel keeps the newest message(s) per topic for
relay and for reading back (:attr:`LiveValue.latest`, :attr:`Gauge.value`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

from ..core.errors import BadArgument
from ..core.message import Message
from ..core.position import Position
from ._fields import MISSING, Field, extract, number
from ._pump import Frame
from ._rows import RowBuffer
from ._view import View

__all__ = ["Gauge", "LiveValue", "browser_can_format", "format_value"]

#: the replacement fields the browser formats itself: ``{name}`` or ``{name:spec}``
#: with spec ``[,][.N][f|g|e|d|%]``; anything else is formatted in the kernel (relay)
_BROWSER_FIELD = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*(?::,?(?:\.\d+)?[fgde%]?)?\}")


def browser_can_format(fmt: str | None) -> bool:
    """True when the browser's formatter handles ``fmt`` exactly as :meth:`str.format` does."""
    if fmt is None:
        return True
    rest = _BROWSER_FIELD.sub("", fmt.replace("{{", "").replace("}}", ""))
    return "{" not in rest and "}" not in rest


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


class LiveValue(View):
    """The latest value of ``topic`` (or of any topic matching a pattern), formatted.

    Args:
        topic: topic or pattern.
        fmt: a :meth:`str.format` template, e.g. ``"{value:.1f} °C"``.
        field: the value's field (dotted path, callable, or None for the payload).
        label: text shown above the value (defaults to the topic).
        sparkline: False, True (the last 50 values) or the number of values to draw.
        max_fps, transport, client, url, token, last, loop: see :class:`~rtnb.notebook._view.View`.
    """

    view_kind = "value"

    def __init__(
        self,
        topic: str,
        fmt: str | None = None,
        *,
        field: Field = "value",
        label: str | None = None,
        sparkline: bool | int = False,
        max_fps: float = 10.0,
        transport: str = "auto",
        client: Any = None,
        url: str | None = None,
        token: str | None = None,
        last: int | None = None,
        loop: Any = None,
    ) -> None:
        super().__init__(
            topic, transport=transport, client=client, url=url, token=token, max_fps=max_fps, last=last, loop=loop
        )
        self.fmt, self.field = fmt, field
        self.label = topic if label is None else label
        self.sparkline = 50 if sparkline is True else int(sparkline)
        self.keep_per_topic = max(1, self.sparkline)
        self.rows = RowBuffer(self.keep_per_topic, self._describe)
        self.text = "—"
        self.latest: Message | None = None
        self._start()

    def browser_config(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "field": self.field if isinstance(self.field, str) else None,
            "fmt": self.fmt,
            "label": self.label,
            "sparkline": self.sparkline if self.sparkline > 1 else 0,
            "last": self.history_last(),
        }

    def direct_unsupported(self) -> str | None:
        if callable(self.field):
            return "the field is a Python callable, which only the kernel can run"
        if not browser_can_format(self.fmt):
            return f"the format {self.fmt!r} uses str.format features only the kernel has"
        return None

    def history_last(self) -> int | None:
        return self.last if self.last is not None else self.keep_per_topic

    def _describe(self, message: Message) -> dict[str, Any]:
        return {"text": format_value(message, self.field, self.fmt), "value": number(extract(message.data, self.field))}

    def static_html(self) -> str:
        from ._static import wrap

        text = f'<div style="font-size:1.8em;font-weight:600">{html.escape(self.text)}</div>'
        return wrap("value", self.label, text)

    def apply_frame(self, frame: Frame) -> None:
        arrived = self.rows.add(frame)
        if arrived:
            self.latest = arrived[-1]
            self.text = format_value(self.latest, self.field, self.fmt)

    def buffer_end(self) -> dict[str, Position]:
        return self.rows.end()

    def encode_since(self, since: dict[str, Position]) -> list[tuple[dict[str, Any], list[bytes]]]:
        return self.rows.encode_since(since)


Threshold = tuple[float, str]


class Gauge(View):
    """A gauge of the latest value of ``topic``, with coloured threshold bands.

    Args:
        topic: topic or pattern.
        field: the value's field.
        min, max: the gauge's range.
        thresholds: ``[(upper_bound, colour), ...]`` in increasing order, e.g.
            ``[(60, "green"), (85, "orange"), (100, "red")]``; the needle's arc
            takes the colour of the band the value is in.
        label: the gauge's title (defaults to the topic).
        units: suffix after the number.
        height: the gauge's height in pixels at most (it shrinks with its cell's width).
        max_fps, transport, client, url, token, last, loop: see :class:`~rtnb.notebook._view.View`.
    """

    view_kind = "gauge"

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
        height: int = 200,
        max_fps: float = 10.0,
        transport: str = "auto",
        client: Any = None,
        url: str | None = None,
        token: str | None = None,
        last: int | None = None,
        loop: Any = None,
    ) -> None:
        if not max > min:
            raise BadArgument(f"Gauge max ({max}) must be greater than min ({min}).")
        bounds = [bound for bound, _colour in thresholds]
        if bounds != sorted(bounds):
            raise BadArgument("Gauge thresholds must be in increasing order of their upper bounds.")
        super().__init__(
            topic, transport=transport, client=client, url=url, token=token, max_fps=max_fps, last=last, loop=loop
        )
        self.field, self.minimum, self.maximum = field, min, max
        self.thresholds = list(thresholds)
        self.label = topic if label is None else label
        self.units, self.height = units, height
        self.value: float | None = None
        self.rows = RowBuffer(1, self._describe)
        self._start()

    def browser_config(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "field": self.field if isinstance(self.field, str) else None,
            "min": self.minimum,
            "max": self.maximum,
            "thresholds": [[bound, colour] for bound, colour in self.thresholds],
            "label": self.label,
            "units": self.units,
            "height": self.height,
            "last": self.history_last(),
        }

    def direct_unsupported(self) -> str | None:
        return "the field is a Python callable, which only the kernel can run" if callable(self.field) else None

    def history_last(self) -> int | None:
        return self.last if self.last is not None else 1

    def _describe(self, message: Message) -> dict[str, Any]:
        return {"value": number(extract(message.data, self.field))}

    def colour_for(self, value: float) -> str:
        """The colour of the threshold band ``value`` falls in (the theme's accent without bands)."""
        for bound, colour in self.thresholds:
            if value <= bound:
                return colour
        return self.thresholds[-1][1] if self.thresholds else "var(--jp-brand-color1, #1976d2)"

    def static_html(self) -> str:
        from ._static import wrap

        if self.value is None:
            return wrap("gauge", self.label, '<div style="opacity:0.7">no data yet</div>')
        span = self.maximum - self.minimum
        share = max(0.0, min(1.0, (self.value - self.minimum) / span)) * 100
        colour = self.colour_for(self.value) if self.thresholds else "#1976d2"
        body = (
            f'<div style="font-size:1.8em;font-weight:600">{self.value:.4g}{html.escape(self.units)}</div>'
            '<div style="height:8px;background:rgba(128,128,128,0.3);border-radius:4px">'
            f'<div style="width:{share:.1f}%;height:8px;background:{html.escape(colour)};border-radius:4px"></div>'
            f'</div><div style="font-size:10px">{self.minimum:.4g} to {self.maximum:.4g}</div>'
        )
        return wrap("gauge", self.label, body)

    def apply_frame(self, frame: Frame) -> None:
        for message in reversed(self.rows.add(frame)):
            value = number(extract(message.data, self.field))
            if value is not None:
                self.value = value
                return

    def buffer_end(self) -> dict[str, Position]:
        return self.rows.end()

    def encode_since(self, since: dict[str, Position]) -> list[tuple[dict[str, Any], list[bytes]]]:
        return self.rows.encode_since(since)
