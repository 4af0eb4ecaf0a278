"""A stored resume cursor issued by one hub resumes exactly on another hub of the cluster (issue 18, item 3).

1,500 topics under one pattern (the audit's case: an 84 KB inline cursor) on a shared Redis:
a stream or poll on hub A gets a stored cursor of a few dozen bytes; the client comes back
on hub B with it and gets exactly what it missed.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import orjson
from redis_helpers import redis_hub

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from test_sse import SSEStream, sse_path

from rtnb.server.hub import HubConfig

TOPICS = 1_500


async def publish_round(hub: Any, value: int, every: int) -> list[tuple[str, int]]:
    sent = []
    for index in range(0, TOPICS, every):
        message = await hub.publish(f"x/{index}", value)
        sent.append((message.topic, message.offset))
    return sent


async def read_messages(stream: SSEStream, count: int) -> tuple[list[tuple[str, int]], str]:
    found: list[tuple[str, int]] = []
    last_id = ""
    while len(found) < count:
        event = await stream.next(20)
        if event.id:
            last_id = event.id
        if event.event == "gap":
            raise AssertionError(f"unexpected gap {event.data}")
        if event.event == "message":
            found.append((event.json["topic"], event.json["offset"]))
    return found, last_id


async def test_sse_resumes_on_another_hub_with_a_stored_cursor(shared_redis_url: str, prefix: str) -> None:
    config = HubConfig(ping_interval=0)
    async with (
        redis_hub(shared_redis_url, prefix, "a", config) as hub_a,
        redis_hub(shared_redis_url, prefix, "b", config) as hub_b,
    ):
        await publish_round(hub_a.hub, 0, 1)
        stream = await SSEStream(hub_a, sse_path("x/#")).open()
        await stream.until("ready", timeout=20)
        live = await publish_round(hub_a.hub, 1, 5)
        _, last_id = await read_messages(stream, len(live))
        assert last_id.startswith("~") and len(last_id) < 64
        stream.writer.close()  # type: ignore[union-attr]
        await asyncio.sleep(0.2)  # the cursor's records reach Redis in the background
        missed = await publish_round(hub_a.hub, 2, 3)
        again = await SSEStream(hub_b, sse_path("x/#"), {"Last-Event-ID": last_id}).open()
        got, _ = await read_messages(again, len(missed))
        assert sorted(got) == sorted(missed)
        await hub_b.hub.publish("x/1", 3)
        (after,), _ = await read_messages(again, 1)
        assert after == ("x/1", 2)
        again.writer.close()  # type: ignore[union-attr]


class FrameRecorder(logging.Handler):
    """The subscribe frames a client sends, from its frame log."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.subscribes: list[bytes] = []

    def emit(self, record: logging.LogRecord) -> None:
        direction, _client, data = record.args  # type: ignore[misc]  # ("->", client id, frame) as logged
        if direction == "->" and orjson.loads(data).get("op") == "subscribe":
            self.subscribes.append(data.encode() if isinstance(data, str) else data)


async def test_websocket_client_resumes_on_another_hub_from_its_checkpoint(shared_redis_url: str, prefix: str) -> None:
    """The AsyncClient's checkpoint (a stored cursor mirrored to Redis) resumes on hub B with a
    small subscribe frame; what was published while it was away arrives once."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "client"))
    from tcp_proxy import TcpProxy

    from rtnb.client import AsyncClient, BackoffPolicy, ClientState
    from rtnb.core.message import Message
    from rtnb.testing import wait_until

    config = HubConfig(ping_interval=0)
    async with (
        redis_hub(shared_redis_url, prefix, "a", config) as hub_a,
        redis_hub(shared_redis_url, prefix, "b", config) as hub_b,
    ):
        await publish_round(hub_a.hub, 0, 1)
        assert hub_a.port is not None and hub_b.port is not None
        async with (
            TcpProxy("127.0.0.1", hub_a.port) as proxy,
            AsyncClient(proxy.url, backoff=BackoffPolicy(initial=0.01, cap=0.05), ping_interval=None) as client,
        ):
            subscription = await client.subscribe("x/#")
            received: list[tuple[str, int]] = []

            async def read() -> None:
                async for item in subscription:
                    assert isinstance(item, Message), item
                    received.append((item.topic, item.offset))

            reader = asyncio.ensure_future(read())
            live = await publish_round(hub_a.hub, 1, 50)
            await wait_until(lambda: len(received) >= len(live), timeout=20)
            await wait_until(lambda: client.status()["checkpoint"] is not None, timeout=20)
            checkpoint = client.status()["checkpoint"]

            async def mirrored() -> None:  # hub B can read the checkpoint's records from Redis
                while await hub_b.hub.cursors.load(checkpoint[1:]) is None:
                    await asyncio.sleep(0.02)

            await asyncio.wait_for(mirrored(), 20)
            frame_log = logging.getLogger("rtnb.client.frames")
            recorder = FrameRecorder()
            frame_log.addHandler(recorder)
            frame_log.setLevel(logging.DEBUG)
            proxy.target_port = hub_b.port  # the client comes back on hub B
            assert proxy.cut() >= 1
            missed = await publish_round(hub_a.hub, 2, 7)
            await wait_until(lambda: client.reconnects == 1 and client.state is ClientState.CONNECTED, timeout=20)
            await wait_until(lambda: len(received) >= len(live) + len(missed), timeout=30)
            reader.cancel()
            frame_log.removeHandler(recorder)
            frame_log.setLevel(logging.NOTSET)
            assert sorted(received) == sorted(live + missed) and client.gaps_reported == 0
    sent_frames = recorder.subscribes
    assert len(sent_frames) == 1 and orjson.loads(sent_frames[0])["since"] == checkpoint
    assert len(sent_frames[0]) < 4096
