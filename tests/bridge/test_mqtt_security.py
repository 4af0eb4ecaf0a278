"""Username/password and TLS to the broker, on a private Mosquitto with a password file and a TLS listener."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from mqtt_helpers import free_port, make_certificates, mqtt_client, record

from rtnb.bridge import MqttOptions, start_mqtt_bridge
from rtnb.bridge.mqtt import MqttBridge
from rtnb.core.errors import BadField
from rtnb.server.hub import Hub
from rtnb.testing import wait_until


@pytest.fixture
def secured_broker_config(tmp_path: Path) -> tuple[str, int, Path]:
    """Mosquitto config: password required; a TLS listener on another free port."""
    pytest.importorskip("cryptography", reason="cryptography makes the test certificates")
    mosquitto_passwd = shutil.which("mosquitto_passwd")
    if mosquitto_passwd is None:
        pytest.skip("mosquitto_passwd is not installed (it comes with mosquitto)")
    passwords = tmp_path / "passwords"
    subprocess.run([mosquitto_passwd, "-c", "-b", str(passwords), "device", "s3cret"], check=True)
    passwords.chmod(0o600)
    ca, certificate, key = make_certificates(tmp_path)
    tls_port = free_port()
    config = (
        "allow_anonymous false\n"
        f"password_file {passwords}\n"
        "per_listener_settings false\n"
        f"listener {tls_port} 127.0.0.1\n"
        f"cafile {ca}\ncertfile {certificate}\nkeyfile {key}\n"
    )
    return config.replace("allow_anonymous true\n", ""), tls_port, ca


async def test_password_and_tls(
    hub: Hub, private_broker_factory: Any, secured_broker_config: tuple[str, int, Path], namespace: str
) -> None:
    config, tls_port, ca = secured_broker_config
    broker = await private_broker_factory(config)
    # plain listener, with credentials in the URL
    plain = await start_mqtt_bridge(
        hub, url=f"mqtt://device:s3cret@127.0.0.1:{broker.port}", inbound=[f"{namespace}/plain"], name="plain"
    )
    await plain.wait_connected()
    # TLS listener, verified against our CA, credentials as options
    secure = await start_mqtt_bridge(
        hub,
        url=f"mqtts://127.0.0.1:{tls_port}",
        inbound=[f"{namespace}/secure"],
        username="device",
        password="s3cret",
        ca_file=str(ca),
        name="secure",
    )
    await secure.wait_connected()
    assert secure.health()["broker"] == f"mqtts://device@127.0.0.1:{tls_port}"  # never the password
    sink = await record(hub, f"{namespace}/#")
    async with mqtt_client(broker.url, username="device", password="s3cret") as device:
        await device.publish(f"{namespace}/plain", b"1", qos=1)
        await device.publish(f"{namespace}/secure", b"2", qos=1)
    await wait_until(lambda: sink.on(f"{namespace}/plain") == [1] and sink.on(f"{namespace}/secure") == [2])


async def test_wrong_password_is_reported(
    hub: Hub, private_broker_factory: Any, secured_broker_config: tuple[str, int, Path], namespace: str
) -> None:
    config, _tls_port, _ca = secured_broker_config
    broker = await private_broker_factory(config)
    bridge = MqttBridge(
        MqttOptions(
            url=f"mqtt://device:wrong@127.0.0.1:{broker.port}",
            inbound=[f"{namespace}/#"],
            reconnect_initial=0.05,
            reconnect_max=0.1,
        )
    )
    await hub.add_component("mqtt", bridge)
    await wait_until(lambda: bridge.connect_failures >= 1)
    report = hub.health()["components"]["mqtt"]
    assert report["ok"] is False and "cannot connect" in report["last_error"]
    assert "wrong" not in str(report)


async def test_missing_tls_files_fail_at_start(hub: Hub, tmp_path: Path) -> None:
    bridge = MqttBridge(MqttOptions(url="mqtts://127.0.0.1:8883", inbound=["x/#"], ca_file=str(tmp_path / "no.pem")))
    with pytest.raises(BadField, match="TLS files"):
        await bridge.start(hub)
