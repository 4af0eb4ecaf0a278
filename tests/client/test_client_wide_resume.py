"""Python clients resume a subscription over 10,000 topics exactly (issue 18, item 3).

The WebSocket client resumes with a ``since`` map (one frame); the SSE client with
the hub's ``Last-Event-ID``, which stays a few KiB whatever the topic count.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from conftest import FAST_BACKOFF
from tcp_proxy import TcpProxy

from rtnb.client import AsyncClient, BackoffPolicy, ClientState
from rtnb.client.sse import SSEClient
from rtnb.core.message import Message
from rtnb.server.runner import HubServer
from rtnb.testing import wait_until

TOPICS = 10_000


def publish_round(hub: Any, value: int, every: int) -> list[tuple[str, int]]:
    sent = []
    for index in range(0, TOPICS, every):
        message = hub.publish_now(f"wide/{index}", value)
        sent.append((message.topic, message.offset))
    return sent


async def test_websocket_client_resumes_ten_thousand_topics_exactly(big_history_hub: HubServer) -> None:
    hub = big_history_hub.hub
    publish_round(hub, 0, 1)  # every topic exists before the subscription
    assert big_history_hub.port is not None
    async with TcpProxy("127.0.0.1", big_history_hub.port) as proxy:
        async with AsyncClient(proxy.url, backoff=BackoffPolicy(**FAST_BACKOFF), ping_interval=None) as client:
            subscription = await client.subscribe("wide/#")
            received: list[tuple[str, int]] = []

            async def read() -> None:  # the application keeps up, so the client keeps reading
                async for item in subscription:
                    assert isinstance(item, Message), item
                    received.append((item.topic, item.offset))

            reader = asyncio.ensure_future(read())
            expected: list[tuple[str, int]] = []
            for round_number, every in enumerate((3, 1, 7), start=1):
                expected += publish_round(hub, round_number, every)
                await asyncio.sleep(0)
                assert proxy.cut() >= 1
                await wait_until(
                    lambda round_number=round_number: (
                        client.reconnects == round_number and client.state is ClientState.CONNECTED
                    ),
                    timeout=10,
                )
            await wait_until(lambda: len(received) >= len(expected) or reader.done(), timeout=30)
            reader.cancel()
            assert sorted(received) == sorted(expected) and len(set(received)) == len(received)
            assert client.gaps_reported == 0 and client.reconnects == 3


async def test_sse_client_resumes_ten_thousand_topics_with_a_bounded_last_event_id(
    big_history_hub: HubServer, proxy: TcpProxy
) -> None:
    hub = big_history_hub.hub
    publish_round(hub, 0, 1)
    async with SSEClient(proxy.url, "wide/#", backoff=BackoffPolicy(**FAST_BACKOFF)) as stream:
        await wait_until(lambda: stream.last_event_id is not None, timeout=10)
        received: list[tuple[str, int]] = []
        ids: set[str] = set()

        async def read() -> None:  # the application keeps up, so the client keeps reading
            async for item in stream:
                assert isinstance(item, Message), item
                received.append((item.topic, item.offset))
                ids.add(stream.last_event_id or "")

        reader = asyncio.ensure_future(read())
        expected: list[tuple[str, int]] = []
        for round_number, every in enumerate((3, 1, 7), start=1):
            expected += publish_round(hub, round_number, every)
            await asyncio.sleep(0.05)
            cuts = round_number - 1
            await wait_until(
                lambda cuts=cuts: stream.reconnects == cuts and stream.state is ClientState.CONNECTED, timeout=20
            )
            assert proxy.cut() >= 1
        await wait_until(lambda: len(received) >= len(expected) or reader.done(), timeout=30)
        reader.cancel()
        assert sorted(received) == sorted(expected) and len(set(received)) == len(received)
        assert stream.gaps_reported == 0 and stream.reconnects >= 2
        assert max(len(text) for text in ids) <= 4096


class SubscribeFrames(logging.Handler):
    """Records the size of every subscribe frame the client sends (from its frame log)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.sizes: list[int] = []
        self.frames: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        direction, _client, data = record.args  # type: ignore[misc]  # ("->", client id, frame) as _log_frame logs it
        if direction != "->":
            return
        frame = orjson.loads(data)
        if frame.get("op") == "subscribe":
            self.sizes.append(len(data))
            self.frames.append(frame)


@pytest.fixture
def subscribe_frames() -> Iterator[SubscribeFrames]:
    handler = SubscribeFrames()
    logger = logging.getLogger("rtnb.client.frames")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_websocket_resume_over_ten_thousand_topics_sends_a_bounded_frame(
    big_history_hub: HubServer, proxy: TcpProxy, subscribe_frames: SubscribeFrames
) -> None:
    """The resume frame carries the hub's checkpoint cursor and the few topics moved after it,
    not the 10,000-topic map (about 600 KB), and nothing is lost or duplicated."""
    hub = big_history_hub.hub
    publish_round(hub, 0, 1)
    async with AsyncClient(proxy.url, backoff=BackoffPolicy(**FAST_BACKOFF), ping_interval=None) as client:
        subscription = await client.subscribe("wide/#")
        received: list[tuple[str, int]] = []

        async def read() -> None:
            async for item in subscription:
                assert isinstance(item, Message), item
                received.append((item.topic, item.offset))

        reader = asyncio.ensure_future(read())
        await wait_until(lambda: client.status()["checkpoint"] is not None, timeout=10)
        expected: list[tuple[str, int]] = []
        # (published while connected, published while away, topics born while away)
        for round_number, (live_every, away_every, born) in enumerate(((500, 700, 5), (1, 300, 3)), start=1):
            expected += publish_round(hub, round_number, live_every)
            count = len(expected)
            await wait_until(lambda count=count: len(received) >= count, timeout=30)
            # a round that moved every topic renews the checkpoint before the cut
            await wait_until(lambda: client.status()["moved_since_checkpoint"] < 64, timeout=20)
            assert proxy.cut() >= 1
            expected += publish_round(hub, 10 + round_number, away_every)
            for index in range(born):
                message = hub.publish_now(f"wide/born/{round_number}/{index}", "new")
                expected.append((message.topic, message.offset))
            await wait_until(
                lambda round_number=round_number: (
                    client.reconnects == round_number and client.state is ClientState.CONNECTED
                ),
                timeout=10,
            )
        await wait_until(lambda: len(received) >= len(expected) or reader.done(), timeout=30)
        reader.cancel()
        assert sorted(received) == sorted(expected) and len(set(received)) == len(received)
        assert client.gaps_reported == 0
    resumes = subscribe_frames.frames[1:]
    assert len(resumes) == 2 and all(str(frame["since"]).startswith("~") for frame in resumes)
    assert max(subscribe_frames.sizes[1:]) <= 4096, subscribe_frames.sizes
