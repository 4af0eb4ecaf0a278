"""MQTT over WebSockets (``ws://`` and ``wss://`` broker URLs), for networks that block port 1883.

Each test starts its own Mosquitto with a WebSockets listener (``protocol
websockets``, plain and TLS) beside a plain MQTT one: Debian's mosquitto 2.0
refuses to start with a WebSockets listener alone. The bridge only knows the
WebSockets port, so a working bridge proves the transport; devices talk plain
MQTT to the same broker. Covered: the bridge itself, ``rtnb serve --mqtt ws://``,
``rtnb.start_hub(mqtt="ws://...")`` in a kernel and ``c.RtnbExtension.mqtt``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kernel_cells import running_kernel
from mqtt_helpers import (
    PrivateBroker,
    broker_reachable,
    free_port,
    make_certificates,
    mqtt_client,
    next_messages,
    record,
)

from rtnb.bridge import start_mqtt_bridge
from rtnb.bridge.options import parse_broker_url
from rtnb.server.hub import Hub
from rtnb.testing import WirePeer, wait_until

REPOSITORY = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(120)


@dataclass
class WebSocketBroker:
    broker: PrivateBroker
    ws_port: int
    wss_port: int
    ca: Path

    @property
    def tcp_url(self) -> str:
        return self.broker.url

    def ws_url(self, path: str = "/mqtt") -> str:
        return f"ws://127.0.0.1:{self.ws_port}{path}"

    def wss_url(self, path: str = "/mqtt") -> str:
        return f"wss://127.0.0.1:{self.wss_port}{path}"


@pytest.fixture
async def websocket_broker(private_broker_factory: Callable[..., Any], tmp_path: Path) -> WebSocketBroker:
    pytest.importorskip("cryptography", reason="cryptography makes the test certificates")
    ca, certificate, key = make_certificates(tmp_path)
    ws_port, wss_port = free_port(), free_port()
    try:
        broker = await private_broker_factory(
            f"listener {ws_port} 127.0.0.1\nprotocol websockets\n"
            f"listener {wss_port} 127.0.0.1\nprotocol websockets\ncertfile {certificate}\nkeyfile {key}\n"
        )
    except RuntimeError as error:
        reason = f"this mosquitto cannot serve MQTT over WebSockets (built without libwebsockets?): {error}"
        if os.environ.get("RTNB_CI"):
            pytest.fail(f"{reason} (CI must provide it)")
        pytest.skip(reason)
    for port in (ws_port, wss_port):
        await wait_until(lambda port=port: broker_reachable("127.0.0.1", port, 0.1), timeout=5)
    return WebSocketBroker(broker, ws_port, wss_port, ca)


def test_websocket_urls_are_parsed_with_their_path() -> None:
    plain = parse_broker_url("ws://user:pw@broker.example:8080/mqtt")
    assert (plain.transport, plain.tls, plain.host, plain.port, plain.path) == (
        "websockets",
        False,
        "broker.example",
        8080,
        "/mqtt",
    )
    assert plain.display == "ws://user@broker.example:8080/mqtt"
    secure = parse_broker_url("wss://broker.example")
    assert (secure.transport, secure.tls, secure.port, secure.path) == ("websockets", True, 443, "/mqtt")
    assert parse_broker_url("ws://h").port == 80
    assert parse_broker_url("mqtt://h").transport == "tcp"


async def test_bridge_over_websockets_both_ways(hub: Hub, websocket_broker: WebSocketBroker, namespace: str) -> None:
    bridge = await start_mqtt_bridge(
        hub, url=websocket_broker.ws_url(), inbound=[f"{namespace}/#"], outbound=[f"{namespace}/+/cmd"]
    )
    await bridge.wait_connected()
    assert bridge.health()["broker"] == websocket_broker.ws_url()
    sink = await record(hub, f"{namespace}/#")
    async with mqtt_client(websocket_broker.tcp_url) as device:  # the device speaks plain MQTT
        await device.subscribe(f"{namespace}/+/cmd", qos=1)
        await device.publish(f"{namespace}/boiler/temp", b'{"value": 71}', qos=1)
        await wait_until(lambda: sink.on(f"{namespace}/boiler/temp") == [{"value": 71}])
        await hub.publish(f"{namespace}/boiler/cmd", {"setpoint": 80})
        [command] = await next_messages(device, 1)
        assert (command.topic.value, json.loads(command.payload)) == (f"{namespace}/boiler/cmd", {"setpoint": 80})


async def test_bridge_over_secure_websockets(hub: Hub, websocket_broker: WebSocketBroker, namespace: str) -> None:
    bridge = await start_mqtt_bridge(
        hub, url=websocket_broker.wss_url(), inbound=[f"{namespace}/#"], ca_file=str(websocket_broker.ca)
    )
    await bridge.wait_connected()
    assert bridge.health()["broker"] == websocket_broker.wss_url()
    sink = await record(hub, f"{namespace}/#")
    async with mqtt_client(websocket_broker.tcp_url) as device:
        await device.publish(f"{namespace}/pump/temp", b"20", qos=1)
    await wait_until(lambda: sink.on(f"{namespace}/pump/temp") == [20])


async def test_rtnb_serve_with_a_websocket_broker(websocket_broker: WebSocketBroker, namespace: str) -> None:
    serve = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rtnb",
        "serve",
        "--port",
        "0",
        "--mqtt",
        websocket_broker.ws_url(),
        "--mqtt-in",
        f"{namespace}/#",
        "--mqtt-prefix",
        "iot",
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert serve.stderr is not None
        banner = ""
        while "rtnb hub on" not in banner:
            banner = (await asyncio.wait_for(serve.stderr.readline(), 20)).decode()
        url = re.search(r"rtnb hub on (\S+)", banner).group(1)  # type: ignore[union-attr]
        async with WirePeer(url.replace("http", "ws", 1) + "/ws") as dashboard:
            await dashboard.request({"op": "subscribe", "topic": "$rtnb/bridge/mqtt", "last": 1})
            [status] = await dashboard.messages(1)
            assert (status["data"]["state"], status["data"]["broker"]) == ("connected", websocket_broker.ws_url())
            await dashboard.request({"op": "subscribe", "topic": f"iot/{namespace}/#"})
            async with mqtt_client(websocket_broker.tcp_url) as device:
                await device.publish(f"{namespace}/boiler/temp", b"71.5", qos=1)
            [message] = await dashboard.messages(1, timeout=10)
            assert (message["topic"], message["data"]) == (f"iot/{namespace}/boiler/temp", 71.5)
    finally:
        serve.terminate()
        await serve.wait()


async def test_start_hub_in_a_kernel_with_a_websocket_broker(websocket_broker: WebSocketBroker, namespace: str) -> None:
    with running_kernel() as kernel:
        cell = kernel.run(
            "import rtnb\n"
            f'hub = rtnb.start_hub(mqtt="{websocket_broker.ws_url()}", mqtt_in=["{namespace}/#"])\n'
            "from rtnb.testing import wait_until\n"
            'await wait_until(lambda: hub.bridge.health()["state"] == "connected", timeout=10)\n'
            'print(hub.bridge.health()["broker"])'
        )
        assert (cell.stdout.strip(), cell.stderr, cell.errors) == (websocket_broker.ws_url(), "", [])
        kernel.run("hub.stop()")


async def test_jupyter_extension_setting_with_a_websocket_broker(
    websocket_broker: WebSocketBroker, namespace: str, tmp_path: Path
) -> None:
    pytest.importorskip("jupyter_server", reason="the jupyter extra is not installed")
    token = "rtnb-ws-token-81d2"
    runtime = tmp_path / "runtime"
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("RTNB_", "JUPYTER_"))}
    environment.update(
        JUPYTER_CONFIG_PATH=str(REPOSITORY / "jupyter-config"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
        JUPYTER_RUNTIME_DIR=str(runtime),
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port=0",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            "--ServerApp.open_browser=False",
            "--ServerApp.allow_root=True",
            f"--ServerApp.root_dir={tmp_path}",
            f"--RtnbExtension.mqtt={websocket_broker.ws_url()}",
            f"--RtnbExtension.mqtt_in={namespace}/#",
        ],
        env=environment,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await wait_until(
            lambda: process.poll() is not None or bool(list(runtime.glob("jpserver-*.json"))), timeout=60, interval=0.1
        )
        assert process.poll() is None, f"jupyter server exited with {process.returncode}"
        server = json.loads(next(runtime.glob("jpserver-*.json")).read_text())

        def bridge_health() -> dict[str, Any]:
            request = urllib.request.Request(
                f"{server['url']}rtnb/healthz", headers={"Authorization": f"token {token}"}
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return dict(json.loads(response.read())["components"]["mqtt"])
            except urllib.error.HTTPError as error:  # 503 while the bridge is not connected yet
                return dict(json.loads(error.read()).get("components", {}).get("mqtt", {}))
            except OSError:
                return {}

        health: dict[str, Any] = {}

        async def connected() -> bool:
            nonlocal health
            health = await asyncio.to_thread(bridge_health)
            return health.get("state") == "connected"

        for _ in range(100):
            if await connected():
                break
            await asyncio.sleep(0.1)
        assert health.get("state") == "connected", health
        assert health["broker"] == websocket_broker.ws_url()
    finally:
        process.terminate()
        process.wait(20)
