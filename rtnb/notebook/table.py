"""``LiveTable``: the latest row per topic, or the last N rows, as an HTML table.

Every cell, header and topic is HTML-escaped: payloads come from devices and
other people's code, and a table is exactly where a ``<script>`` or an
``<img onerror=...>`` hidden in a string would otherwise run in the notebook.
"""

from __future__ import annotations

import datetime
import html
from collections import deque
from collections.abc import Sequence
from typing import Any

import orjson

from ..core.message import Message
from ._pump import Frame
from ._view import View

__all__ = ["LiveTable", "render_table"]

#: columns shown at most when they are discovered from payloads
MAX_AUTO_COLUMNS = 20


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value)


def render_table(columns: Sequence[str], rows: Sequence[tuple[str, float, Any]]) -> str:
    """An HTML table of ``rows`` (topic, timestamp, payload); everything escaped."""
    head = "".join(f"<th>{html.escape(name)}</th>" for name in ("topic", "time", *columns))
    body = []
    for topic, ts, data in rows:
        when = datetime.datetime.fromtimestamp(ts).strftime("%H:%M:%S.%f")[:-3]
        if isinstance(data, dict):
            cells = [data.get(column) for column in columns]
        else:
            cells = [data if column == "value" else None for column in columns]
        body.append(
            "<tr>"
            + f"<td>{html.escape(topic)}</td><td>{when}</td>"
            + "".join(f"<td>{html.escape(_cell_text(cell))}</td>" for cell in cells)
            + "</tr>"
        )
    return (
        '<table class="rtnb-table" style="border-collapse:collapse;font-family:sans-serif;font-size:0.9em">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


class LiveTable(View):
    """A table of messages matching ``pattern``.

    Args:
        pattern: topic or pattern.
        columns: payload keys to show; discovered from payloads when omitted
            (first seen first, at most :data:`MAX_AUTO_COLUMNS`).
        rows: None shows the latest row of each topic (sorted by topic, at most
            ``max_topics``); a number shows the last that many rows, newest first.
        max_topics: topics shown at most in latest-per-topic mode.
        max_fps, client, url, token, last, loop: see :class:`~rtnb.notebook._view.View`.
    """

    def __init__(
        self,
        pattern: str,
        columns: Sequence[str] | None = None,
        *,
        rows: int | None = None,
        max_topics: int = 100,
        max_fps: float = 5.0,
        client: Any = None,
        url: str | None = None,
        token: str | None = None,
        last: int | None = None,
        loop: Any = None,
    ) -> None:
        if rows is not None and rows < 1:
            from ..core.errors import BadField

            raise BadField(f"rows must be at least 1, not {rows}.")
        super().__init__(pattern, client=client, url=url, token=token, max_fps=max_fps, last=last, loop=loop)
        import ipywidgets

        self.columns: list[str] = list(columns) if columns is not None else []
        self._discover = columns is None
        self.rows_limit = rows
        self.max_topics = max_topics
        self.keep_per_topic = rows or 1
        self.latest: dict[str, tuple[str, float, Any]] = {}
        self.recent: deque[tuple[str, float, Any]] = deque(maxlen=rows or 1)
        self.widget = ipywidgets.HTML(value=render_table(self.columns, []))
        self._start()

    def _learn_columns(self, message: Message) -> None:
        data = message.data
        keys = data.keys() if isinstance(data, dict) else ("value",)
        for key in keys:
            if len(self.columns) >= MAX_AUTO_COLUMNS:
                return
            if key not in self.columns:
                self.columns.append(str(key))

    def apply_frame(self, frame: Frame) -> None:
        arrived = sorted((m for ms in frame.messages.values() for m in ms), key=lambda m: (m.ts, m.offset))
        for message in arrived:
            if self._discover:
                self._learn_columns(message)
            row = (message.topic, message.ts, message.data)
            if self.rows_limit is None:
                self.latest[message.topic] = row
            else:
                self.recent.append(row)
        self.widget.value = render_table(self.columns, self.current_rows())

    def current_rows(self) -> list[tuple[str, float, Any]]:
        """The rows on display: ``(topic, timestamp, payload)``."""
        if self.rows_limit is None:
            return [self.latest[topic] for topic in sorted(self.latest)]
        return list(reversed(self.recent))
