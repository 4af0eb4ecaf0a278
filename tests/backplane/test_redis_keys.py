"""Pure parts of the Redis backplane: key names, buckets and hash slots, presence selection. No Redis needed."""

from __future__ import annotations

from collections import Counter

import pytest

from rtnb.backplane._redis_keys import BUCKETS, SLOTS, RedisKeys, bucket_of, bucket_tag, key_slot, topic_prefix
from rtnb.backplane._redis_nodes import redacted, split_prefix
from rtnb.backplane._redis_presence import (
    decode_memberships,
    encode_memberships,
    is_present,
    present_members,
)
from rtnb.core.topics import Pattern


@pytest.mark.parametrize(
    ("key", "slot"),
    # Slots Redis itself gives (CLUSTER KEYSLOT), hash tags included.
    [
        ("foo", 12182),
        ("bar", 5061),
        ("{user1000}.following", 3443),
        ("{user1000}.followers", 3443),
        ("foo{}{bar}", 8363),
        ("foo{{bar}}zap", 4015),
        ("foo{bar}{zap}", 5061),
    ],
)
def test_key_slots_match_redis_cluster(key: str, slot: int) -> None:
    assert key_slot(key) == slot


def test_every_key_of_a_topic_and_its_bucket_share_one_slot() -> None:
    keys = RedisKeys("p:")
    for topic in ("a/b", "plant/boiler/temp", "weird*{x}", ""):
        bucket = bucket_of(topic)
        slots = {
            key_slot(name)
            for name in (
                keys.epoch(topic),
                keys.offset(topic),
                keys.stream(topic),
                keys.topics(bucket),
                keys.clock(bucket),
                keys.channel(bucket),
            )
        }
        assert len(slots) == 1, (topic, slots)
    presence = {key_slot(name) for name in (keys.hubs, keys.presence("h1"), keys.alive("h2"), keys.presence_channel)}
    assert len(presence) == 1


def test_buckets_spread_evenly_over_the_slots_so_over_the_shards() -> None:
    slots = [key_slot(bucket_tag(bucket)) for bucket in range(BUCKETS)]
    assert slots == sorted(slots) and len(set(slots)) == BUCKETS
    thirds = Counter(slot * 3 // SLOTS for slot in slots)
    assert max(thirds.values()) - min(thirds.values()) <= 1
    topics = Counter(bucket_of(f"plant/{n}/temp") for n in range(6400))
    assert len(topics) == BUCKETS and max(topics.values()) < 3 * min(topics.values())


def test_channels_name_their_bucket_and_nothing_else() -> None:
    keys = RedisKeys("rtnb:")
    assert keys.bucket_of_channel(keys.channel(7).encode()) == 7
    assert keys.bucket_of_channel(keys.presence_channel.encode()) is None
    assert keys.epoch("a/b").startswith("rtnb:{") and keys.epoch("a/b").endswith("}:e:a/b")


def test_a_prefix_with_braces_is_refused() -> None:
    with pytest.raises(ValueError, match="may not contain"):
        RedisKeys("rtnb:{x}:")


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [("plant/+/temp", "plant"), ("plant/#", "plant"), ("#", ""), ("+/x", ""), ("a/b", "a/b"), ("a/b/+", "a/b")],
)
def test_topic_prefix_is_the_literal_start(pattern: str, prefix: str) -> None:
    assert topic_prefix(Pattern.parse(pattern)) == prefix


def test_prefix_can_come_from_the_url_and_passwords_are_hidden() -> None:
    assert split_prefix("redis://h:1/0?prefix=x:&db=1") == ("redis://h:1/0?db=1", "x:")
    assert split_prefix("redis://h:1/0") == ("redis://h:1/0", None)
    assert redacted("redis://user:secret@h:6379/0") == "redis://user:***@h:6379/0"
    assert "secret" not in redacted("redis://:secret@h:6379/0")


@pytest.mark.parametrize(
    ("subscription", "query", "present"),
    [
        ("chat/room1", "chat/room1", True),
        ("chat/+", "chat/room1", True),
        ("#", "chat/room1", True),
        ("chat/room2", "chat/room1", False),
        ("chat/room1", "chat/#", True),
        ("chat/+", "chat/#", True),
        ("#", "chat/#", False),
        ("news/x", "chat/#", False),
    ],
)
def test_presence_selection(subscription: str, query: str, present: bool) -> None:
    assert is_present(Pattern.parse(subscription), Pattern.parse(query)) is present


def test_presence_members_round_trip_through_redis_fields() -> None:
    fields = encode_memberships({"c1": ["chat/+"], "c2": ["news/#"], "c3": []})
    assert set(fields) == {"c1", "c2"}
    decoded = decode_memberships({key.encode(): value for key, value in fields.items()} | {b"bad": b"{"})
    assert decoded == {"c1": ["chat/+"], "c2": ["news/#"]}
    assert present_members(decoded, Pattern.parse("chat/x"), "h1") == [{"client": "c1", "hub": "h1"}]
    assert present_members(decoded, Pattern.parse("chat/x")) == [{"client": "c1"}]
