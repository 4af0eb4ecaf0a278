"""The kernel's embedded hub with an MQTT bridge, for the Status panel's bridge row.

The package's tests share one embedded hub without a bridge (tests/notebook/conftest.py);
these start the kernel's hub with ``start_hub(mqtt=...)`` for one test, as a
notebook would, and put the shared one back afterwards.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator

import pytest

import rtnb.notebook.embedded as embedded_module
from rtnb.notebook.embedded import EmbeddedHub, start_hub

BROKER = ("127.0.0.1", 1883)

#: fast retries and status reports, so a test sees attempts grow within seconds
FAST = {"reconnect_initial": 0.1, "reconnect_max": 0.4, "status_interval": 0.5, "connect_timeout": 2.0}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): connecting is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def mosquitto_or_skip() -> str:
    """The real broker's URL; a skip without it (a failure under RTNB_CI)."""
    try:
        with socket.create_connection(BROKER, timeout=0.5):
            pass
    except OSError:
        reason = "no MQTT broker reachable at 127.0.0.1:1883 (start mosquitto to test the bridge row connected)"
        if os.environ.get("RTNB_CI"):
            pytest.fail(reason + " (required: RTNB_CI is set)")
        pytest.skip(reason)
    return f"mqtt://{BROKER[0]}:{BROKER[1]}"


@contextlib.contextmanager
def kernel_hub_bridging(monkeypatch: pytest.MonkeyPatch, broker_url: str) -> Iterator[tuple[EmbeddedHub, str]]:
    """``(hub, namespace)``: the kernel's hub (``current_hub()``) bridging ``namespace/#`` of ``broker_url``."""
    namespace = f"statusrow{uuid.uuid4().hex[:10]}"
    monkeypatch.setattr(embedded_module, "_current", None)  # the shared hub comes back with monkeypatch's undo
    hub = start_hub(mqtt=broker_url, mqtt_in=[f"{namespace}/#"], mqtt_prefix="mqtt", mqtt_options=dict(FAST))
    try:
        assert embedded_module.current_hub() is hub and hub.bridge is not None
        yield hub, namespace
    finally:
        hub.stop()
