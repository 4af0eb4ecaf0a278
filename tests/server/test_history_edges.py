"""Restarted or evicted history, re-subscribes and mass gaps, over real WebSocket sockets (issue 18, item 4)."""

from __future__ import annotations

import pytest

from rtnb.client import AsyncClient
from rtnb.core.history import HistoryLimits
from rtnb.core.limits import Limits
from rtnb.server.hub import HubConfig
from rtnb.testing import WirePeer, running_hub


async def publish(peer: WirePeer, topic: str, data: object) -> dict:
    reply = await peer.request({"op": "publish", "topic": topic, "data": data, "id": "p"})
    assert reply["op"] == "ack", reply
    return reply


async def test_an_evicted_topic_continues_its_epoch_so_no_false_epoch_changed_gap() -> None:
    config = HubConfig(history=HistoryLimits(max_topics=2), ping_interval=0)
    async with running_hub(config) as server, WirePeer(server.ws_url) as live, WirePeer(server.ws_url) as publisher:
        await live.request({"op": "subscribe", "topic": "t/#"})
        first = await publish(publisher, "t/a", 1)
        await publish(publisher, "t/b", 1)
        await publish(publisher, "t/c", 1)  # over max_topics: t/a loses its history
        again = await publish(publisher, "t/a", 2)
        assert (again["epoch"], again["offset"]) == (first["epoch"], 2)
        items = await live.messages(4)
        assert [item["op"] for item in items] == ["message"] * 4
        # A client that saw t/a up to offset 1 resumes without any gap...
        async with WirePeer(server.ws_url) as resumer:
            since = {"t/a": {"offset": 1, "epoch": first["epoch"]}}
            await resumer.request({"op": "subscribe", "topic": "t/a", "since": since})
            (item,) = await resumer.messages(1)
            assert (item["op"], item["offset"]) == ("message", 2)
        # ...and one that saw nothing of it since offset 0 gets exactly a trimmed gap for offset 1.
        await publish(publisher, "t/d", 1)
        await publish(publisher, "t/e", 1)  # t/a evicted again, now at offset 2
        async with WirePeer(server.ws_url) as behind:
            since = {"t/a": {"offset": 0, "epoch": first["epoch"]}}
            await behind.request({"op": "subscribe", "topic": "t/a", "since": since})
            await publish(publisher, "t/a", 3)
            gap, message = await behind.messages(2)
            trimmed = {"op": "gap", "topic": "t/a", "from": 1, "to": 2, "reason": "trimmed", "epoch": first["epoch"]}
            assert gap == trimmed
            assert (message["offset"], message["epoch"]) == (3, first["epoch"])


async def test_an_in_memory_topic_reset_is_pushed_to_live_subscribers_at_once() -> None:
    async with running_hub(HubConfig(ping_interval=0)) as server:
        async with WirePeer(server.ws_url) as live, WirePeer(server.ws_url) as publisher:
            await live.request({"op": "subscribe", "topic": "r/#"})
            for value in range(3):
                await publish(publisher, "r/x", value)
            assert [item["offset"] for item in await live.messages(3)] == [1, 2, 3]
            server.hub.backplane.reset_topic("r/x")
            (gap,) = await live.messages(1)
            assert gap == {"op": "gap", "topic": "r/x", "from": 4, "to": None, "reason": "epoch_changed"}
            reborn = await publish(publisher, "r/x", 9)
            (message,) = await live.messages(1)
            assert (message["offset"], message["epoch"]) == (1, reborn["epoch"])


async def test_last_and_since_are_honoured_on_every_subscribe_of_a_connection() -> None:
    async with running_hub(HubConfig(ping_interval=0)) as server:
        async with WirePeer(server.ws_url) as peer, WirePeer(server.ws_url) as publisher:
            await peer.request({"op": "subscribe", "topic": "s/#"})
            acks = [await publish(publisher, "s/a", value) for value in range(4)]
            assert [item["offset"] for item in await peer.messages(4)] == [1, 2, 3, 4]
            # the same pattern again, with last: the last two are replayed
            await peer.request({"op": "subscribe", "topic": "s/#", "last": 2})
            assert [item["offset"] for item in await peer.messages(2)] == [3, 4]
            # another pattern covering the same topic, with since: what follows offset 1
            since = {"s/a": {"offset": 1, "epoch": acks[0]["epoch"]}}
            await peer.request({"op": "subscribe", "topic": "s/+", "since": since})
            assert [item["offset"] for item in await peer.messages(3)] == [2, 3, 4]
            await publish(publisher, "s/a", 5)
            assert [item["offset"] for item in await peer.messages(1)] == [5]
            assert await peer.request({"op": "ping", "id": 1}) == {"op": "pong", "id": 1}
            assert peer._held == []


async def test_a_second_client_subscription_with_last_gets_its_replay() -> None:
    async with running_hub(HubConfig(ping_interval=0)) as server:
        async with AsyncClient(server.url) as client:
            first = await client.subscribe("c/#")
            for value in range(5):
                await client.publish("c/a", value)
            assert [(await first.get(5)).offset for _ in range(5)] == [1, 2, 3, 4, 5]  # type: ignore[union-attr]
            second = await client.subscribe("c/#", last=3)
            assert [(await second.get(5)).offset for _ in range(3)] == [3, 4, 5]  # type: ignore[union-attr]
            third = await client.subscribe("c/+", since={"c/a": 4})
            await client.publish("c/a", 5)
            assert [(await third.get(5)).offset for _ in range(2)] == [5, 6]  # type: ignore[union-attr]
            assert [(await second.get(5)).offset for _ in range(1)] == [6]  # type: ignore[union-attr]
            assert [(await first.get(5)).offset for _ in range(1)] == [6]  # type: ignore[union-attr]
            assert client.gaps_reported == 0


@pytest.mark.parametrize("topics", [50_000])
async def test_a_resume_over_many_lost_topics_answers_with_a_few_coalesced_gap_frames(topics: int) -> None:
    config = HubConfig(limits=Limits(max_frame_bytes=16 * 2**20), ping_interval=0)
    async with running_hub(config) as server, WirePeer(server.ws_url) as peer:
        # The hub restarted: none of these topics is known any more.
        since = {f"w/{index}": {"offset": 7, "epoch": 1} for index in range(topics)}
        reply = await peer.request({"op": "subscribe", "topic": "w/#", "since": since}, timeout=30)
        assert reply["op"] == "subscribed"
        covered: set[str] = set()
        gap_objects = 0
        while len(covered) < topics:
            (frame,) = await peer.messages(1, timeout=30)
            gap_objects += 1
            assert frame["op"] == "gap", frame
            for topic, start, end, reason, epoch in frame["gaps"]:
                assert (start, end, reason, epoch) == (8, None, "epoch_changed", None)
                covered.add(topic)
        assert covered == set(since)
        assert gap_objects == topics // 1000
        assert await peer.request({"op": "ping", "id": 1}) == {"op": "pong", "id": 1}
