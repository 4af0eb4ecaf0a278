"""The kernel's buffer for views that show messages rather than series (values, gauges, tables).

Per topic, the newest ``keep`` messages. In relay mode they travel as JSON
``{"op": "rows", "rows": [...]}``: these views show one value per topic (or a
few table rows), so each frame carries at most ``keep`` rows per topic,
whatever the message rate.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from ..core.message import Message
from ..core.position import Position
from ._pump import Frame

__all__ = ["RowBuffer"]


class RowBuffer:
    """Newest messages per topic, with the positions relay works from.

    Args:
        keep: messages kept per topic.
        describe: extra fields of a row (e.g. the kernel-formatted ``text``), from its message.
    """

    def __init__(self, keep: int, describe: Callable[[Message], dict[str, Any]] | None = None) -> None:
        self.keep = keep
        self.describe = describe
        self.topics: dict[str, deque[Message]] = {}

    def add(self, frame: Frame) -> list[Message]:
        """Take a frame's messages; returns them oldest first."""
        arrived = sorted((m for ms in frame.messages.values() for m in ms), key=lambda m: (m.ts, m.offset))
        for message in arrived:
            kept = self.topics.get(message.topic)
            if kept is None:
                kept = self.topics[message.topic] = deque(maxlen=self.keep)
            elif kept and kept[-1].epoch != message.epoch:
                kept.clear()
            kept.append(message)
        return arrived

    def end(self) -> dict[str, Position]:
        return {topic: Position(kept[-1].epoch, kept[-1].offset) for topic, kept in self.topics.items() if kept}

    def encode_since(self, since: dict[str, Position]) -> list[tuple[dict[str, Any], list[bytes]]]:
        rows = []
        for topic, kept in self.topics.items():
            epoch, offset = since.get(topic) or (None, 0)  # a Position, or any (epoch, offset) pair
            for message in kept:
                if epoch == message.epoch and message.offset <= offset:
                    continue
                row = {
                    "topic": topic,
                    "epoch": message.epoch,
                    "offset": message.offset,
                    "ts": message.ts,
                    "data": message.data,
                }
                if self.describe is not None:
                    row.update(self.describe(message))
                rows.append(row)
        if not rows:
            return []
        rows.sort(key=lambda row: (row["ts"], row["offset"]))
        return [({"op": "rows", "rows": rows}, [])]
