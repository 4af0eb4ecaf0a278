"""Running simulated devices: publishing a :class:`~rtnb.sim.SensorModel`'s readings and obeying commands.

:func:`sensors` starts a :class:`Simulation` where the hub is: straight into an
in-process hub on its own event loop, through the Python
:class:`~rtnb.client.AsyncClient` from a thread of its own for a hub URL, or to
an MQTT broker like real devices (:mod:`rtnb.bridge.mqtt_devices`). The
devices themselves are the model's (:mod:`rtnb.sim._model`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from ..core.errors import BadArgument, BadArgumentType, RtnbError
from ..core.fanout import Batch
from ..core.history import Gap
from ..core.message import Message
from ..core.protocol import Subscribe
from ..core.topics import Pattern
from ._model import DEFAULT_DEVICES, Device, SensorModel

__all__ = ["Simulation", "sensors"]

log = logging.getLogger("rtnb.sim")


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
            raise BadArgument("'rate' must be a number of steps per second in (0, 10000].")
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
        from ..server.hub import Hub

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
        from ..client import AsyncClient

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
        from ..bridge.mqtt_devices import mqtt_device_link

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
    from ..server.hub import Hub

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
        InvalidTopic / BadArgument: bad patterns, device names or rate (BadArgumentType: not a hub).
        Unavailable: the in-process hub is not running.
    """
    from ..core.errors import Unavailable

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
        raise BadArgumentType("Give the simulation a hub URL, a HubServer, an embedded hub or a Hub.")
    from ..client._loop_thread import LoopThread  # the client layer, loaded only for a simulation over the network

    url = url_or_hubserver
    loop_thread = LoopThread("rtnb-sim").start()
    simulation._loop, simulation._thread = loop_thread.loop, loop_thread.thread
    if url.startswith(("mqtt://", "mqtts://")):  # devices on an MQTT broker, as in the field
        publishing = simulation.run_over_mqtt(url, **client_options)
    else:
        publishing = simulation.run_over_client(url, **client_options)

    def ended(done: concurrent.futures.Future[None]) -> None:
        loop_thread.stop()  # the thread ends with the simulation
        error = None if done.cancelled() else done.exception()
        if error is not None:
            log.error("simulation failed", exc_info=error)

    loop_thread.submit(publishing).add_done_callback(ended)
    return simulation
