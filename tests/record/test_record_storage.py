"""Saving and loading recordings (Parquet, CSV) exactly, and spilling to Parquet with bounded memory."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import rtnb
from rtnb.core.errors import BadField
from rtnb.core.history import Gap
from rtnb.core.message import Message
from rtnb.record import Recorder, frame_from_messages, load, save

T0 = 1_790_000_000.987654
EPOCHS = {
    "plant/boiler/temp": 1_790_000_000_001,
    "plant/status": 1_790_000_000_002,
    "plant/counter": 1_790_000_000_003,
    "plant/pump/temp": 1_790_000_000_004,
}


def mixed_messages(count: int) -> Iterator[Message]:
    """Nested dicts, scalars, strings, missing fields, lists, unicode, on several topics."""
    offsets = dict.fromkeys(EPOCHS, 0)
    for index in range(count):
        kind = index % 6
        if kind == 0:
            topic, data = "plant/boiler/temp", {"value": 70 + index * 0.25, "unit": "°C", "meta": {"id": index}}
        elif kind == 1:
            topic, data = "plant/boiler/temp", {"value": 71.5, "on": index % 4 == 1}
        elif kind == 2:
            topic, data = "plant/status", "läuft ✓" if index % 4 else "stopped"
        elif kind == 3:
            topic, data = "plant/counter", index
        elif kind == 4:
            topic, data = "plant/pump/temp", {"value": -3.75e-9 * index, "tags": ["a", "ü"], "meta": {"note": None}}
        else:
            topic, data = "plant/pump/temp", {"value": 1e300, "meta": {"id": 2**62, "name": "泵"}}
        offsets[topic] += 1
        yield Message(topic, offsets[topic], EPOCHS[topic], T0 + index * 0.001, data)


def test_parquet_round_trip_is_exact(tmp_path: Path) -> None:
    messages = list(mixed_messages(600))
    messages.insert(100, Gap("plant/valve", 500, 510, "trimmed", 1_790_000_000_009))  # type: ignore[arg-type]
    frame = frame_from_messages(messages, chunk_rows=128)
    path = save(frame, tmp_path / "run.parquet")
    loaded = load(path)
    pd.testing.assert_frame_equal(loaded, frame, check_exact=True)
    assert len(frame) == 600
    assert loaded.attrs == frame.attrs and [gap["reason"] for gap in loaded.attrs["rtnb"]["gaps"]] == ["trimmed"]
    assert loaded.index.asi8.tolist() == frame.index.asi8.tolist()
    plain = pq.read_table(path).to_pandas()  # any Parquet reader sees ordinary columns
    assert plain["offset"].tolist() == frame["offset"].tolist()


def test_csv_round_trip_is_exact(tmp_path: Path) -> None:
    frame = frame_from_messages(mixed_messages(300), raw=True)
    loaded = load(save(frame, tmp_path / "run.csv"))
    pd.testing.assert_frame_equal(loaded, frame, check_exact=True)
    assert (tmp_path / "run.csv").read_text(encoding="utf-8").startswith("#rtnb {")


def test_recorder_save_equals_to_frame(tmp_path: Path) -> None:
    recorder = Recorder(None, chunk_rows=50).start()
    recorder.add_many(list(mixed_messages(240)))
    recorder.stop()
    for name in ("run.parquet", "run.csv"):
        path = rtnb.record.save(recorder, tmp_path / name)
        pd.testing.assert_frame_equal(load(path), recorder.to_frame(), check_exact=True)


def test_a_frame_edited_by_the_user_saves(tmp_path: Path) -> None:
    frame = frame_from_messages(mixed_messages(60))
    frame = frame[frame["topic"] == "plant/boiler/temp"].copy()
    frame["doubled"] = frame["value"] * 2
    loaded = load(save(frame, tmp_path / "part.parquet"))
    assert loaded["doubled"].tolist() == frame["doubled"].tolist()
    assert loaded["offset"].tolist() == frame["offset"].tolist()


def test_bad_paths_and_files_give_typed_errors(tmp_path: Path) -> None:
    frame = frame_from_messages(mixed_messages(6))
    with pytest.raises(BadField):
        save(frame, tmp_path / "run.xlsx")
    with pytest.raises(BadField):
        load(tmp_path / "missing.parquet")
    (tmp_path / "foreign.csv").write_text("a,b\n1,2\n")
    with pytest.raises(BadField):
        load(tmp_path / "foreign.csv")
    pq.write_table(pa.table({"a": [1]}), tmp_path / "foreign.parquet")
    with pytest.raises(BadField):
        load(tmp_path / "foreign.parquet")
    with pytest.raises(BadField):
        save(frame.reset_index(), tmp_path / "noindex.parquet")


def test_spill_keeps_memory_bounded_and_the_file_complete(tmp_path: Path) -> None:
    path = tmp_path / "long.parquet"
    chunk_rows = 2_000
    recorder = Recorder(None, spill=path, chunk_rows=chunk_rows).start()
    tracemalloc.start()
    try:
        arrow_before = pa.total_allocated_bytes()
        highest_arrow = 0
        for index, item in enumerate(mixed_messages(60_000)):
            recorder.add(item)
            if index % 1_000 == 0:
                assert recorder.pending_rows <= chunk_rows
                assert recorder.memory_bytes == 0  # sealed chunks live on disk only
                highest_arrow = max(highest_arrow, pa.total_allocated_bytes() - arrow_before)
        _, python_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 60,000 rows held in memory would take well over 10 MB of Python objects
    assert python_peak < 6 * 2**20, python_peak
    assert highest_arrow < 4 * 2**20, highest_arrow
    assert (tmp_path / "long.parquet.parts").is_dir()
    live = recorder.to_frame()  # readable while recording
    assert len(live) == 60_000
    recorder.stop()
    assert not (tmp_path / "long.parquet.parts").exists()
    assert pq.ParquetFile(path).metadata.num_row_groups >= 60_000 // chunk_rows
    expected = frame_from_messages(mixed_messages(60_000))
    pd.testing.assert_frame_equal(load(path), expected, check_exact=True)
    pd.testing.assert_frame_equal(recorder.to_frame(), expected, check_exact=True)


def test_spill_survives_columns_that_change_type(tmp_path: Path) -> None:
    path = tmp_path / "changing.parquet"
    recorder = Recorder(None, spill=path, chunk_rows=10).start()
    messages = [Message("a", offset, 1, T0 + offset, {"x": offset}) for offset in range(1, 21)]
    messages += [Message("a", offset, 1, T0 + offset, {"x": f"s{offset}", "y": [offset]}) for offset in range(21, 31)]
    recorder.add_many(messages)
    recorder.stop()
    loaded = load(path)
    assert loaded["x"].tolist() == [*range(1, 21), *(f"s{offset}" for offset in range(21, 31))]
    assert loaded["y"].tolist()[-1] == [30]
    with pytest.raises(BadField):
        Recorder(None, spill=tmp_path / "run.csv")


def test_spill_refuses_a_parts_directory_in_use(tmp_path: Path) -> None:
    path = tmp_path / "busy.parquet"
    first = Recorder(None, spill=path, chunk_rows=1).start()
    first.add(Message("a", 1, 1, T0, 1))
    with pytest.raises(BadField):
        Recorder(None, spill=path)
    first.stop()
