"""The WebSocket transport over real loopback sockets."""

from __future__ import annotations

import asyncio

import msgpack
import orjson
import pytest
import websockets

from rtnb.core.history import HistoryLimits
from rtnb.core.limits import Limits
from rtnb.server.hub import HubConfig
from rtnb.server.runner import HubServer
from rtnb.testing import WirePeer, running_hub


async def publish(peer: WirePeer, topic: str, data: object, request_id: str = "p") -> dict:
    reply = await peer.request({"op": "publish", "topic": topic, "data": data, "id": request_id})
    assert reply["op"] == "ack", reply
    return reply


async def test_welcome_names_the_client_and_protocol_version(hub_server: HubServer) -> None:
    async with WirePeer(hub_server.ws_url) as first, WirePeer(hub_server.ws_url) as second:
        assert first.welcome is not None and second.welcome is not None
        assert first.welcome["op"] == "welcome" and first.welcome["version"] == 1
        assert first.welcome["client"] != second.welcome["client"]


async def test_wildcard_subscriptions_get_exactly_their_topics(hub_server: HubServer) -> None:
    url = hub_server.ws_url
    async with WirePeer(url) as temps, WirePeer(url) as plant, WirePeer(url) as pump, WirePeer(url) as publisher:
        for peer, pattern in ((temps, "plant/+/temp"), (plant, "plant/#"), (pump, "plant/pump/temp")):
            assert await peer.request({"op": "subscribe", "topic": pattern}) == {
                "op": "subscribed",
                "topic": pattern,
            }
        sent = [("plant/boiler/temp", 1), ("plant/boiler/pressure", 2), ("plant/pump/temp", 3), ("other/x", 4)]
        for index, (topic, value) in enumerate(sent):
            await publish(publisher, topic, {"value": value}, f"p{index}")
        assert [(m["topic"], m["data"]["value"]) for m in await temps.messages(2)] == [
            ("plant/boiler/temp", 1),
            ("plant/pump/temp", 3),
        ]
        assert [m["data"]["value"] for m in await plant.messages(3)] == [1, 2, 3]
        assert [m["data"]["value"] for m in await pump.messages(1)] == [3]
        # nothing else arrives: a ping round trip comes back before any stray message
        for peer in (temps, plant, pump):
            assert await peer.request({"op": "ping", "id": 1}) == {"op": "pong", "id": 1}
            assert peer._held == []


async def test_messages_carry_offsets_epochs_and_timestamps(hub_server: HubServer) -> None:
    async with WirePeer(hub_server.ws_url) as peer:
        await peer.request({"op": "subscribe", "topic": "a"})
        acks = [await publish(peer, "a", index, f"id{index}") for index in range(3)]
        assert [ack["offset"] for ack in acks] == [1, 2, 3]
        assert [ack["id"] for ack in acks] == ["id0", "id1", "id2"]
        messages = await peer.messages(3)
        assert [m["offset"] for m in messages] == [1, 2, 3]
        assert len({m["epoch"] for m in messages}) == 1 and messages[0]["epoch"] == acks[0]["epoch"]
        assert all(isinstance(m["ts"], float) for m in messages)
        assert set(messages[0]) == {"op", "topic", "offset", "epoch", "ts", "data"}


async def test_publish_without_id_gets_no_ack(hub_server: HubServer) -> None:
    async with WirePeer(hub_server.ws_url) as peer:
        await peer.send({"op": "publish", "topic": "a", "data": 1})
        assert await peer.request({"op": "ping"}) == {"op": "pong"}


async def test_last_replays_the_latest_messages_then_goes_live(hub_server: HubServer) -> None:
    async with WirePeer(hub_server.ws_url) as publisher:
        for index in range(5):
            await publish(publisher, "plant/a", index)
            await publish(publisher, "plant/b", 10 + index)
        async with WirePeer(hub_server.ws_url) as late:
            await late.request({"op": "subscribe", "topic": "plant/+", "last": 2})
            replayed = await late.messages(4)
            assert sorted((m["topic"], m["offset"]) for m in replayed) == [
                ("plant/a", 4),
                ("plant/a", 5),
                ("plant/b", 4),
                ("plant/b", 5),
            ]
            await publish(publisher, "plant/a", 99)
            (live,) = await late.messages(1)
            assert (live["offset"], live["data"]) == (6, 99)


async def test_since_resumes_exactly_after_the_last_seen_offset(hub_server: HubServer) -> None:
    async with WirePeer(hub_server.ws_url) as publisher:
        acks = [await publish(publisher, "s/t", index) for index in range(6)]
        epoch = acks[0]["epoch"]
        async with WirePeer(hub_server.ws_url) as resumer:
            await resumer.request({"op": "subscribe", "topic": "s/#", "since": {"s/t": {"offset": 3, "epoch": epoch}}})
            assert [m["offset"] for m in await resumer.messages(3)] == [4, 5, 6]
            await publish(publisher, "s/t", "live")
            assert [m["data"] for m in await resumer.messages(1)] == ["live"]


async def test_resume_from_another_epoch_reports_the_gap() -> None:
    async with running_hub() as server, WirePeer(server.ws_url) as peer:
        await publish(peer, "t", "new")
        await peer.request({"op": "subscribe", "topic": "t", "since": {"t": {"offset": 40, "epoch": 1}}})
        gap, message = await peer.messages(2)
        assert gap["op"] == "gap" and gap["reason"] == "epoch_changed"
        assert (gap["topic"], gap["from"], gap["to"]) == ("t", 41, None)
        assert (message["offset"], message["data"]) == (1, "new")


async def test_resume_of_an_unknown_topic_reports_the_gap(hub_server: HubServer) -> None:
    async with WirePeer(hub_server.ws_url) as peer:
        await peer.request({"op": "subscribe", "topic": "gone/#", "since": {"gone/x": 12}})
        (gap,) = await peer.messages(1)
        assert gap == {"op": "gap", "topic": "gone/x", "from": 13, "to": None, "reason": "epoch_changed"}


async def test_resume_past_trimmed_history_reports_the_gap() -> None:
    config = HubConfig(history=HistoryLimits(max_messages=3))
    async with running_hub(config) as server, WirePeer(server.ws_url) as peer:
        for index in range(10):
            await publish(peer, "t", index)
        await peer.request({"op": "subscribe", "topic": "t", "since": {"t": 2}})
        gap, *messages = await peer.messages(4)
        assert (gap["op"], gap["from"], gap["to"], gap["reason"]) == ("gap", 3, 7, "trimmed")
        assert [m["offset"] for m in messages] == [8, 9, 10]


async def test_unsubscribe_stops_delivery(hub_server: HubServer) -> None:
    async with WirePeer(hub_server.ws_url) as peer:
        await peer.request({"op": "subscribe", "topic": "u/#"})
        await publish(peer, "u/1", 1)
        assert len(await peer.messages(1)) == 1
        assert await peer.request({"op": "unsubscribe", "topic": "u/#", "id": "x"}) == {
            "op": "unsubscribed",
            "topic": "u/#",
            "id": "x",
        }
        await publish(peer, "u/1", 2)
        assert await peer.request({"op": "ping"}) == {"op": "pong"}
        assert peer._held == []


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_json"),
        ('{"op": "dance"}', "unknown_op"),
        ('{"topic": "a"}', "unknown_op"),
        ('{"op": "publish", "data": 1}', "missing_field"),
        ('{"op": "publish", "topic": "a"}', "missing_field"),
        ('{"op": "subscribe"}', "missing_field"),
        ('{"op": "publish", "topic": "a//b", "data": 1}', "invalid_topic"),
        ('{"op": "publish", "topic": "$rtnb/x", "data": 1}', "invalid_topic"),
        ('{"op": "publish", "topic": "a/+", "data": 1}', "wildcard_publish"),
        ('{"op": "publish", "topic": "a/#", "data": 1}', "wildcard_publish"),
        ('{"op": "subscribe", "topic": "a/#/b"}', "invalid_pattern"),
        ('{"op": "subscribe", "topic": "a", "last": -5}', "bad_field"),
        ('{"op": "publish", "topic": "a", "data": ' + "[" * 40 + "]" * 40 + "}", "too_deep"),
    ],
)
async def test_bad_input_gets_a_typed_error_and_the_connection_stays_open(
    hub_server: HubServer, frame: str, code: str
) -> None:
    async with WirePeer(hub_server.ws_url) as bystander, WirePeer(hub_server.ws_url) as offender:
        await bystander.request({"op": "subscribe", "topic": "#"})
        await offender.send(frame)
        error = await offender.next()
        assert error["op"] == "error" and error["code"] == code
        assert isinstance(error["message"], str) and len(error["message"]) > 10
        assert await offender.request({"op": "ping"}) == {"op": "pong"}
        await publish(offender, "still/works", 1)
        assert [m["topic"] for m in await bystander.messages(1)] == ["still/works"]


async def test_errors_echo_the_request_id(hub_server: HubServer) -> None:
    async with WirePeer(hub_server.ws_url) as peer:
        reply = await peer.request({"op": "publish", "topic": "a/+", "data": 1, "id": "req-7"})
        assert (reply["op"], reply["code"], reply["id"]) == ("error", "wildcard_publish", "req-7")


async def test_oversize_frames_close_with_1009_and_spare_the_others() -> None:
    config = HubConfig(limits=Limits(max_frame_bytes=1024))
    async with running_hub(config) as server:
        async with WirePeer(server.ws_url) as bystander, WirePeer(server.ws_url) as offender:
            await bystander.request({"op": "subscribe", "topic": "#"})
            await offender.send(orjson.dumps({"op": "publish", "topic": "a", "data": "x" * 2000}).decode())
            why = await offender.next()  # an error frame saying why comes before the close
            assert (why["op"], why["code"]) == ("error", "message_too_big") and "1024" in why["message"]
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await offender.next()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
            await publish(bystander, "b", 1)
            assert [m["topic"] for m in await bystander.messages(1)] == ["b"]


async def test_msgpack_subprotocol_carries_the_same_objects(hub_server: HubServer) -> None:
    async with websockets.connect(hub_server.ws_url, subprotocols=["rtnb.msgpack"]) as connection:
        assert connection.subprotocol == "rtnb.msgpack"
        welcome = msgpack.unpackb(await connection.recv())
        assert welcome["op"] == "welcome"
        await connection.send(msgpack.packb({"op": "subscribe", "topic": "m/#"}))
        assert msgpack.unpackb(await connection.recv()) == {"op": "subscribed", "topic": "m/#"}
        for index in range(3):
            await connection.send(msgpack.packb({"op": "publish", "topic": "m/x", "data": {"i": index}}))
        received: list[dict] = []
        while len(received) < 3:
            frame = await connection.recv()
            assert isinstance(frame, bytes)
            unpacker = msgpack.Unpacker(raw=False)
            unpacker.feed(frame)
            received.extend(unpacker)
        assert [m["data"]["i"] for m in received] == [0, 1, 2]
        await connection.send(msgpack.packb({"op": "publish", "topic": "m/x", "data": b"raw"}))
        error = msgpack.unpackb(await connection.recv())
        assert error["op"] == "error" and error["code"] == "bad_field"


async def test_healthz_and_metrics(hub_server: HubServer) -> None:
    from tornado.httpclient import AsyncHTTPClient

    async with WirePeer(hub_server.ws_url) as peer:
        await peer.request({"op": "subscribe", "topic": "#"})
        await publish(peer, "a", 1)
        await peer.messages(1)
        await peer.send("garbage")
        await peer.next_op("error")
        client = AsyncHTTPClient()
        health = orjson.loads((await client.fetch(hub_server.url + "/healthz")).body)
        assert health["status"] == "ok" and health["connections"] == 1 and health["backplane"] == "memory"
        metrics = (await client.fetch(hub_server.url + "/metrics")).body.decode()
        for line in (
            "rtnb_connections 1.0",
            "rtnb_messages_in_total 1.0",
            "rtnb_messages_out_total 1.0",
            'rtnb_errors_total{code="bad_json"} 1.0',
            "rtnb_queue_bytes ",
        ):
            assert line in metrics, line


async def test_many_subscribers_receive_every_message_in_order(hub_server: HubServer) -> None:
    peers = [WirePeer(hub_server.ws_url) for _ in range(50)]
    await asyncio.gather(*(peer.__aenter__() for peer in peers))
    try:
        await asyncio.gather(*(peer.request({"op": "subscribe", "topic": "load/#"}) for peer in peers))
        async with WirePeer(hub_server.ws_url) as publisher:
            for index in range(200):
                await publisher.send({"op": "publish", "topic": f"load/{index % 3}", "data": index})
            results = await asyncio.gather(*(peer.messages(200) for peer in peers))
        for received in results:
            assert [m["data"] for m in received] == list(range(200))
    finally:
        await asyncio.gather(*(peer.__aexit__() for peer in peers))
