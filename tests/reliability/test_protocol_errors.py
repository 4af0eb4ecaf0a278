"""Every refusal says why, with the request's id, and non-finite numbers are refused on every codec.

Real sockets: the websockets client for well-formed frames, raw frames
(:mod:`raw_websocket`) for what a client library will not send.
"""

from __future__ import annotations

import asyncio
import math

import msgpack
import orjson
import pytest
import websockets
from raw_websocket import build_frame, open_raw

from rtnb.core.errors import BadField
from rtnb.core.limits import Limits
from rtnb.core.topics import Pattern
from rtnb.server.hub import HubConfig
from rtnb.server.runner import HubServer
from rtnb.testing import WirePeer, running_hub, wait_until

_TEXT, _BINARY = 0x1, 0x2


async def test_an_unknown_op_error_carries_the_request_id() -> None:
    async with running_hub() as server, WirePeer(server.ws_url) as peer:
        reply = await peer.request({"op": "bogus", "id": "req-1"})
        assert (reply["op"], reply["code"], reply.get("id")) == ("error", "unknown_op", "req-1")
        assert "'bogus'" in reply["message"]


async def test_a_missing_op_says_so() -> None:
    async with running_hub() as server, WirePeer(server.ws_url) as peer:
        reply = await peer.request({"topic": "a", "id": 7})
        assert (reply["code"], reply.get("id")) == ("unknown_op", 7)
        assert "no 'op' field" in reply["message"] and "NoneType" not in reply["message"]
        typed = await peer.request({"op": 5, "id": 8})
        assert typed["code"] == "unknown_op" and typed.get("id") == 8 and "int" in typed["message"]


async def test_since_that_is_not_a_cursor_answers_bad_cursor() -> None:
    async with running_hub() as server, WirePeer(server.ws_url) as peer:
        for since in ("zz", [1], {"a": -1}, {"a": {"offset": 1, "epoch": "x"}}):
            reply = await peer.request({"op": "subscribe", "topic": "a", "since": since, "id": "s"})
            assert (reply["op"], reply["code"], reply.get("id")) == ("error", "bad_cursor", "s"), since


async def test_messagepack_errors_say_why() -> None:
    async with running_hub() as server:
        async with websockets.connect(server.ws_url, subprotocols=["rtnb.msgpack"]) as connection:
            assert msgpack.unpackb(await connection.recv())["op"] == "welcome"
            for frame in (b"\xc1", b"\x91\xc1", b"\xff\xff", b""):
                await connection.send(frame)
                reply = msgpack.unpackb(await connection.recv())
                assert reply["op"] == "error" and reply["code"] == "bad_json"
                reason = reply["message"].removeprefix("Frame is not valid MessagePack:").strip(" .")
                assert reason, f"no reason for {frame!r}: {reply['message']!r}"


# -- numbers -----------------------------------------------------------------------------------------

NON_FINITE = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("value", NON_FINITE, ids=["nan", "inf", "-inf"])
async def test_non_finite_numbers_are_refused_over_messagepack(value: float) -> None:
    async with running_hub() as server, WirePeer(server.ws_url) as json_subscriber:
        await json_subscriber.request({"op": "subscribe", "topic": "n/#"})
        async with websockets.connect(server.ws_url, subprotocols=["rtnb.msgpack"]) as connection:
            await connection.recv()
            for data in (value, [1.0, value], {"a": {"b": value}}):
                await connection.send(msgpack.packb({"op": "publish", "topic": "n/a", "data": data, "id": 3}))
                reply = msgpack.unpackb(await connection.recv())
                assert (reply["op"], reply["code"], reply.get("id")) == ("error", "bad_field", 3), data
                assert "finite" in reply["message"]
            await connection.send(msgpack.packb({"op": "publish", "topic": "n/a", "data": 1.5, "id": 4}))
            assert msgpack.unpackb(await connection.recv())["op"] == "ack"
        # the one accepted message is all any subscriber sees
        (message,) = await json_subscriber.messages(1)
        assert message["data"] == 1.5 and message["offset"] == 1


async def test_non_finite_numbers_are_refused_over_json_http_and_in_process() -> None:
    async with running_hub() as server, WirePeer(server.ws_url) as peer:
        reply = await peer.request({"op": "publish", "topic": "n/a", "data": 1, "id": 1})
        assert reply["op"] == "ack"
        await peer.send('{"op": "publish", "topic": "n/a", "data": 1e999, "id": 2}')
        refused = await peer.next_op("error")
        assert refused["code"] == "bad_field" and "finite" in refused["message"]
        status, body = await http_post(server, "/publish/n/a", b"[1, -1e400]")
        assert status == 400 and orjson.loads(body)["error"]["code"] == "bad_field"
        status, body = await http_post(server, "/publish/n/a", b"1\n1e999\n", "application/x-ndjson")
        assert status == 400 and orjson.loads(body)["error"]["code"] == "bad_field"
        with pytest.raises(BadField):
            server.hub.publish_now("n/a", {"value": math.nan})
        with pytest.raises(BadField):
            await server.hub.publish("n/a", [math.inf])
        assert server.hub.backplane.positions(Pattern.parse("n/a"))["n/a"].last_offset == 1


async def http_post(
    server: HubServer, path: str, body: bytes, content_type: str = "application/json"
) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), payload


# -- an error frame before the close -----------------------------------------------------------------


async def read_until_close(connection: object, timeout: float = 10.0) -> tuple[list[tuple[int, bytes]], int | None]:
    """Frames up to the close frame, and its code."""
    frames = []
    while True:
        opcode, payload = await connection.read_frame(timeout)  # type: ignore[attr-defined]
        if opcode == 0x8:
            return frames, int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
        frames.append((opcode, payload))


async def test_a_too_big_message_gets_an_error_frame_before_close_1009() -> None:
    async with running_hub(HubConfig(limits=Limits(max_frame_bytes=1024))) as server:
        raw = await open_raw(server.ws_url)
        await raw.read_frame()  # welcome
        await raw.send(build_frame(_TEXT, orjson.dumps({"op": "publish", "topic": "a", "data": "x" * 4000})))
        frames, code = await read_until_close(raw)
        raw.close()
        assert code == 1009
        (error,) = [orjson.loads(payload) for _, payload in frames]
        assert (error["op"], error["code"]) == ("error", "message_too_big") and "1024" in error["message"]


async def test_bad_utf8_gets_an_error_frame_before_close_1007() -> None:
    async with running_hub() as server:
        raw = await open_raw(server.ws_url)
        await raw.read_frame()
        await raw.send(build_frame(_TEXT, b'{"op": "ping", "x": "\xff\xfe"}'))
        frames, code = await read_until_close(raw)
        raw.close()
        assert code == 1007
        (error,) = [orjson.loads(payload) for _, payload in frames]
        assert error["op"] == "error" and "UTF-8" in error["message"]


async def test_a_stuck_consumer_gets_an_error_frame_before_close_1008() -> None:
    config = HubConfig(limits=Limits(max_queue_bytes=16 * 1024, max_lag_seconds=0.3), close_timeout=10)
    async with running_hub(config) as server:
        stuck = await open_raw(server.ws_url, receive_buffer=4096)
        await stuck.read_frame()
        await stuck.send(build_frame(_TEXT, orjson.dumps({"op": "subscribe", "topic": "flood"})))
        async with WirePeer(server.ws_url) as publisher:
            pad = "x" * 1000
            for index in range(8000):  # more than the kernel buffers on loopback absorb
                await publisher.send({"op": "publish", "topic": "flood", "data": {"i": index, "pad": pad}})
            await publisher.request({"op": "ping"})
            await wait_until(lambda: server.hub.stats.slow_consumer_closes == 1, timeout=10)
        # Now read what was queued: the last data frame before the close says why.
        frames, code = await read_until_close(stuck)
        stuck.close()
        assert code == 1008
        last = orjson.loads(frames[-1][1].split(b"\n")[-1])
        assert (last["op"], last["code"]) == ("error", "slow_consumer")
