"""The bridge against the real Mosquitto on 127.0.0.1:1883: both directions, wildcards,
no echo loops, binary payloads, refused input, status on /healthz, /metrics and $rtnb/bridge/mqtt."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
from mqtt_helpers import free_port, mqtt_client, next_messages, record

from rtnb.bridge import MqttOptions, start_mqtt_bridge
from rtnb.bridge.mqtt import BridgeState, MqttBridge
from rtnb.server.hub import Hub
from rtnb.testing import running_hub, wait_until


async def test_mqtt_messages_reach_the_hub_with_wildcards_and_prefix(hub: Hub, broker_url: str, namespace: str) -> None:
    bridge = await start_mqtt_bridge(hub, url=broker_url, inbound=[f"{namespace}/+/temp"], prefix="mqtt")
    await bridge.wait_connected()
    sink = await record(hub, f"mqtt/{namespace}/#")
    async with mqtt_client(broker_url) as device:
        await device.publish(f"{namespace}/boiler/temp", b'{"value": 71.5, "unit": "C"}', qos=1)
        await device.publish(f"{namespace}/pump/temp", b"20", qos=1)
        await device.publish(f"{namespace}/pump/pressure", b"3", qos=1)  # not matched by the filter
        await device.publish(f"{namespace}/turbine/temp", b"overheat", qos=1)
    await wait_until(lambda: len(sink.messages) >= 3)
    assert sink.on(f"mqtt/{namespace}/boiler/temp") == [{"value": 71.5, "unit": "C"}]
    assert sink.on(f"mqtt/{namespace}/pump/temp") == [20]
    assert sink.on(f"mqtt/{namespace}/turbine/temp") == ["overheat"]
    assert not sink.on(f"mqtt/{namespace}/pump/pressure")
    assert bridge.messages_in == 3


async def test_hub_publishes_go_out_to_the_broker(hub: Hub, broker_url: str, namespace: str) -> None:
    bridge = await start_mqtt_bridge(
        hub, url=broker_url, outbound=[f"{namespace}/+/cmd"], prefix="mqtt", qos=1, retain=False
    )
    await bridge.wait_connected()
    async with mqtt_client(broker_url) as device:
        await device.subscribe(f"{namespace}/#", qos=1)
        await hub.publish(f"mqtt/{namespace}/boiler/cmd", {"setpoint": 80})
        await hub.publish(f"mqtt/{namespace}/boiler/status", {"not": "bridged"})  # no outbound filter
        await hub.publish(f"mqtt/{namespace}/pump/cmd", "off")
        received = await next_messages(device, 2)
    assert [(m.topic.value, m.payload, m.qos) for m in received] == [
        (f"{namespace}/boiler/cmd", b'{"setpoint":80}', 1),
        (f"{namespace}/pump/cmd", b"off", 1),
    ]
    await wait_until(lambda: bridge.messages_out == 2)


async def test_outbound_retain_flag(hub: Hub, broker_url: str, namespace: str) -> None:
    bridge = await start_mqtt_bridge(hub, url=broker_url, outbound=[f"{namespace}/#"], retain=True)
    await bridge.wait_connected()
    await hub.publish(f"{namespace}/lamp/cmd", {"on": True})
    await wait_until(lambda: bridge.messages_out == 1)
    async with mqtt_client(broker_url) as late:  # subscribes after the publish: gets the retained copy
        await late.subscribe(f"{namespace}/#", qos=1)
        [retained] = await next_messages(late, 1)
        assert (retained.payload, retained.retain) == (b'{"on":true}', True)
        await late.publish(f"{namespace}/lamp/cmd", b"", qos=1, retain=True)  # clear it on the shared broker


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_no_echo_loops_with_overlapping_filters(hub: Hub, broker_url: str, namespace: str, protocol: str) -> None:
    """In 'ns/#' and out 'ns/+/cmd' overlap: nothing may bounce between hub and broker."""
    bridge = await start_mqtt_bridge(
        hub, url=broker_url, inbound=[f"{namespace}/#"], outbound=[f"{namespace}/+/cmd"], protocol=protocol
    )
    await bridge.wait_connected()
    sink = await record(hub, f"{namespace}/#")
    async with mqtt_client(broker_url) as device:
        await device.subscribe(f"{namespace}/#", qos=1)
        # a dashboard command: hub -> MQTT once, and never back into the hub
        await hub.publish(f"{namespace}/boiler/cmd", {"setpoint": 75})
        # a command from another MQTT client: MQTT -> hub once, and never back out to MQTT
        await device.publish(f"{namespace}/pump/cmd", b'{"on": false}', qos=1)
        # a marker after both, to know everything before it has been through the bridge
        await device.publish(f"{namespace}/marker", b"1", qos=1)
        seen = await next_messages(device, 3)
        await wait_until(lambda: sink.on(f"{namespace}/marker") == [1])
        await asyncio.sleep(0)  # let any (wrong) echo already in flight land before the checks
        await hub.publish(f"{namespace}/marker2/cmd", "end")
        seen += await next_messages(device, 1)
        await wait_until(lambda: sink.on(f"{namespace}/marker2/cmd") == ["end"])
    topics = [message.topic.value for message in seen]
    assert sorted(topics) == sorted(
        [f"{namespace}/boiler/cmd", f"{namespace}/pump/cmd", f"{namespace}/marker", f"{namespace}/marker2/cmd"]
    )
    assert sink.on(f"{namespace}/boiler/cmd") == [{"setpoint": 75}]
    assert sink.on(f"{namespace}/pump/cmd") == [{"on": False}]
    assert bridge.messages_out == 2  # boiler/cmd and marker2/cmd; pump/cmd was not sent back
    assert bridge.loops_prevented + bridge.echoes_dropped >= 1


async def test_binary_payloads_both_ways(hub: Hub, broker_url: str, namespace: str) -> None:
    blob = bytes(range(256))
    bridge = await start_mqtt_bridge(
        hub, url=broker_url, inbound=[f"{namespace}/camera/#"], outbound=[f"{namespace}/firmware/#"]
    )
    await bridge.wait_connected()
    sink = await record(hub, f"{namespace}/#")
    async with mqtt_client(broker_url) as device:
        await device.subscribe(f"{namespace}/firmware/#", qos=1)
        await device.publish(f"{namespace}/camera/frame", blob, qos=1)
        await wait_until(lambda: bool(sink.on(f"{namespace}/camera/frame")))
        [data] = sink.on(f"{namespace}/camera/frame")
        assert data["binary"] is True and len(data) == 2
        # what the hub holds goes back out as the very same bytes
        await hub.publish(f"{namespace}/firmware/image", data)
        [message] = await next_messages(device, 1)
    assert message.payload == blob


async def test_refused_mqtt_messages_are_counted_not_crashing(hub: Hub, broker_url: str, namespace: str) -> None:
    bridge = await start_mqtt_bridge(hub, url=broker_url, inbound=[f"{namespace}/#"], payload="json")
    await bridge.wait_connected()
    sink = await record(hub, f"{namespace}/#")
    async with mqtt_client(broker_url) as device:
        await device.publish(f"{namespace}//empty-level", b"1", qos=1)  # the hub refuses empty levels
        await device.publish(f"{namespace}/text", b"not json", qos=1)  # refused in json mode
        await device.publish(f"{namespace}/ok", b"42", qos=1)
    await wait_until(lambda: sink.on(f"{namespace}/ok") == [42])
    assert dict(bridge.refused) == {"invalid_topic": 1, "bad_json": 1}
    assert hub.stats.errors["invalid_topic"] == 1
    assert bridge.last_error is not None and "not valid JSON" in bridge.last_error
    assert bridge.state is BridgeState.CONNECTED


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


async def test_state_on_healthz_metrics_and_status_topic(broker_url: str, namespace: str) -> None:
    async with running_hub() as server:
        hub = server.hub
        status = await record(hub, "$rtnb/bridge/mqtt")
        bridge = await start_mqtt_bridge(hub, url=broker_url, inbound=[f"{namespace}/#"])
        await bridge.wait_connected()
        async with mqtt_client(broker_url) as device:
            await device.publish(f"{namespace}/x", b"1", qos=1)
        await wait_until(lambda: bridge.messages_in == 1)
        code, body = await asyncio.to_thread(_get, f"{server.url}/healthz")
        health = json.loads(body)
        assert code == 200 and health["status"] == "ok"
        assert health["components"]["mqtt"]["state"] == "connected"
        assert health["components"]["mqtt"]["broker"] == broker_url
        code, body = await asyncio.to_thread(_get, f"{server.url}/metrics")
        text = body.decode()
        assert 'rtnb_mqtt_connected{component="mqtt"} 1.0' in text
        assert 'rtnb_mqtt_messages_in_total{component="mqtt"} 1.0' in text
        await wait_until(lambda: any(m.data["state"] == "connected" for m in status.messages))
        await hub.remove_component("mqtt")
        await wait_until(lambda: status.messages[-1].data["state"] == "stopped")
        assert [m.data["state"] for m in status.messages] == ["connected", "stopped"]
        assert "components" not in hub.health()


async def test_unreachable_broker_is_reported_and_retried(namespace: str) -> None:
    async with running_hub() as server:
        hub = server.hub
        status = await record(hub, "$rtnb/bridge/mqtt")
        bridge = MqttBridge(
            MqttOptions(
                url=f"mqtt://127.0.0.1:{free_port()}",
                inbound=[f"{namespace}/#"],
                reconnect_initial=0.05,
                reconnect_max=0.1,
            )
        )
        await hub.add_component("mqtt", bridge)
        await wait_until(lambda: bridge.connect_failures >= 2)
        assert bridge.state in (BridgeState.DISCONNECTED, BridgeState.CONNECTING)
        code, body = await asyncio.to_thread(_get, f"{server.url}/healthz")
        assert code == 503
        report = json.loads(body)["components"]["mqtt"]
        assert report["ok"] is False and "cannot connect" in report["last_error"]
        # notebooks see the outage on the status topic
        assert status.messages[0].data["state"] == "disconnected"
        assert "cannot connect" in status.messages[0].data["last_error"]
        await hub.remove_component("mqtt")
        await wait_until(lambda: status.messages[-1].data["state"] == "stopped")
