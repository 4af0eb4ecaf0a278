"""Bad arguments from Python raise ValueError / TypeError with a sentence, in every layer.

They are :class:`~rtnb.core.errors.BadArgument` (a ``ValueError``) and
:class:`~rtnb.core.errors.BadArgumentType` (a ``TypeError``), both still a
``BadField`` and an ``RtnbError``, so ``except`` clauses written for the old
wire error keep working. Wire errors stay for the wire: a hub that refuses a
frame still answers ``bad_field``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rtnb.core.errors import BadArgument, BadArgumentType, BadField, ProtocolError, RtnbError, error_from_wire
from rtnb.testing import WirePeer, running_hub


def test_an_argument_error_is_a_python_error_and_still_an_rtnb_one() -> None:
    value, kind = BadArgument("max_fps must be greater than 0."), BadArgumentType("not a list.")
    assert isinstance(value, ValueError) and not isinstance(value, TypeError)
    assert isinstance(kind, TypeError) and not isinstance(kind, ValueError)
    for error in (value, kind):
        assert isinstance(error, BadField) and isinstance(error, ProtocolError) and isinstance(error, RtnbError)
        assert str(error) == error.message
    assert (value.code, kind.code) == ("bad_argument", "bad_argument_type")  # codes of their own: never on the wire
    assert type(error_from_wire("bad_field", "m")) is BadField  # a peer's bad_field stays a plain BadField


def _chart(**options: Any) -> Callable[[], object]:
    def make() -> object:
        from rtnb.notebook.chart import LiveChart

        return LiveChart("plant/+/temp", **options)

    return make


def _async_client(**options: Any) -> Callable[[], object]:
    def make() -> object:
        from rtnb.client import AsyncClient

        return AsyncClient("http://127.0.0.1:1", **options)

    return make


def _mqtt_options(url: Any = "mqtt://127.0.0.1:1883", **more: Any) -> Callable[[], object]:
    def make() -> object:
        from rtnb.notebook.embedded import mqtt_bridge_options

        return mqtt_bridge_options(url, inbound=more.pop("inbound", ["plant/#"]), **more)

    return make


def _options(**fields: Any) -> Callable[[], object]:
    def make() -> object:
        from rtnb.bridge.options import MqttOptions

        return MqttOptions(url="mqtt://127.0.0.1:1883", inbound=("plant/#",), **fields)

    return make


def _window(window: Any) -> Callable[[], object]:
    def make() -> object:
        from rtnb.notebook._fields import parse_window

        return parse_window(window)

    return make


def _replay(recording: Any, **options: Any) -> Callable[[], object]:
    def make() -> object:
        from rtnb.record import replay

        return replay(recording, "http://127.0.0.1:1", start=False, **options)

    return make


def _pump(**options: Any) -> Callable[[], object]:
    def make() -> object:
        from rtnb.notebook._pump import Pump

        return Pump(lambda frame: None, **options)

    return make


def _dashboard(*items: Any, columns: int = 2) -> Callable[[], object]:
    def make() -> object:
        from rtnb.notebook.dashboard import Dashboard

        return Dashboard(list(items), columns=columns)

    return make


def _sse(patterns: Any, **options: Any) -> Callable[[], object]:
    def make() -> object:
        from rtnb.client.sse import SSEClient

        return SSEClient("http://127.0.0.1:1", patterns, **options)

    return make


VALUE_ERRORS = {
    "view transport": (_chart(transport="carrier pigeon"), "transport must be one of"),
    "view max_fps": (_chart(max_fps=0), "max_fps must be greater than 0"),
    "chart kind": (_chart(kind="pie"), "kind must be 'line', 'scatter' or 'bar'"),
    "window duration": (_window("soon"), "is not a duration like"),
    "window size": (_window(0), "at least 1 point"),
    "pump rate": (_pump(max_fps=-1), "max_fps must be greater than 0"),
    "dashboard columns": (_dashboard(columns=0), "columns must be at least 1"),
    "client format": (_async_client(format="xml"), "format must be 'json' or 'msgpack'"),
    "client queue": (_async_client(max_queue=0), "must be at least 1"),
    "client URL": (lambda: _bad_url(), "must look like"),
    "SSE patterns": (_sse([]), "at least one pattern"),
    "SSE last": (_sse("plant/#", last=-1), "non-negative integer"),
    "MQTT QoS": (_options(qos=3), "QoS must be 0, 1 or 2"),
    "MQTT topics without a broker": (_mqtt_options(None), "need a broker"),
    "MQTT unknown option": (_mqtt_options(more={"colour": "blue"}), "Unknown"),
    "replay speed": (lambda: _frame_replay(speed=0), "speed must be > 0"),
    "recorder patterns": (lambda: _recorder(), "at least one topic pattern"),
    "recorder max_rows": (lambda: _recorder("plant/#", max_rows=0), "max_rows must be at least 1"),
    "simulation rate": (lambda: _simulation(rate=0), "'rate' must be"),
}

TYPE_ERRORS = {
    "window type": (_window([1, 2]), "window must be a count or a duration"),
    "dashboard item": (_dashboard("a string"), "a Dashboard item must be"),
    "MQTT broker URL": (_mqtt_options(1883), "must be a broker URL"),
    "MQTT topic filters": (_mqtt_options(inbound=[1]), "must be a list of MQTT topic filters"),
    "replay recording": (_replay(42), r"replay\(\) takes a recording frame"),
    "replay topic map": (lambda: _frame_replay(topic_map=42), "topic_map must be a mapping"),
    "recorder source": (lambda: _recorder("plant/#", source=42).start(), "records from a URL or a client"),
    "simulation target": (lambda: _simulation(target=42), "Give the simulation a hub URL"),
}


def _recorder(*patterns: str, source: Any = "http://127.0.0.1:1", **options: Any) -> Any:
    from rtnb.record import Recorder

    return Recorder(source, *patterns, **options)


def _simulation(target: Any = "http://127.0.0.1:1", rate: float = 1.0) -> object:
    from rtnb import sim

    return sim.sensors(target, ["plant/+/temp"], rate=rate)


def _bad_url() -> object:
    from rtnb.client import AsyncClient

    return AsyncClient("ftp://")


def _frame_replay(**options: Any) -> object:
    import pandas as pd

    from rtnb.record import replay

    frame = pd.DataFrame({"topic": ["plant/a"], "value": [1.0]}, index=pd.DatetimeIndex(["2026-12-07T00:00:00Z"]))
    return replay(frame, "http://127.0.0.1:1", start=False, **options)


@pytest.mark.parametrize("case", list(VALUE_ERRORS))
def test_a_bad_value_raises_value_error_with_a_sentence(case: str) -> None:
    make, words = VALUE_ERRORS[case]
    with pytest.raises(ValueError, match=words) as caught:
        make()
    assert isinstance(caught.value, BadArgument), type(caught.value)
    assert caught.value.message.endswith((".", ")")), caught.value.message


@pytest.mark.parametrize("case", list(TYPE_ERRORS))
def test_a_wrong_type_raises_type_error_with_a_sentence(case: str) -> None:
    make, words = TYPE_ERRORS[case]
    with pytest.raises(TypeError, match=words) as caught:
        make()
    assert isinstance(caught.value, BadArgumentType), type(caught.value)


def test_old_except_clauses_still_catch_argument_errors() -> None:
    make, _words = VALUE_ERRORS["chart kind"]
    for clause in (BadField, ProtocolError, RtnbError):
        with pytest.raises(clause):
            make()


def test_loading_what_is_not_a_recording_is_a_value_error(tmp_path: Path) -> None:
    from rtnb.record import load

    with pytest.raises(ValueError, match="No recording at"):
        load(tmp_path / "missing.parquet")
    with pytest.raises(ValueError, match="Cannot tell the format"):
        load(tmp_path / "notes.txt")
    (tmp_path / "plain.csv").write_text("topic,value\nplant/a,1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not an rtnb CSV recording"):
        load(tmp_path / "plain.csv")


async def test_async_subscribe_arguments_are_checked_before_any_io() -> None:
    from rtnb.client import AsyncClient

    client = AsyncClient("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="non-negative integer"):
        await client.subscribe("plant/#", last=-1)
    with pytest.raises(ValueError, match="either last or since"):
        await client.subscribe("plant/#", last=1, since={"plant/a": 3})
    await client.close()


async def test_the_wire_still_answers_bad_field() -> None:
    """Only Python callers get the new classes; a peer's bad frame is still a plain ``bad_field`` error."""
    async with running_hub() as server, WirePeer(server.ws_url) as peer:
        reply = await peer.request({"op": "subscribe", "topic": "plant/#", "last": "many", "id": 1})
        assert (reply["op"], reply["code"], reply["id"]) == ("error", "bad_field", 1)
