"""Record live sessions into pandas, save them, and replay them.

::

    rec = rtnb.Recorder(hub.url, "plant/#").start()
    rec.wait(rows=1000, timeout=30)
    frame = rec.stop().to_frame()          # UTC DatetimeIndex, topic/offset/epoch, flattened payload
    rec.save("run.parquet")                # or .csv
    frame = rtnb.load("run.parquet")
    rtnb.replay(frame, hub.url, speed=10).wait()

Needs the ``record`` extra (pandas, pyarrow, tqdm). ``import rtnb`` does not
import this package; ``rtnb.Recorder``, ``rtnb.load`` and ``rtnb.replay`` load it
on first use.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ._buffer import DEFAULT_CHUNK_ROWS, RecordedGap
from ._layout import FRAME_ATTRIBUTE, frame_from_table, table_from_frame
from ._recorder import Recorder, RecorderState, gaps_frame, wide_frame
from ._replay import Replay, ReplayState, replay
from ._storage import FileFormat, read_table, write_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "FRAME_ATTRIBUTE",
    "RecordedGap",
    "Recorder",
    "RecorderState",
    "Replay",
    "ReplayState",
    "frame_from_messages",
    "gaps_frame",
    "load",
    "replay",
    "save",
    "wide_frame",
]


def load(path: str | os.PathLike[str], format: FileFormat | None = None, *, raw: bool = True) -> pd.DataFrame:
    """Read a recording saved as Parquet or CSV into a DataFrame.

    The frame is the one :meth:`Recorder.to_frame` gave: same columns, dtypes,
    timestamps to the nanosecond, and ``frame.attrs["rtnb"]`` (gaps, scalar topics).

    Raises:
        BadField: missing file, unknown format, or not a recording.
    """
    return frame_from_table(read_table(path, format), raw=raw)


def save(recording: Any, path: str | os.PathLike[str], format: FileFormat | None = None) -> os.PathLike[str]:
    """Write a recording (a :class:`Recorder` or a frame from one) to ``.parquet`` or ``.csv``.

    Raises:
        BadField: unknown format, or a frame that is not in the recording layout.
    """
    if isinstance(recording, Recorder):
        return recording.save(path, format)
    return write_table(table_from_frame(recording), path, format)


def frame_from_messages(messages: Any, *, raw: bool = False, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> pd.DataFrame:
    """A recording frame from messages (and gaps) you already hold, e.g. a test's."""
    recorder = Recorder(None, raw=raw, chunk_rows=chunk_rows).start()
    recorder.add_many(list(messages))
    return recorder.stop().to_frame()
