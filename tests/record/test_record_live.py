"""Recording from a real hub over real sockets, and replaying into it."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import numpy
import pandas as pd
import pytest

from rtnb.client import AsyncClient, connect
from rtnb.core.errors import BadField, InvalidTopic, Timeout
from rtnb.core.message import Message
from rtnb.record import Recorder, ReplayState, frame_from_messages, load, replay, save
from rtnb.testing import wait_until

ThreadedHub = Any  # the fixture's type, defined in conftest.py


T0 = 1_790_000_000.5


def mixed_sequence(rounds: int) -> list[tuple[str, Any]]:
    """Nested dicts, scalars, strings, missing fields, lists and unicode on four topics."""
    sequence: list[tuple[str, Any]] = []
    for index in range(rounds):
        sequence += [
            (
                "plant/boiler/temp",
                {"value": 70 + index * 0.25, "unit": "°C", "meta": {"sensor": "Zürich-1", "ok": True}},
            ),
            ("plant/boiler/temp", {"value": 71 + index, "unit": "°C"}),  # no meta, an int value
            ("plant/status", "läuft ✓" if index % 2 else "停止"),
            ("plant/counter", index * 1000),
            ("plant/pump/temp", {"value": -1.5e-7 * index, "samples": [index, "x"], "meta": {"sensor": "泵"}}),
            ("plant/pump/temp", {"on": index % 3 == 0}),
        ]
    return sequence


def expected_cell(payload: Any, column: str) -> Any:
    """What a flattened frame should hold for ``payload`` in ``column`` (None: missing)."""
    if not isinstance(payload, dict):
        return payload if column == "value" else None
    node: Any = payload
    for key in column.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def assert_frame_holds(frame: pd.DataFrame, sent: list[tuple[str, Any, int]]) -> None:
    """Row by row: topic, offset and every payload field equal what was published."""
    assert len(frame) == len(sent)
    assert frame["topic"].astype(str).tolist() == [topic for topic, _, _ in sent]
    assert frame["offset"].tolist() == [offset for _, _, offset in sent]
    payload_columns = [name for name in frame.columns if name not in ("topic", "offset", "epoch", "data")]
    for column in payload_columns:
        for cell, (_, payload, _) in zip(frame[column].tolist(), sent, strict=True):
            expected = expected_cell(payload, column)
            if expected is None:
                assert is_missing(cell), (column, payload, cell)
            else:
                assert cell == expected, (column, payload, cell)


def publish_all(url: str, sequence: list[tuple[str, Any]]) -> list[tuple[str, Any, int]]:
    with connect(url) as publisher:
        return [(topic, data, publisher.publish(topic, data)) for topic, data in sequence]


def test_record_mixed_payloads_from_a_hub_and_round_trip_parquet(threaded_hub: ThreadedHub, tmp_path: Path) -> None:
    recorder = Recorder(threaded_hub.url, "plant/#").start()
    sent = publish_all(threaded_hub.url, mixed_sequence(40))
    recorder.wait(rows=len(sent), timeout=10).stop()
    frame = recorder.to_frame()
    assert_frame_holds(frame, sent)
    assert frame.index.is_monotonic_increasing and str(frame.index.tz) == "UTC"
    assert frame["value"].dtype == object  # numbers on some topics, strings on plant/status
    assert frame["meta.ok"].dtype == pd.BooleanDtype()
    assert frame["samples"].tolist()[4] == [0, "x"]
    assert recorder.gaps == [] and recorder.duplicates == 0

    loaded = load(save(frame, tmp_path / "session.parquet"))
    pd.testing.assert_frame_equal(loaded, frame, check_exact=True)
    assert_frame_holds(loaded, sent)
    assert loaded["epoch"].tolist() == frame["epoch"].tolist()
    assert loaded.index.asi8.tolist() == frame.index.asi8.tolist()


def test_record_numeric_sensor_stream_gets_numeric_dtypes(threaded_hub: ThreadedHub) -> None:
    with Recorder(threaded_hub, "plant/+/temp", max_rows=300) as recorder:
        sent = publish_all(
            threaded_hub.url,
            [
                (f"plant/{name}/temp", {"value": index + 0.5, "setpoint": 80, "on": True, "unit": "°C"})
                for index in range(100)
                for name in ("boiler", "turbine", "pump")
            ],
        )
        recorder.wait(timeout=10)  # returns when max_rows is reached
    frame = recorder.to_frame()
    assert_frame_holds(frame, sent)
    assert frame.dtypes.astype(str).to_dict() == {
        "topic": "category",
        "offset": "int64",
        "epoch": "int64",
        "value": "float64",
        "setpoint": "int64",
        "on": "bool",
        "unit": "string",
    }


def test_gaps_from_the_hub_are_recorded(small_history_hub: ThreadedHub) -> None:
    publish_all(small_history_hub.url, [("gappy/a", {"i": index}) for index in range(20)])
    # resume after offset 3: the hub kept only 16..20, so 4..15 are gone
    recorder = Recorder(small_history_hub.url, "gappy/#", since={"gappy/a": 3}).start()
    recorder.wait(rows=5, timeout=10).stop()
    assert recorder.to_frame()["offset"].tolist() == [16, 17, 18, 19, 20]
    gaps = recorder.gaps_frame()
    assert gaps[["topic", "from", "to", "reason"]].astype(object).values.tolist() == [["gappy/a", 4, 15, "trimmed"]]
    assert recorder.to_frame().attrs["rtnb"]["gaps"][0]["reason"] == "trimmed"


def test_wait_times_out_with_a_typed_error(threaded_hub: ThreadedHub) -> None:
    with Recorder(threaded_hub.url, "quiet/#") as recorder:
        with pytest.raises(Timeout):
            recorder.wait(rows=1, timeout=0.05)


async def test_recorder_with_an_async_client(threaded_hub: ThreadedHub) -> None:
    async with AsyncClient(threaded_hub.url) as client:
        async with Recorder(client, "async/#") as recorder:
            for index in range(10):
                await client.publish("async/x", {"i": index, "label": f"n{index}"})
            await wait_until(lambda: recorder.rows == 10, timeout=5)
        assert recorder.to_frame()["i"].tolist() == list(range(10))
        with pytest.raises(BadField):
            Recorder(client, "async/#").start()  # an AsyncClient needs astart()


def test_replay_keeps_spacing_at_speed_10(threaded_hub: ThreadedHub) -> None:
    offsets = [0.0, 0.2, 0.25, 0.6, 1.0, 1.05, 1.5, 2.0, 2.6, 3.0]
    frame = frame_from_messages(
        Message("src/a" if index % 2 else "src/b", index // 2 + 1, 1, T0 + offset, {"i": index})
        for index, offset in enumerate(offsets)
    )
    recorder = Recorder(threaded_hub.url, "replayed/#").start()
    handle = replay(frame, threaded_hub.url, speed=10, topic_map=lambda topic: "replayed/" + topic.split("/")[1])
    handle.wait(timeout=10)
    got = recorder.wait(rows=len(offsets), timeout=5).stop().to_frame()
    assert got["i"].tolist() == list(range(len(offsets)))
    # the hub's own timestamps of the replayed messages, not the test's wall clock
    replayed = (got.index - got.index[0]).total_seconds().tolist()
    errors = [abs(actual - offset / 10) for actual, offset in zip(replayed, offsets, strict=True)]
    # robust to one late message on a busy machine: the fitted time scale, the typical error,
    # and a bound that still tells speed 10 from speed 1 (3 s) and from no spacing at all
    slope = numpy.polyfit(offsets, replayed, 1)[0]
    assert 0.09 < slope < 0.11, (slope, errors)
    assert statistics.median(errors) < 0.015, errors
    assert max(errors) < 0.15 and replayed[-1] > 0.25, errors
    assert handle.state is ReplayState.DONE and handle.published == len(offsets) and handle.progress == 1.0


@pytest.mark.parametrize("raw", [False, True])
def test_replay_rebuilds_payloads_in_per_topic_order(threaded_hub: ThreadedHub, raw: bool) -> None:
    original = Recorder(threaded_hub.url, "plant/#", raw=raw).start()
    sent = publish_all(threaded_hub.url, mixed_sequence(10))
    frame = original.wait(rows=len(sent), timeout=10).stop().to_frame()

    copy = Recorder(threaded_hub.url, "copy/#", raw=raw).start()
    replay(frame, threaded_hub.url, speed=None, topic_map=lambda topic: "copy/" + topic).wait(timeout=10)
    replayed = copy.wait(rows=len(sent), timeout=10).stop().to_frame()
    assert replayed["topic"].astype(str).tolist() == ["copy/" + topic for topic, _, _ in sent]
    assert_frame_holds(replayed, [("copy/" + topic, data, offset) for topic, data, offset in sent])
    if raw:
        assert replayed["data"].tolist() == [data for _, data, _ in sent]


def test_replay_from_a_file_with_progress_bar(
    threaded_hub: ThreadedHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = frame_from_messages(Message("f/x", index + 1, 1, T0 + index * 0.001, index) for index in range(50))
    path = save(frame, tmp_path / "small.csv")
    recorder = Recorder(threaded_hub.url, "f/#").start()
    handle = replay(path, threaded_hub.url, speed=None, progress=True).wait(timeout=10)
    assert recorder.wait(rows=50, timeout=5).stop().to_frame()["value"].tolist() == list(range(50))
    assert handle.published == 50 and handle.progress == 1.0
    assert "replay" in capsys.readouterr().err


def test_replay_loops_until_stopped(threaded_hub: ThreadedHub) -> None:
    frame = frame_from_messages(Message("loop/x", index + 1, 1, T0 + index * 0.01, {"i": index}) for index in range(5))
    recorder = Recorder(threaded_hub.url, "loop/#").start()
    handle = replay(frame, threaded_hub.url, speed=20, loop=True)
    recorder.wait(rows=12, timeout=10)
    handle.stop()
    assert handle.state is ReplayState.STOPPED and handle.loops >= 2
    assert recorder.stop().to_frame()["i"].tolist()[:12] == [0, 1, 2, 3, 4] * 2 + [0, 1]
    slow = replay(frame, threaded_hub.url, speed=0.001)
    with pytest.raises(Timeout):
        slow.wait(timeout=0.05)
    slow.stop()
    assert slow.state is ReplayState.STOPPED


def test_replay_refuses_bad_input(threaded_hub: ThreadedHub) -> None:
    frame = frame_from_messages([Message("ok/x", 1, 1, T0, 1)])
    with pytest.raises(BadField):
        replay(frame, threaded_hub.url, speed=0)
    with pytest.raises(InvalidTopic):
        replay(frame, threaded_hub.url, topic_map={"ok/x": "bad//topic"})
    with pytest.raises(BadField):
        replay([1, 2, 3], threaded_hub.url)
    failed = replay(frame, object())
    with pytest.raises(BadField):
        failed.wait(timeout=5)
    assert failed.state is ReplayState.FAILED
