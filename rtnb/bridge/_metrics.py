"""The MQTT bridge's series on ``/metrics``, from its health report (pure: data in, data out)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..server.hub import ComponentMetric

__all__ = ["bridge_metrics"]

#: (name, help, type, health field) of each plain series
_SERIES = (
    ("rtnb_mqtt_connected", "1 while the bridge is connected to its broker.", "gauge", "ok"),
    ("rtnb_mqtt_connects", "Successful connections to the broker.", "counter", "connects"),
    ("rtnb_mqtt_connect_failures", "Failed connection attempts.", "counter", "connect_failures"),
    ("rtnb_mqtt_messages_in", "MQTT messages published into the hub.", "counter", "messages_in"),
    ("rtnb_mqtt_messages_out", "Hub messages published to the broker.", "counter", "messages_out"),
    ("rtnb_mqtt_loops_prevented", "Messages not bridged back where they came from.", "counter", "loops_prevented"),
    ("rtnb_mqtt_gaps", "Gap notices: hub messages that never reached the broker.", "counter", "gaps"),
    ("rtnb_mqtt_inbound_dropped", "MQTT messages dropped over max_inbound_queue.", "counter", "inbound_dropped"),
    ("rtnb_mqtt_inbound_queue", "MQTT messages read but not yet in the hub.", "gauge", "inbound_queue"),
    ("rtnb_mqtt_outbound_queue", "Hub messages waiting for the broker.", "gauge", "outbound_queue"),
)


def bridge_metrics(health: dict[str, Any]) -> list[ComponentMetric]:
    """One series per counter of ``health`` (:meth:`MqttBridge.health`), and refusals by error code."""
    from ..server.hub import ComponentMetric

    metrics = [ComponentMetric(name, text, kind, int(health[field])) for name, text, kind, field in _SERIES]
    metrics.extend(
        ComponentMetric(
            "rtnb_mqtt_refused", "MQTT messages the hub refused, by error code.", "counter", count, {"code": code}
        )
        for code, count in sorted(health["refused"].items())
    )
    return metrics
