"""The async client across broken connections and hub restarts, on real sockets.

A :class:`TcpProxy` sits between client and hub; cutting it is what a dropped
Wi-Fi or a restarted load balancer does to the client.
"""

from __future__ import annotations

import asyncio

import pytest
from client_helpers import FAST_BACKOFF
from tcp_proxy import TcpProxy

from rtnb.client import AsyncClient, BackoffPolicy, ClientState
from rtnb.core.errors import ConnectionClosed, LimitExceeded, Timeout
from rtnb.core.history import Gap, HistoryLimits
from rtnb.core.limits import Limits
from rtnb.core.message import Message
from rtnb.server.hub import Hub, HubConfig
from rtnb.server.runner import HubServer
from rtnb.testing import running_hub, wait_until

TOTAL = 10_000
CUT_AT = (1_500, 3_000, 4_500, 6_000, 7_500, 9_000)


def fast_client(url: str, **options: object) -> AsyncClient:
    return AsyncClient(url, backoff=BackoffPolicy(**FAST_BACKOFF), **options)  # type: ignore[arg-type]


async def collect(subscription: object, into: list[Message | Gap]) -> None:
    async for item in subscription:  # type: ignore[attr-defined]
        into.append(item)


async def test_ten_thousand_messages_survive_repeated_cuts_exactly_once_in_order(
    big_history_hub: HubServer, proxy: TcpProxy
) -> None:
    store = big_history_hub.hub.backplane.store  # type: ignore[attr-defined]

    def hub_offset() -> int:
        history = store.get("count/a")
        return 0 if history is None else history.last_offset

    received: list[Message | Gap] = []
    outages: list[list[int]] = []  # hub offset when the subscriber lost its connection, and when it was back

    def on_state_change(old: ClientState, new: ClientState) -> None:
        if new is ClientState.DISCONNECTED:
            outages.append([hub_offset()])
        elif new is ClientState.CONNECTED and outages:
            outages[-1].append(hub_offset())

    async with (
        fast_client(proxy.url, on_state_change=on_state_change) as subscriber,
        fast_client(big_history_hub.url) as publisher,
    ):
        subscription = await subscriber.subscribe("count/#")
        reader = asyncio.ensure_future(collect(subscription, received))
        for number in range(TOTAL):
            if number in CUT_AT:
                # Cut a live connection while messages are in flight, and keep publishing while it is away.
                cuts = CUT_AT.index(number)
                await wait_until(
                    lambda cuts=cuts: subscriber.reconnects == cuts and subscriber.state is ClientState.CONNECTED,
                    timeout=10,
                )
                assert proxy.cut() >= 1
            await publisher.publish("count/a", number, ack=number == TOTAL - 1)
            if number % 100 == 0:
                await asyncio.sleep(0)  # let both clients' tasks run while publishing
        await wait_until(lambda: len(received) >= TOTAL, timeout=30)
        assert subscriber.positions["count/a"][1] == TOTAL
        await subscription.close()
        reader.cancel()
    assert subscriber.reconnects == len(CUT_AT) == proxy.cuts
    assert [item for item in received if not isinstance(item, Message)] == []
    assert [item.data for item in received] == list(range(TOTAL))  # type: ignore[union-attr]
    assert [item.offset for item in received] == list(range(1, TOTAL + 1))  # type: ignore[union-attr]
    # Messages were published while the subscriber was away: they came back through the resume.
    assert len(outages) == len(CUT_AT)
    assert sum(back - lost for lost, back in outages) > 0, outages


async def test_a_hub_restart_that_loses_history_is_reported_as_a_gap() -> None:
    first = HubServer(Hub())
    await first.start()
    assert first.port is not None
    port = first.port
    async with TcpProxy("127.0.0.1", port) as proxy:
        received: list[Message | Gap] = []
        async with fast_client(proxy.url) as client:
            subscription = await client.subscribe("plant/#")
            reader = asyncio.ensure_future(collect(subscription, received))
            for value in range(5):
                first.hub.publish_now("plant/boiler", value)
            first.hub.publish_now("plant/pump", "old")
            await wait_until(lambda: len(received) == 6)
            old_epoch = received[0].epoch  # type: ignore[union-attr]

            proxy.refuse()
            await first.stop()
            await wait_until(lambda: client.state is not ClientState.CONNECTED)
            second = HubServer(Hub(), port=port)  # same address, empty history: a new epoch
            await second.start()
            try:
                for value in range(3):
                    second.hub.publish_now("plant/boiler", f"new{value}")
                proxy.allow()
                await wait_until(lambda: client.state is ClientState.CONNECTED, timeout=10)
                second.hub.publish_now("plant/boiler", "live")
                second.hub.publish_now("plant/pump", "back")
                await wait_until(lambda: len(received) >= 13)
            finally:
                await second.stop()
            reader.cancel()

        after = received[6:]
        boiler = [item for item in after if item.topic == "plant/boiler"]
        pump = [item for item in after if item.topic == "plant/pump"]
        # The boiler topic exists on the new hub: the gap names the new epoch, then everything from offset 1.
        gap = boiler[0]
        assert isinstance(gap, Gap) and gap.reason == "epoch_changed"
        assert (gap.from_offset, gap.to_offset) == (6, None) and gap.epoch != old_epoch
        assert [(item.offset, item.data) for item in boiler[1:]] == [  # type: ignore[union-attr]
            (1, "new0"),
            (2, "new1"),
            (3, "new2"),
            (4, "live"),
        ]
        assert all(item.epoch == gap.epoch for item in boiler[1:])  # type: ignore[union-attr]
        # The pump topic was unknown to the new hub when the client resumed: a gap, then its new start.
        assert isinstance(pump[0], Gap) and pump[0].reason == "epoch_changed" and pump[0].from_offset == 2
        assert isinstance(pump[1], Message) and (pump[1].offset, pump[1].data) == (1, "back")
        assert client.gaps_reported == 2


async def test_publishes_made_offline_are_delivered_in_order_after_reconnection(
    big_history_hub: HubServer, proxy: TcpProxy
) -> None:
    async with fast_client(proxy.url) as client, fast_client(big_history_hub.url) as observer:
        watched = await observer.subscribe("offline/#")
        await client.publish("offline/x", "before")
        proxy.refuse()
        proxy.cut()
        await wait_until(lambda: client.state is not ClientState.CONNECTED)
        acked = [asyncio.ensure_future(client.publish("offline/x", index, timeout=10)) for index in range(5)]
        await wait_until(lambda: client.pending == 5)
        for index in range(5, 8):
            assert await client.publish("offline/x", index, ack=False) is None
        await wait_until(lambda: client.pending == 8)
        assert not any(task.done() for task in acked)
        proxy.allow()
        assert await asyncio.gather(*acked) == [2, 3, 4, 5, 6]
        items = [await watched.get(timeout=5) for _ in range(9)]
        assert [item.data for item in items] == ["before", *range(8)]  # type: ignore[union-attr]
        assert client.pending == 0


async def test_a_full_offline_queue_refuses_or_drops_the_oldest_as_configured(
    big_history_hub: HubServer, proxy: TcpProxy
) -> None:
    async with (
        fast_client(proxy.url, max_pending=3) as strict,
        fast_client(proxy.url, max_pending=3, overflow="drop_oldest") as lenient,
        fast_client(big_history_hub.url) as observer,
    ):
        watched = await observer.subscribe("full/#")
        proxy.refuse()
        proxy.cut()
        await wait_until(lambda: ClientState.CONNECTED not in (strict.state, lenient.state))
        for index in range(3):
            await strict.publish("full/strict", index, ack=False)
        with pytest.raises(LimitExceeded) as refused:
            await strict.publish("full/strict", 3, ack=False)
        assert refused.value.code == "limit_exceeded"

        oldest = asyncio.ensure_future(lenient.publish("full/lenient", "a", timeout=10))
        await wait_until(lambda: lenient.pending == 1)
        for value in ("b", "c", "d"):
            await lenient.publish("full/lenient", value, ack=False)
        with pytest.raises(LimitExceeded):
            await oldest
        assert lenient.dropped_publishes == 1

        proxy.allow()
        items = [await watched.get(timeout=5) for _ in range(6)]
        by_topic = {
            topic: [item.data for item in items if item.topic == topic] for topic in ("full/strict", "full/lenient")
        }
        assert by_topic == {"full/strict": [0, 1, 2], "full/lenient": ["b", "c", "d"]}


async def test_a_publish_that_times_out_offline_is_withdrawn(big_history_hub: HubServer, proxy: TcpProxy) -> None:
    async with fast_client(proxy.url) as client, fast_client(big_history_hub.url) as observer:
        watched = await observer.subscribe("late/#")
        proxy.refuse()
        proxy.cut()
        await wait_until(lambda: client.state is not ClientState.CONNECTED)
        with pytest.raises(Timeout) as timed_out:
            await client.publish("late/x", "never", timeout=0.05)
        assert "withdrawn" in timed_out.value.message
        proxy.allow()
        await wait_until(lambda: client.state is ClientState.CONNECTED, timeout=10)
        assert await client.publish("late/x", "after") == 1
        item = await watched.get(timeout=5)
        assert isinstance(item, Message) and item.data == "after"


async def test_a_topic_created_while_offline_is_delivered_from_its_start(
    big_history_hub: HubServer, proxy: TcpProxy
) -> None:
    hub = big_history_hub.hub
    hub.publish_now("room/quiet", "before the subscription")
    async with fast_client(proxy.url) as client:
        subscription = await client.subscribe("room/#")
        proxy.refuse()
        proxy.cut()
        await wait_until(lambda: client.state is not ClientState.CONNECTED)
        hub.publish_now("room/new", "first")
        hub.publish_now("room/new", "second")
        hub.publish_now("room/quiet", "while away")
        proxy.allow()
        items = [await subscription.get(timeout=5) for _ in range(3)]
        assert sorted((item.topic, item.data) for item in items) == [  # type: ignore[union-attr]
            ("room/new", "first"),
            ("room/new", "second"),
            ("room/quiet", "while away"),
        ]
        # Nothing from before the subscription was replayed.
        with pytest.raises(Timeout):
            await subscription.get(timeout=0.1)


async def test_state_changes_are_reported_in_order(big_history_hub: HubServer, proxy: TcpProxy) -> None:
    seen: list[tuple[str, str]] = []
    client = fast_client(proxy.url, on_state_change=lambda old, new: seen.append((old.value, new.value)))
    await client.connect()
    proxy.cut()
    await wait_until(lambda: client.reconnects == 1 and client.state is ClientState.CONNECTED, timeout=10)
    await client.close()
    assert seen == [
        ("new", "connecting"),
        ("connecting", "connected"),
        ("connected", "disconnected"),
        ("disconnected", "connecting"),
        ("connecting", "connected"),
        ("connected", "closing"),
        ("closing", "closed"),
    ]


async def test_a_slow_application_is_caught_up_without_loss() -> None:
    """A full subscription queue stops the client reading instead of growing; nothing is lost.

    (The hub's side of this, skipping a client whose socket is full and catching it up from
    history, is tested in tests/server/test_robustness.py.)
    """
    config = HubConfig(limits=Limits(max_queue_bytes=16_384), history=HistoryLimits(max_messages=20_000))
    async with running_hub(config) as server, AsyncClient(server.url, max_queue=10) as client:
        subscription = await client.subscribe("slow/#")
        padding = "x" * 1_000
        for number in range(2_000):
            server.hub.publish_now("slow/x", {"n": number, "padding": padding})
            if number % 100 == 0:
                await asyncio.sleep(0)
        await wait_until(lambda: subscription.received >= 10)
        assert len(subscription._items) <= 10  # bounded while the application does not read
        items = [await subscription.get(timeout=10) for _ in range(2_000)]
    assert [item.data["n"] for item in items] == list(range(2_000))  # type: ignore[union-attr]


async def test_a_publish_whose_ack_was_lost_is_sent_again_at_least_once(
    big_history_hub: HubServer, proxy: TcpProxy
) -> None:
    store = big_history_hub.hub.backplane.store  # type: ignore[attr-defined]
    async with fast_client(proxy.url) as client:
        proxy.forward_replies = False  # the hub stores the publish, but its ack never reaches the client
        publishing = asyncio.ensure_future(client.publish("once/x", "payload", timeout=10))
        await wait_until(lambda: store.get("once/x") is not None)
        assert not publishing.done()
        proxy.cut()
        proxy.forward_replies = True
        assert await publishing == 2  # resent after reconnecting: stored a second time
    assert [message.data for message in store.get("once/x")] == ["payload", "payload"]


async def test_without_resend_a_lost_ack_fails_the_publish_instead(big_history_hub: HubServer, proxy: TcpProxy) -> None:
    store = big_history_hub.hub.backplane.store  # type: ignore[attr-defined]
    async with fast_client(proxy.url, resend_unacked=False) as client:
        proxy.forward_replies = False
        publishing = asyncio.ensure_future(client.publish("most/x", "payload", timeout=10))
        await wait_until(lambda: store.get("most/x") is not None)
        proxy.cut()
        proxy.forward_replies = True
        with pytest.raises(ConnectionClosed) as lost:
            await publishing
        assert "may or may not have been delivered" in lost.value.message
        await wait_until(lambda: client.state is ClientState.CONNECTED)
    assert [message.data for message in store.get("most/x")] == ["payload"]
