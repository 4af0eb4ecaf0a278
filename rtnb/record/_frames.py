"""Other shapes of a recording frame: the wide form, and the gaps as a table.

:meth:`Recorder.to_frame <rtnb.record.Recorder.to_frame>` gives one row per
message in the layout of :mod:`rtnb.record._layout`. Two views of it are often
wanted as well, and both work on a loaded file as on a live recorder, so they
are plain functions of their own: :func:`wide_frame` (one column per topic and
field) and :func:`gaps_frame` (the losses a recording knows of, as a frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._buffer import RecordedGap

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["gaps_frame", "wide_frame"]


def gaps_frame(gaps: Sequence[RecordedGap | dict[str, Any]]) -> pd.DataFrame:
    """Gaps (recorded ones, or the records in ``frame.attrs["rtnb"]["gaps"]``) as a DataFrame."""
    import pandas as pd

    records = [gap.to_record() if isinstance(gap, RecordedGap) else dict(gap) for gap in gaps]
    frame = pd.DataFrame.from_records(records, columns=["received", "topic", "from", "to", "reason", "epoch"])
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("received"), unit="s", utc=True), name="received")
    for name in ("from", "to", "epoch"):
        frame[name] = frame[name].astype(pd.Int64Dtype())
    return frame


def wide_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A recording frame in wide form: one column per (topic, field), same rows.

    Each row still is one message; only its own topic's columns are filled.
    Fields a topic never had get no column.
    """
    import numpy as np
    import pandas as pd

    fields = [name for name in frame.columns if name not in ("topic", "offset", "epoch", "data")]
    topics = frame["topic"].astype(object).to_numpy()
    pieces = []
    for topic in sorted(set(topics)):
        positions = np.flatnonzero(topics == topic)
        rows = frame.iloc[positions]
        used = [name for name in fields if rows[name].notna().any()] or fields[:1]
        piece = rows[used].set_axis(pd.MultiIndex.from_product([[topic], used], names=["topic", "field"]), axis=1)
        pieces.append(piece.set_axis(positions, axis=0))
    if not pieces:
        return pd.DataFrame(index=frame.index, columns=pd.MultiIndex.from_tuples([], names=["topic", "field"]))
    wide = pd.concat(pieces, axis=0).sort_index()
    wide.index = frame.index
    wide.attrs = dict(frame.attrs)
    return wide
