"""The extension's options (``c.RtnbExtension.*``) and the MQTT bridge they ask for."""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any

from traitlets import Dict, Int, List, Unicode
from traitlets.config import Configurable

from ...bridge.options import MqttOptions
from ...core.errors import BadArgument, BadArgumentType

__all__ = ["MQTT_COMPONENT", "RtnbExtension", "mqtt_options_from_settings"]

#: hub component name of the MQTT bridge (``/healthz``, ``/metrics``, ``$rtnb/bridge/mqtt``)
MQTT_COMPONENT = "mqtt"

#: MqttOptions fields set through ``c.RtnbExtension.mqtt_options`` (the others have their own trait)
_OTHER_FIELDS = frozenset(field.name for field in dataclasses.fields(MqttOptions)) - {
    "url",
    "inbound",
    "outbound",
    "prefix",
}


class RtnbExtension(Configurable):
    """Options of the rtnb Jupyter server extension (``c.RtnbExtension.*``)."""

    mount = Unicode("rtnb", help="Path under the server's base_url where the hub's routes live.").tag(config=True)
    history_messages = Int(1000, help="Messages kept per topic in the hub's history.").tag(config=True)
    allowed_origins = List(
        Unicode(),
        help="Browser origins allowed to open hub WebSockets besides those Jupyter's own rules allow.",
    ).tag(config=True)
    allowed_hosts = List(
        Unicode(),
        help="Host names the hub answers besides loopback ones and Jupyter's local_hostnames "
        "(when Jupyter's allow_remote_access is off); '*' for any. Guards against DNS rebinding.",
    ).tag(config=True)
    redis = Unicode("", help="Redis URL shared by several servers' hubs").tag(config=True)
    mqtt = Unicode(
        "", help="MQTT broker to bridge, e.g. 'mqtt://127.0.0.1:1883' or 'mqtts://user:password@host'; '' for none."
    ).tag(config=True)
    mqtt_in = List(Unicode(), help="MQTT topic filters bridged into the hub, e.g. ['plant/#'].").tag(config=True)
    mqtt_out = List(
        Unicode(), help="MQTT topic filters whose hub messages go out to the broker, e.g. ['plant/+/cmd']."
    ).tag(config=True)
    mqtt_prefix = Unicode("", help="Hub topic of MQTT topic T is '<prefix>/T' (default: T).").tag(config=True)
    mqtt_options = Dict(
        help="Other MQTT bridge options (rtnb.bridge.MqttOptions fields), e.g. {'qos': 0, 'ca_file': '...'}."
    ).tag(config=True)


def mqtt_options_from_settings(settings: RtnbExtension) -> MqttOptions | None:
    """The MQTT bridge the ``c.RtnbExtension.mqtt*`` settings ask for, or None.

    Traitlets already checked each setting's type; what is left is how they go
    together, checked as :class:`MqttOptions` does for ``rtnb serve --mqtt``.

    Raises:
        BadArgument / InvalidPattern / InvalidTopic: invalid settings, named as in
            ``jupyter_server_config.py``.
    """
    inbound: list[str] = settings.mqtt_in
    outbound: list[str] = settings.mqtt_out
    # values of any type from the user's config: MqttOptions checks each one
    more: dict[str, Any] = dict(settings.mqtt_options)
    if not settings.mqtt:
        if inbound or outbound or settings.mqtt_prefix or more:
            raise BadArgument(
                "c.RtnbExtension.mqtt_in, mqtt_out, mqtt_prefix and mqtt_options need a broker: "
                "set c.RtnbExtension.mqtt to a URL such as 'mqtt://127.0.0.1:1883'."
            )
        return None
    unknown = sorted(set(more) - _OTHER_FIELDS)
    if unknown:
        raise BadArgument(
            f"Unknown c.RtnbExtension.mqtt_options {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(_OTHER_FIELDS))}."
        )
    try:
        options = MqttOptions(
            url=settings.mqtt,
            inbound=tuple(inbound),
            outbound=tuple(outbound),
            prefix=settings.mqtt_prefix,
            **more,
        )
    except TypeError as error:  # a value of the wrong type deep in the dataclass checks
        raise BadArgumentType(f"Invalid MQTT bridge option: {error}.") from None
    if importlib.util.find_spec("aiomqtt") is None:
        raise BadArgument("c.RtnbExtension.mqtt needs the aiomqtt package: pip install 'rtnb[mqtt]'.")
    return options
