"""Bridges between the hub and other messaging systems; today, MQTT brokers.

Importing this package is light: ``aiomqtt`` is only imported when a bridge
starts (``pip install "rtnb[mqtt]"``). See ``docs/mqtt.md``.
"""

from __future__ import annotations

from .mqtt import BridgeState, MqttBridge, start_mqtt_bridge
from .options import DEFAULT_STATUS_TOPIC, BrokerAddress, MqttOptions, parse_broker_url
from .payloads import decode_payload, encode_payload

__all__ = [
    "DEFAULT_STATUS_TOPIC",
    "BridgeState",
    "BrokerAddress",
    "MqttBridge",
    "MqttOptions",
    "decode_payload",
    "encode_payload",
    "parse_broker_url",
    "start_mqtt_bridge",
]
