"""The Status panel's MQTT bridge row, kernel side: which topic it shows, and the relay of its status.

The browser side (drawn in Chromium, direct and relayed) is tests/notebook/test_status_bridge_browser.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bridged_hub import closed_port, kernel_hub_bridging

import rtnb.notebook as notebook
from rtnb.client import connect
from rtnb.notebook.embedded import EmbeddedHub
from rtnb.testing import wait_until

pytestmark = pytest.mark.timeout(60)


def test_a_hub_without_a_bridge_gets_no_bridge_row(embedded: EmbeddedHub, client: Any) -> None:
    status = notebook.Status([], client=client)
    assert status.config["bridge"] is None and status.bridge_relay is None
    status._on_browser_message(status, {"op": "bridge"}, [])  # nothing to relay: ignored
    status.close()


def test_without_a_bridge_flag_the_panel_shows_views_only(embedded: EmbeddedHub, client: Any) -> None:
    status = notebook.Status([], client=client, bridge=False)
    assert status.config["bridge"] is None and status.hub == {}
    status.close()


async def test_the_kernel_relays_the_bridge_status_when_a_browser_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    port = closed_port()
    with kernel_hub_bridging(monkeypatch, f"mqtt://127.0.0.1:{port}") as (hub, _namespace), connect(hub.url) as client:
        chart = notebook.LiveChart("statusrow/+", client=client, transport="direct")
        status = notebook.Status([chart])  # the hub is the first view's
        assert status.config["bridge"] == {"name": "mqtt", "topic": "$rtnb/bridge/mqtt"}
        # the browser may reach the hub itself, with the view key (which admits the status topic)
        assert status.hub["url"] == hub.url and status.hub["token"] == hub.view_key
        # the static fallback asks the kernel's hub (nothing relayed yet)
        fallback = status.static_html()
        assert f"MQTT bridge mqtt://127.0.0.1:{port}: " in fallback
        assert "disconnected, " in fallback or ": connecting;" in fallback  # between attempts, or in one
        sent: list[dict[str, Any]] = []
        status.send = lambda content, buffers=None: sent.append(content)  # type: ignore[method-assign]
        await asyncio.sleep(0.3)
        assert sent == []  # nothing crosses the kernel until a browser asks
        status._on_browser_message(status, {"op": "bridge"}, [])
        await wait_until(lambda: len(sent) >= 1, timeout=5)
        first = sent[0]
        assert first["op"] == "bridge" and first["topic"] == "$rtnb/bridge/mqtt"
        assert first["data"]["state"] in ("disconnected", "connecting")
        assert first["data"]["broker"] == f"mqtt://127.0.0.1:{port}"
        # every later state change is forwarded: the failed attempts grow while the broker is down
        first_failed = first["data"]["failed_attempts"]
        await wait_until(lambda: sent[-1]["data"]["failed_attempts"] >= first_failed + 2, timeout=10)
        last = sent[-1]["data"]
        assert last["state"] == "disconnected" and last["retry_in"] is not None
        assert f"127.0.0.1:{port}" in last["last_error"]
        # a second browser asking gets the newest at once
        count = len(sent)
        status._on_browser_message(status, {"op": "bridge"}, [])
        assert len(sent) == count + 1 and sent[-1]["data"]["failed_attempts"] >= last["failed_attempts"]
        status.close()
        assert status.bridge_relay is not None and not status.bridge_relay.started
        count = len(sent)
        await asyncio.sleep(1.0)
        assert len(sent) == count  # stopped: nothing more is forwarded
        chart.close()


def test_another_hub_is_asked_on_the_default_status_topic(embedded: EmbeddedHub) -> None:
    # the Jupyter extension's hub (or any hub not the kernel's own): its bridge, if any, is named "mqtt" and
    # reports on $rtnb/bridge/mqtt; the row appears when a status message arrives
    from rtnb.notebook._bridge_row import bridge_row_config

    class OtherHubClient:
        url = "http://127.0.0.1:9/rtnb"

    assert bridge_row_config(OtherHubClient()) == {"name": "mqtt", "topic": "$rtnb/bridge/mqtt"}
    assert bridge_row_config(object()) == {"name": "mqtt", "topic": "$rtnb/bridge/mqtt"}
