"""Three hub processes (``python -m rtnb serve --redis ...``) behaving as one hub.

Each test starts its hubs as real subprocesses on free ports, finds their URLs
in their logs, and talks to them with raw WebSocket peers.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import tornado.httpclient
from redis_helpers import PrivateRedis, collect, eventually, hub_processes

from rtnb.testing import WirePeer

pytestmark = pytest.mark.timeout(90)


async def publish(peer: WirePeer, topic: str, data: Any) -> dict[str, Any]:
    return await peer.request({"op": "publish", "topic": topic, "data": data, "id": uuid.uuid4().hex[:8]})


def message_offsets(items: list[dict[str, Any]], topic: str) -> list[int]:
    return [item["offset"] for item in items if item.get("op") == "message" and item["topic"] == topic]


async def next_message(peer: WirePeer) -> dict[str, Any]:
    return peer._held.pop(0) if peer._held else await peer.next_op("message")


async def test_three_hubs_fan_out_exactly_once_agree_on_offsets_and_resume_across_hubs(
    shared_redis_url: str, prefix: str, tmp_path: Path
) -> None:
    async with hub_processes(shared_redis_url, prefix, ["A", "B", "C"], tmp_path) as (hub_a, hub_b, hub_c):
        async with (
            WirePeer(hub_a.ws_url) as publisher,
            WirePeer(hub_b.ws_url) as on_b,
            WirePeer(hub_c.ws_url) as on_c,
            WirePeer(hub_c.ws_url) as mover,
        ):
            for peer, pattern in ((on_b, "plant/#"), (on_c, "plant/+/temp"), (mover, "plant/#")):
                assert (await peer.request({"op": "subscribe", "topic": pattern}))["op"] == "subscribed"
            acks = []
            for n in range(30):
                acks.append(await publish(publisher, f"plant/{('boiler', 'pump')[n % 2]}/temp", n))
            assert [ack["offset"] for ack in acks if ack["topic"] == "plant/boiler/temp"] == list(range(1, 16))
            seen_b = await on_b.messages(30)
            seen_c = await on_c.messages(30)
            for topic in ("plant/boiler/temp", "plant/pump/temp"):
                expected = [ack["offset"] for ack in acks if ack["topic"] == topic]
                assert message_offsets(seen_b, topic) == expected
                assert message_offsets(seen_c, topic) == expected
            epochs = {ack["topic"]: ack["epoch"] for ack in acks}
            assert all(item["epoch"] == epochs[item["topic"]] for item in seen_b + seen_c)
            # Exactly once: the next thing each sees is a fresh message, not a repeat.
            await publish(publisher, "plant/boiler/temp", "sentinel")
            for peer in (on_b, on_c):
                item = await next_message(peer)
                assert (item["offset"], item["data"]) == (16, "sentinel")

            # A client reading on A... then on C, resuming from its offsets.
            cursor: dict[str, Any] = {}
            for item in await mover.messages(31):
                cursor[item["topic"]] = {"offset": item["offset"], "epoch": item["epoch"]}
        async with WirePeer(hub_a.ws_url) as publisher:
            for n in range(31, 51):
                await publish(publisher, "plant/boiler/temp", n)
            async with WirePeer(hub_b.ws_url) as moved:
                await moved.request({"op": "subscribe", "topic": "plant/#", "since": cursor})
                resumed = await moved.messages(20)
                assert message_offsets(resumed, "plant/boiler/temp") == list(range(17, 37))
                await publish(publisher, "plant/pump/temp", "after")
                item = await next_message(moved)
                assert (item["topic"], item["offset"]) == ("plant/pump/temp", 16)


async def test_presence_is_cluster_wide_and_a_killed_hub_loses_no_one_elses_data(
    shared_redis_url: str, prefix: str, tmp_path: Path
) -> None:
    async with hub_processes(shared_redis_url, prefix, ["A", "B", "C"], tmp_path) as (hub_a, hub_b, hub_c):
        async with WirePeer(hub_a.ws_url) as asker, WirePeer(hub_b.ws_url) as on_b, WirePeer(hub_c.ws_url) as on_c:
            await on_b.request({"op": "subscribe", "topic": "room/+"})
            await on_c.request({"op": "subscribe", "topic": "room/lobby"})
            assert on_b.welcome and on_c.welcome
            everyone = [
                {"client": on_b.welcome["client"], "hub": "B"},
                {"client": on_c.welcome["client"], "hub": "C"},
            ]

            async def ask(topic: str) -> Any:
                reply = await asker.request({"op": "presence", "topic": topic})
                return reply["members"]

            assert await eventually(lambda: ask("room/lobby"), everyone) == everyone
            assert await ask("room/kitchen") == everyone[:1]

            for n in range(10):
                await publish(asker, "room/lobby", n)
            await on_c.messages(10)

            hub_b.kill()  # SIGKILL: no goodbye to Redis
            async with WirePeer(hub_c.ws_url) as late:
                await late.request({"op": "subscribe", "topic": "room/lobby", "last": 100})
                history = await late.messages(10)
                assert message_offsets(history, "room/lobby") == list(range(1, 11))
            await publish(asker, "room/lobby", "after the kill")
            item = await next_message(on_c)
            assert (item["offset"], item["data"]) == (11, "after the kill")
            # The killed hub's member vanishes once its presence entry expires (--presence-ttl 2).
            assert await eventually(lambda: ask("room/lobby"), everyone[1:], timeout=10) == everyone[1:]


async def test_redis_stopped_and_restarted_mid_stream(private_redis: PrivateRedis, tmp_path: Path) -> None:
    prefix = "rtnb:restart:"
    async with hub_processes(private_redis.url, prefix, ["A", "B", "C"], tmp_path) as (hub_a, hub_b, hub_c):
        async with WirePeer(hub_a.ws_url) as publisher, WirePeer(hub_b.ws_url) as on_b, WirePeer(hub_c.ws_url) as on_c:
            for peer in (on_b, on_c):
                await peer.request({"op": "subscribe", "topic": "line/#"})
            acknowledged: list[int] = []
            failures = 0
            stopped = False
            n = 0
            while len(acknowledged) < 60:
                n += 1
                if n == 20:
                    private_redis.stop()
                    stopped = True
                if stopped and failures >= 5:
                    await private_redis.start()
                    stopped = False
                answer = await publish(publisher, "line/1", n)
                if answer["op"] == "ack":
                    acknowledged.append(answer["offset"])
                else:
                    assert answer["code"] == "unavailable", answer
                    failures += 1
            assert failures >= 5
            assert acknowledged == list(range(1, 61)), "offsets stay gap-free across the restart"
            for peer in (on_b, on_c):
                items, errors = await collect(peer, 60, timeout=20)
                assert message_offsets(items, "line/1") == acknowledged
                assert [error["code"] for error in errors] == ["unavailable"], "subscribers are told, once"

            async def health(url: str) -> dict[str, Any]:
                response = await tornado.httpclient.AsyncHTTPClient().fetch(url + "/healthz", raise_error=False)
                return dict(orjson.loads(response.body))

            async def state(url: str) -> tuple[str, str]:
                report = await health(url)
                return report["status"], report["state"]

            for hub in (hub_a, hub_b, hub_c):
                assert hub.url is not None
                url = hub.url
                # A hub with no subscribers notices Redis is back at its next retry (backoff up to 2 s).
                assert await eventually(lambda: state(url), ("ok", "connected"), timeout=10)  # noqa: B023 == ("ok", "connected")
                assert (await health(url))["reconnects"] >= 1


async def test_presence_watchers_get_join_and_leave_across_hubs_even_when_a_hub_is_killed(
    shared_redis_url: str, prefix: str, tmp_path: Path
) -> None:
    async with hub_processes(shared_redis_url, prefix, ["A", "B", "C"], tmp_path) as (hub_a, hub_b, hub_c):
        async with WirePeer(hub_a.ws_url) as watcher, WirePeer(hub_c.ws_url) as on_c:
            reply = await watcher.request({"op": "presence", "topic": "room/lobby", "watch": True})
            assert reply["members"] == []
            async with WirePeer(hub_b.ws_url) as on_b:
                assert on_b.welcome is not None
                await on_b.request({"op": "subscribe", "topic": "room/+"})
                joined = await watcher.next_op("join")
                assert joined == {"op": "join", "topic": "room/lobby", "client": on_b.welcome["client"], "hub": "B"}
                await on_b.request({"op": "subscribe", "topic": "room/lobby"})  # still present: no event
                await on_b.request({"op": "unsubscribe", "topic": "room/+"})
                await on_b.request({"op": "unsubscribe", "topic": "room/lobby"})
                left = await watcher.next_op("leave")
                assert (left["client"], left["hub"]) == (on_b.welcome["client"], "B")
            assert on_c.welcome is not None
            await on_c.request({"op": "subscribe", "topic": "room/lobby"})
            joined = await watcher.next_op("join")
            assert (joined["client"], joined["hub"]) == (on_c.welcome["client"], "C")
            hub_c.kill()
            # No goodbye from a SIGKILLed hub: its entry expires (--presence-ttl 2), then hub A says so.
            left = await watcher.next_op("leave", timeout=15)
            assert (left["client"], left["hub"]) == (on_c.welcome["client"], "C")
