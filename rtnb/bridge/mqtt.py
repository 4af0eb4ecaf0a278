"""The MQTT bridge: broker topics into the hub, hub commands out to the broker.

:class:`MqttBridge` is a hub component (:class:`~rtnb.server.hub.Component`):
it runs on the hub's event loop and talks to the :class:`~rtnb.server.hub.Hub`
object directly, with no WebSocket in between.

* **In**: it subscribes to the ``inbound`` filters on the broker; each MQTT
  message on ``T`` is decoded (:mod:`rtnb.bridge.payloads`) and published on
  hub topic ``prefix/T``. A message the hub refuses (bad name, too big, not
  JSON in ``json`` mode) is counted by error code on ``/metrics``, logged, and
  shown as ``last_error`` in the status; MQTT has no way to tell the device.
* **Out**: it is a subscriber of the hub for the ``outbound`` filters
  (:class:`~rtnb.bridge.outbound.OutboundQueue`) and publishes what arrives to
  the broker with the configured QoS and retain flag, ``publish_window``
  publishes in flight at a time.
* **No loops**: hub messages that came from MQTT are recognised by their
  (topic, epoch, offset) and never sent back (:class:`~rtnb.bridge.mapping.OriginLedger`);
  the bridge's own publishes are not echoed back in by the broker (MQTT 5
  *no local*, or :class:`~rtnb.bridge.mapping.EchoFilter` on MQTT 3.1.1).
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
from ..core.errors import BadField, RtnbError
from ..core.fanout import Member
from ..core.message import Message
from ..core.protocol import SinceCursor, Subscribe
from ..core.topics import Pattern
from .mapping import EchoFilter, OriginLedger, TopicMap
from .options import MqttOptions
from .outbound import OutboundQueue
from .payloads import decode_payload, encode_payload

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
        self.messages_in = 0
        self.messages_out = 0
        self.loops_prevented = 0
        self.echoes_dropped = 0
        self.connects = 0
        self.connect_failures = 0
        self.refused: Counter[str] = Counter()
        self.last_error: str | None = None
        self.state_since: float | None = None
        self._member: Member | None = None
        self._outbound: OutboundQueue | None = None
        self._topic_map: TopicMap | None = None
        self._ledger: OriginLedger | None = None
        self._echo: EchoFilter | None = None
        self._inbound_queue: Any = None
        self._inbound_pending: asyncio.Future[None] | None = None
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
        self._inbound_queue = CountingQueue(maxsize=options.max_inbound_queue or 0)
        self._topic_map = TopicMap(options.prefix, hub.limits)
        outbound_patterns = [self._topic_map.hub_pattern(mqtt_filter) for mqtt_filter in options.outbound]
        self._ledger = OriginLedger(outbound_patterns)
        if options.protocol == "3.1.1" and options.outbound:
            self._echo = EchoFilter(Pattern.parse(mqtt_filter) for mqtt_filter in options.inbound)
        if options.outbound:
            self._outbound = OutboundQueue(hub.limits.max_queue_bytes, self._outbound_closed)
            await self._join_hub()
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
        if self._outbound is not None:
            self._outbound.finish()
        if self._member is not None and self.hub is not None:
            self.hub.disconnect(self._member)
            self._member = None
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

    async def _join_hub(self, resume: bool = False) -> None:
        """Subscribe to the outbound patterns; after an eviction, resume where we were."""
        hub, outbound, topic_map = self.hub, self._outbound, self._topic_map
        assert hub is not None and outbound is not None and topic_map is not None
        outbound.closed = False
        member = self._member = hub.connect(outbound, member_id=f"bridge-{self.name}-{id(self):x}")
        since: SinceCursor = {topic: (offset, epoch) for topic, (epoch, offset) in outbound.positions.items()}
        for mqtt_filter in self.options.outbound:
            pattern = topic_map.hub_pattern(mqtt_filter)
            cursor: SinceCursor = {topic: position for topic, position in since.items() if pattern.matches(topic)}
            await hub.subscribe(member, Subscribe(pattern, since=cursor if resume else None))

    def _outbound_closed(self, code: int, reason: str) -> None:
        """The hub ended our subscription (shutdown, or too long over the queue limit)."""
        if self._member is None or self.hub is None:
            return
        self.hub.disconnect(self._member)
        self._member = None
        if code != CloseCode.GOING_AWAY and self.state is not BridgeState.STOPPED:
            self.last_error = f"hub closed the bridge's subscription ({code}: {reason}); resuming from history"
            log.warning("MQTT bridge: %s", self.last_error)
            self._spawn(self._rejoin_when_connected())

    async def _rejoin_when_connected(self) -> None:
        await self._connected_event.wait()
        if self._member is None and self.state is BridgeState.CONNECTED:
            await self._join_hub(resume=True)

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
            client = make_client(self.options, tls_context, self._inbound_queue)
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
        pumps = [asyncio.ensure_future(self._pump_inbound(client))]
        if self._outbound is not None:
            pumps.append(asyncio.ensure_future(self._pump_outbound(client)))
        try:
            done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
        for pump in done:
            pump.result()

    # -- in: MQTT -> hub ---------------------------------------------------------------

    async def _pump_inbound(self, client: Any) -> None:
        queue = self._inbound_queue
        async for message in client.messages:
            await self._bring_in(message.topic.value, message.payload)
            # Take what else is already queued without a round trip through the
            # iterator, yielding now and then so the hub keeps flushing to clients.
            taken = 0
            while queue is not None and not queue.empty():
                message = queue.get_nowait()
                await self._bring_in(message.topic.value, message.payload)
                taken += 1
                if taken % 512 == 0:
                    await asyncio.sleep(0)

    async def _bring_in(self, mqtt_topic: str, payload: Any) -> None:
        """Publish one MQTT message into the hub, or count why it was refused."""
        hub, topic_map, ledger = self.hub, self._topic_map, self._ledger
        assert hub is not None and topic_map is not None and ledger is not None
        if not isinstance(payload, bytes):
            payload = b"" if payload is None else str(payload).encode()
        if self._echo is not None and self._echo.is_echo(mqtt_topic, payload):
            self.echoes_dropped += 1
            return
        try:
            hub_topic = topic_map.to_hub(mqtt_topic)
            data = decode_payload(payload, self.options.payload)
            if hub.backplane.is_local:
                message = hub.publish_now(hub_topic, data)
            else:
                message = await self._publish_shared(hub, hub_topic, data)
        except RtnbError as error:
            self._refuse(mqtt_topic, error)
            return
        if ledger.could_return(message.topic):
            ledger.record(message.topic, message.epoch, message.offset)
        self.messages_in += 1

    async def _publish_shared(self, hub: Hub, hub_topic: str, data: Any) -> Message:
        # On a shared backplane the hub may deliver the message to our outbound
        # side before this await returns; the outbound pump waits on this future
        # so it checks the ledger only once the offset is recorded.
        pending = self._inbound_pending = asyncio.get_running_loop().create_future()
        try:
            return await hub.publish(hub_topic, data)
        finally:
            self._inbound_pending = None
            pending.set_result(None)

    def _refuse(self, mqtt_topic: str, error: RtnbError) -> None:
        self.refused[error.code] += 1
        self.last_error = f"MQTT topic {mqtt_topic!r}: {error.message}"
        count = self.refused[error.code]
        if count & (count - 1) == 0:  # 1st, 2nd, 4th, 8th... so a flood cannot flood the log
            log.warning("MQTT bridge refused a message (%s, %d so far): %s", error.code, count, self.last_error)
        if self.hub is not None:
            self.hub.record_error(error.code)

    # -- out: hub -> MQTT --------------------------------------------------------------

    async def _pump_outbound(self, client: Any) -> None:
        outbound, options = self._outbound, self.options
        assert outbound is not None
        while True:
            await outbound.wait_not_empty()
            if outbound.closed:
                return
            pending = self._inbound_pending
            if pending is not None:
                await asyncio.shield(pending)
            batch = self._prepare_out(outbound.take(options.publish_window))
            if not batch:
                continue
            sends = []
            for _message, mqtt_topic, payload in batch:
                if self._echo is not None:
                    self._echo.sent(mqtt_topic, payload)
                sends.append(
                    asyncio.ensure_future(client.publish(mqtt_topic, payload, qos=options.qos, retain=options.retain))
                )
            try:
                await asyncio.gather(*sends)
            except BaseException:
                unsent = [
                    message
                    for (message, _topic, _payload), send in zip(batch, sends, strict=True)
                    if not send.done() or send.cancelled() or send.exception() is not None
                ]
                for send in sends:
                    send.cancel()
                await asyncio.gather(*sends, return_exceptions=True)
                outbound.put_back(unsent)
                self.messages_out += len(batch) - len(unsent)
                raise
            self.messages_out += len(batch)

    def _prepare_out(self, messages: list[Message]) -> list[tuple[Message, str, bytes]]:
        """Drop what came from MQTT, map topics, encode payloads."""
        ledger, topic_map = self._ledger, self._topic_map
        assert ledger is not None and topic_map is not None
        prepared = []
        for message in messages:
            if ledger.claim(message.topic, message.epoch, message.offset):
                self.loops_prevented += 1
                continue
            mqtt_topic = topic_map.to_mqtt(message.topic)
            if mqtt_topic is None:
                continue
            try:
                prepared.append((message, mqtt_topic, encode_payload(message.data)))
            except RtnbError as error:
                self._refuse(message.topic, error)
        return prepared

    # -- reporting ---------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """State for ``/healthz`` and the status topic; ``ok`` while connected."""
        outbound = self._outbound
        inbound_queue = self._inbound_queue
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
        outbound = self._outbound
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
