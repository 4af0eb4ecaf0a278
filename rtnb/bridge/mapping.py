"""Topic names between MQTT and the hub, and the bookkeeping that prevents loops.

Pure logic, no I/O:

* :class:`TopicMap` turns MQTT topic ``T`` into hub topic ``prefix/T`` and back,
  validating names with the hub's rules (no empty levels, no ``$`` topics
  unless under a prefix, bounded length and depth).
* :class:`OriginLedger` remembers the hub messages the bridge itself published
  (by topic, epoch and offset) so that the outbound side never sends a message
  that came from MQTT back to MQTT. The hub's :class:`~rtnb.core.message.Message`
  has no origin field and needs none: the bridge learns each offset when it
  publishes, before the hub delivers the message.
* :class:`EchoFilter` is for MQTT 3.1.1 brokers, which deliver a client's own
  publishes back to it when one of its subscriptions matches: it remembers what
  the bridge sent (topic and payload) and recognises the echo. With MQTT 5 the
  broker does this itself (the *no local* subscription option).

Both memories are bounded and only record what could come back (a topic an
opposite-direction filter matches), so they stay small in practice.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from ..core.limits import Limits
from ..core.topics import Pattern, validate_topic

__all__ = ["EchoFilter", "OriginLedger", "TopicMap"]


class TopicMap:
    """MQTT topic names to hub topic names (``prefix/T``) and back.

    Args:
        prefix: hub level(s) in front of bridged topics, ``""`` for none.
        limits: the hub's name bounds.
    """

    def __init__(self, prefix: str = "", limits: Limits | None = None) -> None:
        self.prefix = prefix.strip("/")
        self.limits = limits or Limits()
        self._head = f"{self.prefix}/" if self.prefix else ""

    def to_hub(self, mqtt_topic: str) -> str:
        """The hub topic for an MQTT topic.

        Raises:
            InvalidTopic: the resulting name breaks the hub's naming rules (an
                empty level as in ``a//b``, a ``$`` system topic, too long...).
        """
        limits = self.limits
        return validate_topic(
            self._head + mqtt_topic, max_length=limits.max_topic_length, max_depth=limits.max_topic_depth
        )

    def to_mqtt(self, hub_topic: str) -> str | None:
        """The MQTT topic for a hub topic, or ``None`` when it is outside the prefix."""
        if not self._head:
            return hub_topic
        if hub_topic.startswith(self._head) and len(hub_topic) > len(self._head):
            return hub_topic[len(self._head) :]
        return None

    def hub_pattern(self, mqtt_filter: str) -> Pattern:
        """The hub pattern that selects what an MQTT filter names, through the prefix."""
        return Pattern.parse(self._head + mqtt_filter)


class _BoundedSet:
    """Insertion-ordered keys; the oldest go first once ``capacity`` is reached."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.evicted = 0
        self._keys: OrderedDict[object, int] = OrderedDict()

    def add(self, key: object) -> None:
        keys = self._keys
        keys[key] = keys.get(key, 0) + 1
        if len(keys) > self.capacity:
            keys.popitem(last=False)
            self.evicted += 1

    def take(self, key: object) -> bool:
        keys = self._keys
        count = keys.get(key)
        if count is None:
            return False
        if count == 1:
            del keys[key]
        else:
            keys[key] = count - 1
        return True

    def __len__(self) -> int:
        return len(self._keys)


class OriginLedger:
    """Hub messages that came from MQTT, so they are never bridged back out.

    Args:
        outbound: the hub patterns the bridge sends out; only messages on topics
            they match are recorded (nothing else could come back).
        capacity: most messages remembered; past it the oldest are forgotten
            (and counted in :attr:`evicted`).
    """

    def __init__(self, outbound: Iterable[Pattern], capacity: int = 1_000_000) -> None:
        self.outbound = tuple(outbound)
        self._seen = _BoundedSet(capacity)
        self._wanted: dict[str, bool] = {}

    def could_return(self, hub_topic: str) -> bool:
        """True when an outbound pattern matches ``hub_topic`` (cached per topic)."""
        wanted = self._wanted.get(hub_topic)
        if wanted is None:
            if len(self._wanted) >= 100_000:
                self._wanted.clear()
            wanted = self._wanted[hub_topic] = any(pattern.matches(hub_topic) for pattern in self.outbound)
        return wanted

    def record(self, topic: str, epoch: int, offset: int) -> None:
        """Remember a message the bridge published into the hub."""
        self._seen.add((topic, epoch, offset))

    def claim(self, topic: str, epoch: int, offset: int) -> bool:
        """True (once) when the bridge itself published this message."""
        return self._seen.take((topic, epoch, offset))

    @property
    def evicted(self) -> int:
        return self._seen.evicted

    def __len__(self) -> int:
        return len(self._seen)


class EchoFilter:
    """What the bridge published to MQTT, to drop the broker's echo (MQTT 3.1.1).

    Args:
        inbound: the MQTT filters the bridge subscribes to; only publishes on
            topics they match are recorded.
        capacity: most publishes remembered.
    """

    def __init__(self, inbound: Iterable[Pattern], capacity: int = 100_000) -> None:
        self.inbound = tuple(inbound)
        self._sent = _BoundedSet(capacity)

    def sent(self, mqtt_topic: str, payload: bytes) -> None:
        if any(pattern.matches(mqtt_topic) for pattern in self.inbound):
            self._sent.add((mqtt_topic, payload))

    def is_echo(self, mqtt_topic: str, payload: bytes) -> bool:
        """True (once per publish) when this inbound message is our own publish coming back."""
        return self._sent.take((mqtt_topic, payload))

    def __len__(self) -> int:
        return len(self._sent)
