"""Simulated devices, so a demo or a test has live data at once.

::

    sim = rtnb.sim.sensors(hub.url, ["plant/+/temp"], devices=("boiler", "turbine", "pump"), rate=10.0)
    ...
    sim.stop()

Each device fills the ``+`` of each topic pattern (``plant/boiler/temp``) and
publishes ``{"value": float, "unit": "°C", "setpoint": float, "on": bool}``
``rate`` times a second: a random walk drawn towards its setpoint (towards the
ambient value when switched off). Each device obeys commands published on
``<prefix>/<device>/cmd`` (``plant/boiler/cmd``), the prefix being the levels
before the ``+``: ``{"setpoint": 80}`` (for its first metric, or the metric
named by ``"metric": "temp"``) and ``{"on": false}``. A malformed command is
refused with a logged warning and counted in :attr:`Simulation.rejected`.

Where the hub runs in this process (a :class:`~rtnb.server.runner.HubServer`,
an embedded hub, a :class:`~rtnb.server.hub.Hub`), devices publish straight
into it on its own event loop. Given a URL, they connect with the Python
:class:`~rtnb.client.AsyncClient` from a thread of their own.

:class:`SensorModel` holds the device physics and takes no clock or socket, so
a seeded model gives the same values everywhere.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .core.errors import BadField, InvalidTopic, RtnbError
from .core.fanout import Batch
from .core.history import Gap
from .core.message import Message
from .core.protocol import Subscribe
from .core.topics import Pattern, validate_topic

__all__ = ["Device", "Metric", "SensorModel", "Simulation", "sensors"]

log = logging.getLogger("rtnb.sim")

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


class _CommandSink:
    """Receives the devices' commands inside an in-process hub. A :class:`~rtnb.server.hub.Sink`."""

    transport = "sim"

    def __init__(self, simulation: Simulation) -> None:
        self.simulation = simulation

    def send_batch(self, batch: Batch) -> bool:
        for message in batch.messages:
            self.simulation.handle_command(message.topic, message.data)
        return True

    def send_items(self, items: Sequence[Message | Gap]) -> None:
        for item in items:
            if isinstance(item, Message):
                self.simulation.handle_command(item.topic, item.data)

    def send_control(self, frame: dict[str, Any]) -> None:
        """Nothing to do with subscribed/welcome frames."""

    def buffered_bytes(self) -> int:
        return 0

    async def drained(self) -> None:
        return None

    def close(self, code: int, reason: str) -> None:
        self.simulation._request_stop()


class Simulation:
    """A running set of simulated devices; see :func:`sensors`.

    Attributes:
        model: the devices and their physics.
        published: messages published so far.
        rejected: malformed commands refused so far.
        last_error: the latest refused command's error, if any.
    """

    def __init__(self, model: SensorModel, rate: float) -> None:
        if not (isinstance(rate, (int, float)) and math.isfinite(rate) and 0 < rate <= 10_000):
            raise BadField("'rate' must be a number of steps per second in (0, 10000].")
        self.model = model
        self.rate = float(rate)
        self.published = 0
        self.rejected = 0
        self.last_error: RtnbError | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Bound to a loop on first use (Python >= 3.10), so it can be made here.
        self._stop_event = asyncio.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def devices(self) -> dict[str, Device]:
        return self.model.devices

    @property
    def running(self) -> bool:
        return not self._stopped.is_set()

    def handle_command(self, topic: str, command: Any) -> None:
        """Apply a command; a malformed one is logged and counted, never raised into the hub."""
        try:
            device = self.model.command(topic, command)
        except RtnbError as error:
            self.rejected += 1
            self.last_error = error
            log.warning("simulated device refused a command on %s: %s", topic, error.message)
            return
        log.info(
            "simulated device %s: on=%s setpoints=%s",
            device.name,
            device.on,
            {metric.name: metric.setpoint for metric in device.metrics},
        )

    # -- running -----------------------------------------------------------------------

    async def _ticks(self, publish: Any) -> None:
        """Step the model ``rate`` times a second and publish, until stopped."""
        loop = asyncio.get_running_loop()
        interval = 1.0 / self.rate
        deadline = loop.time()
        while not self._stop_event.is_set():
            for topic, payload in self.model.step():
                await publish(topic, payload)
                self.published += 1
            deadline += interval
            delay = deadline - loop.time()
            if delay < -1.0:  # far behind (a busy machine): skip ahead rather than burst
                deadline = loop.time()
                delay = 0.0
            try:
                await asyncio.wait_for(self._stop_event.wait(), max(0.0, delay))
            except asyncio.TimeoutError:
                pass

    async def run_in_hub(self, hub: Any) -> None:
        """Publish straight into ``hub`` (a :class:`~rtnb.server.hub.Hub`) on its loop."""
        from .server.hub import Hub

        assert isinstance(hub, Hub)
        self._loop = asyncio.get_running_loop()
        member = hub.connect(_CommandSink(self))
        try:
            for topic in self.model.command_topics:
                await hub.subscribe(member, Subscribe(Pattern.parse(topic)))
            if hub.backplane.is_local:

                async def publish(topic: str, payload: dict[str, Any]) -> None:
                    hub.publish_now(topic, payload, trusted=True)

            else:

                async def publish(topic: str, payload: dict[str, Any]) -> None:
                    await hub.publish(topic, payload, trusted=True)

            await self._ticks(publish)
        except RtnbError as error:
            log.warning("simulation stopped: %s", error.message)
        finally:
            hub.disconnect(member)
            self._stopped.set()

    async def run_over_client(self, url: str, **client_options: Any) -> None:
        """Publish to the hub at ``url`` through :class:`rtnb.client.AsyncClient`."""
        from .client import AsyncClient

        self._loop = asyncio.get_running_loop()
        try:
            async with AsyncClient(url, **client_options) as client:
                for topic in self.model.command_topics:
                    await client.subscribe(topic, callback=self._on_client_item)

                async def publish(topic: str, payload: dict[str, Any]) -> None:
                    await client.publish(topic, payload, ack=False)

                await self._ticks(publish)
        except (RtnbError, OSError) as error:
            log.warning("simulation stopped: %s", error)
        finally:
            self._stopped.set()

    async def run_over_mqtt(self, url: str, **mqtt_options: Any) -> None:
        """Publish to the MQTT broker at ``url`` (``mqtt://``) and obey commands from it.

        See :mod:`rtnb.bridge.mqtt_devices`; a hub sees the devices through its MQTT bridge.
        """
        from .bridge.mqtt_devices import mqtt_device_link

        self._loop = asyncio.get_running_loop()
        try:
            async with mqtt_device_link(url, self.model.command_topics, self.handle_command, **mqtt_options) as publish:
                await self._ticks(publish)
        except RtnbError as error:
            log.warning("simulation stopped: %s", error.message)
        finally:
            self._stopped.set()

    def _on_client_item(self, item: Message | Gap) -> None:
        if isinstance(item, Message):
            self.handle_command(item.topic, item.data)

    def _request_stop(self) -> None:
        self._stop_event.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop publishing. From another thread, waits up to ``timeout`` s for the devices to stop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._stopped.set()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._request_stop()
            return
        try:
            loop.call_soon_threadsafe(self._request_stop)
        except RuntimeError:  # the loop closed meanwhile
            self._stopped.set()
            return
        self._stopped.wait(timeout)
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> Simulation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"Simulation({sorted(self.devices)}, rate={self.rate}, published={self.published}, {state})"


def _hub_of(target: Any) -> Any:
    """The in-process :class:`~rtnb.server.hub.Hub` behind ``target``, or ``None`` for a URL."""
    from .server.hub import Hub

    if isinstance(target, Hub):
        return target
    hub = getattr(target, "hub", None)
    return hub if isinstance(hub, Hub) else None


def sensors(
    url_or_hubserver: Any,
    topics: Iterable[str] | str = ("plant/+/temp",),
    devices: Sequence[str] = DEFAULT_DEVICES,
    rate: float = 10.0,
    seed: int | None = None,
    **client_options: Any,
) -> Simulation:
    """Start simulated devices publishing random walks; returns the running :class:`Simulation`.

    Args:
        url_or_hubserver: a hub URL (``"http://127.0.0.1:8765"``), or an
            in-process hub: :class:`~rtnb.server.runner.HubServer`, an embedded
            hub, or a :class:`~rtnb.server.hub.Hub`; or an MQTT broker URL
            (``"mqtt://127.0.0.1:1883"``): the devices then publish to the broker
            and obey commands from it, like real IoT devices.
        topics: topic patterns with a ``+`` where the device name goes.
        devices: device names.
        rate: steps per second; each step publishes one message per device and topic.
        seed: seed of the random walks, for reproducible runs.
        client_options: passed to :class:`~rtnb.client.AsyncClient` for a hub URL, or to
            :func:`~rtnb.bridge.mqtt_devices.mqtt_device_link` for an MQTT URL
            (``qos``, ``username``, ``password``, ``ca_file``).

    Raises:
        InvalidTopic / BadField: bad patterns, device names or rate.
        Unavailable: the in-process hub is not running.
    """
    from .core.errors import Unavailable

    model = SensorModel(list([topics] if isinstance(topics, str) else topics), devices, seed)
    simulation = Simulation(model, rate)
    hub = _hub_of(url_or_hubserver)
    if hub is not None:
        loop = hub.loop
        if loop is None or not hub.running:
            raise Unavailable("The hub is not running; start it before the simulation.")
        simulation._loop = loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None and running is loop:
            simulation._task = running.create_task(simulation.run_in_hub(hub))
        else:
            asyncio.run_coroutine_threadsafe(simulation.run_in_hub(hub), loop)
        return simulation
    if not isinstance(url_or_hubserver, str):
        raise BadField("Give the simulation a hub URL, a HubServer, an embedded hub or a Hub.")
    url = url_or_hubserver
    started = threading.Event()

    def run() -> None:
        async def main() -> None:
            simulation._loop = asyncio.get_running_loop()
            started.set()
            if url.startswith(("mqtt://", "mqtts://")):  # devices on an MQTT broker, as in the field
                await simulation.run_over_mqtt(url, **client_options)
            else:
                await simulation.run_over_client(url, **client_options)

        asyncio.run(main())

    thread = threading.Thread(target=run, name="rtnb-sim", daemon=True)
    simulation._thread = thread
    thread.start()
    started.wait(5.0)
    return simulation
