"""Simulated devices that speak MQTT, as real IoT devices do.

:mod:`rtnb.sim` holds the device physics (:class:`~rtnb.sim.SensorModel`);
this module gives it an MQTT link: readings are published to a broker as JSON
and commands are read from the devices' command topics on that broker. With
``rtnb serve --mqtt ... --mqtt-in 'plant/#' --mqtt-out 'plant/+/cmd'`` the
demo then takes the real path::

    devices -> MQTT broker -> hub -> notebook dashboard -> command -> hub -> MQTT broker -> device

Use it through ``rtnb.sim.sensors("mqtt://127.0.0.1:1883", ["plant/+/temp"])``
or ``rtnb sim --mqtt mqtt://127.0.0.1:1883``; ``ws://`` and ``wss://`` broker URLs
speak MQTT over WebSockets, as the bridge does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from ..core.errors import RtnbError, Unavailable
from .options import parse_broker_url
from .payloads import decode_payload, encode_payload

__all__ = ["mqtt_device_link"]

log = logging.getLogger("rtnb.sim.mqtt")

Publish = Callable[[str, Any], Awaitable[None]]


@contextlib.asynccontextmanager
async def mqtt_device_link(
    url: str,
    command_topics: Iterable[str],
    on_command: Callable[[str, Any], None],
    *,
    qos: int = 1,
    username: str | None = None,
    password: str | None = None,
    ca_file: str | None = None,
    tls_insecure: bool = False,
    client_id: str | None = None,
) -> AsyncIterator[Publish]:
    """Connect devices to the broker at ``url``; yields ``publish(topic, data)``.

    Commands arriving on ``command_topics`` are decoded like bridge payloads
    (JSON, else text) and passed to ``on_command(topic, data)`` on the loop.

    Raises:
        Unavailable: the broker cannot be reached, or the connection is lost
            (the MQTT library's errors are wrapped at this boundary).
        BadField: an invalid broker URL.
    """
    import aiomqtt

    address = parse_broker_url(url)
    tls_context = None
    if address.tls or ca_file is not None:
        tls_context = ssl.create_default_context(cafile=ca_file)
        if tls_insecure:
            tls_context.check_hostname = False
            tls_context.verify_mode = ssl.CERT_NONE
    websockets: dict[str, Any] = {}
    if address.transport == "websockets":
        websockets = {"transport": "websockets", "websocket_path": address.path}
    client = aiomqtt.Client(
        address.host,
        address.port,
        username=username if username is not None else address.username,
        password=password if password is not None else address.password,
        identifier=client_id,
        tls_context=tls_context,
        **websockets,
    )

    async def listen() -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            try:
                data = decode_payload(payload)
            except RtnbError as error:  # pragma: no cover - auto mode never refuses
                log.warning("simulated device ignored a command on %s: %s", message.topic.value, error.message)
                continue
            on_command(message.topic.value, data)

    async def publish(topic: str, data: Any) -> None:
        try:
            await client.publish(topic, encode_payload(data), qos=qos)
        except aiomqtt.MqttError as error:
            raise Unavailable(f"Lost the MQTT broker at {address.display}: {error}.") from None

    try:
        async with client:
            for topic in command_topics:
                await client.subscribe(topic, qos=qos)
            listener = asyncio.ensure_future(listen())
            try:
                yield publish
            finally:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await listener
    except aiomqtt.MqttError as error:
        raise Unavailable(f"Cannot use the MQTT broker at {address.display}: {error}.") from None
