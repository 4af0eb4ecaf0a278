"""The whole IoT path, with the real commands: ``rtnb serve --mqtt`` and simulated MQTT devices.

devices -> MQTT broker -> hub -> (a dashboard on WebSocket) -> command -> hub -> MQTT broker -> device
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from typing import Any

import rtnb.sim
from rtnb.bridge import start_mqtt_bridge
from rtnb.testing import WirePeer, running_hub, wait_until


async def test_simulated_mqtt_devices_obey_dashboard_commands(broker_url: str, namespace: str) -> None:
    async with running_hub() as server:
        bridge = await start_mqtt_bridge(
            server.hub, url=broker_url, inbound=[f"{namespace}/#"], outbound=[f"{namespace}/+/cmd"]
        )
        await bridge.wait_connected()
        simulation = rtnb.sim.sensors(broker_url, [f"{namespace}/+/temp"], devices=("boiler",), rate=50.0, seed=1)
        try:
            async with WirePeer(server.ws_url) as dashboard:
                await dashboard.request({"op": "subscribe", "topic": f"{namespace}/+/temp"})
                [reading] = await dashboard.messages(1)
                assert reading["topic"] == f"{namespace}/boiler/temp" and reading["data"]["unit"] == "°C"
                reply = await dashboard.request(
                    {"op": "publish", "topic": f"{namespace}/boiler/cmd", "data": {"setpoint": 80.5}, "id": "c1"}
                )
                assert reply["op"] == "ack"

                async def setpoint_reached() -> dict[str, Any]:
                    while True:
                        [item] = await dashboard.messages(1)
                        if item["data"]["setpoint"] == 80.5:
                            return item

                await asyncio.wait_for(setpoint_reached(), 10)
            assert simulation.devices["boiler"].metrics[0].setpoint == 80.5
        finally:
            await asyncio.to_thread(simulation.stop)
        assert simulation.rejected == 0


async def test_rtnb_serve_and_rtnb_sim_over_mqtt(broker_url: str, namespace: str) -> None:
    serve = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rtnb",
        "serve",
        "--port",
        "0",
        "--mqtt",
        broker_url,
        "--mqtt-in",
        f"{namespace}/#",
        "--mqtt-out",
        f"{namespace}/+/cmd",
        "--mqtt-prefix",
        "iot",
        stderr=asyncio.subprocess.PIPE,
    )
    sim = None
    try:
        assert serve.stderr is not None
        banner = ""
        while "rtnb hub on" not in banner:
            banner = (await asyncio.wait_for(serve.stderr.readline(), 20)).decode()
        url = re.search(r"rtnb hub on (\S+)", banner).group(1)  # type: ignore[union-attr]
        sim = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "rtnb",
            "sim",
            "--mqtt",
            broker_url,
            "--topic",
            f"{namespace}/+/temp",
            "--device",
            "pump",
            "--rate",
            "20",
            stderr=asyncio.subprocess.DEVNULL,
        )
        async with WirePeer(url.replace("http", "ws", 1) + "/ws") as dashboard:
            await dashboard.request({"op": "subscribe", "topic": "$rtnb/bridge/mqtt", "last": 1})
            [status] = await dashboard.messages(1)
            assert status["data"]["state"] == "connected"
            await dashboard.request({"op": "subscribe", "topic": f"iot/{namespace}/pump/temp"})
            await dashboard.messages(1)
            await dashboard.request(
                {"op": "publish", "topic": f"iot/{namespace}/pump/cmd", "data": {"on": False}, "id": "off"}
            )

            async def switched_off() -> None:
                while True:
                    [item] = await dashboard.messages(1)
                    if item["topic"].endswith("/temp") and item["data"]["on"] is False:
                        return

            await asyncio.wait_for(switched_off(), 10)

        def health() -> dict[str, Any]:
            import urllib.request

            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
                return json.loads(response.read())

        report = (await asyncio.to_thread(health))["components"]["mqtt"]
        assert report["state"] == "connected" and report["messages_out"] >= 1 and report["messages_in"] >= 2
    finally:
        for process in (sim, serve):
            if process is not None and process.returncode is None:
                process.terminate()
                await process.wait()
    await wait_until(lambda: serve.returncode is not None)
    assert serve.returncode == 0
