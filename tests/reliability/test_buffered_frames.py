"""Many client frames in one TCP write: the reader's fast path (whole small frames taken from the buffer)
and its usual path (fragments, control frames, bad frames) interleaved, every rule still applied."""

from __future__ import annotations

from typing import Any

import orjson
from raw_websocket import RawWebSocket, build_frame, open_raw

from rtnb.core.limits import Limits
from rtnb.server.hub import HubConfig
from rtnb.testing import running_hub

TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def publish(n: int, pad: int = 0) -> bytes:
    return orjson.dumps({"op": "publish", "topic": f"fast/{n % 2}", "data": {"n": n, "pad": "x" * pad}, "id": n})


async def replies(peer: RawWebSocket, count: int) -> list[dict[str, Any]]:
    """The next ``count`` JSON objects from the hub, across frames (pongs skipped); the welcome first."""
    found: list[dict[str, Any]] = []
    while len(found) < count:
        opcode, payload = await peer.read_frame()
        if opcode == TEXT:
            found.extend(orjson.loads(line) for line in payload.split(b"\n"))
    return found


async def test_small_large_fragmented_and_control_frames_in_one_write_are_answered_in_order() -> None:
    async with running_hub() as server:
        peer = await open_raw(server.ws_url)
        try:
            burst = [
                build_frame(TEXT, publish(0)),  # < 126 bytes
                build_frame(TEXT, publish(1, pad=300)),  # 16-bit length
                build_frame(TEXT, publish(2, pad=70_000)),  # 64-bit length: the usual path
                build_frame(PING, b"hello"),
                build_frame(TEXT, publish(3)[:10], final=False),  # fragmented
                build_frame(PONG, b""),  # a control frame between fragments
                build_frame(CONTINUATION, publish(3)[10:]),
                build_frame(TEXT, b""),  # empty: bad_json, answered with no id
                build_frame(TEXT, orjson.dumps({"op": "ping", "id": "p"})),
                build_frame(BINARY, publish(4)),
                build_frame(TEXT, publish(5)),
            ]
            await peer.send(b"".join(burst))
            got = await replies(peer, 9)
            assert got[0]["op"] == "welcome"
            answers = [(item.get("code", item["op"]), item.get("id")) for item in got[1:]]
            assert answers == [
                ("ack", 0),
                ("ack", 1),
                ("ack", 2),
                ("ack", 3),
                ("bad_json", None),
                ("pong", "p"),
                ("ack", 4),
                ("ack", 5),
            ]
            assert [item["offset"] for item in got[1:] if item["op"] == "ack"] == [1, 1, 2, 2, 3, 3]
        finally:
            peer.close()


async def test_bad_utf8_after_good_frames_in_one_write_answers_them_then_closes_1007() -> None:
    async with running_hub() as server:
        peer = await open_raw(server.ws_url)
        try:
            bad = build_frame(TEXT, b'{"op": "ping", "id": "\xff"}')
            await peer.send(
                build_frame(TEXT, publish(0)) + build_frame(TEXT, publish(1)) + bad + build_frame(TEXT, publish(2))
            )
            got = await replies(peer, 4)
            assert [(item.get("code", item["op"]), item.get("id")) for item in got[1:]] == [
                ("ack", 0),
                ("ack", 1),
                ("bad_json", None),
            ]
            code, _ = await peer.read_close()
            assert code == 1007
        finally:
            peer.close()


async def test_unmasked_or_reserved_frames_after_good_ones_are_refused_with_1002() -> None:
    for bad in (build_frame(TEXT, publish(1), masked=False), build_frame(TEXT, publish(1), reserved=0x40)):
        async with running_hub() as server:
            peer = await open_raw(server.ws_url)
            try:
                await peer.send(build_frame(TEXT, publish(0)) + bad + build_frame(TEXT, publish(2)))
                got = await replies(peer, 2)
                assert (got[1]["op"], got[1]["id"]) == ("ack", 0)
                code, _ = await peer.read_close()
                assert code == 1002
            finally:
                peer.close()


async def test_a_frame_over_the_size_limit_after_good_ones_closes_1009() -> None:
    config = HubConfig(limits=Limits(max_frame_bytes=512))
    async with running_hub(config) as server:
        peer = await open_raw(server.ws_url)
        try:
            await peer.send(build_frame(TEXT, publish(0)) + build_frame(TEXT, publish(1, pad=600)))
            got = await replies(peer, 3)
            assert [(item.get("code", item["op"]), item.get("id")) for item in got[1:]] == [
                ("ack", 0),
                ("message_too_big", None),
            ]
            code, _ = await peer.read_close()
            assert code == 1009
        finally:
            peer.close()


async def test_publishes_then_a_close_frame_in_one_write_are_acknowledged_before_the_close() -> None:
    async with running_hub() as server:
        peer = await open_raw(server.ws_url)
        try:
            frames = [build_frame(TEXT, publish(n)) for n in range(20)]
            await peer.send(b"".join(frames) + build_frame(CLOSE, b"\x03\xe8"))
            got = await replies(peer, 21)
            assert [item["id"] for item in got[1:]] == list(range(20))
            code, _ = await peer.read_close()
            assert code == 1000
        finally:
            peer.close()
