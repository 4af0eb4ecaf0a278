"""The recorder's columnar buffer: messages in, Arrow chunks out.

Appending a message costs one list append; every ``chunk_rows`` messages the
pending ones are *sealed* into an Arrow table (see :mod:`._flatten`) and the
Python objects are let go. Memory is then the compact columnar size of what
was recorded plus at most one chunk of pending objects, and building a frame
joins chunks instead of growing a DataFrame row by row.

Sealing also checks order: per topic it expects offsets to follow each other in
one epoch. A message at or below the last offset seen (a duplicate after a
reconnect) is dropped and counted; a hole that no ``gap`` notice explained is
recorded as a gap with reason ``"unavailable"``, so a recording never hides a loss.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from ..core.history import Gap
from ..core.message import Message
from ._flatten import flatten_payloads

__all__ = ["DEFAULT_CHUNK_ROWS", "Chunk", "ColumnBuffer", "RecordedGap", "seconds_to_nanoseconds"]

#: rows per sealed chunk (and per Parquet row group when spilling)
DEFAULT_CHUNK_ROWS = 16_384

TIME_TYPE = pa.timestamp("ns", tz="UTC")
TOPIC_TYPE = pa.dictionary(pa.int32(), pa.string())


@dataclass(frozen=True)
class RecordedGap:
    """A gap as a recording keeps it: the hub's notice plus when it arrived."""

    received: float
    topic: str
    from_offset: int
    to_offset: int | None
    reason: str
    epoch: int | None

    def to_record(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "topic": self.topic,
            "from": self.from_offset,
            "to": self.to_offset,
            "reason": self.reason,
            "epoch": self.epoch,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> RecordedGap:
        return cls(
            float(record["received"]),
            str(record["topic"]),
            int(record["from"]),
            None if record.get("to") is None else int(record["to"]),
            str(record["reason"]),
            None if record.get("epoch") is None else int(record["epoch"]),
        )


@dataclass
class Chunk:
    """Sealed rows: an Arrow table in the recording layout and its JSON columns."""

    table: pa.Table
    json_columns: set[str] = field(default_factory=set)

    @property
    def rows(self) -> int:
        return int(self.table.num_rows)  # pyarrow has no type hints

    @property
    def nbytes(self) -> int:
        return int(self.table.nbytes)


def seconds_to_nanoseconds(seconds: np.ndarray) -> np.ndarray:
    """UNIX seconds (float64) to integer nanoseconds, so that the way back is exact.

    Splitting whole seconds from the fraction keeps every bit of the float: a
    float64 near 1.7e9 has a resolution of about 240 ns, finer steps than that
    cannot be lost and ``ns / 1e9`` gives the original float again.
    """
    whole = np.floor(seconds)
    fraction = np.round((seconds - whole) * 1e9).astype(np.int64)
    nanoseconds: np.ndarray = whole.astype(np.int64) * 1_000_000_000 + fraction
    return nanoseconds


class ColumnBuffer:
    """Pending messages and sealed chunks of one recording (not thread-safe itself).

    Args:
        chunk_rows: messages per sealed chunk.
        keep_raw: also keep each payload as JSON text in a ``data`` column.
    """

    def __init__(self, chunk_rows: int = DEFAULT_CHUNK_ROWS, *, keep_raw: bool = False) -> None:
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be >= 1")
        self.chunk_rows = chunk_rows
        self.keep_raw = keep_raw
        self.pending: list[Message | Gap] = []
        self.gaps: list[RecordedGap] = []
        self.duplicates = 0
        self.rows = 0  # messages accepted so far (pending ones counted after sealing)
        self.scalar_topics: set[str] = set()
        self._topic_codes: dict[str, int] = {}
        self._topic_names: list[str] = []
        self._last: dict[str, tuple[int, int]] = {}  # topic -> (epoch, last offset)

    def add_gap(self, gap: Gap, received: float | None = None) -> None:
        """Record the hub's notice that messages are lost, and expect what follows it."""
        self.gaps.append(
            RecordedGap(
                time.time() if received is None else received,
                gap.topic,
                gap.from_offset,
                gap.to_offset,
                gap.reason,
                gap.epoch,
            )
        )
        # messages before the gap may still be pending: expectations change at seal time
        self.pending.append(gap)

    def seal(self) -> Chunk | None:
        """Turn the pending messages into a chunk; None when nothing is pending."""
        items, self.pending = self.pending, []
        if not items:
            return None
        topics: list[str] = []
        offsets: list[int] = []
        epochs: list[int] = []
        stamps: list[float] = []
        payloads: list[Any] = []
        last = self._last
        scalar_topics = self.scalar_topics
        gaps = self.gaps
        for item in items:
            if isinstance(item, Gap):
                self._expect_after_gap(item)
                continue
            topic, offset, epoch = item.topic, item.offset, item.epoch
            previous = last.get(topic)
            if previous is not None:
                previous_epoch, previous_offset = previous
                if previous_epoch == epoch:
                    if offset <= previous_offset:
                        self.duplicates += 1
                        continue
                    if offset != previous_offset + 1:
                        gaps.append(RecordedGap(item.ts, topic, previous_offset + 1, offset - 1, "unavailable", epoch))
                else:
                    gaps.append(RecordedGap(item.ts, topic, previous_offset + 1, None, "epoch_changed", previous_epoch))
            last[topic] = (epoch, offset)
            data = item.data
            if type(data) is not dict:
                scalar_topics.add(topic)
            topics.append(topic)
            offsets.append(offset)
            epochs.append(epoch)
            stamps.append(item.ts)
            payloads.append(data)
        if not topics:
            return None
        self.rows += len(topics)
        return self._build_chunk(topics, offsets, epochs, stamps, payloads)

    def _expect_after_gap(self, gap: Gap) -> None:
        previous = self._last.get(gap.topic)
        if gap.to_offset is None:
            self._last.pop(gap.topic, None)  # a new epoch: whatever comes next starts it
        elif previous is None or gap.epoch is None or previous[0] == gap.epoch:
            epoch = gap.epoch if gap.epoch is not None else (previous[0] if previous else None)
            if epoch is not None:
                self._last[gap.topic] = (epoch, max(gap.to_offset, previous[1] if previous else 0))

    def topic_code(self, topic: str) -> int:
        code = self._topic_codes.get(topic)
        if code is None:
            code = self._topic_codes[topic] = len(self._topic_names)
            self._topic_names.append(topic)
        return code

    def _build_chunk(
        self, topics: list[str], offsets: list[int], epochs: list[int], stamps: list[float], payloads: list[Any]
    ) -> Chunk:
        code_of = self._topic_codes
        for topic in set(topics):
            if topic not in code_of:
                self.topic_code(topic)
        codes = pa.array([code_of[topic] for topic in topics], type=pa.int32())
        topic_array = pa.DictionaryArray.from_arrays(codes, pa.array(self._topic_names, type=pa.string()))
        nanoseconds = seconds_to_nanoseconds(np.asarray(stamps, dtype=np.float64))
        columns, json_columns = flatten_payloads(payloads)
        arrays: dict[str, pa.Array] = {
            "time": pa.array(nanoseconds, type=TIME_TYPE),
            "topic": topic_array,
            "offset": pa.array(offsets, type=pa.int64()),
            "epoch": pa.array(epochs, type=pa.int64()),
            **columns,
        }
        if self.keep_raw:
            dumps = orjson.dumps
            arrays["data"] = pa.array([dumps(payload).decode() for payload in payloads], type=pa.string())
            json_columns = {*json_columns, "data"}
        return Chunk(pa.table(arrays), json_columns)
