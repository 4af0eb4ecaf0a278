"""Names of the Redis keys and channels the Redis backplane uses. Pure, no I/O.

Topics are spread over :data:`BUCKETS` buckets (``crc32(topic) % BUCKETS``).
Every key of a bucket carries the bucket's hash tag, so on a Redis Cluster all
of a topic's keys (and its bucket's channel and topic index) live in one hash
slot: a publish stays one script call on one shard. The tags are chosen so the
buckets' slots are spread evenly over the 16384 slots, hence evenly over the
shards of a cluster whose slots were split evenly. On a single Redis the same
names are used; the tags are then harmless.

For a topic ``T`` in bucket ``B`` (tag ``{t}``), under ``prefix`` (``rtnb:``):

* ``{prefix}{t}:e:T``  the topic's epoch (milliseconds of Redis time when it began)
* ``{prefix}{t}:o:T``  the last offset assigned
* ``{prefix}{t}:s:T``  the history: a stream whose entry ids are ``OFFSET-0``
* ``{prefix}{t}:topics``  the bucket's topic names (sorted set, all scores 0, read by prefix)
* ``{prefix}{t}:lost``  topics reset after holding messages, and the epoch each lost
* ``{prefix}{t}:lostat``  when each of those was reset (sorted set, Redis milliseconds), to prune
  the ``lost`` hash by age and count
* ``{prefix}{t}:clock``  a counter every publish batch moves forward; it going
  backwards means Redis was restored from an older file (see the scripts)
* ``{prefix}{t}:m``  the bucket's (sharded) pub/sub channel: one payload per
  publish batch, the envelopes joined by newlines, after the clock value
* ``{prefix}{presence}:...`` presence: ``hubs``, ``presence:HUB``, ``alive:HUB``,
  and the ``events`` channel (one slot, so its transactions stay on one shard)

A hub listens to whole buckets and filters each message exactly with
:meth:`~rtnb.core.topics.Pattern.matches`, so a wildcard pattern costs the same
subscriptions as ``#`` and the number of Redis subscriptions stays bounded by
``BUCKETS`` whatever the number of topics.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from functools import cache

from ..core.topics import Pattern

__all__ = ["BUCKETS", "SLOTS", "RedisKeys", "bucket_of", "bucket_tag", "key_slot", "topic_prefix"]

#: Number of buckets topics are spread over; fixed, as it is part of the key layout.
BUCKETS = 64
#: Hash slots of a Redis Cluster.
SLOTS = 16384


def _crc16(data: bytes) -> int:
    """CRC16/XMODEM, the checksum Redis Cluster hashes keys with."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def key_slot(key: str | bytes) -> int:
    """The cluster hash slot of ``key``, honouring a ``{hash tag}`` as Redis does."""
    raw = key.encode() if isinstance(key, str) else key
    start = raw.find(b"{")
    if start != -1:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1 : end]
    return _crc16(raw) % SLOTS


@cache
def bucket_tag(bucket: int) -> str:
    """A short hash tag whose slot lies in the ``bucket``-th even share of the slots."""
    low, high = bucket * SLOTS // BUCKETS, (bucket + 1) * SLOTS // BUCKETS
    candidate = 0
    while True:
        tag = f"{bucket}.{candidate}"
        if low <= _crc16(tag.encode()) % SLOTS < high:
            return tag
        candidate += 1


def bucket_of(topic: str) -> int:
    """The bucket ``topic`` belongs to."""
    return zlib.crc32(topic.encode()) % BUCKETS


def topic_prefix(pattern: Pattern) -> str:
    """The literal start every topic matched by ``pattern`` shares (may be empty)."""
    literal: list[str] = []
    for level in pattern.levels:
        if level in ("+", "#"):
            break
        literal.append(level)
    else:
        return pattern.text
    return "/".join(literal)


@dataclass(frozen=True)
class RedisKeys:
    """Key and channel names under one ``prefix``.

    Raises:
        ValueError: ``prefix`` contains ``{`` or ``}`` (it would change the hash tags).
    """

    prefix: str = "rtnb:"
    _bases: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if "{" in self.prefix or "}" in self.prefix:
            raise ValueError(f"a Redis key prefix may not contain '{{' or '}}': {self.prefix!r}")
        object.__setattr__(self, "_bases", tuple(f"{self.prefix}{{{bucket_tag(b)}}}:" for b in range(BUCKETS)))

    def base(self, bucket: int) -> str:
        """The start of every key of ``bucket``."""
        return self._bases[bucket]

    def epoch(self, topic: str) -> str:
        return f"{self._bases[bucket_of(topic)]}e:{topic}"

    def offset(self, topic: str) -> str:
        return f"{self._bases[bucket_of(topic)]}o:{topic}"

    def stream(self, topic: str) -> str:
        return f"{self._bases[bucket_of(topic)]}s:{topic}"

    def topics(self, bucket: int) -> str:
        return f"{self._bases[bucket]}topics"

    def lost(self, bucket: int) -> str:
        """The bucket's reset topics and the epoch each lost (hash: topic -> "EPOCH:OFFSET")."""
        return f"{self._bases[bucket]}lost"

    def lost_at(self, bucket: int) -> str:
        """When each topic of the bucket's ``lost`` hash was reset (sorted set: topic, score Redis ms)."""
        return f"{self._bases[bucket]}lostat"

    def clock(self, bucket: int) -> str:
        return f"{self._bases[bucket]}clock"

    def channel(self, bucket: int) -> str:
        return f"{self._bases[bucket]}m"

    def bucket_of_channel(self, channel: bytes) -> int | None:
        """The bucket a message channel belongs to, or None for another channel."""
        try:
            return self._channels()[channel]
        except KeyError:
            return None

    @cache  # noqa: B019 - one small table per RedisKeys, which lives as long as its backplane
    def _channels(self) -> dict[bytes, int]:
        return {self.channel(bucket).encode(): bucket for bucket in range(BUCKETS)}

    # -- presence: one hash tag, so one slot --------------------------------------------

    @property
    def hubs(self) -> str:
        return f"{self.prefix}{{presence}}:hubs"

    def presence(self, hub_id: str) -> str:
        return f"{self.prefix}{{presence}}:presence:{hub_id}"

    def alive(self, hub_id: str) -> str:
        return f"{self.prefix}{{presence}}:alive:{hub_id}"

    @property
    def presence_channel(self) -> str:
        return f"{self.prefix}{{presence}}:events"
