"""The Recorder: every message of some patterns, into pandas.

A recorder subscribes through the Python client and hands each delivered item
to :meth:`Recorder.add` (on the client's thread). ``add`` costs a list append;
the columnar buffer seals rows into Arrow chunks every ``chunk_rows`` messages,
and with ``spill`` those chunks go straight to a Parquet file, so memory stays
bounded by one chunk however long the session.

Unlike notebook views, a recorder never conflates: it keeps every message, and
it keeps every gap (the hub's ``gap`` notices, plus holes it finds itself in a
topic's offsets) in :attr:`Recorder.gaps`. Gaps are a separate table, not rows
of the frame: see :meth:`Recorder.gaps_frame`.

States: ``NEW`` -> ``RECORDING`` -> ``STOPPED``. A recorder that reaches
``max_rows`` stops taking messages (it is *full*) but stays ``RECORDING`` until
:meth:`stop`, which :meth:`wait` callers usually do next.
"""

from __future__ import annotations

import enum
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import BadArgument, BadArgumentType, Timeout
from ..core.history import Gap
from ..core.message import Message
from ..core.topics import validate_pattern
from ._buffer import DEFAULT_CHUNK_ROWS, Chunk, ColumnBuffer, RecordedGap
from ._feed import Feed
from ._frames import gaps_frame, wide_frame
from ._layout import RecordingInfo, frame_from_table, join_chunks, table_from_frame
from ._storage import FileFormat, SpillWriter, read_table, write_table

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["Recorder", "RecorderState", "gaps_frame", "wide_frame"]


class RecorderState(enum.Enum):
    NEW = "new"
    RECORDING = "recording"
    STOPPED = "stopped"


class Recorder:
    """Record every message matching ``patterns`` from a hub.

    Args:
        source: a hub URL (``"http://127.0.0.1:8765"``), an object with a ``url``
            (:class:`~rtnb.server.runner.HubServer`, an embedded hub), a sync
            :class:`rtnb.client.Client` or an :class:`rtnb.client.AsyncClient`
            (then use ``await recorder.astart()`` / ``async with``), or ``None``
            to feed the recorder yourself with :meth:`add`.
        patterns: topic patterns (``+`` and ``#`` wildcards) to record.
        max_rows: stop taking messages after this many rows; ``None``: no limit.
        spill: a ``.parquet`` path; sealed chunks are written there as row groups
            while recording, so memory stays bounded, and :meth:`stop` completes
            the file. ``None`` keeps everything in memory.
        raw: also keep each payload as JSON in a ``data`` column.
        last: ask the hub for the last N retained messages of each topic first.
        since: ``{topic: last offset seen}``: resume from there (a recording that
            continues another); what the hub no longer has comes as gaps.
        chunk_rows: rows per sealed chunk / Parquet row group.
        token: access token for a hub with ``--auth jwt``, used when the
            recorder connects itself (``source`` is a URL or has a ``url``).

    Raises:
        InvalidPattern: a pattern breaks the naming rules.
        BadArgument (a ValueError): an argument is out of range.
    """

    def __init__(
        self,
        source: Any,
        *patterns: str,
        max_rows: int | None = None,
        spill: str | os.PathLike[str] | None = None,
        raw: bool = False,
        last: int | None = None,
        since: dict[str, int] | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        token: str | None = None,
    ) -> None:
        if source is not None and not patterns:
            raise BadArgument("Give at least one topic pattern to record, e.g. Recorder(url, 'plant/#').")
        for pattern in patterns:
            validate_pattern(pattern)
        if max_rows is not None and max_rows < 1:
            raise BadArgument("max_rows must be at least 1 (or None for no limit).")
        if chunk_rows < 1:
            raise BadArgument("chunk_rows must be at least 1.")
        if last is not None and last < 0:
            raise BadArgument("last must be >= 0.")
        self.source = source
        self.patterns = tuple(patterns)
        self.max_rows = max_rows
        self.last = last
        self.since = dict(since) if since else None
        self.token = token
        self.state = RecorderState.NEW
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self._buffer = ColumnBuffer(chunk_rows, keep_raw=raw)
        self._chunks: list[Chunk] = []
        self._spill = SpillWriter(spill) if spill is not None else None
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._accepted = 0  # messages taken by add(), including ones still pending
        self._row_targets: list[int] = []  # the rows= of every wait() in progress
        self._wake_at: int | None = None  # add() notifies waiters once _accepted reaches this
        self._full = False
        self._feed = self._new_feed()
        self._async = False
        self._saved_path: Path | None = None
        self._frame: pd.DataFrame | None = None  # built once the recording is stopped

    # -- feeding -----------------------------------------------------------------

    def add(self, item: Message | Gap) -> None:
        """Take one delivered item (the subscription callback). Thread-safe.

        Messages past ``max_rows`` and items arriving after :meth:`stop` are not kept.
        """
        with self._lock:
            if self._full or self.state is RecorderState.STOPPED:
                return
            buffer = self._buffer
            if type(item) is Message or isinstance(item, Message):
                buffer.pending.append(item)
                self._accepted += 1
                if self.max_rows is not None and self._accepted >= self.max_rows:
                    self._full = True
                    self._seal()
                    self._changed.notify_all()
                    return
                if len(buffer.pending) >= buffer.chunk_rows:
                    self._seal()
                if self._wake_at is not None and self._accepted >= self._wake_at:
                    self._changed.notify_all()
            elif isinstance(item, Gap):
                buffer.add_gap(item)
                self._changed.notify_all()
            else:
                raise BadArgumentType(f"A recorder takes messages and gaps, not {type(item).__name__}.")

    def add_many(self, items: Sequence[Message | Gap]) -> None:
        """Take many items at once (e.g. a batch drained from a subscription)."""
        add = self.add
        for item in items:
            add(item)

    def _seal(self) -> None:
        chunk = self._buffer.seal()
        if chunk is None:
            return
        if self._spill is not None:
            self._spill.write(chunk)
        else:
            self._chunks.append(chunk)

    # -- lifecycle ---------------------------------------------------------------

    def _transition(self, new: RecorderState) -> None:
        allowed = {
            RecorderState.NEW: {RecorderState.RECORDING, RecorderState.STOPPED},
            RecorderState.RECORDING: {RecorderState.STOPPED},
            RecorderState.STOPPED: set(),
        }
        if new not in allowed[self.state]:
            raise RuntimeError(f"A recorder cannot go from {self.state.value} to {new.value}.")
        self.state = new

    def start(self) -> Recorder:
        """Connect (when given a URL) and subscribe; returns the recorder.

        Raises:
            RuntimeError: already started or stopped.
            RtnbError: the hub refused or could not be reached.
        """
        self._begin()
        if self.source is None:
            return self
        try:
            self._feed.open()
        except BaseException:
            self._abandon()
            raise
        return self

    async def astart(self) -> Recorder:
        """Subscribe through an :class:`~rtnb.client.AsyncClient` (or a URL, connecting one)."""
        self._begin()
        self._async = True
        if self.source is None:
            return self
        try:
            await self._feed.aopen()
        except BaseException:
            self._abandon()
            raise
        return self

    def _new_feed(self) -> Feed:
        return Feed(self.source, self.patterns, self.add, last=self.last, since=self.since, token=self.token)

    def _begin(self) -> None:
        with self._lock:
            self._transition(RecorderState.RECORDING)
            self.started_at = time.time()
        self._feed = self._new_feed()  # with the options as they are now

    def _abandon(self) -> None:
        """The start failed (the feed closed what it opened): stop, and drop the spill file."""
        with self._lock:
            self.state = RecorderState.STOPPED
        if self._spill is not None:
            self._spill.discard()

    def stop(self) -> Recorder:
        """Unsubscribe, seal what is pending, complete the spill file; returns the recorder.

        Stopping twice is harmless.
        """
        if self.state is RecorderState.STOPPED:
            return self
        if self._async:
            raise RuntimeError("This recorder was started with astart(); stop it with 'await recorder.astop()'.")
        self._feed.close()
        self._finish()
        return self

    async def astop(self) -> Recorder:
        """The async counterpart of :meth:`stop`."""
        if self.state is RecorderState.STOPPED:
            return self
        await self._feed.aclose()
        self._finish()
        return self

    def _finish(self) -> None:
        with self._lock:
            if self.state is RecorderState.STOPPED:
                return
            self._seal()
            self.state = RecorderState.STOPPED
            self.stopped_at = time.time()
            self._changed.notify_all()
            if self._spill is not None:
                # every chunk is on disk now: the completed file *is* the recording
                self._saved_path = self._spill.finish([], self._info())

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> Recorder:
        return await self.astart()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.astop()

    # -- observing ---------------------------------------------------------------

    @property
    def rows(self) -> int:
        """Messages recorded so far (live)."""
        return self._accepted - self._buffer.duplicates

    @property
    def full(self) -> bool:
        """Whether ``max_rows`` was reached."""
        return self._full

    @property
    def duplicates(self) -> int:
        """Messages dropped because their offset was already recorded (after a reconnect)."""
        return self._buffer.duplicates

    @property
    def gaps(self) -> list[RecordedGap]:
        """Every loss the recording knows of, in arrival order."""
        with self._lock:
            return list(self._buffer.gaps)

    @property
    def pending_rows(self) -> int:
        """Messages taken but not yet sealed into a chunk (at most ``chunk_rows``)."""
        return len(self._buffer.pending)

    @property
    def spill_path(self) -> Path | None:
        return None if self._spill is None else self._spill.path

    @property
    def memory_bytes(self) -> int:
        """Bytes held by sealed in-memory chunks (pending rows not counted)."""
        with self._lock:
            return sum(chunk.nbytes for chunk in self._chunks)

    def wait(self, rows: int | None = None, timeout: float | None = None) -> Recorder:
        """Block until ``rows`` messages are recorded (or, without ``rows``, until
        the recorder is full or stopped); returns the recorder.

        Raises:
            Timeout: not reached within ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout

        def reached() -> bool:
            if self._full or self.state is RecorderState.STOPPED:
                return True
            return rows is not None and self._accepted >= rows

        with self._changed:
            if rows is not None:
                self._row_targets.append(rows)
                self._wake_at = min(self._row_targets)
            try:
                while not reached():
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        target = f"{rows} rows" if rows is not None else "the end of the recording"
                        raise Timeout(f"Waited {timeout}s for {target}; {self.rows} recorded so far.")
                    self._changed.wait(remaining)
            finally:
                if rows is not None:
                    self._row_targets.remove(rows)
                    self._wake_at = min(self._row_targets, default=None)
        return self

    # -- results -----------------------------------------------------------------

    def _info(self) -> RecordingInfo:
        return RecordingInfo(set(), set(self._buffer.scalar_topics), list(self._buffer.gaps))

    def to_table(self) -> pa.Table:
        """Everything recorded so far as one Arrow table in the recording layout."""
        with self._lock:
            self._seal()
            if self._saved_path is not None:
                return read_table(self._saved_path)
            if self._frame is not None:
                return table_from_frame(self._frame)
            chunks = list(self._chunks)
            if self._spill is not None:
                chunks = [*self._spill.chunks(), *chunks]
            info = self._info()
        return join_chunks(chunks, info)

    def to_frame(self, *, wide: bool = False, raw: bool | None = None) -> pd.DataFrame:
        """Everything recorded so far as a pandas DataFrame (callable at any moment).

        Args:
            wide: one column per (topic, field), as a two-level column index,
                instead of one row layout shared by all topics.
            raw: include the raw payload column ``data``; ``None``: when recorded
                with ``raw=True``.

        Returns:
            Rows in arrival order with a UTC :class:`~pandas.DatetimeIndex` named
            ``time`` (the hub's timestamp); columns ``topic`` (categorical),
            ``offset``, ``epoch`` (int64), then the flattened payload. Gaps and
            scalar topics travel in ``frame.attrs["rtnb"]``.

        Raises:
            BadArgument (a ValueError): ``raw=True`` but the payloads were not kept.
        """
        if raw and not self._buffer.keep_raw:
            raise BadArgument("Raw payloads were not kept: record with Recorder(..., raw=True).")
        if self.state is RecorderState.STOPPED:
            frame = self._final_frame()
            if raw is False and "data" in frame.columns:
                frame = frame.drop(columns="data")
        else:
            frame = frame_from_table(self.to_table(), raw=raw is not False)
        return wide_frame(frame) if wide else frame

    def _final_frame(self) -> pd.DataFrame:
        """The frame of a stopped recording, built once.

        Its columns are built from the Arrow chunks one at a time while the
        chunks are let go, so memory peaks near one frame, not a buffer plus a
        frame. Each call returns a copy that shares the data (copy-on-write).
        """
        import pandas as pd

        with self._lock:
            if self._frame is None:
                self._frame = frame_from_table(self._take_table(), consume=True)
            frame = self._frame
        copy_on_write = int(pd.__version__.split(".")[0]) >= 3 or bool(pd.get_option("mode.copy_on_write"))
        return frame.copy(deep=not copy_on_write)

    def _take_table(self) -> pa.Table:
        """The whole recording as a table that nothing else references (the chunks are dropped)."""
        if self._saved_path is not None:
            return read_table(self._saved_path)
        chunks, self._chunks = self._chunks, []
        return join_chunks(chunks, self._info())

    def gaps_frame(self) -> pd.DataFrame:
        """The gaps as a DataFrame indexed by arrival time."""
        return gaps_frame(self.gaps)

    def save(self, path: str | os.PathLike[str], format: FileFormat | None = None) -> Path:
        """Write the recording to ``path`` (``.parquet`` or ``.csv``); returns the path."""
        return write_table(self.to_table(), path, format)

    def __repr__(self) -> str:
        return f"<Recorder {self.state.value} {', '.join(self.patterns) or '(fed by add)'}: {self.rows} rows>"
