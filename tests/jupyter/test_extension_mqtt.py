"""``c.RtnbExtension.mqtt``: the hub of a Jupyter server bridges a real MQTT broker.

A real ``jupyter server`` is started with ``--RtnbExtension.mqtt=...`` and this
module's own MQTT topic level, against the Mosquitto on 127.0.0.1:1883. A
device's MQTT publish must reach a WebSocket subscriber at ``/rtnb/ws`` (with
the server's token), and a dashboard's command published there must reach the
device over MQTT. Bad settings must stop the extension with a typed error.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rtnb_jupyter_fixture import REPOSITORY, TOKEN, JupyterServer, start_jupyter_server

from rtnb.core.errors import BadField, InvalidPattern
from rtnb.server.jupyter import RtnbExtension, mqtt_options_from_settings
from rtnb.testing import WirePeer

BROKER = ("127.0.0.1", 1883)
BROKER_URL = f"mqtt://{BROKER[0]}:{BROKER[1]}"
#: this module's MQTT topic level: concurrent runs on the shared broker never meet
NAMESPACE = f"jupyter{uuid.uuid4().hex[:10]}"
PREFIX = "mqtt"


def broker_reachable() -> bool:
    try:
        with socket.create_connection(BROKER, timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def broker_url() -> str:
    if not broker_reachable():
        reason = "no MQTT broker reachable at 127.0.0.1:1883 (start mosquitto to test c.RtnbExtension.mqtt)"
        if os.environ.get("RTNB_CI"):
            pytest.fail(reason + " (required: RTNB_CI is set)")
        pytest.skip(reason)
    return BROKER_URL


@pytest.fixture(scope="module")
def mqtt_jupyter_server(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    base: Path = tmp_path_factory.mktemp("jupyter-mqtt")
    with start_jupyter_server(
        base,
        f"--RtnbExtension.mqtt={broker_url}",
        f"--RtnbExtension.mqtt_in={NAMESPACE}/#",
        f"--RtnbExtension.mqtt_out={NAMESPACE}/+/cmd",
        f"--RtnbExtension.mqtt_prefix={PREFIX}",
    ) as server:
        yield server


async def wait_bridge_connected(peer: WirePeer, timeout: float = 15.0) -> dict[str, Any]:
    """Read the bridge's status topic until it says ``connected``; returns that status."""
    reply = await peer.request({"op": "subscribe", "topic": "$rtnb/bridge/mqtt", "last": 1})
    assert reply["op"] == "subscribed", reply
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        (status,) = await peer.messages(1, timeout=max(remaining, 0.01))
        if status["data"]["state"] == "connected":
            return dict(status["data"])


async def test_mqtt_publish_reaches_a_websocket_subscriber_and_commands_reach_mqtt(
    mqtt_jupyter_server: JupyterServer, broker_url: str
) -> None:
    import aiomqtt

    token = {"Authorization": f"token {mqtt_jupyter_server.token}"}
    async with (
        WirePeer(mqtt_jupyter_server.hub_ws_url, additional_headers=token) as status_peer,
        WirePeer(mqtt_jupyter_server.hub_ws_url, additional_headers=token) as dashboard,
        aiomqtt.Client(BROKER[0], BROKER[1], identifier=f"device-{NAMESPACE}") as device,
    ):
        status = await wait_bridge_connected(status_peer)
        assert status["broker"] == broker_url and status["prefix"] == PREFIX
        reply = await dashboard.request({"op": "subscribe", "topic": f"{PREFIX}/{NAMESPACE}/+/temp"})
        assert reply["op"] == "subscribed", reply

        # device -> broker -> Jupyter's hub -> WebSocket
        await device.publish(f"{NAMESPACE}/boiler/temp", b'{"value": 71.5}', qos=1)
        await device.publish(f"{NAMESPACE}/pump/temp", b"not json", qos=1)
        received = await dashboard.messages(2, timeout=10)
        assert sorted((m["topic"], m["data"]) for m in received) == [
            (f"{PREFIX}/{NAMESPACE}/boiler/temp", {"value": 71.5}),
            (f"{PREFIX}/{NAMESPACE}/pump/temp", "not json"),
        ]

        # WebSocket -> Jupyter's hub -> broker -> device
        await device.subscribe(f"{NAMESPACE}/+/cmd", qos=1)
        command = {"op": "publish", "topic": f"{PREFIX}/{NAMESPACE}/boiler/cmd", "data": "off", "id": "c1"}
        assert (await dashboard.request(command))["op"] == "ack"
        async with asyncio.timeout(10):
            async for message in device.messages:
                assert (str(message.topic), message.payload) == (f"{NAMESPACE}/boiler/cmd", b"off")
                break


async def test_the_bridge_shows_on_the_hubs_health_behind_jupyters_auth(
    mqtt_jupyter_server: JupyterServer,
) -> None:
    import json

    from tornado.httpclient import AsyncHTTPClient

    client = AsyncHTTPClient()
    url = f"{mqtt_jupyter_server.hub_url}/healthz"
    refused = await client.fetch(url, raise_error=False)
    assert refused.code == 403
    token = {"Authorization": f"token {mqtt_jupyter_server.token}"}
    async with WirePeer(mqtt_jupyter_server.hub_ws_url, additional_headers=token) as peer:
        await wait_bridge_connected(peer)
    answer = await client.fetch(url, headers=token, raise_error=False)
    health = json.loads(answer.body)
    assert health["components"]["mqtt"]["state"] == "connected", health
    assert health["components"]["mqtt"]["inbound"] == [f"{NAMESPACE}/#"]


# -- bad settings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "error", "words"),
    [
        ({"mqtt_in": ["a/#"]}, BadField, "need a broker"),
        ({"mqtt": "ftp://127.0.0.1", "mqtt_in": ["a/#"]}, BadField, "mqtt:// or mqtts://"),
        ({"mqtt": BROKER_URL}, BadField, "at least one inbound or outbound"),
        ({"mqtt": BROKER_URL, "mqtt_in": ["a//b"]}, InvalidPattern, "empty level"),
        ({"mqtt": BROKER_URL, "mqtt_in": ["a/#"], "mqtt_options": {"qos": 3}}, BadField, "QoS"),
        ({"mqtt": BROKER_URL, "mqtt_in": ["a/#"], "mqtt_options": {"qoss": 1}}, BadField, "Unknown"),
    ],
)
def test_bad_mqtt_settings_raise_a_typed_error(settings: dict[str, Any], error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        mqtt_options_from_settings(RtnbExtension(**settings))


def test_no_mqtt_setting_means_no_bridge() -> None:
    assert mqtt_options_from_settings(RtnbExtension()) is None


def test_a_server_told_to_fail_on_extension_errors_exits_on_a_bad_mqtt_setting(tmp_path: Path) -> None:
    """With ``reraise_server_extension_failures`` a bad setting stops the server, with the reason."""
    env = {
        **os.environ,
        "JUPYTER_CONFIG_PATH": str(REPOSITORY / "jupyter-config"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")])),
    }
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port=0",
            f"--IdentityProvider.token={TOKEN}",
            "--ServerApp.open_browser=False",
            "--ServerApp.allow_root=True",
            f"--ServerApp.root_dir={tmp_path}",
            "--ServerApp.reraise_server_extension_failures=True",
            "--RtnbExtension.mqtt_in=plant/#",
        ],
        env=env,
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert completed.returncode != 0
    log = completed.stderr.decode()
    assert "BadArgument" in log and "set c.RtnbExtension.mqtt to a URL" in log, log[-3000:]
