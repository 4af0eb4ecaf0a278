"""``rtnb.start_hub(mqtt=...)``: a kernel's embedded hub bridges a real MQTT broker.

The kernel's hub runs in a fresh process (this package's tests share one
embedded hub without a bridge), against the Mosquitto on 127.0.0.1:1883, with
a topic level of this test's own. This process plays the device (MQTT) and the
dashboard (WebSocket); the kernel stops its hub at the end and must report its
bridge stopped with it.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import uuid

import pytest

from rtnb.core.errors import BadField, InvalidTopic, Unavailable
from rtnb.notebook.embedded import EmbeddedHub, mqtt_bridge_options, start_hub
from rtnb.testing import WirePeer

BROKER = ("127.0.0.1", 1883)

KERNEL = """
import json, sys
from rtnb.notebook import start_hub

url, namespace = sys.argv[1], sys.argv[2]
hub = start_hub(mqtt=url, mqtt_in=[namespace + "/#"], mqtt_out=[namespace + "/+/cmd"], mqtt_prefix="mqtt")
assert start_hub(mqtt=url, mqtt_in=[namespace + "/#"], mqtt_out=[namespace + "/+/cmd"], mqtt_prefix="mqtt") is hub
bridge = hub.bridge
hub.call(bridge.wait_connected)
print(json.dumps({"ws_url": hub.ws_url, "repr": repr(hub)}), flush=True)
sys.stdin.readline()  # the test is done with the hub
hub.stop()
print(json.dumps({"bridge": bridge.state.value, "hub_running": hub.running}), flush=True)
"""


@pytest.fixture
def broker_url() -> str:
    try:
        with socket.create_connection(BROKER, timeout=0.5):
            pass
    except OSError:
        reason = "no MQTT broker reachable at 127.0.0.1:1883 (start mosquitto to test start_hub(mqtt=...))"
        if os.environ.get("RTNB_CI"):
            pytest.fail(reason + " (required: RTNB_CI is set)")
        pytest.skip(reason)
    return f"mqtt://{BROKER[0]}:{BROKER[1]}"


async def test_kernel_hub_bridges_mqtt_both_ways_and_stops_its_bridge(broker_url: str) -> None:
    import aiomqtt

    namespace = f"kernel{uuid.uuid4().hex[:10]}"
    kernel = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        KERNEL,
        broker_url,
        namespace,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert kernel.stdout is not None and kernel.stdin is not None
        line = await asyncio.wait_for(kernel.stdout.readline(), timeout=60)
        assert line, (await kernel.stderr.read()).decode()  # type: ignore[union-attr]
        started = json.loads(line)
        assert "MQTT bridge to mqtt://127.0.0.1:1883" in started["repr"]
        async with (
            WirePeer(started["ws_url"]) as dashboard,
            aiomqtt.Client(BROKER[0], BROKER[1], identifier=f"device-{namespace}") as device,
        ):
            reply = await dashboard.request({"op": "subscribe", "topic": f"mqtt/{namespace}/#"})
            assert reply["op"] == "subscribed", reply
            await device.subscribe(f"{namespace}/+/cmd", qos=1)

            await device.publish(f"{namespace}/boiler/temp", b"21.5", qos=1)
            (message,) = await dashboard.messages(1, timeout=10)
            assert (message["topic"], message["data"]) == (f"mqtt/{namespace}/boiler/temp", 21.5)

            command = {"op": "publish", "topic": f"mqtt/{namespace}/boiler/cmd", "data": {"on": False}, "id": "c"}
            assert (await dashboard.request(command))["op"] == "ack"
            async with asyncio.timeout(10):
                async for received in device.messages:
                    assert str(received.topic) == f"{namespace}/boiler/cmd"
                    assert json.loads(received.payload) == {"on": False}
                    break
            # the command is a hub message like any other: the dashboard's own subscription sees it once
            (echo,) = await dashboard.messages(1, timeout=5)
            assert echo["topic"] == f"mqtt/{namespace}/boiler/cmd"

        kernel.stdin.write(b"done\n")
        await kernel.stdin.drain()
        output, errors = await asyncio.wait_for(kernel.communicate(), timeout=30)
        assert kernel.returncode == 0, errors.decode()
        assert json.loads(output) == {"bridge": "stopped", "hub_running": False}
    finally:
        if kernel.returncode is None:
            kernel.kill()
            await kernel.wait()


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"mqtt_in": ["plant/#"]}, BadField, "need a broker"),
        ({"mqtt": "http://127.0.0.1:1883", "mqtt_in": ["plant/#"]}, BadField, "mqtt:// or mqtts://"),
        ({"mqtt": "mqtt://127.0.0.1:1883", "mqtt_in": "plant/#", "mqtt_prefix": "a//b"}, InvalidTopic, "empty"),
        ({"mqtt": "mqtt://127.0.0.1:1883", "mqtt_in": [7]}, BadField, "list of MQTT topic filters"),
        ({"mqtt": "mqtt://127.0.0.1:1883", "mqtt_in": ["a/#"], "mqtt_options": {"url": "x"}}, BadField, "Unknown"),
    ],
)
def test_bad_mqtt_options_fail_before_anything_starts(options: dict, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        start_hub(**options)


def test_a_running_hub_without_that_bridge_is_not_returned_as_if_it_had_it(embedded: EmbeddedHub) -> None:
    assert embedded.bridge is None and embedded.mqtt_options is None
    with pytest.raises(Unavailable, match="another MQTT bridge, or none"):
        start_hub(mqtt="mqtt://127.0.0.1:1883", mqtt_in=["plant/#"])
    assert start_hub() is embedded  # no bridge asked for: the running hub is the answer


def test_mqtt_options_object_is_taken_whole() -> None:
    from rtnb.bridge import MqttOptions

    options = MqttOptions(url="mqtt://127.0.0.1:1883", outbound=["plant/+/cmd"], qos=0)
    assert mqtt_bridge_options(options) is options
    with pytest.raises(BadField, match="inside the MqttOptions"):
        mqtt_bridge_options(options, inbound=["plant/#"])
