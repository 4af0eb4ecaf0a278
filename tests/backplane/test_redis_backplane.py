"""The Redis backplane with in-process hubs, real Redis, real WebSockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest
import tornado.httpclient
from redis_helpers import PrivateRedis, eventually, redis_hub

from rtnb.backplane.redis import BackplaneState, RedisBackplane
from rtnb.core.history import HistoryLimits
from rtnb.server.hub import Hub, HubConfig
from rtnb.server.runner import HubServer
from rtnb.testing import WirePeer, wait_until

pytestmark = pytest.mark.timeout(60)


async def publish(peer: WirePeer, topic: str, data: Any) -> dict[str, Any]:
    """Publish with an id and return the hub's answer (ack or error)."""
    return await peer.request({"op": "publish", "topic": topic, "data": data, "id": uuid.uuid4().hex[:8]})


async def assert_nothing_more(peer: WirePeer, publisher: WirePeer, topic: str) -> None:
    """The next message ``peer`` receives is a fresh sentinel on ``topic``: nothing was duplicated."""
    await publish(publisher, topic, "sentinel")
    item = await peer.next_op("message") if not peer._held else peer._held.pop(0)
    assert (item["topic"], item["data"]) == (topic, "sentinel"), item


def offsets(items: list[dict[str, Any]], topic: str) -> list[int]:
    return [item["offset"] for item in items if item.get("op") == "message" and item["topic"] == topic]


async def test_publish_on_one_hub_reaches_overlapping_subscribers_on_another_exactly_once(
    shared_redis_url: str, prefix: str
) -> None:
    async with redis_hub(shared_redis_url, prefix, "A") as hub_a, redis_hub(shared_redis_url, prefix, "B") as hub_b:
        async with (
            WirePeer(hub_a.ws_url) as publisher,
            WirePeer(hub_b.ws_url) as wildcard,
            WirePeer(hub_b.ws_url) as exact,
        ):
            # Both on hub B: Redis sends B each message once per matching subscription.
            assert (await wildcard.request({"op": "subscribe", "topic": "plant/#"}))["op"] == "subscribed"
            assert (await exact.request({"op": "subscribe", "topic": "plant/boiler/temp"}))["op"] == "subscribed"
            acks = [await publish(publisher, "plant/boiler/temp", {"value": n}) for n in range(20)]
            assert [ack["offset"] for ack in acks] == list(range(1, 21))
            for peer in (wildcard, exact):
                received = await peer.messages(20)
                assert offsets(received, "plant/boiler/temp") == list(range(1, 21))
                assert [item["data"]["value"] for item in received] == list(range(20))
                assert {item["epoch"] for item in received} == {acks[0]["epoch"]}
            await assert_nothing_more(wildcard, publisher, "plant/boiler/temp")
            await assert_nothing_more(exact, publisher, "plant/boiler/temp")


async def test_offsets_from_several_hubs_interleave_without_gaps(shared_redis_url: str, prefix: str) -> None:
    async with redis_hub(shared_redis_url, prefix, "A") as hub_a, redis_hub(shared_redis_url, prefix, "B") as hub_b:
        async with WirePeer(hub_a.ws_url) as peer_a, WirePeer(hub_b.ws_url) as peer_b:

            async def publish_many(peer: WirePeer) -> list[dict[str, Any]]:
                return [await publish(peer, "shared/topic", n) for n in range(20)]

            acks_a, acks_b = await asyncio.gather(publish_many(peer_a), publish_many(peer_b))
            for acks in (acks_a, acks_b):
                assert [ack["offset"] for ack in acks] == sorted(ack["offset"] for ack in acks)
            assert sorted(ack["offset"] for ack in acks_a + acks_b) == list(range(1, 41))
            assert len({ack["epoch"] for ack in acks_a + acks_b}) == 1


class SlowHistoryReads(RedisBackplane):
    """Widens the window in which live messages arrive while a history read is in flight."""

    async def read_since(self, topic: str, offset: int, epoch: int | None) -> Any:
        result = await super().read_since(topic, offset, epoch)
        await asyncio.sleep(0.01)
        return result


async def test_catch_up_meets_the_live_stream_without_loss_or_duplicates(shared_redis_url: str, prefix: str) -> None:
    total = 300
    async with (
        redis_hub(shared_redis_url, prefix, "A") as hub_a,
        redis_hub(shared_redis_url, prefix, "B", backplane_class=SlowHistoryReads) as hub_b,
    ):
        async with WirePeer(hub_a.ws_url) as publisher:
            first = await publish(publisher, "race/t", 0)
            epoch = first["epoch"]
            for n in range(1, 60):
                await publish(publisher, "race/t", n)

            async def publish_all() -> None:
                for n in range(60, total):
                    await publish(publisher, "race/t", n)

            async def subscribe_late(since: int) -> list[int]:
                async with WirePeer(hub_b.ws_url) as peer:
                    await peer.request(
                        {"op": "subscribe", "topic": "race/#", "since": {"race/t": {"offset": since, "epoch": epoch}}}
                    )
                    received: list[int] = []
                    while not received or received[-1] < total:
                        received.extend(offsets(await peer.messages(1, timeout=10), "race/t"))
                    return received

            # The history reads of these late subscribers overlap live messages still being published.
            publishing = asyncio.ensure_future(publish_all())
            subscribers = []
            for since in (0, 1, 5, 20, 50):
                subscribers.append(asyncio.ensure_future(subscribe_late(since)))
                await wait_until(lambda: hub_b.hub.connection_count >= len(subscribers))
            await publishing
            results = await asyncio.gather(*subscribers)
            for since, received in zip((0, 1, 5, 20, 50), results, strict=True):
                assert received == list(range(since + 1, total + 1)), f"since={since}"


async def test_a_client_resumes_on_another_hub_and_last_replays_history_from_redis(
    shared_redis_url: str, prefix: str
) -> None:
    async with redis_hub(shared_redis_url, prefix, "A") as hub_a, redis_hub(shared_redis_url, prefix, "B") as hub_b:
        async with WirePeer(hub_a.ws_url) as publisher:
            async with WirePeer(hub_a.ws_url) as first_visit:
                await first_visit.request({"op": "subscribe", "topic": "move/#"})
                for n in range(10):
                    await publish(publisher, "move/x", n)
                seen = await first_visit.messages(10)
            for n in range(10, 25):
                await publish(publisher, "move/x", n)
            last = seen[-1]
            async with WirePeer(hub_b.ws_url) as second_visit:
                cursor = {"move/x": {"offset": last["offset"], "epoch": last["epoch"]}}
                await second_visit.request({"op": "subscribe", "topic": "move/#", "since": cursor})
                rest = await second_visit.messages(15)
                assert offsets(seen + rest, "move/x") == list(range(1, 26))
                await assert_nothing_more(second_visit, publisher, "move/x")
            async with WirePeer(hub_b.ws_url) as replay:
                await replay.request({"op": "subscribe", "topic": "move/x", "last": 3})
                assert [item["data"] for item in await replay.messages(3)] == [23, 24, "sentinel"]


async def test_trimmed_history_is_reported_as_a_gap(shared_redis_url: str, prefix: str) -> None:
    config = HubConfig(ping_interval=0, history=HistoryLimits(max_messages=5))
    async with redis_hub(shared_redis_url, prefix, "A", config) as hub_a:
        async with WirePeer(hub_a.ws_url) as publisher:
            for n in range(400):
                await publish(publisher, "trim/t", n)
            async with WirePeer(hub_a.ws_url) as late:
                await late.request({"op": "subscribe", "topic": "trim/t", "since": {"trim/t": 1}})
                gap = await late.next_op("gap")
                assert gap["reason"] == "trimmed" and gap["from"] == 2 and gap["to"] >= 2
                rest = await late.messages(400 - gap["to"])
                assert offsets(rest, "trim/t") == list(range(gap["to"] + 1, 401))


async def test_topic_names_with_glob_characters_are_matched_exactly(shared_redis_url: str, prefix: str) -> None:
    async with redis_hub(shared_redis_url, prefix, "A") as hub_a, redis_hub(shared_redis_url, prefix, "B") as hub_b:
        async with WirePeer(hub_a.ws_url) as publisher, WirePeer(hub_b.ws_url) as subscriber:
            await subscriber.request({"op": "subscribe", "topic": "odd*name/+"})
            await subscriber.request({"op": "subscribe", "topic": "x[1]/#"})
            await publish(publisher, "oddXname/a", "wrong: '*' is a literal character")
            await publish(publisher, "x1/b", "wrong: '[1]' is literal")
            await publish(publisher, "odd*name/a/deeper", "wrong: '+' is one level")
            await publish(publisher, "odd*name/a", "right")
            await publish(publisher, "x[1]/b/c", "right too")
            received = await subscriber.messages(2)
            assert [(item["topic"], item["data"]) for item in received] == [
                ("odd*name/a", "right"),
                ("x[1]/b/c", "right too"),
            ]
            await assert_nothing_more(subscriber, publisher, "odd*name/z")


async def test_presence_spans_hubs_and_drops_closed_connections(shared_redis_url: str, prefix: str) -> None:
    async with redis_hub(shared_redis_url, prefix, "A") as hub_a, redis_hub(shared_redis_url, prefix, "B") as hub_b:
        async with WirePeer(hub_a.ws_url) as asker:

            async def members(topic: str) -> list[dict[str, str]]:
                reply = await asker.request({"op": "presence", "topic": topic, "id": "p"})
                assert reply["op"] == "presence" and reply["id"] == "p", reply
                return list(reply["members"])

            async with WirePeer(hub_b.ws_url) as member:
                await member.request({"op": "subscribe", "topic": "chat/+"})
                assert member.welcome is not None
                expected = [{"client": member.welcome["client"], "hub": "B"}]
                # Hub B writes its presence a few milliseconds after the subscription.
                assert await eventually(lambda: members("chat/room1"), expected) == expected
                assert await members("chat/#") == expected
                assert await members("news/room1") == []
            assert await eventually(lambda: members("chat/room1"), []) == []


async def test_backplane_takes_a_plain_redis_url(shared_redis_url: str, prefix: str) -> None:
    server = HubServer(Hub(backplane=RedisBackplane(f"{shared_redis_url}?prefix={prefix}")))
    await server.start()
    try:
        backplane = server.hub.backplane
        assert isinstance(backplane, RedisBackplane) and backplane.keys.prefix == prefix
        client = tornado.httpclient.AsyncHTTPClient()
        health = orjson.loads((await client.fetch(server.url + "/healthz")).body)
        assert (health["status"], health["backplane"], health["state"]) == ("ok", "redis", "connected")
    finally:
        await server.stop()


async def health_of(server: HubServer) -> tuple[int, dict[str, Any]]:
    response = await tornado.httpclient.AsyncHTTPClient().fetch(server.url + "/healthz", raise_error=False)
    return response.code, orjson.loads(response.body)


async def test_redis_outage_fails_publishes_tells_subscribers_and_recovers_without_loss(
    private_redis: PrivateRedis,
) -> None:
    prefix = "rtnb:outage:"
    async with redis_hub(private_redis.url, prefix, "A") as hub_a, redis_hub(private_redis.url, prefix, "B") as hub_b:
        async with WirePeer(hub_a.ws_url) as publisher, WirePeer(hub_b.ws_url) as subscriber:
            await subscriber.request({"op": "subscribe", "topic": "s/#"})
            acked = [await publish(publisher, "s/1", n) for n in range(10)]
            assert all(ack["op"] == "ack" for ack in acked)
            await subscriber.messages(10)

            private_redis.stop()
            notice = await subscriber.next_op("error")
            assert notice["code"] == "unavailable"
            failed = await publish(publisher, "s/1", "during the outage")
            assert failed["op"] == "error" and failed["code"] == "unavailable" and "id" in failed
            code, health = await health_of(hub_b)
            assert code == 503 and health["ok"] is False and health["state"] == "disconnected"

            await private_redis.start()
            await wait_until(lambda: hub_a.hub.backplane.state is BackplaneState.CONNECTED, timeout=10)
            after = [await publish(publisher, "s/1", n) for n in range(10, 20)]
            assert [ack.get("offset") for ack in after] == list(range(11, 21)), [a for a in after if "offset" not in a]
            received = await subscriber.messages(10)
            assert offsets(received, "s/1") == list(range(11, 21))
            assert (await health_of(hub_b))[0] == 200


async def test_messages_published_while_a_hub_was_cut_off_are_delivered_after_it_reconnects(
    private_redis: PrivateRedis,
) -> None:
    import redis.asyncio

    prefix = "rtnb:cut:"
    async with redis_hub(private_redis.url, prefix, "A") as hub_a, redis_hub(private_redis.url, prefix, "B") as hub_b:
        async with WirePeer(hub_a.ws_url) as publisher, WirePeer(hub_b.ws_url) as subscriber:
            await subscriber.request({"op": "subscribe", "topic": "cut/#"})
            await publish(publisher, "cut/old", 0)
            await subscriber.messages(1)
            backplane_b = hub_b.hub.backplane
            assert isinstance(backplane_b, RedisBackplane)
            # Cut only hub B's pub/sub connection, as Redis does to a subscriber over its output limit.
            admin = redis.asyncio.Redis.from_url(private_redis.url)
            try:
                clients = await admin.client_list(_type="pubsub")
                hub_b_listeners = [client["id"] for client in clients if client.get("name") == "rtnb-B"]
                assert len(hub_b_listeners) == 1
                await admin.client_kill_filter(_id=hub_b_listeners[0])
            finally:
                await admin.aclose()
            await wait_until(lambda: backplane_b.state is not BackplaneState.CONNECTED, timeout=5)
            for n in range(1, 6):
                await publish(publisher, "cut/old", n)
                await publish(publisher, "cut/new", n)
            await wait_until(lambda: backplane_b.state is BackplaneState.CONNECTED, timeout=10)
            received = await subscriber.messages(10, timeout=10)
            items = [item for item in received if item.get("op") == "message"]
            assert offsets(items, "cut/old") == [2, 3, 4, 5, 6]
            assert offsets(items, "cut/new") == [1, 2, 3, 4, 5]
            await assert_nothing_more(subscriber, publisher, "cut/new")


async def test_redis_restarting_empty_starts_new_epochs_that_subscribers_receive(tmp_path: Any) -> None:
    import shutil

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed, so Redis cannot be stopped and restarted in a test")
    volatile = PrivateRedis(tmp_path, persistent=False)
    await volatile.start()
    try:
        async with redis_hub(volatile.url, "rtnb:volatile:", "A") as hub_a:
            async with WirePeer(hub_a.ws_url) as publisher, WirePeer(hub_a.ws_url) as subscriber:
                await subscriber.request({"op": "subscribe", "topic": "v/#"})
                before = [await publish(publisher, "v/t", n) for n in range(3)]
                await subscriber.messages(3)
                volatile.stop()
                await subscriber.next_op("error")
                await volatile.start()
                await wait_until(lambda: hub_a.hub.backplane.state is BackplaneState.CONNECTED, timeout=10)
                after = await publish(publisher, "v/t", "new life")
                assert after["offset"] == 1 and after["epoch"] > before[0]["epoch"]
                item = await subscriber.next_op("message")
                assert (item["offset"], item["epoch"], item["data"]) == (1, after["epoch"], "new life")
                async with WirePeer(hub_a.ws_url) as resumer:
                    cursor = {"v/t": {"offset": 3, "epoch": before[0]["epoch"]}}
                    await resumer.request({"op": "subscribe", "topic": "v/t", "since": cursor})
                    gap = await resumer.next_op("gap")
                    assert gap["reason"] == "epoch_changed"
    finally:
        volatile.stop()


async def test_publish_costs_one_redis_round_trip_whatever_the_subscriber_count(private_redis: PrivateRedis) -> None:
    import redis.asyncio

    admin = redis.asyncio.Redis.from_url(private_redis.url)
    prefix = "rtnb:cost:"
    try:
        async with (
            redis_hub(private_redis.url, prefix, "A") as hub_a,
            redis_hub(private_redis.url, prefix, "B") as hub_b,
            redis_hub(private_redis.url, prefix, "C") as hub_c,
        ):
            async with WirePeer(hub_a.ws_url) as publisher:
                peers = [WirePeer(server.ws_url) for server in (hub_b, hub_c) for _ in range(10)]
                for peer in peers:
                    await peer.__aenter__()
                    await peer.request({"op": "subscribe", "topic": "cost/#"})
                try:
                    await publish(publisher, "cost/t", "warm up")
                    for peer in peers:
                        await peer.messages(1)
                    await admin.config_resetstat()
                    for n in range(200):
                        await publish(publisher, "cost/t", n)
                    for peer in peers:
                        assert len(await peer.messages(200)) == 200
                    stats = await admin.info("commandstats")
                finally:
                    for peer in peers:
                        await peer.__aexit__(None, None, None)
        calls = {name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()}
        # One acknowledged publish at a time: one script call each (batches of one).
        assert calls.get("evalsha", 0) == 200
        assert calls.get("spublish", 0) == 200
        assert calls.get("xadd", 0) == 200
        # Nothing else scales with messages or subscribers: a few presence refreshes at most.
        per_message = {name: count for name, count in calls.items() if count >= 100}
        assert set(per_message) <= {"evalsha", "spublish", "xadd", "set", "get", "info", "config|resetstat"}
    finally:
        await admin.aclose()


class ManualClock:
    """A clock tests move by hand, so age limits are tested without waiting."""

    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def test_history_age_limit_trims_the_stream(shared_redis_url: str, prefix: str) -> None:
    clock = ManualClock()
    config = HubConfig(ping_interval=0, history=HistoryLimits(max_age=60.0))
    backplane = RedisBackplane(shared_redis_url, prefix=prefix, hub_id="A", limits=config.history)
    server = HubServer(Hub(config, backplane, clock))
    await server.start()
    try:
        async with WirePeer(server.ws_url) as publisher:
            for n in range(5):
                await publish(publisher, "aged/t", n)
            clock.now += 120  # two minutes later: the first five are past the age limit
            for n in range(5, 8):
                await publish(publisher, "aged/t", n)
            async with WirePeer(server.ws_url) as late:
                await late.request({"op": "subscribe", "topic": "aged/t", "since": {"aged/t": 0}})
                gap = await late.next_op("gap")
                assert (gap["reason"], gap["from"], gap["to"]) == ("trimmed", 1, 5)
                assert offsets(await late.messages(3), "aged/t") == [6, 7, 8]
    finally:
        await server.stop()


async def test_reset_topic_starts_a_newer_epoch(shared_redis_url: str, prefix: str) -> None:
    async with redis_hub(shared_redis_url, prefix, "A") as hub_a:
        async with WirePeer(hub_a.ws_url) as publisher:
            first = await publish(publisher, "reset/t", "old")
            hub_a.hub.backplane.reset_topic("reset/t")
            assert isinstance(hub_a.hub.backplane, RedisBackplane)
            backplane = hub_a.hub.backplane
            await wait_until(lambda: not backplane.commands.pending)
            again = await publish(publisher, "reset/t", "new")
            assert again["offset"] == 1 and again["epoch"] > first["epoch"]


class GatedReconnect(RedisBackplane):
    """Reconnects only while ``gate`` is set, so a test decides how long a hub stays cut off."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = asyncio.Event()
        self.gate.set()

    async def _connect(self, node: Any, listener: Any) -> None:
        await self.gate.wait()
        await super()._connect(node, listener)


async def test_a_hub_cut_off_longer_than_history_tells_its_subscribers_of_the_gap(
    private_redis: PrivateRedis,
) -> None:
    import redis.asyncio

    config = HubConfig(ping_interval=0, history=HistoryLimits(max_messages=5))
    prefix = "rtnb:behind:"
    async with (
        redis_hub(private_redis.url, prefix, "A", config) as hub_a,
        redis_hub(private_redis.url, prefix, "B", config, backplane_class=GatedReconnect) as hub_b,
    ):
        async with WirePeer(hub_a.ws_url) as publisher, WirePeer(hub_b.ws_url) as subscriber:
            await subscriber.request({"op": "subscribe", "topic": "far/#"})
            await publish(publisher, "far/t", 0)
            await subscriber.messages(1)
            backplane_b = hub_b.hub.backplane
            assert isinstance(backplane_b, GatedReconnect)
            backplane_b.gate.clear()
            admin = redis.asyncio.Redis.from_url(private_redis.url)
            try:
                clients = await admin.client_list(_type="pubsub")
                await admin.client_kill_filter(_id=next(c["id"] for c in clients if c.get("name") == "rtnb-B"))
            finally:
                await admin.aclose()
            await wait_until(lambda: backplane_b.state is not BackplaneState.CONNECTED, timeout=5)
            # Far more than the history keeps (MAXLEN ~ trims whole stream nodes of 100 entries).
            for n in range(1, 400):
                await publish(publisher, "far/t", n)
            backplane_b.gate.set()
            await wait_until(lambda: backplane_b.state is BackplaneState.CONNECTED, timeout=10)
            gap = await subscriber.next_op("gap")
            assert (gap["reason"], gap["from"]) == ("trimmed", 2) and gap["to"] >= 2
            rest = await subscriber.messages(400 - gap["to"])
            assert offsets(rest, "far/t") == list(range(gap["to"] + 1, 401))


async def test_publishes_sent_without_waiting_share_round_trips_and_are_acknowledged_in_order(
    private_redis: PrivateRedis,
) -> None:
    import redis.asyncio

    admin = redis.asyncio.Redis.from_url(private_redis.url)
    try:
        async with (
            redis_hub(private_redis.url, "rtnb:batch:", "A") as hub_a,
            redis_hub(private_redis.url, "rtnb:batch:", "B") as hub_b,
        ):
            async with WirePeer(hub_a.ws_url) as publisher, WirePeer(hub_b.ws_url) as subscriber:
                await subscriber.request({"op": "subscribe", "topic": "batch/#"})
                await admin.config_resetstat()
                count = 600
                for n in range(count):  # no waiting for acks: the hub reads on while Redis works
                    await publisher.send({"op": "publish", "topic": f"batch/{n % 3}", "data": n, "id": n})
                acks = [await publisher.next_op("ack") for _ in range(count)]
                assert [ack["id"] for ack in acks] == list(range(count)), "acknowledged in request order"
                for topic in ("batch/0", "batch/1", "batch/2"):
                    assert [ack["offset"] for ack in acks if ack["topic"] == topic] == list(range(1, count // 3 + 1))
                received = await subscriber.messages(count)
                for topic in range(3):  # order is per topic
                    data = [item["data"] for item in received if item["topic"] == f"batch/{topic}"]
                    assert data == list(range(topic, count, 3))
                stats = await admin.info("commandstats")
        calls = {name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()}
        assert calls["xadd"] == count
        assert calls["evalsha"] < count / 4, calls  # batches, not one round trip per message
        # One pub/sub payload per batch and bucket (a first call may fail NOSCRIPT and be repeated).
        assert calls["spublish"] <= calls["evalsha"]
    finally:
        await admin.aclose()


async def test_a_publish_after_redis_closed_the_idle_connections_is_acknowledged(private_redis: PrivateRedis) -> None:
    import redis.asyncio

    async with redis_hub(private_redis.url, "rtnb:idle:", "A") as hub_a, WirePeer(hub_a.ws_url) as publisher:
        assert (await publish(publisher, "idle/t", 1))["offset"] == 1
        # What Redis' idle `timeout`, a proxy or a restart does to the connections a quiet hub
        # holds: closes them (the pub/sub listener is not touched here).
        admin = redis.asyncio.Redis.from_url(private_redis.url)
        try:
            clients = await admin.client_list(_type="normal")
            hub_connections = [client["id"] for client in clients if client.get("name") == "rtnb-A"]
            assert hub_connections
            for client_id in hub_connections:
                await admin.client_kill_filter(_id=client_id)
        finally:
            await admin.aclose()
        for n in range(2, 5):
            ack = await publish(publisher, "idle/t", n)
            assert (ack["op"], ack.get("offset")) == ("ack", n), ack
