"""Simulated devices and their physics, stepped without clocks or sockets.

A :class:`SensorModel` is the whole state of a simulation: devices, their
readings (random walks drawn towards a setpoint) and the commands that change
them. It does no I/O and reads no clock, so a test steps it by hand and a
seeded model gives the same values everywhere; :mod:`rtnb.sim._simulation`
runs it against a hub, a client or an MQTT broker.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import BadField, InvalidTopic
from ..core.topics import validate_topic

__all__ = ["DEFAULT_DEVICES", "PULL", "Device", "Metric", "MetricProfile", "SensorModel"]

DEFAULT_DEVICES = ("boiler", "turbine", "pump")


@dataclass(frozen=True)
class MetricProfile:
    """How one kind of reading behaves: unit, plausible setpoints, noise, resting value."""

    unit: str
    low: float
    high: float
    noise: float
    ambient: float


_PROFILES = {
    "temp": MetricProfile("°C", 35.0, 90.0, 0.4, 20.0),
    "temperature": MetricProfile("°C", 35.0, 90.0, 0.4, 20.0),
    "pressure": MetricProfile("bar", 2.0, 9.0, 0.05, 1.0),
    "humidity": MetricProfile("%", 30.0, 70.0, 0.5, 50.0),
    "rpm": MetricProfile("rpm", 900.0, 3000.0, 15.0, 0.0),
    "power": MetricProfile("kW", 5.0, 50.0, 0.3, 0.0),
    "level": MetricProfile("%", 20.0, 90.0, 0.3, 0.0),
    "flow": MetricProfile("m³/h", 1.0, 20.0, 0.1, 0.0),
}
_GENERIC = MetricProfile("", 10.0, 90.0, 0.5, 0.0)

#: Share of the distance to the target a value covers each step.
PULL = 0.05


@dataclass
class Metric:
    """One reading of a device, published on ``topic``."""

    name: str
    topic: str
    profile: MetricProfile
    setpoint: float
    value: float


@dataclass
class Device:
    """A simulated device: its name, on/off state, readings and command topic."""

    name: str
    command_topic: str
    metrics: list[Metric] = field(default_factory=list)
    on: bool = True


def _device_topic(pattern: str, device: str) -> tuple[str, str]:
    """``(reading topic, command topic)`` for ``device`` under ``pattern``.

    Raises:
        InvalidTopic: the pattern has ``#`` or several ``+``, or gives an invalid topic.
    """
    levels = pattern.split("/")
    if "#" in levels or levels.count("+") > 1:
        raise InvalidTopic(f"Simulated topic {pattern!r} may hold one '+' (the device) and no '#'.")
    if "+" in levels:
        index = levels.index("+")
        prefix = levels[:index]
    else:  # no placeholder: the device becomes the last level
        index = len(levels)
        prefix = levels
        levels = [*levels, "+"]
    levels[index] = device
    topic = validate_topic("/".join(levels))
    command = validate_topic("/".join([*prefix, device, "cmd"]))
    return topic, command


class SensorModel:
    """Devices and their readings, stepped without clocks or sockets.

    Args:
        patterns: topics with a ``+`` where the device name goes.
        devices: device names.
        seed: seed of the random walks; the same seed gives the same values.

    Raises:
        InvalidTopic: a pattern or device name does not make valid topics.
        BadField: no device or no pattern.
    """

    def __init__(
        self, patterns: Sequence[str], devices: Sequence[str] = DEFAULT_DEVICES, seed: int | None = None
    ) -> None:
        if isinstance(patterns, str):
            patterns = [patterns]
        if not patterns or not devices:
            raise BadField("A simulation needs at least one topic pattern and one device.")
        self.random = random.Random(seed)
        self.devices: dict[str, Device] = {}
        self.by_command_topic: dict[str, Device] = {}
        for name in devices:
            if not isinstance(name, str) or not name or "/" in name or "+" in name or "#" in name:
                raise InvalidTopic(f"Device name {name!r} must be one topic level without wildcards.")
            device: Device | None = None
            for pattern in patterns:
                topic, command = _device_topic(pattern, name)
                if device is None:
                    device = Device(name, command)
                metric_name = topic.rsplit("/", 1)[-1]
                profile = _PROFILES.get(metric_name.lower(), _GENERIC)
                setpoint = round(self.random.uniform(profile.low, profile.high), 1)
                device.metrics.append(Metric(metric_name, topic, profile, setpoint, setpoint))
            assert device is not None
            self.devices[name] = device
            self.by_command_topic[device.command_topic] = device

    @property
    def command_topics(self) -> list[str]:
        return list(self.by_command_topic)

    def step(self) -> list[tuple[str, dict[str, Any]]]:
        """Advance every reading one step; returns ``(topic, payload)`` pairs to publish."""
        gauss = self.random.gauss
        out = []
        for device in self.devices.values():
            for metric in device.metrics:
                profile = metric.profile
                target = metric.setpoint if device.on else profile.ambient
                metric.value += (target - metric.value) * PULL + gauss(0.0, profile.noise)
                reading = {"value": round(metric.value, 3), "unit": profile.unit}
                out.append((metric.topic, {**reading, "setpoint": metric.setpoint, "on": device.on}))
        return out

    def command(self, topic: str, command: Any) -> Device:
        """Apply a command published on ``topic``; returns the device it changed.

        Raises:
            BadField: not a command topic of this model, or a malformed command.
        """
        device = self.by_command_topic.get(topic)
        if device is None:
            raise BadField(f"{topic!r} is not the command topic of a simulated device.")
        if not isinstance(command, dict) or not command:
            raise BadField('A command is an object such as {"setpoint": 80} or {"on": false}.')
        unknown = set(command) - {"setpoint", "on", "metric"}
        if unknown:
            raise BadField(f"Unknown command field(s) {sorted(unknown)}; use 'setpoint', 'on' and 'metric'.")
        metric = device.metrics[0]
        if "metric" in command:
            found = [candidate for candidate in device.metrics if candidate.name == command["metric"]]
            if not found:
                names = [candidate.name for candidate in device.metrics]
                raise BadField(f"Device {device.name!r} has no metric {command['metric']!r}; it has {names}.")
            metric = found[0]
        on = command.get("on", device.on)
        if not isinstance(on, bool):
            raise BadField("'on' must be true or false.")
        setpoint = command.get("setpoint", metric.setpoint)
        if isinstance(setpoint, bool) or not isinstance(setpoint, (int, float)) or not math.isfinite(setpoint):
            raise BadField("'setpoint' must be a finite number.")
        device.on = on
        metric.setpoint = float(setpoint)
        return device
