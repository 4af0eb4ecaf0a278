"""The extension's hub stops with the Jupyter server: clients get 1001, the runtime file goes.

Each test starts its own ``jupyter server`` (the shared one must outlive the
module) and stops it through Jupyter's own shutdown path: SIGTERM, or Ctrl-C
on a terminal answered by ``--ServerApp.answer_yes``. Both run
``ServerApp._cleanup``, which awaits the extension's ``stop_extension``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import websockets
from rtnb_jupyter_fixture import JupyterServer, start_jupyter_server

from rtnb.testing import WirePeer

MQTT_BROKER = ("127.0.0.1", 1883)


def _token_header(server: JupyterServer) -> dict[str, str]:
    return {"Authorization": f"token {server.token}"}


async def _closed_with(peer: WirePeer, timeout: float = 20.0) -> int | None:
    """Read until the hub closes the connection; returns the close code it sent."""
    async with asyncio.timeout(timeout):
        try:
            while True:
                await peer.connection.recv()
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None


async def _stop_and_expect_1001(server: JupyterServer, stop: signal.Signals) -> None:
    runtime_file = next(server.runtime_dir.glob("rtnb-hub-*.json"))
    async with WirePeer(server.hub_ws_url, additional_headers=_token_header(server)) as peer:
        reply = await peer.request({"op": "subscribe", "topic": "plant/#"})
        assert reply["op"] == "subscribed", reply
        server.process.send_signal(stop)
        assert await _closed_with(peer) == 1001
    await asyncio.to_thread(server.process.wait, 30)
    assert not runtime_file.exists()
    log = server.log_path.read_text()
    assert "rtnb hub at /rtnb/ stopped" in log, log[-3000:]


async def test_sigterm_closes_hub_clients_with_1001_and_removes_the_runtime_file(tmp_path: Path) -> None:
    with start_jupyter_server(tmp_path, stdin=subprocess.DEVNULL) as server:
        await _stop_and_expect_1001(server, signal.SIGTERM)
        assert server.process.returncode == 0


async def test_ctrl_c_on_a_terminal_closes_hub_clients_with_1001(tmp_path: Path) -> None:
    """Ctrl-C in the terminal a user started Jupyter from (answered yes at once)."""
    controller, terminal = os.openpty()
    try:
        with start_jupyter_server(tmp_path, "--ServerApp.answer_yes=True", stdin=terminal) as server:
            await _stop_and_expect_1001(server, signal.SIGINT)
    finally:
        os.close(controller)
        os.close(terminal)


def _broker_reachable() -> bool:
    try:
        with socket.create_connection(MQTT_BROKER, timeout=0.5):
            return True
    except OSError:
        return False


async def test_shutdown_stops_the_mqtt_bridge(tmp_path: Path) -> None:
    if not _broker_reachable():
        reason = "no MQTT broker reachable at 127.0.0.1:1883 (start mosquitto to test the bridge's shutdown)"
        if os.environ.get("RTNB_CI"):
            pytest.fail(reason + " (required: RTNB_CI is set)")
        pytest.skip(reason)
    broker = f"mqtt://{MQTT_BROKER[0]}:{MQTT_BROKER[1]}"
    with start_jupyter_server(
        tmp_path, f"--RtnbExtension.mqtt={broker}", "--RtnbExtension.mqtt_in=rtnbshutdown/#", stdin=subprocess.DEVNULL
    ) as server:
        async with WirePeer(server.hub_ws_url, additional_headers=_token_header(server)) as peer:
            reply = await peer.request({"op": "subscribe", "topic": "$rtnb/bridge/mqtt", "last": 1})
            assert reply["op"] == "subscribed", reply
            async with asyncio.timeout(15):
                while (await peer.messages(1, timeout=15))[0]["data"]["state"] != "connected":
                    pass  # the bridge reports each state change; wait for 'connected'
        await _stop_and_expect_1001(server, signal.SIGTERM)
        assert "stopped (MQTT bridge stopped)" in server.log_path.read_text()
