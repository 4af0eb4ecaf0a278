"""Views driven by a real embedded hub, through the real sync client, without a browser."""

from __future__ import annotations

import asyncio
import datetime
import html
import re
import statistics
import time
from typing import Any

import numpy
import pytest

import rtnb.notebook as notebook
from rtnb.core.errors import BadField
from rtnb.notebook.embedded import EmbeddedHub
from rtnb.notebook.testing import recording_comms, start_flood
from rtnb.testing import wait_until


def publish_many(embedded: EmbeddedHub, items: list[tuple[str, Any]]) -> None:
    """Publish ``items`` in one go on the hub's loop (one hub flush, like a real burst)."""

    def publish_all() -> None:
        for topic, data in items:
            embedded.hub.publish_now(topic, data)

    embedded.call(publish_all)


def assert_local_dates(values: Any, around: float, time_zone: datetime.tzinfo | None = None) -> None:
    """``values`` are date strings plotly.js reads as dates, within a minute of ``around``.

    Not numbers: plotly.js guesses an axis type again whenever ``x`` changes, and
    numbers (epoch milliseconds) make a linear axis with ticks like ``1.79T``.
    """
    assert not isinstance(values, numpy.ndarray) and len(values) > 0
    for value in values:
        assert isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", value), value
        moment = datetime.datetime.fromisoformat(value).replace(tzinfo=time_zone)
        assert abs(moment.timestamp() - around) < 60, (value, around)


def _subscriptions(embedded: EmbeddedHub) -> int:
    return embedded.call(embedded.hub.fanout.subscription_count)


async def test_chart_has_one_trace_per_topic_and_keeps_the_window(embedded: EmbeddedHub, client: Any) -> None:
    chart = notebook.LiveChart("plant/+/temp", y="value", window=5, client=client, max_fps=50)
    try:
        topics = ["plant/boiler/temp", "plant/turbine/temp", "plant/pump/temp"]
        publish_many(embedded, [(topic, {"value": float(i)}) for i in range(12) for topic in topics[:2]])
        await wait_until(lambda: chart.stats.received == 24 and chart.pump.stats.frames >= 1)
        await wait_until(lambda: chart.stats.applied + chart.stats.conflated == 24)
        assert chart.topics == topics[:2]
        publish_many(embedded, [(topics[2], {"value": -1.0}), (topics[2], {"no value": True})])
        await wait_until(lambda: chart.topics == topics)
        assert [trace.name for trace in chart.figure.data] == topics
        for topic in topics[:2]:
            assert [y for _x, y in chart.window(topic)] == [7.0, 8.0, 9.0, 10.0, 11.0]
        trace = chart.figure.data[0]
        assert list(trace.y) == [7.0, 8.0, 9.0, 10.0, 11.0]
        assert_local_dates(trace.x, around=time.time())
        assert chart.figure.layout.xaxis.type == "date"
        assert chart.window(topics[2]) == [(chart.window(topics[2])[0][0], -1.0)]
        assert chart.skipped == 1  # the message without a value
    finally:
        chart.stop()


async def test_chart_x_field_and_time_window(embedded: EmbeddedHub, client: Any) -> None:
    chart = notebook.LiveChart("lab/xy", x="t", y="v", window="0.3s", kind="scatter", client=client, max_fps=50)
    try:
        publish_many(embedded, [("lab/xy", {"t": i, "v": i * 2}) for i in range(3)])
        await wait_until(lambda: len(chart.window("lab/xy")) == 3)
        assert chart.window("lab/xy") == [(0.0, 0.0), (1.0, 2.0), (2.0, 4.0)]
        assert chart.figure.data[0].mode == "markers"
        started = time.time()
        await wait_until(lambda: time.time() > started + 0.35)  # let the first points age out of the window
        publish_many(embedded, [("lab/xy", {"t": 10, "v": 20})])
        await wait_until(lambda: chart.window("lab/xy") == [(10.0, 20.0)])
    finally:
        chart.stop()


async def test_chart_time_axis_shows_dates_in_utc_whatever_the_layout(embedded: EmbeddedHub, client: Any) -> None:
    # a user layout replacing the whole xaxis still gets a date axis: the values are dates
    chart = notebook.LiveChart(
        "clock/+", utc=True, client=client, max_fps=50, layout={"xaxis": {"title": {"text": "time"}}}
    )
    try:
        assert chart.figure.layout.xaxis.type is None
        publish_many(embedded, [("clock/a", {"value": 1.0}), ("clock/a", {"value": 2.0})])
        await wait_until(lambda: len(chart.window("clock/a")) == 2)
        assert_local_dates(chart.figure.data[0].x, around=time.time(), time_zone=datetime.timezone.utc)
        assert [x for x, _y in chart.window("clock/a")] == list(chart.figure.data[0].x)
    finally:
        chart.stop()


async def test_chart_width_follows_its_container(client: Any) -> None:
    """No fixed width: plotly.js sizes the figure to its cell (see test_chart_browser.py)."""
    chart = notebook.LiveChart("size/+", client=client, height=280)
    try:
        layout = chart.figure.layout
        assert layout.autosize is True and layout.width is None and layout.height == 280
        assert chart.figure._config["responsive"] is True
        assert chart.figure.to_dict()["layout"]["autosize"] is True  # sent to the browser, not just a default
    finally:
        chart.stop()


async def test_chart_legend_lies_below_the_plot_unless_the_layout_places_it(client: Any) -> None:
    """A right-hand legend took half a narrow dashboard cell: rows below the plot instead."""
    below = {"orientation": "h", "x": 0, "xanchor": "left", "y": 0, "yanchor": "bottom", "yref": "container"}
    charts = {
        "default": notebook.LiveChart("legend/+", client=client),
        "styled": notebook.LiveChart("legend/+", client=client, layout={"legend": {"font": {"size": 9}}}),
        "vertical": notebook.LiveChart("legend/+", client=client, layout={"legend": {"orientation": "v"}}),
        "above": notebook.LiveChart("legend/+", client=client, layout={"legend": {"y": 1.2, "orientation": "h"}}),
        "underscore": notebook.LiveChart("legend/+", client=client, layout={"legend_x": 0.8}),
    }
    try:
        sent = {name: chart.figure.to_dict()["layout"].get("legend", {}) for name, chart in charts.items()}
        assert sent["default"] == below  # what the browser receives, not a Python-side default
        assert sent["styled"] == {**below, "font": {"size": 9}}  # the user's style kept, placement added
        assert sent["vertical"] == {"orientation": "v"}  # plotly's own right-hand column, as asked
        assert sent["above"] == {"orientation": "h", "y": 1.2}
        assert sent["underscore"] == {"x": 0.8}
        assert all(chart.figure.layout.showlegend is True for chart in charts.values())
    finally:
        for chart in charts.values():
            chart.stop()


async def test_flood_of_10k_per_second_stays_within_frame_budget(embedded: EmbeddedHub, client: Any) -> None:
    topics = ["flood/a/temp", "flood/b/temp", "flood/c/temp"]
    lags: list[float] = []
    loop = asyncio.get_running_loop()
    with recording_comms() as recorder:
        chart = notebook.LiveChart("flood/+/temp", window=500, client=client, max_fps=10)
        value = notebook.LiveValue("flood/a/temp", fmt="{value:.1f}", client=client, max_fps=10, last=None)
        try:
            opened = time.monotonic()
            rate, seconds = 10_000, 2.0
            flood = start_flood(embedded, topics, rate=rate, seconds=seconds)
            while not flood.done():
                before = loop.time()
                await asyncio.sleep(0.01)
                lags.append(loop.time() - before - 0.01)
            published = flood.result()
            per_topic = published // 3 + (published % 3 > 0)
            await wait_until(lambda: chart.stats.applied + chart.stats.conflated == published, timeout=15)
            await wait_until(lambda: value.stats.applied + value.stats.conflated == per_topic, timeout=15)
            elapsed = time.monotonic() - opened
            messages = [m for m in recorder.since(opened) if m.msg_type == "comm_msg"]
            chart_id = chart.figure.comm.comm_id
            chart_messages = [m for m in messages if m.comm_id == chart_id]
            value_messages = [m for m in messages if m.comm_id == value.widget.comm.comm_id]
        finally:
            chart.stop()
            value.stop()
    assert published == int(rate * seconds)
    # plotly sends each batch_update as four state messages (the update, its reset, two edit ids);
    # adding the traces of topics seen for the first time costs a few more (an addTraces message
    # and edit ids, at most four per topic) — measured: 88 messages for 21 frames and 3 topics
    frames = chart.stats.frames
    assert frames <= 10 * elapsed + 2, (frames, elapsed)
    assert len(chart_messages) <= 4 * frames + 4 * len(topics) + 4, (len(chart_messages), frames)
    assert len(value_messages) <= 10 * elapsed + 2
    assert len(messages) / elapsed < 100  # Jupyter's IOPub limit is about 1000 messages/s
    # ... and 1 MB/s. Each frame resends the 3 x 500-point windows: ~26 bytes a time (a date string,
    # see chart.py) and 8 a value, about 510 KB/s at 10 frames/s
    assert sum(m.size for m in messages) / elapsed < 700_000
    # a 500-point window per trace keeps every point of a 100 ms frame; the latest-value view
    # draws one value per frame and counts the rest as conflated
    assert value.stats.conflated > 0.9 * value.stats.received
    assert chart.stats.applied + chart.stats.conflated == chart.stats.received
    assert value.stats.applied + value.stats.conflated == value.stats.received
    assert value.latest is not None and value.latest.data["seq"] in range(published - 3, published)
    assert chart.window(topics[0])[-1][1] == value.latest.data["value"]
    assert statistics.quantiles(lags, n=100)[98] < 0.25  # the loop running the views stays responsive


async def test_latest_value_conflation_counts_and_format(embedded: EmbeddedHub, client: Any) -> None:
    value = notebook.LiveValue(
        "plant/boiler/temp", fmt="{value:.1f} °C <{unit}>", label="<b>Boiler</b>", client=client, max_fps=5,
        last=None, sparkline=8,
    )
    try:
        publish_many(embedded, [("plant/boiler/temp", {"value": i / 10, "unit": "C&"}) for i in range(1000)])
        await wait_until(lambda: value.stats.received == 1000 and value.text.startswith("99.9"))
        await wait_until(lambda: value.stats.applied + value.stats.conflated == 1000)
        assert value.stats.frames <= 3
        assert value.stats.conflated >= 1000 - 8 * value.stats.frames
        assert value.text == "99.9 °C <C&>"
        rendered = value.widget.value
        assert html.escape("99.9 °C <C&>") in rendered and "<C&>" not in rendered
        assert "&lt;b&gt;Boiler&lt;/b&gt;" in rendered and "<b>Boiler" not in rendered
        assert "<polyline" in rendered and len(value.history) == 8
    finally:
        value.stop()


async def test_table_cells_are_html_escaped(embedded: EmbeddedHub, client: Any) -> None:
    table = notebook.LiveTable("xss/#", client=client, max_fps=50)
    last_rows = notebook.LiveTable("xss/#", columns=["value"], rows=2, client=client, max_fps=50)
    try:
        evil = "<script>alert(1)</script>"
        publish_many(
            embedded,
            [
                ("xss/a", {"value": evil, "<img src=x onerror=alert(2)>": "k"}),
                ("xss/b", {"value": '"><svg onload=alert(3)>', "nested": {"x": "<i>"}}),
                ("xss/b", {"value": 3.5}),
            ],
        )
        await wait_until(lambda: table.stats.applied + table.stats.conflated == 3 and len(table.current_rows()) == 2)
        await wait_until(lambda: len(last_rows.current_rows()) == 2)
        rendered = table.widget.value
        for raw in ("<script", "<img", "<svg", "<i>"):
            assert raw not in rendered
        assert html.escape(evil) in rendered
        assert html.escape("<img src=x onerror=alert(2)>") in rendered
        assert [row[0] for row in table.current_rows()] == ["xss/a", "xss/b"]
        assert table.current_rows()[1][2] == {"value": 3.5}
        assert [row[2]["value"] for row in last_rows.current_rows()] == [3.5, '"><svg onload=alert(3)>']
        assert "<svg" not in last_rows.widget.value
    finally:
        table.stop()
        last_rows.stop()


async def test_gauge_follows_latest_value_and_thresholds(embedded: EmbeddedHub, client: Any) -> None:
    gauge = notebook.Gauge(
        "plant/turbine/rpm", min=0, max=100, thresholds=[(60, "green"), (85, "orange"), (100, "red")],
        client=client, max_fps=50,
    )
    try:
        publish_many(embedded, [("plant/turbine/rpm", {"value": 50.0}), ("plant/turbine/rpm", {"value": 90.0})])
        await wait_until(lambda: gauge.value == 90.0)
        indicator = gauge.figure.data[0]
        assert indicator.value == 90.0 and indicator.gauge.bar.color == "red"
        assert [step.color for step in indicator.gauge.steps] == ["green", "orange", "red"]
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
    publish_many(embedded, [("leak/a", {"value": 1.0})])
    probe = client.subscribe("leak/a", last=1)
    assert probe.get(timeout=5).data == {"value": 1.0}  # delivered to a live subscriber...
    probe.close()
    assert chart.stats.received == 0 and value.stats.received == 0  # ...but not to stopped views


async def test_view_with_its_own_url_closes_its_client(embedded: EmbeddedHub) -> None:
    connections = embedded.call(lambda: embedded.hub.connection_count)
    value = notebook.LiveValue("own/client", url=embedded.url, max_fps=50)
    await wait_until(lambda: embedded.call(lambda: embedded.hub.connection_count) == connections + 1)
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


async def test_dashboard_and_status(embedded: EmbeddedHub, client: Any) -> None:
    value = notebook.LiveValue("dash/a", client=client, max_fps=50, last=None)
    table = notebook.LiveTable("dash/#", client=client, max_fps=50)
    status = notebook.Status([value, table], refresh=50)
    board = notebook.Dashboard([value, table, status], columns=2, title="<Plant>")
    try:
        assert list(board.grid.children) == [value.widget, table.widget, status.widget]
        assert "&lt;Plant&gt;" in board.widget.children[0].value
        publish_many(embedded, [("dash/a", {"value": 1.5}), ("dash/b", {"value": 2})])
        await wait_until(lambda: "3 received" in status.widget.value)
        assert "connected" in status.widget.value and "gaps" in status.widget.value
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
        notebook.LiveTable("a/b", rows=0, client=client)
    with pytest.raises(BadField):
        notebook.Dashboard([], columns=0)
