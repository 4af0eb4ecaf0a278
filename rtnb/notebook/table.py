"""``LiveTable``: the latest row per topic, or the last N rows, drawn in the browser.

The browser builds the table with DOM text nodes (never HTML from payloads: a
``<script>`` or ``<img onerror=...>`` in a device's string stays text), sorts
it by the clicked column and filters it by the text typed above it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import orjson

from ..core.errors import BadArgument
from ..core.position import Position
from ._pump import Frame
from ._rows import RowBuffer
from ._view import View

__all__ = ["MAX_AUTO_COLUMNS", "LiveTable", "cell_text"]

#: columns shown at most when they are discovered from payloads
MAX_AUTO_COLUMNS = 20


def cell_text(value: Any) -> str:
    """How a payload value reads in a table cell (not escaped)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value)


class LiveTable(View):
    """A table of messages matching ``pattern``.

    Args:
        pattern: topic or pattern.
        columns: payload keys to show; discovered from payloads when omitted
            (first seen first, at most :data:`MAX_AUTO_COLUMNS`).
        rows: None shows the latest row of each topic (sorted by topic, at most
            ``max_topics``); a number shows the last that many rows, newest first.
        max_topics: topics shown at most in latest-per-topic mode.
        max_fps, transport, client, url, token, last, loop: see :class:`~rtnb.notebook._view.View`.
    """

    view_kind = "table"

    def __init__(
        self,
        pattern: str,
        columns: Sequence[str] | None = None,
        *,
        rows: int | None = None,
        max_topics: int = 100,
        max_fps: float = 5.0,
        transport: str = "auto",
        client: Any = None,
        url: str | None = None,
        token: str | None = None,
        last: int | None = None,
        loop: Any = None,
    ) -> None:
        if rows is not None and rows < 1:
            raise BadArgument(f"rows must be at least 1, not {rows}.")
        super().__init__(
            pattern, transport=transport, client=client, url=url, token=token, max_fps=max_fps, last=last, loop=loop
        )
        self.columns: list[str] = list(columns) if columns is not None else []
        self._discover = columns is None
        self.rows_limit = rows
        self.max_topics = max_topics
        self.keep_per_topic = rows or 1
        self.buffer = RowBuffer(self.keep_per_topic)
        self.latest: dict[str, tuple[str, float, Any]] = {}
        self.recent: deque[tuple[str, float, Any]] = deque(maxlen=rows or 1)
        self._start()

    def browser_config(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "columns": self.columns if not self._discover else None,
            "max_columns": MAX_AUTO_COLUMNS,
            "rows": self.rows_limit,
            "max_topics": self.max_topics,
            "last": self.history_last(),
        }

    def history_last(self) -> int | None:
        return self.last if self.last is not None else self.keep_per_topic

    def _learn_columns(self, data: Any) -> None:
        keys = data.keys() if isinstance(data, dict) else ("value",)
        for key in keys:
            if len(self.columns) >= MAX_AUTO_COLUMNS:
                return
            if key not in self.columns:
                self.columns.append(str(key))

    def apply_frame(self, frame: Frame) -> None:
        for message in self.buffer.add(frame):
            if self._discover:
                self._learn_columns(message.data)
            row = (message.topic, message.ts, message.data)
            if self.rows_limit is None:
                self.latest[message.topic] = row
            else:
                self.recent.append(row)

    def buffer_end(self) -> dict[str, Position]:
        return self.buffer.end()

    def encode_since(self, since: dict[str, Position]) -> list[tuple[dict[str, Any], list[bytes]]]:
        return self.buffer.encode_since(since)

    def static_html(self) -> str:
        from ._static import table_html, wrap

        return wrap("table", self.pattern, table_html(self.columns, self.current_rows()))

    def current_rows(self) -> list[tuple[str, float, Any]]:
        """The rows the kernel holds: ``(topic, timestamp, payload)``."""
        if self.rows_limit is None:
            return [self.latest[topic] for topic in sorted(self.latest)]
        return list(reversed(self.recent))
