"""rtnb.sim: the pure device model, and devices running in a hub's loop, across threads and over a URL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from rtnb import sim
from rtnb.core.errors import BadField, InvalidTopic, Unavailable
from rtnb.server.hub import Hub
from rtnb.server.runner import HubServer
from rtnb.testing import WirePeer, running_hub, wait_until

# -- the model, without loops or sockets ---------------------------------------------------


def test_devices_fill_the_placeholder_and_get_command_topics() -> None:
    model = sim.SensorModel(["plant/+/temp", "plant/+/pressure"], devices=("boiler", "pump"), seed=3)
    assert model.command_topics == ["plant/boiler/cmd", "plant/pump/cmd"]
    published = model.step()
    assert [topic for topic, _ in published] == [
        "plant/boiler/temp",
        "plant/boiler/pressure",
        "plant/pump/temp",
        "plant/pump/pressure",
    ]
    temp = published[0][1]
    assert set(temp) == {"value", "unit", "setpoint", "on"}
    assert temp["unit"] == "°C" and published[1][1]["unit"] == "bar"
    assert isinstance(temp["value"], float) and temp["on"] is True


def test_a_pattern_without_placeholder_takes_the_device_as_last_level() -> None:
    model = sim.SensorModel(["lab/sensor"], devices=("a",), seed=1)
    assert [topic for topic, _ in model.step()] == ["lab/sensor/a"]
    assert model.command_topics == ["lab/sensor/a/cmd"]


def test_the_same_seed_gives_the_same_values() -> None:
    first = sim.SensorModel(["plant/+/temp"], seed=42)
    second = sim.SensorModel(["plant/+/temp"], seed=42)
    assert [first.step() for _ in range(50)] == [second.step() for _ in range(50)]
    assert sim.SensorModel(["plant/+/temp"], seed=43).step() != sim.SensorModel(["plant/+/temp"], seed=42).step()


def test_values_follow_the_setpoint_and_fall_to_ambient_when_off() -> None:
    model = sim.SensorModel(["plant/+/temp"], devices=("boiler",), seed=7)
    model.command("plant/boiler/cmd", {"setpoint": 85})
    for _ in range(300):
        ((_, reading),) = model.step()
    assert abs(reading["value"] - 85) < 5 and reading["setpoint"] == 85
    model.command("plant/boiler/cmd", {"on": False})
    for _ in range(300):
        ((_, reading),) = model.step()
    assert abs(reading["value"] - 20) < 5 and reading["on"] is False


def test_setpoint_can_target_a_named_metric() -> None:
    model = sim.SensorModel(["plant/+/temp", "plant/+/pressure"], devices=("boiler",), seed=1)
    model.command("plant/boiler/cmd", {"setpoint": 6.5, "metric": "pressure"})
    (temp, pressure) = model.devices["boiler"].metrics
    assert pressure.setpoint == 6.5 and temp.setpoint != 6.5


@pytest.mark.parametrize(
    "command",
    [
        "hot",
        {},
        {"setpoint": "80"},
        {"setpoint": float("nan")},
        {"setpoint": True},
        {"on": "no"},
        {"colour": "red"},
        {"setpoint": 1, "metric": "nope"},
    ],
)
def test_malformed_commands_are_refused_with_bad_field(command: object) -> None:
    model = sim.SensorModel(["plant/+/temp"], devices=("boiler",), seed=1)
    before = model.devices["boiler"].metrics[0].setpoint
    with pytest.raises(BadField):
        model.command("plant/boiler/cmd", command)
    assert model.devices["boiler"].metrics[0].setpoint == before


@pytest.mark.parametrize(
    ("patterns", "devices"),
    [(["plant/#"], ("a",)), (["+/+/x"], ("a",)), (["a//+"], ("a",)), (["plant/+/t"], ("bad/name",)), (["p/+"], ("+",))],
)
def test_bad_patterns_and_device_names_are_refused(patterns: list[str], devices: tuple[str, ...]) -> None:
    with pytest.raises(InvalidTopic):
        sim.SensorModel(patterns, devices)


def test_bad_rate_and_empty_devices_are_refused() -> None:
    with pytest.raises(BadField):
        sim.Simulation(sim.SensorModel(["p/+"], ("a",)), rate=0)
    with pytest.raises(BadField):
        sim.SensorModel(["p/+"], ())


# -- inside a hub's loop --------------------------------------------------------------------


async def test_devices_publish_into_an_in_process_hub_and_obey_commands() -> None:
    async with running_hub() as server:
        async with WirePeer(server.ws_url) as peer:
            await peer.request({"op": "subscribe", "topic": "plant/+/temp"})
            simulation = sim.sensors(server, ["plant/+/temp"], rate=50.0, seed=1)
            try:
                assert set(simulation.devices) == {"boiler", "turbine", "pump"}
                first = await peer.messages(30)
                devices = {"plant/boiler/temp", "plant/turbine/temp", "plant/pump/temp"}
                assert {item["topic"] for item in first} == devices
                assert all(item["data"]["unit"] == "°C" for item in first)
                command = {"op": "publish", "topic": "plant/boiler/cmd", "data": {"setpoint": 80}, "id": 1}
                ack = await peer.request(command)
                assert ack["op"] == "ack"
                await wait_until(lambda: simulation.devices["boiler"].metrics[0].setpoint == 80.0)
                while True:
                    (item,) = await peer.messages(1)
                    if item["topic"] == "plant/boiler/temp" and item["data"]["setpoint"] == 80.0:
                        break
                await peer.request({"op": "publish", "topic": "plant/pump/cmd", "data": {"on": "maybe"}, "id": 2})
                await wait_until(lambda: simulation.rejected == 1)
                assert isinstance(simulation.last_error, BadField)
                assert simulation.running
            finally:
                simulation.stop()
            await wait_until(lambda: not simulation.running)  # its loop has exited: nothing more is published
            assert simulation.published >= 30
            assert server.hub.fanout.subscribers_of("plant/boiler/cmd") == 0  # it left the hub


async def test_rate_is_roughly_kept() -> None:
    async with running_hub() as server:
        simulation = sim.sensors(server, ["r/+"], devices=("a", "b"), rate=40.0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await wait_until(lambda: simulation.published >= 40)
        elapsed = loop.time() - started
        simulation.stop()
        # 40 steps/s x 2 devices: 40 messages take about 0.5 s (generous bounds for a busy CI machine).
        assert 0.3 <= elapsed < 3.0


async def test_stopping_the_hub_stops_the_devices() -> None:
    server = HubServer()
    await server.start()
    simulation = sim.sensors(server.hub, ["s/+"], devices=("a",), rate=100.0)
    await wait_until(lambda: simulation.published > 5)
    await server.stop()
    await wait_until(lambda: not simulation.running)


async def test_a_stopped_hub_is_refused() -> None:
    hub = Hub()
    with pytest.raises(Unavailable):
        sim.sensors(hub, ["s/+"])


@pytest.fixture
def hub_in_another_thread() -> Iterator[HubServer]:
    """A hub on its own thread and loop, like an embedded notebook hub."""
    loop = asyncio.new_event_loop()
    server = HubServer()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(5)
    yield server
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_devices_start_and_stop_from_another_thread(hub_in_another_thread: HubServer) -> None:
    simulation = sim.sensors(hub_in_another_thread, ["t/+"], devices=("a",), rate=100.0)
    done = threading.Event()
    deadline = 50
    while simulation.published < 10 and deadline:
        done.wait(0.05)
        deadline -= 1
    assert simulation.published >= 10
    simulation.stop()  # blocks until the devices have stopped
    assert not simulation.running


# -- over a URL, through the Python client --------------------------------------------------


async def test_devices_publish_to_a_url_through_the_async_client() -> None:
    pytest.importorskip("rtnb.client", reason="rtnb.client (the Python client) is not part of this checkout")
    async with running_hub() as server:
        async with WirePeer(server.ws_url) as peer:
            await peer.request({"op": "subscribe", "topic": "url/+/temp"})
            simulation = sim.sensors(server.url, ["url/+/temp"], devices=("boiler",), rate=50.0, seed=2)
            try:
                first = await peer.messages(5, timeout=10)
                assert {item["topic"] for item in first} == {"url/boiler/temp"}
                await wait_until(lambda: server.hub.fanout.subscribers_of("url/boiler/cmd") == 1, timeout=10)
                await peer.request({"op": "publish", "topic": "url/boiler/cmd", "data": {"setpoint": 33}, "id": 1})
                await wait_until(lambda: simulation.devices["boiler"].metrics[0].setpoint == 33.0, timeout=10)
            finally:
                await asyncio.to_thread(simulation.stop)
            assert not simulation.running
            # its loop thread ends with it, its loop closed
            await wait_until(lambda: not any(thread.name == "rtnb-sim" for thread in threading.enumerate()))
            assert simulation._loop is not None and simulation._loop.is_closed()


async def test_devices_talk_mqtt_to_a_broker(mqtt_url: str) -> None:
    aiomqtt = pytest.importorskip("aiomqtt", reason="aiomqtt is not installed (pip install 'rtnb[mqtt]')")
    import orjson

    prefix = f"simtest{threading.get_ident() % 100000}"
    async with aiomqtt.Client("127.0.0.1", 1883) as observer:
        await observer.subscribe(f"{prefix}/+/temp", qos=1)
        simulation = sim.sensors(mqtt_url, [f"{prefix}/+/temp"], devices=("boiler",), rate=50.0, seed=5)
        try:
            readings: list[dict[str, object]] = []

            async def read_three() -> None:
                async for message in observer.messages:
                    readings.append(orjson.loads(message.payload))
                    if len(readings) == 3:
                        return

            await asyncio.wait_for(read_three(), 10)
            assert {"value", "unit", "setpoint", "on"} <= set(readings[0])
            await observer.publish(f"{prefix}/boiler/cmd", b'{"setpoint": 55}', qos=1)
            await wait_until(lambda: simulation.devices["boiler"].metrics[0].setpoint == 55.0, timeout=10)
        finally:
            await asyncio.to_thread(simulation.stop)
        assert not simulation.running


# -- rtnb serve --demo ----------------------------------------------------------------------


async def test_serve_demo_runs_a_hub_with_live_sensors_and_stops_on_ctrl_c() -> None:
    import re
    import signal
    import sys

    import orjson
    from tornado.httpclient import AsyncHTTPClient

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rtnb",
        "serve",
        "--demo",
        "--port",
        "0",
        "--demo-rate",
        "20",
        stderr=asyncio.subprocess.PIPE,
    )
    http = AsyncHTTPClient(force_instance=True)
    try:
        assert process.stderr is not None
        url = None
        lines: list[str] = []
        while url is None:
            line = (await asyncio.wait_for(process.stderr.readline(), 20)).decode()
            assert line, f"rtnb serve --demo exited early: {lines}"
            lines.append(line)
            found = re.search(r"rtnb hub on (http://\S+)", line)
            url = found.group(1) if found else None

        async def topics() -> list[dict[str, object]]:
            response = await http.fetch(f"{url}/topics", raise_error=False)
            return orjson.loads(response.body)["topics"] if response.code == 200 else []

        listed: list[dict[str, object]] = []
        for _ in range(200):
            listed = await topics()
            if len(listed) == 3 and all(int(str(row["offset"])) >= 5 for row in listed):
                break
            await asyncio.sleep(0.05)
        names = sorted(str(row["topic"]) for row in listed)
        assert names == ["plant/boiler/temp", "plant/pump/temp", "plant/turbine/temp"]
        page = await http.fetch(f"{url}/")
        assert b"rtnb" in page.body and page.headers["Content-Type"].startswith("text/html")
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 15) == 0
    finally:
        http.close()
        if process.returncode is None:
            process.kill()
            await process.wait()
