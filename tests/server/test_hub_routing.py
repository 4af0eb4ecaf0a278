"""The hub's routing, driven directly: no sockets, no Tornado server, milliseconds.

Each "connection" is a :class:`FakeConnection`, an in-memory implementation of
the hub's ``Sink`` that records what the hub hands it as plain data. Requests
are built by the wire parser (:func:`rtnb.core.protocol.parse_request`) from
the frames a client would send, so these tests follow the wire contract rather
than the hub's internal request types. Transport tests (tests/server/test_*.py)
stay for what only a transport can get wrong.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from rtnb.core.errors import TooManySubscriptions, Unavailable
from rtnb.core.fanout import Batch
from rtnb.core.history import Gap, HistoryLimits
from rtnb.core.limits import Limits
from rtnb.core.message import Message
from rtnb.core.protocol import Subscribe, parse_request
from rtnb.core.topics import Pattern
from rtnb.server.hub import Hub, HubConfig

#: (topic, offset, data) of a delivered message, or ("gap", topic, from, to, reason)
Delivered = tuple[Any, ...]


class FakeConnection:
    """A subscriber in memory: implements the hub's ``Sink`` and keeps what it got.

    ``accepting`` False makes it refuse group batches (its queue is "full"), as a
    transport does when a peer reads too slowly; :meth:`drain` empties it again.
    Closing it leaves the hub, as a transport's connection does when it ends.
    """

    transport = "fake"

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.received: list[Delivered] = []
        self.controls: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None
        self.leave: Callable[[], None] | None = None
        self.accepting = True
        self.buffered = 0
        self._drained = asyncio.Event()
        self._drained.set()

    # -- the Sink protocol ---------------------------------------------------------------

    def send_batch(self, batch: Batch) -> bool:
        if not self.accepting:
            return False
        self.batches.append(batch)
        self._record(batch.messages)
        return True

    def send_items(self, items: Sequence[Message | Gap]) -> None:
        self._record(items)

    def send_control(self, frame: dict[str, Any]) -> None:
        self.controls.append(frame)

    def buffered_bytes(self) -> int:
        return self.buffered

    async def drained(self) -> None:
        await self._drained.wait()

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)
        if self.leave is not None:
            self.leave()

    # -- test controls -------------------------------------------------------------------

    def fill(self) -> None:
        """From now on refuse batches and report a buffer over any limit."""
        self.accepting = False
        self.buffered = 2**40
        self._drained.clear()

    def drain(self) -> None:
        self.accepting = True
        self.buffered = 0
        self._drained.set()

    def _record(self, items: Sequence[Message | Gap]) -> None:
        for item in items:
            if isinstance(item, Message):
                self.received.append((item.topic, item.offset, item.data))
            else:
                self.received.append(("gap", item.topic, item.from_offset, item.to_offset, item.reason))

    def take(self) -> list[Delivered]:
        """What arrived since the last call."""
        received, self.received = self.received, []
        return received


def subscribe_frame(topic: str, **fields: Any) -> Subscribe:
    request = parse_request({"op": "subscribe", "topic": topic, **fields})
    assert isinstance(request, Subscribe)
    return request


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    hub = Hub(HubConfig(limits=Limits(max_lag_seconds=0.2, max_subscriptions=4), close_timeout=0.5))
    await hub.start()
    yield hub
    await hub.stop()


async def join(hub: Hub, *patterns: str, **fields: Any) -> tuple[FakeConnection, Any]:
    connection = FakeConnection()
    member = hub.connect(connection)
    connection.leave = lambda: hub.disconnect(member)
    for pattern in patterns:
        await hub.subscribe(member, subscribe_frame(pattern, **fields))
    return connection, member


async def test_publish_assigns_gapless_offsets_per_topic_and_delivers_at_the_flush(hub: Hub) -> None:
    connection, _ = await join(hub, "plant/boiler/temp")
    first = hub.publish_now("plant/boiler/temp", 20.5)
    second = await hub.publish("plant/boiler/temp", {"c": 21})
    other = hub.publish_now("plant/pump/temp", 1)
    assert (first.offset, second.offset, other.offset) == (1, 2, 1)
    assert connection.take() == []  # nothing is written until the loop turn ends
    hub.flush()
    assert connection.take() == [("plant/boiler/temp", 1, 20.5), ("plant/boiler/temp", 2, {"c": 21})]
    assert hub.stats.messages_in == 3 and hub.stats.messages_out == 2


async def test_flush_is_scheduled_on_the_loop_by_itself(hub: Hub) -> None:
    connection, _ = await join(hub, "a")
    hub.publish_now("a", 1)
    await asyncio.sleep(0)
    assert connection.take() == [("a", 1, 1)]


async def test_wildcards_route_each_topic_to_the_patterns_that_match(hub: Hub) -> None:
    one_level, _ = await join(hub, "plant/+/temp")
    everything, _ = await join(hub, "plant/#")
    exact, _ = await join(hub, "plant/boiler/pressure")
    for topic in ("plant/boiler/temp", "plant/boiler/pressure", "plant/pump/temp", "plant/pump/a/temp", "office/temp"):
        hub.publish_now(topic, topic)
    hub.flush()
    assert [item[0] for item in one_level.take()] == ["plant/boiler/temp", "plant/pump/temp"]
    assert [item[0] for item in everything.take()] == [
        "plant/boiler/temp",
        "plant/boiler/pressure",
        "plant/pump/temp",
        "plant/pump/a/temp",
    ]
    assert exact.take() == [("plant/boiler/pressure", 1, "plant/boiler/pressure")]


async def test_the_subscribed_reply_carries_the_id_and_where_each_topic_starts(hub: Hub) -> None:
    hub.publish_now("s/a", 1)
    hub.publish_now("s/a", 2)
    connection, _ = await join(hub, "s/+", id=7)
    epoch = hub.publish_now("s/a", 3).epoch
    assert connection.controls == [
        {"op": "subscribed", "topic": "s/+", "id": 7, "positions": {"s/a": {"offset": 2, "epoch": epoch}}}
    ]
    nothing_yet, _ = await join(hub, "empty/#")
    assert nothing_yet.controls == [{"op": "subscribed", "topic": "empty/#"}]


async def test_last_replays_the_tail_of_each_matching_topic_then_goes_live(hub: Hub) -> None:
    for value in range(1, 6):
        hub.publish_now("r/a", value)
    hub.publish_now("r/b", "only")
    connection, member = await join(hub, "r/+", last=2)
    assert sorted(connection.take()) == [("r/a", 4, 4), ("r/a", 5, 5), ("r/b", 1, "only")]
    hub.publish_now("r/a", 6)
    hub.flush()
    assert connection.take() == [("r/a", 6, 6)]
    assert member.state.value == "live"


async def test_every_subscribe_gets_its_replay_but_live_messages_come_once(hub: Hub) -> None:
    for value in range(1, 4):
        hub.publish_now("d/x", value)
    connection, member = await join(hub, "d/#", last=3)
    assert len(connection.take()) == 3
    # last= is honoured on every subscribe (docs/guarantees.md), even for a topic already followed
    await hub.subscribe(member, subscribe_frame("d/x", last=2))
    assert connection.take() == [("d/x", 2, 2), ("d/x", 3, 3)]
    hub.publish_now("d/x", 4)
    hub.flush()
    assert connection.take() == [("d/x", 4, 4)]  # once, though two patterns match


async def test_since_resumes_exactly_after_the_given_offset(hub: Hub) -> None:
    epoch = 0
    for value in range(1, 6):
        epoch = hub.publish_now("c/a", value).epoch
    hub.publish_now("c/new", "born while away")
    connection, _ = await join(hub, "c/+", since={"c/a": {"offset": 3, "epoch": epoch}})
    received = connection.take()
    assert [item for item in received if item[0] == "c/a"] == [("c/a", 4, 4), ("c/a", 5, 5)]
    # a matching topic the client did not list is new to it: its retained history comes too
    assert ("c/new", 1, "born while away") in received


async def test_since_on_a_topic_the_hub_no_longer_knows_reports_a_gap(hub: Hub) -> None:
    connection, _ = await join(hub, "g/+", since={"g/vanished": 7})
    assert connection.take() == [("gap", "g/vanished", 8, None, "epoch_changed")]
    assert hub.stats.gaps_sent == 1


async def test_since_before_the_retained_history_reports_the_evicted_range() -> None:
    hub = Hub(HubConfig(history=HistoryLimits(max_messages=3)))
    await hub.start()
    try:
        epoch = 0
        for value in range(1, 8):
            epoch = hub.publish_now("e/a", value).epoch
        connection, _ = await join(hub, "e/a", since={"e/a": {"offset": 1, "epoch": epoch}})
        received = connection.take()
        assert received[0][:2] == ("gap", "e/a") and received[0][2] == 2
        assert received[1:] == [("e/a", 5, 5), ("e/a", 6, 6), ("e/a", 7, 7)]
    finally:
        await hub.stop()


async def test_unsubscribe_stops_delivery_and_reports_whether_it_was_subscribed(hub: Hub) -> None:
    connection, member = await join(hub, "u/a", "u/b")
    assert hub.unsubscribe(member, "u/a") is True
    assert hub.unsubscribe(member, "u/a") is False
    assert hub.unsubscribe(member, "never/subscribed") is False
    hub.publish_now("u/a", 1)
    hub.publish_now("u/b", 2)
    hub.flush()
    assert connection.take() == [("u/b", 1, 2)]
    assert list(member.patterns) == ["u/b"]


async def test_members_with_the_same_patterns_get_the_same_batch_object(hub: Hub) -> None:
    first, _ = await join(hub, "f/+", "g/#")
    second, _ = await join(hub, "g/#", "f/+")  # same set, other order
    other, _ = await join(hub, "f/+")
    for value in range(3):
        hub.publish_now("f/a", value)
    hub.flush()
    assert len(first.batches) == len(second.batches) == len(other.batches) == 1
    assert first.batches[0] is second.batches[0]  # one group: encoded once, written to both
    assert other.batches[0] is not first.batches[0]
    assert [m.offset for m in first.batches[0].messages] == [1, 2, 3]  # coalesced into one batch
    builds = []
    encodings = [
        batch.encoded("test", lambda b: builds.append(b) or b"x") for batch in (first.batches[0], second.batches[0])
    ]
    assert encodings == [b"x", b"x"] and len(builds) == 1
    assert hub.stats.batches_out == 2 and hub.stats.messages_out == 9


async def test_a_slow_subscriber_is_skipped_then_caught_up_without_loss_or_duplicates(hub: Hub) -> None:
    fast, _ = await join(hub, "slow/a")
    slow, member = await join(hub, "slow/a")
    hub.publish_now("slow/a", 1)
    hub.flush()
    assert fast.take() == slow.take() == [("slow/a", 1, 1)]

    slow.fill()
    for value in (2, 3):
        hub.publish_now("slow/a", value)
        hub.flush()
    assert fast.take() == [("slow/a", 2, 2), ("slow/a", 3, 3)]  # the fast one never waits
    assert slow.take() == []
    assert member.state.value == "lagging" and hub.stats.lag_events == 1

    slow.drain()
    await asyncio.sleep(0.01)
    hub.publish_now("slow/a", 4)
    hub.flush()
    assert slow.take() == [("slow/a", 2, 2), ("slow/a", 3, 3), ("slow/a", 4, 4)]
    assert member.state.value == "live" and slow.closed is None
    assert fast.take() == [("slow/a", 4, 4)]


async def test_a_subscriber_that_never_drains_is_closed_with_1008(hub: Hub) -> None:
    stuck, member = await join(hub, "stuck/a")
    stuck.fill()
    hub.publish_now("stuck/a", 1)
    hub.flush()
    for _ in range(100):
        if stuck.closed is not None:
            break
        await asyncio.sleep(0.01)
    assert stuck.closed is not None and stuck.closed[0] == 1008
    assert hub.stats.slow_consumer_closes == 1
    assert hub.connection_count == 0 and member.state.value == "closed"


async def test_subscriptions_are_bounded_per_connection(hub: Hub) -> None:
    _connection, member = await join(hub, "b/1", "b/2", "b/3", "b/4")
    with pytest.raises(TooManySubscriptions) as refused:
        await hub.subscribe(member, subscribe_frame("b/5", id="x"))
    assert refused.value.request_id == "x"
    await hub.subscribe(member, subscribe_frame("b/4"))  # a pattern it already holds is fine
    assert sorted(member.patterns) == ["b/1", "b/2", "b/3", "b/4"]


async def test_disconnect_forgets_the_connection_and_is_idempotent(hub: Hub) -> None:
    gone, member = await join(hub, "x/#")
    staying, _ = await join(hub, "x/#")
    assert hub.connection_count == 2
    hub.disconnect(member)
    hub.disconnect(member)
    hub.publish_now("x/a", 1)
    hub.flush()
    assert gone.take() == [] and staying.take() == [("x/a", 1, 1)]
    assert hub.connection_count == 1
    assert hub.local_subscriptions() == {next(iter(hub.fanout.members.values())).id: ["x/#"]}


async def test_presence_watchers_hear_joins_and_leaves(hub: Hub) -> None:
    watcher, watching = await join(hub)
    hub.watch_presence(watching, Pattern.parse("room/#"), True)
    _guest, member = await join(hub, "room/kitchen")
    await join(hub, "hall/+")  # not in the watched space: no event
    hub.unsubscribe(member, "room/kitchen")
    assert watcher.controls == [
        {"op": "join", "topic": "room/#", "client": member.id, "hub": hub.backplane.hub_id},
        {"op": "leave", "topic": "room/#", "client": member.id, "hub": hub.backplane.hub_id},
    ]
    assert await hub.presence(Pattern.parse("hall/#")) != []
    assert await hub.presence(Pattern.parse("room/#")) == []


async def test_stop_closes_every_connection_with_1001_and_refuses_new_ones() -> None:
    hub = Hub(HubConfig(close_timeout=0.05))
    await hub.start()
    connection, _ = await join(hub, "z")
    await hub.stop()
    assert connection.closed == (1001, "hub shutting down")
    assert hub.connection_count == 0
    with pytest.raises(Unavailable):
        hub.connect(FakeConnection())


async def test_a_hub_that_is_not_running_refuses_publishes() -> None:
    hub = Hub()
    connection, _ = await join(hub, "n/+")  # connections may register before the start
    with pytest.raises(Unavailable, match="not running"):
        hub.publish_now("n/a", "too early")
    await hub.start()
    try:
        hub.publish_now("n/a", "now")
        hub.flush()
        assert connection.take() == [("n/a", 1, "now")]
    finally:
        await hub.stop()
