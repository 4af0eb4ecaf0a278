"""The fan-out core: groups, routing, batches and the slow-consumer states."""

from __future__ import annotations

import pytest

from rtnb.core.fanout import Fanout, Member, MemberState
from rtnb.core.message import Message
from rtnb.core.topics import Pattern


def patterns(*texts: str) -> dict[str, Pattern]:
    return {text: Pattern.parse(text) for text in texts}


def message(topic: str, offset: int = 1, epoch: int = 1) -> Message:
    return Message(topic, offset, epoch, 0.0, offset)


def delivered(fanout: Fanout) -> dict[str, list[tuple[str, int]]]:
    """Member id -> (topic, offset) it would receive in this flush."""
    result: dict[str, list[tuple[str, int]]] = {}
    for batch in fanout.take_batches():
        for member in batch.group.members:
            result.setdefault(member.id, []).extend((m.topic, m.offset) for m in batch.messages)
    return result


def test_members_with_the_same_patterns_share_one_group() -> None:
    fanout = Fanout()
    members = [Member() for _ in range(100)]
    for member in members:
        fanout.add(member)
        fanout.set_patterns(member, patterns("plant/+/temp"))
    assert len(fanout.groups) == 1
    assert fanout.route(message("plant/boiler/temp")) == 1
    batches = fanout.take_batches()
    assert len(batches) == 1 and len(batches[0].group.members) == 100


def test_routing_by_wildcards() -> None:
    fanout = Fanout()
    temps, everything, exact = Member(member_id="temps"), Member(member_id="all"), Member(member_id="exact")
    for member, texts in ((temps, ("plant/+/temp",)), (everything, ("#",)), (exact, ("plant/pump/temp",))):
        fanout.add(member)
        fanout.set_patterns(member, patterns(*texts))
    fanout.route(message("plant/boiler/temp"))
    fanout.route(message("plant/boiler/pressure"))
    fanout.route(message("plant/pump/temp"))
    assert delivered(fanout) == {
        "temps": [("plant/boiler/temp", 1), ("plant/pump/temp", 1)],
        "all": [("plant/boiler/temp", 1), ("plant/boiler/pressure", 1), ("plant/pump/temp", 1)],
        "exact": [("plant/pump/temp", 1)],
    }


def test_overlapping_patterns_deliver_once() -> None:
    fanout = Fanout()
    member = Member(member_id="m")
    fanout.add(member)
    fanout.set_patterns(member, patterns("a/#", "a/b", "+/b"))
    fanout.route(message("a/b"))
    assert delivered(fanout) == {"m": [("a/b", 1)]}


def test_on_dirty_fires_once_per_flush_cycle() -> None:
    calls: list[int] = []
    fanout = Fanout(on_dirty=lambda: calls.append(1))
    member = Member()
    fanout.add(member)
    fanout.set_patterns(member, patterns("#"))
    for offset in range(1, 6):
        fanout.route(message("t", offset))
    assert calls == [1]
    batches = fanout.take_batches()
    assert [m.offset for m in batches[0].messages] == [1, 2, 3, 4, 5]
    fanout.route(message("t", 6))
    assert calls == [1, 1]


def test_batch_encodings_are_built_once() -> None:
    fanout = Fanout()
    member = Member()
    fanout.add(member)
    fanout.set_patterns(member, patterns("#"))
    fanout.route(message("t"))
    (batch,) = fanout.take_batches()
    builds: list[int] = []

    def build(b: object) -> bytes:
        builds.append(1)
        return b"frame"

    assert batch.encoded("ws:json", build) == batch.encoded("ws:json", build) == b"frame"
    assert builds == [1]


def test_group_cursor_tracks_last_offsets() -> None:
    fanout = Fanout()
    member = Member()
    fanout.add(member)
    group = fanout.set_patterns(member, patterns("#"))
    fanout.route(message("a", 1, epoch=5))
    fanout.route(message("a", 2, epoch=5))
    fanout.route(message("b", 9, epoch=6))
    fanout.take_batches()
    assert group is not None and group.cursor == {"a": (5, 2), "b": (6, 9)}
    assert member.position() == {"a": (5, 2), "b": (6, 9)}


def test_changing_subscriptions_with_pending_messages_is_refused() -> None:
    fanout = Fanout()
    member = Member()
    fanout.add(member)
    fanout.set_patterns(member, patterns("#"))
    fanout.route(message("t"))
    with pytest.raises(RuntimeError, match="flush"):
        fanout.set_patterns(member, patterns("#", "x"))


def test_empty_groups_are_dropped_and_routes_recomputed() -> None:
    fanout = Fanout()
    first, second = Member(), Member()
    for member in (first, second):
        fanout.add(member)
    fanout.set_patterns(first, patterns("a"))
    assert fanout.route(message("a")) == 1
    fanout.take_batches()
    fanout.set_patterns(first, patterns("b"))
    assert len(fanout.groups) == 1
    assert fanout.route(message("a")) == 0
    fanout.remove(first)
    assert fanout.groups == {} and first.state is MemberState.CLOSED
    fanout.remove(first)  # idempotent


def test_lagging_member_is_skipped_and_remembers_where_it_fell_behind() -> None:
    fanout = Fanout()
    slow, fast = Member(member_id="slow"), Member(member_id="fast")
    for member in (slow, fast):
        fanout.add(member)
        fanout.set_patterns(member, patterns("#"))
    fanout.route(message("a", 1))
    fanout.take_batches()
    fanout.route(message("a", 2))
    fanout.route(message("b", 1))
    (batch,) = fanout.take_batches()
    Fanout.mark_lagging(slow, batch.messages)
    assert slow.state is MemberState.LAGGING
    assert slow.cursor == {"a": (1, 1), "b": (1, 0)}
    assert slow.position() == {"a": (1, 1), "b": (1, 0)}
    slow.transition(MemberState.CATCHING_UP)
    assert Fanout.behind(slow) == {"a": (1, 1), "b": (1, 0)}
    slow.cursor = {"a": (1, 2), "b": (1, 1)}
    assert Fanout.behind(slow) == {}
    slow.transition(MemberState.LIVE)


def test_illegal_state_transitions_raise() -> None:
    member = Member()
    with pytest.raises(RuntimeError, match="illegal"):
        member.transition(MemberState.LIVE)
    member.transition(MemberState.CLOSED)
    with pytest.raises(RuntimeError):
        member.transition(MemberState.LAGGING)


def test_subscriber_count_per_topic() -> None:
    fanout = Fanout()
    for index in range(3):
        member = Member()
        fanout.add(member)
        fanout.set_patterns(member, patterns("plant/#" if index else "plant/boiler/temp"))
    assert fanout.subscribers_of("plant/boiler/temp") == 3
    assert fanout.subscribers_of("plant/x") == 2
    assert fanout.subscription_count() == 3
