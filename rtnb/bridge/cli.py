"""The ``--mqtt*`` options of ``rtnb serve``, kept here so the serve verb stays small.

``add_mqtt_arguments(parser)`` adds them; ``options_from_args(args)`` turns the
parsed namespace into :class:`~rtnb.bridge.options.MqttOptions` (or ``None``
when ``--mqtt`` was not given). The broker password may come from the
``RTNB_MQTT_PASSWORD`` environment variable, so it need not appear in ``ps``.
"""

from __future__ import annotations

import argparse
import inspect
import os
from collections.abc import Awaitable, Callable
from typing import Any

from ..core.errors import BadArgument
from .options import DEFAULT_STATUS_TOPIC, MqttOptions

__all__ = ["PASSWORD_VARIABLE", "add_mqtt_arguments", "options_from_args", "with_mqtt_bridge"]

PASSWORD_VARIABLE = "RTNB_MQTT_PASSWORD"
#: options that mean nothing without ``--mqtt`` (given without it: refused, not ignored)
_NEED_A_BROKER = (
    "mqtt_in",
    "mqtt_out",
    "mqtt_prefix",
    "mqtt_retain",
    "mqtt_username",
    "mqtt_password",
    "mqtt_ca",
    "mqtt_cert",
    "mqtt_key",
    "mqtt_insecure",
    "mqtt_client_id",
)


def add_mqtt_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the MQTT bridge options to a verb's parser (as one argument group)."""
    group = parser.add_argument_group("MQTT bridge", "Bridge an MQTT broker's topics into the hub and back.")
    group.add_argument(
        "--mqtt",
        metavar="URL",
        help="broker URL: mqtt://127.0.0.1:1883, mqtts://host:8883, or MQTT over WebSockets: ws://host:8080/mqtt, "
        "wss://host/mqtt (through networks that block port 1883)",
    )
    group.add_argument(
        "--mqtt-in",
        action="append",
        default=[],
        metavar="FILTER",
        help="MQTT topic filter bridged into the hub (repeatable), e.g. 'factory/#'",
    )
    group.add_argument(
        "--mqtt-out",
        action="append",
        default=[],
        metavar="FILTER",
        help="MQTT topic filter whose hub messages go out to the broker (repeatable), e.g. 'factory/+/cmd'",
    )
    group.add_argument("--mqtt-prefix", default="", metavar="P", help="hub topics are P/<mqtt topic> (default: none)")
    group.add_argument("--mqtt-qos", type=int, default=1, choices=(0, 1, 2), help="QoS in both directions (default: 1)")
    group.add_argument("--mqtt-retain", action="store_true", help="set the retain flag on messages sent to the broker")
    group.add_argument(
        "--mqtt-payload",
        default="auto",
        choices=("auto", "json", "text", "binary"),
        help="how MQTT payloads become hub data (default: auto = JSON, else text, else base64)",
    )
    group.add_argument("--mqtt-username", metavar="NAME", help="broker user name")
    group.add_argument("--mqtt-password", metavar="SECRET", help=f"broker password (or set ${PASSWORD_VARIABLE})")
    group.add_argument("--mqtt-ca", metavar="FILE", help="CA bundle (PEM) to verify the broker's TLS certificate")
    group.add_argument("--mqtt-cert", metavar="FILE", help="client certificate (PEM) for mutual TLS")
    group.add_argument("--mqtt-key", metavar="FILE", help="client private key (PEM) for mutual TLS")
    group.add_argument(
        "--mqtt-insecure", action="store_true", help="do not verify the broker's certificate (test brokers only)"
    )
    group.add_argument(
        "--mqtt-client-id",
        metavar="ID",
        help="fixed client id: the broker then keeps the bridge's session and queues messages while it is away",
    )
    group.add_argument(
        "--mqtt-protocol", default="5", choices=("5", "3.1.1"), help="MQTT protocol version (default: 5)"
    )
    group.add_argument(
        "--mqtt-status-topic",
        default=DEFAULT_STATUS_TOPIC,
        metavar="TOPIC",
        help=f"hub topic where the bridge reports its state (default: {DEFAULT_STATUS_TOPIC})",
    )


def options_from_args(args: argparse.Namespace) -> MqttOptions | None:
    """The bridge options the command line asked for, or ``None`` without ``--mqtt``.

    Raises:
        BadArgument (a ValueError): bridge options (``--mqtt-in``...) without ``--mqtt``.
        BadArgument / InvalidPattern / InvalidTopic: an invalid option, with one sentence.
    """
    if not args.mqtt:
        given = [f"--{name.replace('_', '-')}" for name in _NEED_A_BROKER if getattr(args, name, None)]
        if given:
            verb = "needs" if len(given) == 1 else "need"
            raise BadArgument(f"{', '.join(given)} {verb} --mqtt URL, the broker to bridge.")
        return None
    password = args.mqtt_password if args.mqtt_password is not None else os.environ.get(PASSWORD_VARIABLE)
    return MqttOptions(
        url=args.mqtt,
        inbound=tuple(args.mqtt_in),
        outbound=tuple(args.mqtt_out),
        prefix=args.mqtt_prefix,
        qos=args.mqtt_qos,
        retain=args.mqtt_retain,
        payload=args.mqtt_payload,
        username=args.mqtt_username,
        password=password,
        ca_file=args.mqtt_ca,
        cert_file=args.mqtt_cert,
        key_file=args.mqtt_key,
        tls_insecure=args.mqtt_insecure,
        client_id=args.mqtt_client_id,
        protocol=args.mqtt_protocol,
        status_topic=args.mqtt_status_topic,
    )


def with_mqtt_bridge(options: MqttOptions, then: Callable[[Any], Any]) -> Callable[[Any], Awaitable[None]]:
    """An ``on_ready`` hook for :func:`~rtnb.server.runner.serve`: start the bridge, then call ``then``."""

    async def on_ready(server: Any) -> None:
        from .mqtt import start_mqtt_bridge

        await start_mqtt_bridge(server.hub, options)
        result = then(server)
        if inspect.isawaitable(result):
            await result

    return on_ready
