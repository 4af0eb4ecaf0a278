"""The MQTT bridge: broker topics into the hub, hub commands out to the broker.

:class:`MqttBridge` is a hub component (:class:`~rtnb.server.hub.Component`):
it runs on the hub's event loop and talks to the :class:`~rtnb.server.hub.Hub`
object directly, with no WebSocket in between.

* **In**: it subscribes to the ``inbound`` filters on the broker; each MQTT
  message on ``T`` is published on hub topic ``prefix/T``. A message the hub
  refuses is counted by error code on ``/metrics``, logged, and shown as
  ``last_error`` in the status; MQTT has no way to tell the device.
* **Out**: it subscribes to the hub for the ``outbound`` filters and publishes
  what arrives to the broker with the configured QoS and retain flag.
* **No loops**: what came from MQTT is never sent back, and the bridge's own
  publishes are not echoed back in (MQTT 5 *no local*, or a filter on 3.1.1).

Moving the messages (both directions, and the loop prevention) is the job of
:class:`~rtnb.bridge._relay.Relay`; the bridge connects, reconnects, keeps
its seat in the hub and reports:

* **Outages**: the connection is retried with the Python clients' backoff
  (:class:`~rtnb.client._backoff.Backoff`: exponential, full jitter, from
  ``reconnect_initial`` up to ``reconnect_max``), quietly: the first failure of
  an outage is one warning, the retries after it log at INFO.
  The state is on ``/healthz`` (``components.mqtt``; the hub reports
  ``degraded`` while the broker is unreachable), on ``/metrics``
  (``rtnb_mqtt_*``), and published on the status topic ``$rtnb/bridge/mqtt``.

Delivery is at least once at QoS >= 1: around a reconnect a message may be
delivered twice, never silently lost while the hub and broker keep it (use a
``client_id`` so the broker queues messages for the bridge while it is away).

``aiomqtt`` is imported only when a bridge starts (``pip install rtnb[mqtt]``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import ssl
from collections import Counter
from typing import TYPE_CHECKING, Any

from ..client._backoff import Backoff, BackoffPolicy
from ..core.close_codes import CloseCode
from ..core.errors import BadField
from ._relay import Relay
from .options import MqttOptions

if TYPE_CHECKING:
    from ..server.hub import ComponentMetric, Hub

__all__ = ["BridgeState", "MqttBridge", "start_mqtt_bridge"]

log = logging.getLogger("rtnb.bridge.mqtt")


#: seconds :func:`start_mqtt_bridge` waits for the first connection attempt's outcome
FIRST_ATTEMPT_WAIT = 1.0


class BridgeState(enum.Enum):
    """Lifecycle of a bridge: ``created -> connecting <-> connected/disconnected -> stopped``."""

    CREATED = "created"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    STOPPED = "stopped"


_ALLOWED = {
    BridgeState.CREATED: {BridgeState.CONNECTING, BridgeState.STOPPED},
    BridgeState.CONNECTING: {BridgeState.CONNECTED, BridgeState.DISCONNECTED, BridgeState.STOPPED},
    BridgeState.CONNECTED: {BridgeState.DISCONNECTED, BridgeState.STOPPED},
    BridgeState.DISCONNECTED: {BridgeState.CONNECTING, BridgeState.STOPPED},
    BridgeState.STOPPED: set(),
}


class MqttBridge:
    """Bridges an MQTT broker and a hub, in both directions.

    Args:
        options: broker, topics, QoS and security; see :class:`MqttOptions`.
        name: the component name on ``/healthz`` and the ``component`` label on ``/metrics``.

    Use :func:`start_mqtt_bridge`, or ``await hub.add_component("mqtt", MqttBridge(options))``.
    """

    def __init__(self, options: MqttOptions, *, name: str = "mqtt") -> None:
        self.options = options
        self.name = name
        self.address = options.address
        self.state = BridgeState.CREATED
        self.hub: Hub | None = None
        self.connects = 0
        self.connect_failures = 0
        self.last_error: str | None = None
        self.state_since: float | None = None
        self._relay = Relay(options, self._message_refused, self._evicted)
        self._run_task: asyncio.Task[None] | None = None
        self._status_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        #: failed connection attempts since the bridge was last connected
        self.failed_attempts = 0
        #: seconds until the next connection attempt while disconnected, else None
        self.retry_in: float | None = None
        self._backoff = Backoff(BackoffPolicy(initial=options.reconnect_initial, cap=options.reconnect_max))
        self._connected_event = asyncio.Event()
        self._first_attempt = asyncio.Event()
        self._status_counters: tuple[int, ...] = ()

    # -- the relay's counters ----------------------------------------------------------

    @property
    def messages_in(self) -> int:
        """MQTT messages brought into the hub."""
        return self._relay.messages_in

    @property
    def messages_out(self) -> int:
        """Hub messages published to the broker."""
        return self._relay.messages_out

    @property
    def loops_prevented(self) -> int:
        """Hub messages not sent back to MQTT because they came from it."""
        return self._relay.loops_prevented

    @property
    def echoes_dropped(self) -> int:
        """The broker's echoes of the bridge's own publishes, dropped (MQTT 3.1.1)."""
        return self._relay.echoes_dropped

    @property
    def refused(self) -> Counter[str]:
        """Refused messages by error code."""
        return self._relay.refused

    def _message_refused(self, description: str) -> None:
        self.last_error = description

    # -- lifecycle -------------------------------------------------------------------

    def _transition(self, new_state: BridgeState, error: str | None = None) -> None:
        if new_state not in _ALLOWED[self.state]:
            raise RuntimeError(f"MQTT bridge: illegal transition {self.state.value} -> {new_state.value}")
        self.state = new_state
        if error is not None:
            self.last_error = error
        if new_state is BridgeState.CONNECTED:
            self._connected_event.set()
            self._first_attempt.set()
        else:
            self._connected_event.clear()
        if self.hub is not None:
            self.state_since = self.hub.clock()
            if new_state is not BridgeState.CONNECTING:
                self._report_status()

    async def start(self, hub: Hub) -> None:
        """Join ``hub`` (subscribe the outbound patterns) and start connecting to the broker."""
        if self.state is not BridgeState.CREATED:
            raise RuntimeError("an MqttBridge can be started once")
        import aiomqtt  # noqa: F401  (fail at start, with the install hint, not in the reconnect loop)

        from ._client import CountingQueue, make_tls_context

        self.hub = hub
        options = self.options
        try:
            tls_context = make_tls_context(options)
        except (OSError, ssl.SSLError) as error:
            raise BadField(f"MQTT bridge TLS files cannot be loaded: {error}.") from None
        # one queue for every connection's client: what was read survives a reconnect
        inbound_queue = CountingQueue(maxsize=options.max_inbound_queue or 0)
        self._relay.attach(hub, inbound_queue, member_id=f"bridge-{self.name}-{id(self):x}")
        if self._relay.outbound is not None:
            await self._relay.join_hub()
        self._run_task = asyncio.ensure_future(self._run(tls_context))
        if options.status_interval is not None:
            self._status_task = asyncio.ensure_future(self._report_periodically(options.status_interval))

    async def stop(self) -> None:
        """Disconnect from the broker and leave the hub; safe to call twice."""
        if self.state is BridgeState.STOPPED:
            return
        for task in (self._status_task, self._run_task, *self._tasks):
            if task is not None:
                task.cancel()
        for task in (self._status_task, self._run_task, *self._tasks):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._relay.outbound is not None:
            self._relay.outbound.finish()
        self._relay.leave_hub()
        self._transition(BridgeState.STOPPED)

    async def wait_connected(self, timeout: float = 10.0) -> None:
        """Wait until the bridge is connected and subscribed; raises ``TimeoutError``."""
        await asyncio.wait_for(self._connected_event.wait(), timeout)

    async def wait_first_attempt(self, timeout: float) -> bool:
        """Wait until the first connection attempt succeeded or failed; False if still running at ``timeout``.

        :func:`start_mqtt_bridge` uses it so that a broker that refuses (nothing
        listens) is reported, once, before the caller goes on.
        """
        try:
            await asyncio.wait_for(self._first_attempt.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    # -- the hub side ------------------------------------------------------------------

    def _evicted(self, code: int, reason: str) -> None:
        """The hub ended the bridge's subscription: unless it is shutting down, rejoin once connected."""
        if code != CloseCode.GOING_AWAY and self.state is not BridgeState.STOPPED:
            self.last_error = f"hub closed the bridge's subscription ({code}: {reason}); resuming from history"
            log.warning("MQTT bridge: %s", self.last_error)
            self._spawn(self._rejoin_when_connected())

    async def _rejoin_when_connected(self) -> None:
        await self._connected_event.wait()
        if not self._relay.joined and self.state is BridgeState.CONNECTED:
            await self._relay.join_hub(resume=True)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the broker side ---------------------------------------------------------------

    async def _run(self, tls_context: ssl.SSLContext | None) -> None:
        """Connect, serve the session, and on any loss retry with backoff, until stopped.

        One aiomqtt client per attempt (see :mod:`rtnb.bridge._client`), all
        reading into the bridge's one inbound queue. The first failure of an
        outage is logged as a warning, the retries after it only at INFO: a
        notebook without a broker gets one line, not a line per attempt.
        """
        import aiomqtt

        from ._client import make_client, settle_client

        backoff = self._backoff
        while True:
            self._transition(BridgeState.CONNECTING)
            client = make_client(self.options, tls_context, self._relay.inbound_queue)
            try:
                async with client:
                    await self._subscribe_broker(client)
                    self.connects += 1
                    backoff.connected()
                    if self.failed_attempts:
                        log.info(
                            "MQTT bridge connected to %s after %d failed attempts",
                            self.address.display,
                            self.failed_attempts,
                        )
                    else:
                        log.info("MQTT bridge connected to %s", self.address.display)
                    self.failed_attempts, self.retry_in = 0, None
                    self._transition(BridgeState.CONNECTED)
                    await self._serve_session(client)
                message = "the session ended"
            except aiomqtt.MqttError as error:
                message = str(error) or type(error).__name__
            except Exception as error:  # a bug must not end the bridge for good: report, retry
                log.exception("MQTT bridge session failed")
                message = f"{type(error).__name__}: {error}"
            finally:
                settle_client(client)
            if self.state is BridgeState.CONNECTING:
                self.connect_failures += 1
                message = f"cannot connect to {self.address.display}: {message}"
            else:
                backoff.disconnected()
                self.failed_attempts = 0
                message = f"lost connection to {self.address.display}: {message}"
            delay = backoff.next_delay()
            assert delay is not None  # the policy has no attempt limit: the bridge never gives up
            self.retry_in = delay
            self.failed_attempts += 1
            if self.failed_attempts == 1:  # the outage begins: say it once
                log.warning("MQTT bridge %s; retrying in the background", message)
            else:
                log.info("MQTT bridge %s; retrying in %.2fs (attempt %d)", message, delay, self.failed_attempts + 1)
            self._transition(BridgeState.DISCONNECTED, message)
            self._first_attempt.set()
            await asyncio.sleep(delay)

    async def _subscribe_broker(self, client: Any) -> None:
        options = self.options
        if not options.inbound:
            return
        if options.protocol == "5":
            from paho.mqtt.subscribeoptions import SubscribeOptions

            subscribe_options = SubscribeOptions(qos=options.qos, noLocal=True)
            await client.subscribe([(mqtt_filter, subscribe_options) for mqtt_filter in options.inbound])
        else:
            await client.subscribe([(mqtt_filter, options.qos) for mqtt_filter in options.inbound])

    async def _serve_session(self, client: Any) -> None:
        """Run the inbound and outbound pumps until one fails (the connection is gone)."""
        pumps = [asyncio.ensure_future(self._relay.pump_inbound(client))]
        if self._relay.outbound is not None:
            pumps.append(asyncio.ensure_future(self._relay.pump_outbound(client)))
        try:
            done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
        for pump in done:
            pump.result()

    # -- reporting ---------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """State for ``/healthz`` and the status topic; ``ok`` while connected."""
        outbound = self._relay.outbound
        inbound_queue = self._relay.inbound_queue
        return {
            "ok": self.state is BridgeState.CONNECTED,
            "state": self.state.value,
            "since": self.state_since,
            "broker": self.address.display,
            "inbound": list(self.options.inbound),
            "outbound": list(self.options.outbound),
            "prefix": self.options.prefix,
            "connects": self.connects,
            "connect_failures": self.connect_failures,
            "failed_attempts": self.failed_attempts,
            "retry_in": None if self.retry_in is None else round(self.retry_in, 3),
            "messages_in": self.messages_in,
            "messages_out": self.messages_out,
            "refused": dict(self.refused),
            "loops_prevented": self.loops_prevented + self.echoes_dropped,
            "gaps": 0 if outbound is None else outbound.gap_count,
            "inbound_queue": 0 if inbound_queue is None else inbound_queue.qsize(),
            "inbound_dropped": 0 if inbound_queue is None else inbound_queue.dropped,
            "outbound_queue": 0 if outbound is None else len(outbound),
            "last_error": self.last_error,
        }

    def metrics(self) -> list[ComponentMetric]:
        """The ``rtnb_mqtt_*`` series for ``/metrics`` (see :mod:`rtnb.bridge._metrics`)."""
        from ._metrics import bridge_metrics

        return bridge_metrics(self.health())

    def _report_status(self) -> None:
        """Publish the current state on the status topic (a hub system topic)."""
        hub = self.hub
        if hub is None or not hub.running:
            return
        status = self.health()
        self._status_counters = self._counters()
        if hub.backplane.is_local:
            hub.publish_now(self.options.status_topic, status, trusted=True)
        else:
            self._spawn(hub.publish(self.options.status_topic, status, trusted=True))

    def _counters(self) -> tuple[int, ...]:
        outbound = self._relay.outbound
        return (
            self.messages_in,
            self.messages_out,
            sum(self.refused.values()),
            0 if outbound is None else outbound.gap_count,
        )

    async def _report_periodically(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if self._counters() != self._status_counters:
                self._report_status()


async def start_mqtt_bridge(
    hub: Hub,
    options: MqttOptions | None = None,
    *,
    name: str = "mqtt",
    first_attempt_wait: float = FIRST_ATTEMPT_WAIT,
    **fields: Any,
) -> MqttBridge:
    """Bridge ``hub`` and an MQTT broker; call on the hub's loop.

    Returns once the first connection attempt succeeded or failed, or after
    ``first_attempt_wait`` seconds, whichever comes first: a broker that is not
    there is reported (one warning) before the caller goes on, and the bridge
    keeps retrying in the background either way.

    Args:
        hub: a started (or about to start) hub.
        options: the bridge's options; or give their fields as keywords, e.g.
            ``url="mqtt://127.0.0.1:1883", inbound=["factory/#"], outbound=["factory/+/cmd"]``.
        name: component name (``/healthz``, ``/metrics``).
        first_attempt_wait: seconds to wait for the first attempt's outcome; 0 not to wait.

    Returns:
        The bridge, registered with the hub (stopped with it, or by
        ``await hub.remove_component(name)``).

    Raises:
        BadField / InvalidPattern / InvalidTopic: invalid options.
    """
    bridge = MqttBridge(options or MqttOptions(**fields), name=name)
    await hub.add_component(name, bridge)
    if hub.running and first_attempt_wait > 0:
        await bridge.wait_first_attempt(first_attempt_wait)
    return bridge
