"""WebSocket resume with a bounded token over real sockets (issue 18, item 3).

``{"op": "checkpoint"}`` is answered, in stream order, with a stored cursor for
everything sent before the reply; ``subscribe`` with ``since: CURSOR`` and a
``delta`` of the topics that moved after it resumes exactly, however many topics
the pattern covers.
"""

from __future__ import annotations

import orjson

from rtnb.core.history import HistoryLimits
from rtnb.server.hub import HubConfig
from rtnb.server.runner import HubServer
from rtnb.testing import WirePeer, running_hub

TOPICS = 10_000


async def test_checkpoint_resume_over_ten_thousand_topics_with_a_small_frame() -> None:
    async with running_hub(HubConfig(history=HistoryLimits(max_messages=100))) as server:
        hub = server.hub
        for index in range(TOPICS):
            hub.publish_now(f"c/{index}", 0)
        async with WirePeer(server.ws_url) as peer:
            reply = await peer.request({"op": "subscribe", "topic": "c/#"})
            full_map = {
                topic: {"offset": place["offset"], "epoch": place["epoch"]}
                for topic, place in reply["positions"].items()
            }
            hub.publish_now("c/1", 1)
            assert (await peer.messages(1))[0]["offset"] == 2
            checkpoint = await peer.request({"op": "checkpoint", "id": "k"})
            assert checkpoint["patterns"] == ["c/#"] and checkpoint["cursor"].startswith("~")
            assert len(checkpoint["cursor"]) < 100
            hub.publish_now("c/2", 1)  # after the checkpoint: goes in the delta
            moved = await peer.messages(1)
            epoch2 = moved[0]["epoch"]
        missed = [hub.publish_now(f"c/{index}", 2) for index in (1, 2, 3)]
        born = hub.publish_now("c/born", "new")
        async with WirePeer(server.ws_url) as peer:
            frame = {
                "op": "subscribe",
                "topic": "c/#",
                "id": "r",
                "since": checkpoint["cursor"],
                "delta": {"c/2": {"offset": 2, "epoch": epoch2}},
            }
            assert len(orjson.dumps(frame)) < 200 < len(orjson.dumps({**frame, "since": full_map}))
            await peer.send(frame)
            assert (await peer.next_op("subscribed"))["id"] == "r"
            items = await peer.messages(4)
            assert sorted((item["topic"], item["offset"]) for item in items) == sorted(
                [(m.topic, m.offset) for m in missed] + [(born.topic, born.offset)]
            )
            assert all(item["op"] == "message" for item in items)


async def test_a_stored_cursor_the_hub_does_not_hold_is_refused_with_cursor_expired(hub_server: HubServer) -> None:
    async with WirePeer(hub_server.ws_url) as peer:
        await peer.send({"op": "subscribe", "topic": "x/#", "id": 7, "since": "~AAAAAAAAAAAAAAAA"})
        error = await peer.next_op("error")
        assert (error["code"], error["id"]) == ("cursor_expired", 7)
        assert (await peer.request({"op": "ping"}))["op"] == "pong"  # the connection stays open


async def test_malformed_cursor_and_delta_without_cursor_are_refused(hub_server: HubServer) -> None:
    async with WirePeer(hub_server.ws_url) as peer:
        await peer.send({"op": "subscribe", "topic": "x/#", "id": 1, "since": "~!"})
        assert ((error := await peer.next_op("error"))["code"], error["id"]) == ("bad_cursor", 1)
        await peer.send({"op": "subscribe", "topic": "x/#", "id": 2, "delta": {"x/a": 1}})
        assert ((error := await peer.next_op("error"))["code"], error["id"]) == ("bad_field", 2)


async def test_checkpoint_without_subscriptions_has_no_cursor_to_lose(hub_server: HubServer) -> None:
    async with WirePeer(hub_server.ws_url) as peer:
        reply = await peer.request({"op": "checkpoint", "id": "k"})
        assert reply["op"] == "checkpoint" and reply["patterns"] == []
