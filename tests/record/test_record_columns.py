"""The recorder's columnar core without sockets: flattening, chunks, frames, dtypes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from rtnb.core.errors import BadField
from rtnb.core.history import Gap
from rtnb.core.message import Message
from rtnb.record import Recorder, frame_from_messages, gaps_frame, wide_frame
from rtnb.record._buffer import seconds_to_nanoseconds
from rtnb.record._flatten import _flatten_python, flatten_payloads

T0 = 1_790_000_000.123456


def message(topic: str, offset: int, data: object, *, epoch: int = 7, ts: float | None = None) -> Message:
    return Message(topic, offset, epoch, T0 + offset * 0.01 if ts is None else ts, data)


def assert_same_columns(payloads: list[object]) -> None:
    """The Arrow fast path and the Python walk must agree cell for cell."""
    fast_columns, fast_json = flatten_payloads(payloads)
    slow_columns, slow_json = _flatten_python(payloads)
    assert list(fast_columns) == list(slow_columns)
    assert fast_json == slow_json
    for name in fast_columns:
        assert fast_columns[name].to_pylist() == slow_columns[name].to_pylist(), name


def test_flatten_nested_dicts_with_dotted_names_and_missing_fields() -> None:
    payloads = [
        {"value": 1.5, "meta": {"unit": "°C", "sensor": {"id": 3}}},
        {"value": 2, "on": False},
        {"meta": {"unit": "K"}},
    ]
    columns, json_columns = flatten_payloads(payloads)
    assert list(columns) == ["value", "meta.unit", "meta.sensor.id", "on"]
    assert columns["value"].to_pylist() == [1.5, 2.0, None]
    assert columns["meta.unit"].to_pylist() == ["°C", None, "K"]
    assert columns["meta.sensor.id"].to_pylist() == [3, None, None]
    assert columns["on"].to_pylist() == [None, False, None]
    assert json_columns == set()
    assert_same_columns(payloads)


def test_flatten_keeps_lists_as_json_and_scalars_as_value() -> None:
    payloads = [{"samples": [1, 2, 3]}, {"samples": []}, {"samples": None}]
    columns, json_columns = flatten_payloads(payloads)
    assert json_columns == {"samples"}
    assert columns["samples"].to_pylist() == ["[1,2,3]", "[]", None]
    assert_same_columns(payloads)

    columns, json_columns = flatten_payloads([3, "on", None, [1]])
    assert list(columns) == ["value"]
    assert json_columns == {"value"}  # mixed kinds cannot share one Arrow type


def test_flatten_mixed_kinds_in_one_field_become_json() -> None:
    payloads = [{"a": 1}, {"a": "x"}, {"a": {"b": True}}]
    columns, json_columns = flatten_payloads(payloads)
    assert json_columns == {"a"}
    assert columns["a"].to_pylist() == ["1", '"x"', None]
    assert columns["a.b"].to_pylist() == [None, None, True]


def test_payload_fields_named_like_layout_columns_are_prefixed() -> None:
    columns, _ = flatten_payloads([{"topic": "t", "offset": 1, "time": 2.5, "x": 0}])
    assert list(columns) == ["data.topic", "data.offset", "data.time", "x"]


def test_seconds_to_nanoseconds_is_exact_both_ways() -> None:
    stamps = np.array([T0, 1_700_000_000.1234567, 0.5, 1_999_999_999.999999], dtype=np.float64)
    nanoseconds = seconds_to_nanoseconds(stamps)
    back = (nanoseconds // 1_000_000_000).astype(np.float64) + (nanoseconds % 1_000_000_000) / 1e9
    assert back.tolist() == stamps.tolist()


def test_frame_layout_and_dtypes() -> None:
    frame = frame_from_messages(
        [
            message("plant/boiler/temp", 1, {"value": 70.5, "unit": "°C", "setpoint": 80, "on": True}),
            message("plant/pump/temp", 1, {"value": 20.0, "unit": "°C", "setpoint": 30, "on": False}),
            message("plant/boiler/temp", 2, {"value": 71.0, "unit": "°C", "setpoint": 80, "on": True}),
        ]
    )
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert str(frame.index.tz) == "UTC" and frame.index.name == "time"
    assert list(frame.columns) == ["topic", "offset", "epoch", "value", "unit", "setpoint", "on"]
    assert isinstance(frame["topic"].dtype, pd.CategoricalDtype)
    assert list(frame["topic"].cat.categories) == ["plant/boiler/temp", "plant/pump/temp"]
    assert frame["offset"].dtype == np.int64 and frame["epoch"].dtype == np.int64
    assert frame["value"].dtype == np.float64
    assert isinstance(frame["unit"].dtype, pd.StringDtype)
    assert frame["setpoint"].dtype == np.int64
    assert frame["on"].dtype == np.bool_
    assert frame["offset"].tolist() == [1, 1, 2]
    assert frame.index.asi8.tolist() == seconds_to_nanoseconds(np.array([T0 + 0.01, T0 + 0.01, T0 + 0.02])).tolist()


def test_missing_values_use_nullable_dtypes_and_unicode_survives() -> None:
    frame = frame_from_messages(
        [
            message("a", 1, {"count": 1, "ok": True, "name": "Zürich ☃"}),
            message("a", 2, {"count": 2**60}),
            message("a", 3, {"name": "日本"}),
        ]
    )
    assert frame["count"].dtype == pd.Int64Dtype()
    assert frame["count"].tolist()[:2] == [1, 2**60] and frame["count"].isna().tolist() == [False, False, True]
    assert frame["ok"].dtype == pd.BooleanDtype()
    assert frame["name"].tolist()[0] == "Zürich ☃" and frame["name"].tolist()[2] == "日本"


def test_chunks_with_different_columns_and_types_join() -> None:
    messages = [message("a", offset, {"x": offset}) for offset in range(1, 4)]
    messages += [message("a", offset, {"x": offset + 0.5, "y": "new"}) for offset in range(4, 7)]
    messages += [message("a", offset, {"x": "text"}) for offset in range(7, 9)]
    frame = frame_from_messages(messages, chunk_rows=3)
    assert frame["x"].tolist() == [1, 2, 3, 4.5, 5.5, 6.5, "text", "text"]
    assert frame["x"].dtype == object
    assert frame["y"].isna().tolist() == [True] * 3 + [False] * 3 + [True] * 2
    assert frame["y"].tolist()[3:6] == ["new"] * 3

    numbers = frame_from_messages(messages[:6], chunk_rows=3)
    assert numbers["x"].dtype == np.float64 and numbers["x"].tolist() == [1, 2, 3, 4.5, 5.5, 6.5]


def test_every_message_is_kept_in_order_across_chunks() -> None:
    messages = [message(f"t/{offset % 5}", offset // 5 + 1, {"i": offset}) for offset in range(10_007)]
    frame = frame_from_messages(messages, chunk_rows=1000)
    assert len(frame) == len(messages)
    assert frame["i"].tolist() == list(range(10_007))


def test_duplicates_are_dropped_and_holes_recorded_as_gaps() -> None:
    recorder = Recorder(None).start()
    recorder.add(message("a", 1, 1))
    recorder.add(message("a", 2, 2))
    recorder.add(message("a", 2, 2))  # a redelivery after a reconnect
    recorder.add(message("a", 5, 5))  # 3 and 4 were never delivered nor announced
    recorder.add(Gap("a", 6, 8, "trimmed", 7))  # the hub says so itself: no second gap
    recorder.add(message("a", 9, 9))
    recorder.add(Gap("a", 10, None, "epoch_changed", 7))
    recorder.add(message("a", 1, 1, epoch=8))
    recorder.stop()
    frame = recorder.to_frame()
    assert frame["offset"].tolist() == [1, 2, 5, 9, 1]
    assert frame["epoch"].tolist() == [7, 7, 7, 7, 8]
    assert recorder.duplicates == 1 and recorder.rows == 5
    gaps = recorder.gaps_frame()
    assert gaps[["topic", "from", "to", "reason"]].astype(object).values.tolist() == [
        ["a", 6, 8, "trimmed"],
        ["a", 10, pd.NA, "epoch_changed"],
        ["a", 3, 4, "unavailable"],
    ]
    assert frame.attrs["rtnb"]["gaps"] == [gap.to_record() for gap in recorder.gaps]
    assert len(gaps_frame(frame.attrs["rtnb"]["gaps"])) == 3


def test_unannounced_epoch_change_is_a_gap() -> None:
    recorder = Recorder(None).start()
    recorder.add_many([message("a", 1, 1), message("a", 2, 2, epoch=9)])
    assert [(gap.reason, gap.from_offset, gap.epoch) for gap in recorder.stop().gaps] == [("epoch_changed", 2, 7)]


def test_raw_payloads_are_kept_when_asked() -> None:
    payloads = [{"a": {"b": [1, {"c": None}]}}, 5, "x", None, {"k": math.pi}]
    frame = frame_from_messages([message("t", index + 1, data) for index, data in enumerate(payloads)], raw=True)
    assert frame["data"].tolist() == payloads
    with pytest.raises(BadField):
        Recorder(None).start().to_frame(raw=True)
    recorder = Recorder(None, raw=True).start()
    recorder.add(message("t", 1, {"a": 1}))
    assert "data" not in recorder.to_frame(raw=False).columns


def test_wide_form_has_one_column_per_topic_and_field() -> None:
    frame = frame_from_messages(
        [
            message("plant/boiler/temp", 1, {"value": 70.0, "unit": "°C"}),
            message("plant/door", 1, "open", ts=T0 + 0.015),
            message("plant/boiler/temp", 2, {"value": 71.0, "unit": "°C"}),
        ]
    )
    wide = wide_frame(frame)
    assert list(wide.columns) == [
        ("plant/boiler/temp", "value"),
        ("plant/boiler/temp", "unit"),
        ("plant/door", "value"),
    ]
    assert wide[("plant/boiler/temp", "value")].tolist()[0] == 70.0
    assert wide[("plant/door", "value")].tolist()[1] == "open"
    assert wide.index.equals(frame.index)


def test_recorder_bounds_and_states() -> None:
    recorder = Recorder(None, max_rows=3).start()
    for offset in range(1, 10):
        recorder.add(message("a", offset, offset))
    assert recorder.full and recorder.rows == 3
    recorder.wait(timeout=1.0)  # full: returns at once
    with pytest.raises(RuntimeError):
        recorder.start()
    assert recorder.stop().to_frame()["value"].tolist() == [1, 2, 3]
    recorder.stop()  # twice is harmless
    with pytest.raises(BadField):
        Recorder(None, max_rows=0)
    with pytest.raises(BadField):
        Recorder("http://127.0.0.1:1")  # no pattern
    with pytest.raises(BadField):
        Recorder(None).start().add("not a message")  # type: ignore[arg-type]


def test_empty_recording_gives_an_empty_frame() -> None:
    frame = Recorder(None).start().stop().to_frame()
    assert len(frame) == 0
    assert list(frame.columns) == ["topic", "offset", "epoch"]
    assert isinstance(frame.index, pd.DatetimeIndex)


def test_buffer_memory_is_close_to_the_frame() -> None:
    recorder = Recorder(None, chunk_rows=4096).start()
    for offset in range(1, 40_001):
        recorder.add(message(f"plant/{offset % 3}/temp", offset, {"value": offset * 0.5, "unit": "°C", "on": True}))
    frame = recorder.to_frame()
    frame_bytes = int(frame.memory_usage(deep=True).sum())
    assert recorder.memory_bytes <= 2 * frame_bytes
    assert isinstance(recorder.to_table(), pa.Table)


def test_frames_are_editable() -> None:
    frame = frame_from_messages(
        message("a", offset, {"v": offset * 1.5, "n": offset, "s": "x"}) for offset in range(1, 4)
    )
    frame.loc[frame.index[0], "v"] = 99.0
    frame["n"] += 1
    frame.iloc[1, frame.columns.get_loc("s")] = "y"
    frame.iloc[2, frame.columns.get_loc("offset")] = 7
    assert frame["v"].tolist()[0] == 99.0 and frame["n"].tolist() == [2, 3, 4]
    assert frame["s"].tolist() == ["x", "y", "x"] and frame["offset"].tolist() == [1, 2, 7]


def test_several_threads_can_wait_for_different_row_counts() -> None:
    import threading

    recorder = Recorder(None).start()
    reached: list[int] = []

    def waiter(rows: int) -> None:
        recorder.wait(rows=rows, timeout=5)
        reached.append(rows)

    threads = [threading.Thread(target=waiter, args=(rows,)) for rows in (3, 6)]
    for thread in threads:
        thread.start()
    for offset in range(1, 7):
        recorder.add(message("a", offset, offset))
    for thread in threads:
        thread.join(5)
    assert sorted(reached) == [3, 6]
