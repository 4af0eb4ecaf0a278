"""``rtnb.start_hub(mqtt=...)`` in a real IPython kernel, as a notebook cell runs it.

With no broker the cell returns at once and shows one clear line; the bridge
then retries quietly in the background (nothing more on any cell), its state is
in ``hub.bridge.health()``, and it connects by itself once a broker appears.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kernel_cells import running_kernel
from mqtt_helpers import PrivateBroker

pytest.importorskip("ipykernel", reason="the notebook extra is not installed")

pytestmark = pytest.mark.timeout(120)


def _stderr_lines(messages: list[dict[str, Any]]) -> list[str]:
    return [
        message["content"]["text"]
        for message in messages
        if message["msg_type"] == "stream" and message["content"]["name"] == "stderr"
    ]


async def test_start_hub_without_a_broker_prints_one_line_retries_quietly_and_connects_later(
    mosquitto_binary: str, tmp_path: Path
) -> None:
    broker = PrivateBroker(mosquitto_binary, tmp_path)  # its port is chosen, nothing listens there yet
    url = f"mqtt://127.0.0.1:{broker.port}"
    with running_kernel() as kernel:
        kernel.run("import rtnb")
        cell = kernel.run(
            f'hub = rtnb.start_hub(mqtt="{url}", mqtt_in=["plant/#"], mqtt_out=["plant/+/cmd"],\n'
            '                      mqtt_options={"reconnect_max": 1.0})'
        )
        assert cell.errors == []
        assert cell.seconds < 3.0, cell  # returns at once, no 10 s wait for a broker
        shown = (cell.stdout + cell.stderr).strip().splitlines()
        assert len(shown) == 1, shown  # one clear line...
        assert f"cannot connect to {url}" in shown[0] and "retrying in the background" in shown[0], shown
        assert "Traceback" not in shown[0]

        # ...then quiet retries: nothing more on this cell or any other
        cell = kernel.run(
            "import time\ntime.sleep(3)\n"
            "health = hub.bridge.health()\n"
            'print(health["state"] != "connected", health["failed_attempts"] >= 3, health["last_error"] is not None)'
        )
        assert (cell.stdout.strip(), cell.stderr, cell.errors) == ("True True True", "", [])
        assert _stderr_lines(kernel.drain(0.5)) == []

        await broker.start()  # a broker appears: the bridge connects on its own, within its backoff cap
        try:
            cell = kernel.run(
                "from rtnb.testing import wait_until\n"
                'await wait_until(lambda: hub.bridge.health()["state"] == "connected", timeout=10)\n'
                'print(hub.bridge.health()["failed_attempts"], hub.bridge.health()["retry_in"])'
            )
            assert (cell.stdout.strip(), cell.stderr, cell.errors) == ("0 None", "", [])
            cell = kernel.run("hub.stop()")
            assert (cell.stderr, cell.errors) == ("", [])
            assert _stderr_lines(kernel.stray) == []
        finally:
            await broker.stop()
