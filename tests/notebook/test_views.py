"""Views' kernel side, driven by a real embedded hub through the real sync client, without a browser.

What the browser draws is tested in test_views_browser.py; here: the kernel's
mirror buffer, what relay sends (only new points, as typed arrays, within the
frame budget), the widget state a browser needs, and clean stops.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy
import pytest

import rtnb.notebook as notebook
from rtnb.core.errors import BadField
from rtnb.notebook import chart as chart_module
from rtnb.notebook._assets import LOADER_ESM, library_source, library_version
from rtnb.notebook.dashboard import grid_columns
from rtnb.notebook.embedded import EmbeddedHub
from rtnb.notebook.testing import recording_comms, start_flood
from rtnb.notebook.values import browser_can_format
from rtnb.testing import wait_until


def publish_many(embedded: EmbeddedHub, items: list[tuple[str, Any]]) -> None:
    """Publish ``items`` in one go on the hub's loop (one hub flush, like a real burst)."""

    def publish_all() -> None:
        for topic, data in items:
            embedded.hub.publish_now(topic, data)

    embedded.call(publish_all)


def _subscriptions(embedded: EmbeddedHub) -> int:
    return embedded.call(embedded.hub.fanout.subscription_count)


def decode_points(content: dict[str, Any], buffers: list[bytes]) -> dict[str, list[tuple[int, float, float]]]:
    """A relay ``points`` message back into ``{topic: [(offset, time, value)]}``, as views.js reads it."""
    unit = content.get("time_unit")
    times = numpy.frombuffer(buffers[0], dtype=numpy.uint16 if unit else numpy.float32)
    values = numpy.frombuffer(buffers[1], dtype=numpy.float32)
    offsets = numpy.frombuffer(buffers[-1], dtype=numpy.float64) if content["has_offsets"] else None
    result: dict[str, list[tuple[int, float, float]]] = {}
    index = 0
    for series in content["series"]:
        points = result.setdefault(series["topic"], [])
        ticks = 0
        for k in range(series["count"]):
            offset = int(offsets[index]) if offsets is not None else series["first"] + k
            ticks += int(times[index]) if unit else 0
            at = content["base"] + (ticks * unit if unit else float(times[index]) / 1000)
            points.append((offset, at, float(values[index])))
            index += 1
    return result


def custom_messages(recorder: Any, widget: Any, since: float = 0.0) -> list[Any]:
    return [
        m
        for m in recorder.since(since)
        if m.msg_type == "comm_msg" and m.comm_id == widget.comm.comm_id and m.data.get("method") == "custom"
    ]


async def test_chart_keeps_each_topics_window_and_skips_messages_without_a_number(
    embedded: EmbeddedHub, client: Any
) -> None:
    chart = notebook.LiveChart("plant/+/temp", y="value", window=5, client=client, max_fps=50)
    try:
        topics = ["plant/boiler/temp", "plant/turbine/temp", "plant/pump/temp"]
        publish_many(embedded, [(topic, {"value": float(i)}) for i in range(12) for topic in topics[:2]])
        # the kernel's buffer takes messages frame by frame: wait for the frame that holds the last one
        await wait_until(lambda: chart.stats.received == 24 and chart.topics == topics[:2])
        await wait_until(lambda: [y for _x, y in chart.window(topics[1])] == [7.0, 8.0, 9.0, 10.0, 11.0])
        publish_many(embedded, [(topics[2], {"value": -1.0}), (topics[2], {"no value": True})])
        await wait_until(lambda: chart.topics == topics and chart.skipped == 1)
        for topic in topics[:2]:
            assert [y for _x, y in chart.window(topic)] == [7.0, 8.0, 9.0, 10.0, 11.0]
            assert all(abs(x - time.time()) < 60 for x, _y in chart.window(topic))  # message times
        assert [y for _x, y in chart.window(topics[2])] == [-1.0]
        assert chart.skipped == 1  # the message without a value
    finally:
        chart.stop()


async def test_chart_x_field_and_time_window(embedded: EmbeddedHub, client: Any) -> None:
    chart = notebook.LiveChart("lab/xy", x="t", y="v", window="0.3s", kind="scatter", client=client, max_fps=50)
    try:
        assert chart.widget.config["chart_kind"] == "scatter" and chart.widget.config["x"] == "t"
        publish_many(embedded, [("lab/xy", {"t": i, "v": i * 2}) for i in range(3)])
        await wait_until(lambda: len(chart.window("lab/xy")) == 3)
        assert chart.window("lab/xy") == [(0.0, 0.0), (1.0, 2.0), (2.0, 4.0)]
        started = time.time()
        await wait_until(lambda: time.time() > started + 0.35)  # the first points age out of the window
        publish_many(embedded, [("lab/xy", {"t": 10, "v": 20})])
        await wait_until(lambda: chart.window("lab/xy") == [(10.0, 20.0)])
    finally:
        chart.stop()


async def test_relay_sends_what_is_after_the_browsers_position_and_nothing_twice(
    embedded: EmbeddedHub, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with recording_comms() as recorder:
        chart = notebook.LiveChart("relay/+", window=100, client=client, max_fps=50)
        try:
            publish_many(embedded, [("relay/a", {"value": float(i)}) for i in range(10)])
            await wait_until(lambda: len(chart.window("relay/a")) == 10)
            assert custom_messages(recorder, chart.widget) == []  # nobody asked: nothing relayed
            epoch = chart._columns["relay/a"].epoch
            # a browser that holds offsets 1..4 asks for relay: it gets 5..10, then only what is new
            chart._on_browser_message(chart.widget, {"op": "relay", "id": "tab", "since": {"relay/a": [epoch, 4]}}, [])
            publish_many(embedded, [("relay/a", {"value": 10.0}), ("relay/a", {"no": 1}), ("relay/a", {"value": 12.0})])
            await wait_until(lambda: len(chart.window("relay/a")) == 12)
            sent = custom_messages(recorder, chart.widget)
            points = [p for m in sent for p in decode_points(m.data["content"], m.buffers)["relay/a"]]
            assert [p[0] for p in points] == [5, 6, 7, 8, 9, 10, 11, 13]  # 12 had no value
            assert [p[2] for p in points] == [4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 12.0]
            assert all(abs(p[1] - time.time()) < 60 for p in points)
            # another epoch (the hub's history was reset): everything the kernel holds
            everything = chart.encode_since({"relay/a": [epoch + 1, 100]})
            assert len(decode_points(*everything[0])["relay/a"]) == 12
            assert everything[0][0]["has_offsets"]  # 12 was skipped: offsets travel to say so
            # the browser went direct: nothing more is relayed
            chart._on_browser_message(chart.widget, {"op": "direct", "id": "tab"}, [])
            count = len(sent)
            publish_many(embedded, [("relay/a", {"value": 14.0})])
            await wait_until(lambda: len(chart.window("relay/a")) == 13)
            await asyncio.sleep(0.1)
            assert len(custom_messages(recorder, chart.widget)) == count
            # a big rebuild is split into messages of at most MAX_POINTS_PER_RELAY_MESSAGE points
            monkeypatch.setattr(chart_module, "MAX_POINTS_PER_RELAY_MESSAGE", 5)
            pieces = chart.encode_since({})
            assert [sum(s["count"] for s in c["series"]) for c, _b in pieces] == [5, 5, 3]
        finally:
            chart.stop()


def test_relay_times_are_16_bit_steps_when_they_fit_and_float32_otherwise() -> None:
    base = 1_790_000_000.0
    # two series: each one's first step counts from base, the others from the point before
    a = numpy.array([base + 0.001, base + 0.0015, base + 0.0020237])
    b = numpy.array([base, base + 0.6])
    steps = chart_module._time_steps([a, b], base)
    assert steps.dtype == numpy.uint16
    assert steps.tolist() == [100, 50, 52, 0, 60000]
    decoded = numpy.cumsum(steps[:3].astype(numpy.int64)) * chart_module.RELAY_TIME_UNIT + base
    assert numpy.abs(decoded - a).max() <= chart_module.RELAY_TIME_UNIT / 2 + 1e-9  # no error adds up
    # a pause longer than 0.65 s, or a clock that went back: float32 milliseconds instead
    assert chart_module._time_steps([numpy.array([base, base + 0.7])], base) is None
    assert chart_module._time_steps([numpy.array([base + 0.2, base + 0.1])], base) is None


@pytest.mark.parametrize("max_fps", [10, 30])
async def test_relay_at_10k_points_per_second_stays_within_the_frame_and_byte_budget(
    embedded: EmbeddedHub, client: Any, max_fps: int
) -> None:
    topics = [f"flood{max_fps}/a/temp", f"flood{max_fps}/b/temp"]  # the hub is shared: no history of another run
    with recording_comms() as recorder:
        chart = notebook.LiveChart(f"flood{max_fps}/+/temp", window="60s", client=client, max_fps=max_fps)
        try:
            chart._on_browser_message(chart.widget, {"op": "relay", "id": "tab", "since": {}}, [])
            opened = time.monotonic()
            rate, seconds = 10_000, 2.0
            published = start_flood(embedded, topics, rate=rate, seconds=seconds).result(timeout=30)
            try:
                await wait_until(lambda: chart.stats.applied == published, timeout=15)
            except TimeoutError:
                raise AssertionError((published, chart.stats)) from None
            elapsed = time.monotonic() - opened
            sent = custom_messages(recorder, chart.widget, since=opened)
            relayed = [p for m in sent for ps in decode_points(m.data["content"], m.buffers).values() for p in ps]
        finally:
            chart.stop()
    assert published == int(rate * seconds)
    assert len(relayed) == published  # every point once, none of the window again
    assert len(sent) <= max_fps * elapsed + 2, (len(sent), elapsed)
    assert sum(m.size for m in sent) / elapsed < 100_000  # the relay budget at 10k points/s
    # a steady stream's times travel as 16-bit steps: 6 bytes a point
    assert all(m.data["content"].get("time_unit") for m in sent)
    assert sum(len(buffer) for m in sent for buffer in m.buffers) == 6 * published
    assert chart.stats.conflated == 0


async def test_auto_mode_sends_nothing_until_a_browser_asks(embedded: EmbeddedHub, client: Any) -> None:
    with recording_comms() as recorder:
        chart = notebook.LiveChart("quiet/+", window=2000, client=client, max_fps=50)
        value = notebook.LiveValue("quiet/a", client=client, max_fps=50)
        try:
            opened = time.monotonic()
            start_flood(embedded, ["quiet/a"], rate=2000, seconds=0.5).result(timeout=30)
            await wait_until(lambda: chart.stats.applied == 1000 and value.stats.received == 1000)
            assert [m for m in recorder.since(opened) if m.msg_type == "comm_msg"] == []
        finally:
            chart.stop()
            value.stop()


async def test_widget_state_tells_the_browser_how_to_reach_the_embedded_hub(embedded: EmbeddedHub, client: Any) -> None:
    chart = notebook.LiveChart("state/+", window="60s", client=client)
    other = notebook.LiveValue("state/a", client=client)
    try:
        state = chart.widget
        assert state.kind == "chart" and state.transport == "auto"
        assert state.hub == {"url": embedded.url, "token": embedded.view_key, "transports": ["ws"]}
        assert state.config["window_seconds"] == 60.0 and state.config["capacity"] == 1_000_000
        # the library travels once, in one shared widget; each view's own ESM is the small loader
        assert state.library is other.widget.library and state.library.source == library_source()
        assert state.library_version == library_version() and state._esm == LOADER_ESM and len(LOADER_ESM) < 4000
    finally:
        chart.stop()
        other.stop()


async def test_callable_fields_and_python_only_formats_use_relay(client: Any) -> None:
    chart = notebook.LiveChart("relay/only", y=lambda data: data["v"] * 2, client=client)
    value = notebook.LiveValue("relay/only", fmt="{value!r:>10}", client=client)
    try:
        assert chart.widget.transport == "relay" and chart.widget.hub == {}
        assert value.widget.transport == "relay"
    finally:
        chart.stop()
        value.stop()
    with pytest.raises(BadField):
        notebook.LiveChart("relay/only", y=lambda data: 1.0, transport="direct", client=client)
    assert browser_can_format("{value:.1f} °C {{literal}} {topic}")
    assert browser_can_format("{value:,.2f}") and browser_can_format("{value:.0%}")
    assert not browser_can_format("{value:>10}") and not browser_can_format("{0}") and not browser_can_format("{a.b}")


async def test_direct_transport_never_subscribes_the_kernel(embedded: EmbeddedHub, client: Any) -> None:
    before = _subscriptions(embedded)
    chart = notebook.LiveChart("direct/+", transport="direct", client=client)
    try:
        publish_many(embedded, [("direct/a", {"value": 1.0})])
        await asyncio.sleep(0.2)
        assert chart.subscription is None and chart.pump is None and _subscriptions(embedded) == before
        assert chart.stats.received == 0 and chart.topics == []
    finally:
        chart.stop()


async def test_latest_value_format_and_sparkline_rows(embedded: EmbeddedHub, client: Any) -> None:
    value = notebook.LiveValue(
        "fmt/boiler/temp", fmt="{value:.1f} °C <{unit}>", label="<b>Boiler</b>", client=client, max_fps=5, sparkline=8
    )
    try:
        assert value.widget.config["sparkline"] == 8 and value.widget.config["label"] == "<b>Boiler</b>"
        publish_many(embedded, [("fmt/boiler/temp", {"value": i / 10, "unit": "C&"}) for i in range(1000)])
        await wait_until(lambda: value.stats.received == 1000 and value.text.startswith("99.9"))
        assert value.stats.frames <= 3
        assert value.text == "99.9 °C <C&>"  # escaped by the browser (text nodes), not here
        rows = value.encode_since({})[0][0]["rows"]
        assert len(rows) == 8 and rows[-1]["text"] == "99.9 °C <C&>" and rows[-1]["value"] == 99.9
    finally:
        value.stop()


async def test_table_rows_in_the_kernel(embedded: EmbeddedHub, client: Any) -> None:
    table = notebook.LiveTable("tab/#", client=client, max_fps=50)
    last_rows = notebook.LiveTable("tab/#", columns=["value"], rows=2, client=client, max_fps=50)
    try:
        publish_many(
            embedded,
            [("tab/a", {"value": "<script>", "k": 1}), ("tab/b", {"value": "x"}), ("tab/b", {"value": 3.5})],
        )
        await wait_until(lambda: len(table.current_rows()) == 2 and len(last_rows.current_rows()) == 2)
        assert [row[0] for row in table.current_rows()] == ["tab/a", "tab/b"]
        assert table.current_rows()[1][2] == {"value": 3.5}
        assert table.columns == ["value", "k"]
        assert [row[2]["value"] for row in last_rows.current_rows()] == [3.5, "x"]
        assert last_rows.widget.config["columns"] == ["value"] and last_rows.widget.config["rows"] == 2
    finally:
        table.stop()
        last_rows.stop()


async def test_gauge_follows_latest_value_and_thresholds(embedded: EmbeddedHub, client: Any) -> None:
    gauge = notebook.Gauge(
        "plant/turbine/rpm", min=0, max=100, thresholds=[(60, "green"), (85, "orange"), (100, "red")], client=client
    )
    try:
        publish_many(embedded, [("plant/turbine/rpm", {"value": 50.0}), ("plant/turbine/rpm", {"value": 90.0})])
        await wait_until(lambda: gauge.value == 90.0)
        assert gauge.colour_for(90.0) == "red" and gauge.colour_for(10) == "green"
        assert gauge.widget.config["thresholds"] == [[60, "green"], [85, "orange"], [100, "red"]]
    finally:
        gauge.stop()
    with pytest.raises(BadField):
        notebook.Gauge("plant/turbine/rpm", min=10, max=0, client=client)


async def test_stop_and_widget_close_release_subscriptions(embedded: EmbeddedHub, client: Any) -> None:
    before = _subscriptions(embedded)
    chart = notebook.LiveChart("leak/+", client=client, max_fps=50)
    value = notebook.LiveValue("leak/a", client=client, max_fps=50)
    await wait_until(lambda: _subscriptions(embedded) == before + 2)
    chart.stop()
    chart.stop()  # idempotent
    value.widget.close()  # closing the widget stops the view too
    assert chart.state is notebook.ViewState.STOPPED and value.state is notebook.ViewState.STOPPED
    await wait_until(lambda: _subscriptions(embedded) == before)


async def test_view_with_its_own_url_closes_its_client(embedded: EmbeddedHub) -> None:
    connections = embedded.call(lambda: embedded.hub.connection_count)
    value = notebook.LiveValue("own/client", url=embedded.url, max_fps=50)
    await wait_until(lambda: embedded.call(lambda: embedded.hub.connection_count) == connections + 1)
    assert "token" not in value.widget.hub or value.widget.hub["token"] == embedded.view_key
    value.stop()
    await wait_until(lambda: embedded.call(lambda: embedded.hub.connection_count) == connections)
    assert value.client.state.value == "closed"


async def test_controls_publish_to_their_topic(embedded: EmbeddedHub, client: Any) -> None:
    commands = client.subscribe("plant/boiler/cmd")
    slider = notebook.Slider("plant/boiler/cmd", 0, 100, field="setpoint", client=client)
    toggle = notebook.Toggle("plant/boiler/cmd", field="on", client=client)
    button = notebook.Button("plant/boiler/cmd", {"reset": True}, client=client)
    text = notebook.TextBox("plant/boiler/cmd", field="note", client=client)
    try:
        slider.widget.value = 80
        toggle.widget.value = True
        button.widget.click()
        text.widget.value = "<hello>"
        received = [commands.get(timeout=5).data for _ in range(4)]
        assert received == [{"setpoint": 80.0}, {"on": True}, {"reset": True}, {"note": "<hello>"}]
        assert slider.published == 1 and button.published == 1
        slider.stop()
        slider.widget.value = 10
        assert slider.published == 1
    finally:
        commands.close()
        for control in (slider, toggle, button, text):
            control.stop()
    with pytest.raises(Exception) as refused:
        notebook.Slider("plant/+/cmd", client=client)
    assert getattr(refused.value, "code", None) in ("invalid_topic", "wildcard_publish")


async def test_dashboard_and_status(client: Any) -> None:
    value = notebook.LiveValue("dash/a", client=client, max_fps=50)
    table = notebook.LiveTable("dash/#", client=client, max_fps=50)
    status = notebook.Status([value, table], refresh=4)
    board = notebook.Dashboard([value, table, status], columns=2, title="<Plant>")
    try:
        assert board.widget is board and board.kind == "dashboard"
        assert board.children == (value.widget, table.widget, status.widget)
        references = board.get_state()["children"]
        assert references == [f"IPY_MODEL_{item.widget.model_id}" for item in (value, table, status)]
        assert board.config["title"] == "<Plant>" and "&lt;Plant&gt;" in board.static_html()
        assert board.config["template"] == grid_columns(2) and board.library is not None
        assert status.widget.kind == "status" and status.widget.config["views"] == [value.view_id, table.view_id]
        assert status.widget.config["interval_ms"] == 250
    finally:
        board.stop()
    assert value.state is notebook.ViewState.STOPPED and table.state is notebook.ViewState.STOPPED
    assert status.state is notebook.ViewState.STOPPED


def test_bad_arguments_get_typed_errors(client: Any) -> None:
    with pytest.raises(BadField):
        notebook.LiveChart("a/b", window="soon", client=client)
    with pytest.raises(BadField):
        notebook.LiveChart("a/b", kind="pie", client=client)  # type: ignore[arg-type]
    with pytest.raises(BadField):
        notebook.LiveChart("a/b", transport="carrier-pigeon", client=client)
    with pytest.raises(BadField):
        notebook.LiveTable("a/b", rows=0, client=client)
    with pytest.raises(BadField):
        notebook.Dashboard([], columns=0)
    with pytest.raises(BadField):
        notebook.Dashboard(["not a widget"])
    with pytest.raises(BadField):
        notebook.Status([], refresh=0)


async def test_views_on_the_same_topic_each_replay_the_history(embedded: EmbeddedHub) -> None:
    """Without a client, each view's mirror has its own connection, so each gets its history (shared: not)."""
    publish_many(embedded, [("twin/a", {"value": float(i)}) for i in range(5)])
    value = notebook.LiveValue("twin/a")
    gauge = notebook.Gauge("twin/a")
    chart = notebook.LiveChart("twin/+", window=10)
    try:
        await wait_until(lambda: value.text == "4" and gauge.value == 4.0 and len(chart.window("twin/a")) == 5)
        assert value.client is not gauge.client and value._owns_client
    finally:
        for view in (value, gauge, chart):
            view.stop()
    assert all(view.client.state.value == "closed" for view in (value, gauge, chart))
