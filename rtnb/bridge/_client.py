"""The bridge's MQTT client: one aiomqtt client per connection attempt, built from the options.

Why a fresh client per attempt: aiomqtt's client is reusable, but after an
*unexpected* disconnection it keeps its "connected" future set, so the next
``async with`` returns before the broker's CONNACK and the session then hangs
in SUBSCRIBE until the timeout (about 11 s before the bridge noticed), leaving a
"Future exception was never retrieved" behind. A fresh client starts clean.
The inbound queue is shared by every client of one bridge, so MQTT messages
read but not yet brought into the hub survive a reconnect.

:class:`_BridgeClient` also fails the connection attempt at once when the broker
side closes the socket before CONNACK (a port forwarder, a proxy or a container
runtime that accepts while the broker behind it is down); aiomqtt would wait
for the whole ``timeout`` there.

This module imports ``aiomqtt``: import it only when a bridge starts.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .options import MqttOptions

__all__ = ["CountingQueue", "make_client", "make_tls_context", "settle_client"]


class CountingQueue(asyncio.Queue[Any]):
    """aiomqtt's inbound queue, counting what it drops when full (aiomqtt only logs it)."""

    dropped = 0

    def put_nowait(self, item: Any) -> None:
        try:
            super().put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            raise


if TYPE_CHECKING:
    _LoggerAdapter = logging.LoggerAdapter[logging.Logger]
else:  # LoggerAdapter takes a type argument only from Python 3.11 on
    _LoggerAdapter = logging.LoggerAdapter


class _QuietLogger(_LoggerAdapter):
    """paho's and aiomqtt's own log lines, all at DEBUG.

    They report each socket error of each attempt ("failed to receive on socket")
    at ERROR; the bridge already reports the outage once, with its state on
    ``/healthz`` and the status topic, so these would only repeat it, in red, in
    a notebook.
    """

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        super().log(logging.DEBUG, msg, *args, **kwargs)


class _BridgeClient(aiomqtt.Client):
    """aiomqtt's client, told when the socket closes before the broker's CONNACK."""

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any = None) -> None:
        if not self._connected.done():
            self._connected.set_exception(
                aiomqtt.MqttError(f"the connection closed before the broker's CONNACK ({reason_code})")
            )
            return
        super()._on_disconnect(client, userdata, flags, reason_code, properties)


def make_tls_context(options: MqttOptions) -> ssl.SSLContext | None:
    """The TLS context the options ask for (``mqtts://``, ``wss://``, CA or client files), or None.

    Raises:
        OSError / ssl.SSLError: a CA, certificate or key file cannot be loaded.
    """
    if not options.uses_tls:
        return None
    context = ssl.create_default_context(cafile=options.ca_file)
    if options.cert_file is not None:
        context.load_cert_chain(options.cert_file, options.key_file)
    if options.tls_insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def make_client(options: MqttOptions, tls_context: ssl.SSLContext | None, queue: asyncio.Queue[Any]) -> Any:
    """A new, unconnected aiomqtt client for one connection attempt, reading into ``queue``."""
    address = options.address
    persistent = options.client_id is not None
    settings: dict[str, Any] = {}
    if options.protocol == "5":
        settings["protocol"] = aiomqtt.ProtocolVersion.V5
        settings["clean_start"] = not persistent
        if persistent:
            make_properties: Callable[[int], Properties] = Properties  # paho leaves its __init__ unannotated
            properties = make_properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = options.session_expiry
            settings["properties"] = properties
    else:
        settings["protocol"] = aiomqtt.ProtocolVersion.V311
        settings["clean_session"] = not persistent
    if address.transport == "websockets":
        settings["transport"] = "websockets"
        settings["websocket_path"] = address.path
    # aiomqtt types queue_type as a Queue class but only calls it as queue_type(maxsize=...):
    # a factory handing back the bridge's shared queue serves.
    queue_type: Any = lambda maxsize: queue  # noqa: E731
    # aiomqtt types logger as a Logger; it and paho only call its logging methods, which the adapter has.
    logger: Any = _QuietLogger(logging.getLogger("rtnb.bridge.mqtt.client"), {})
    client = _BridgeClient(
        address.host,
        address.port,
        username=address.username,
        password=address.password,
        identifier=options.client_id,
        keepalive=options.keepalive,
        timeout=options.connect_timeout,
        tls_context=tls_context,
        max_inflight_messages=options.publish_window,
        max_queued_incoming_messages=options.max_inbound_queue or 0,
        queue_type=queue_type,
        logger=logger,
        **settings,
    )
    client.pending_calls_threshold = options.publish_window + 16
    return client


def settle_client(client: Any) -> None:
    """Mark the client's connection futures as seen before it is dropped.

    A lost connection leaves its error in a future that nothing may await any
    more (the session already ended for another reason); asyncio would log it as
    "Future exception was never retrieved" when the client is collected.
    """
    for future in (client._connected, client._disconnected):
        if future.done() and not future.cancelled():
            future.exception()
