"""The bridge's traffic: MQTT messages into the hub, hub messages out to the broker.

:class:`Relay` moves and counts messages, and holds the bridge's seat in the
hub (the subscriber whose queue feeds the outbound side); it knows nothing of
connecting, reconnecting or reporting, which are the
:class:`~rtnb.bridge.mqtt.MqttBridge`'s.
One relay lives as long as its bridge and serves every broker session in
turn: the inbound queue and the outbound queue survive a reconnect, and so do
the loop-prevention records.

* **In** (:meth:`Relay.pump_inbound`): each MQTT message on ``T`` is decoded
  (:mod:`rtnb.bridge.payloads`) and published on hub topic ``prefix/T``; a
  message the hub refuses is counted by error code, never sent back to MQTT.
* **Out** (:meth:`Relay.pump_outbound`): what the hub queued for the bridge is
  mapped to MQTT topics, encoded and published, ``publish_window`` at a time;
  what a lost connection left unsent goes back to the front of the queue.
* **No loops**: hub messages that came from MQTT are recognised by their
  (topic, epoch, offset) and not sent back (:class:`~rtnb.bridge.mapping.OriginLedger`);
  on MQTT 3.1.1 the broker's echoes of the bridge's own publishes are dropped
  (:class:`~rtnb.bridge.mapping.EchoFilter`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core.errors import RtnbError
from ..core.fanout import Member
from ..core.message import Message
from ..core.protocol import SinceCursor, Subscribe
from ..core.topics import Pattern
from .mapping import EchoFilter, OriginLedger, TopicMap
from .options import MqttOptions
from .outbound import OutboundQueue
from .payloads import decode_payload, encode_payload

if TYPE_CHECKING:
    from ..server.hub import Hub

__all__ = ["Relay"]

log = logging.getLogger("rtnb.bridge.mqtt")

#: inbound messages taken from the queue in a row before the hub gets a turn to flush to clients
_INBOUND_RUN = 512


class Relay:
    """Moves messages between one hub and the broker sessions of one bridge.

    Args:
        options: the bridge's options (topics, payload mode, QoS, retain, window).
        on_refused: called with a sentence whenever a message is refused; the
            bridge shows the latest as its ``last_error``.
        on_evicted: called with the close code and reason when the hub ends the
            bridge's subscription (it has left the hub by then).

    Attributes:
        messages_in / messages_out: messages brought into the hub / published to the broker.
        loops_prevented: hub messages not sent back to MQTT because they came from it.
        echoes_dropped: the broker's echoes of the bridge's own publishes (MQTT 3.1.1).
        refused: refused messages by error code.
    """

    def __init__(
        self, options: MqttOptions, on_refused: Callable[[str], None], on_evicted: Callable[[int, str], None]
    ) -> None:
        self.options = options
        self.on_refused = on_refused
        self.on_evicted = on_evicted
        self.hub: Hub | None = None
        self.messages_in = 0
        self.messages_out = 0
        self.loops_prevented = 0
        self.echoes_dropped = 0
        self.refused: Counter[str] = Counter()
        self.topic_map: TopicMap | None = None
        self.outbound: OutboundQueue | None = None
        self.inbound_queue: Any = None
        self._ledger: OriginLedger | None = None
        self._echo: EchoFilter | None = None
        self._inbound_pending: asyncio.Future[None] | None = None
        self._member: Member | None = None
        self._member_id = ""

    def attach(self, hub: Hub, inbound_queue: Any, member_id: str) -> None:
        """Relay for ``hub``, reading MQTT messages from ``inbound_queue``.

        With ``outbound`` filters, an outbound queue is made for the hub to fill;
        :meth:`join_hub` then takes a seat in the hub as ``member_id``.
        """
        options = self.options
        self.hub = hub
        self.inbound_queue = inbound_queue
        self._member_id = member_id
        self.topic_map = TopicMap(options.prefix, hub.limits)
        self._ledger = OriginLedger([self.topic_map.hub_pattern(mqtt_filter) for mqtt_filter in options.outbound])
        if options.protocol == "3.1.1" and options.outbound:
            self._echo = EchoFilter(Pattern.parse(mqtt_filter) for mqtt_filter in options.inbound)
        if options.outbound:
            self.outbound = OutboundQueue(hub.limits.max_queue_bytes, self._outbound_closed)

    # -- the seat in the hub -----------------------------------------------------------

    @property
    def joined(self) -> bool:
        """True while the bridge is a subscriber of the hub."""
        return self._member is not None

    async def join_hub(self, resume: bool = False) -> None:
        """Subscribe to the outbound patterns; after an eviction, resume where we were."""
        hub, outbound, topic_map = self.hub, self.outbound, self.topic_map
        assert hub is not None and outbound is not None and topic_map is not None
        outbound.closed = False
        member = self._member = hub.connect(outbound, member_id=self._member_id)
        since: SinceCursor = dict(outbound.positions)
        for mqtt_filter in self.options.outbound:
            pattern = topic_map.hub_pattern(mqtt_filter)
            cursor: SinceCursor = {topic: position for topic, position in since.items() if pattern.matches(topic)}
            await hub.subscribe(member, Subscribe(pattern, since=cursor if resume else None))

    def leave_hub(self) -> None:
        """Stop being a subscriber of the hub; safe to call twice."""
        if self._member is not None and self.hub is not None:
            self.hub.disconnect(self._member)
            self._member = None

    def _outbound_closed(self, code: int, reason: str) -> None:
        """The hub ended our subscription (shutdown, or too long over the queue limit)."""
        if self._member is None or self.hub is None:
            return
        self.leave_hub()
        self.on_evicted(code, reason)

    # -- in: MQTT -> hub ---------------------------------------------------------------

    async def pump_inbound(self, client: Any) -> None:
        """Bring every message ``client`` receives into the hub, until the session ends."""
        queue = self.inbound_queue
        async for message in client.messages:
            await self._bring_in(message.topic.value, message.payload)
            # Take what else is already queued without a round trip through the
            # iterator, yielding now and then so the hub keeps flushing to clients.
            taken = 0
            while queue is not None and not queue.empty():
                message = queue.get_nowait()
                await self._bring_in(message.topic.value, message.payload)
                taken += 1
                if taken % _INBOUND_RUN == 0:
                    await asyncio.sleep(0)

    async def _bring_in(self, mqtt_topic: str, payload: Any) -> None:
        """Publish one MQTT message into the hub, or count why it was refused."""
        hub, topic_map, ledger = self.hub, self.topic_map, self._ledger
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
        description = f"MQTT topic {mqtt_topic!r}: {error.message}"
        self.on_refused(description)
        count = self.refused[error.code]
        if count & (count - 1) == 0:  # 1st, 2nd, 4th, 8th... so a flood cannot flood the log
            log.warning("MQTT bridge refused a message (%s, %d so far): %s", error.code, count, description)
        if self.hub is not None:
            self.hub.record_error(error.code)

    # -- out: hub -> MQTT --------------------------------------------------------------

    async def pump_outbound(self, client: Any) -> None:
        """Publish what the hub queues for the bridge through ``client``, until the session ends."""
        outbound, options = self.outbound, self.options
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
        ledger, topic_map = self._ledger, self.topic_map
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
