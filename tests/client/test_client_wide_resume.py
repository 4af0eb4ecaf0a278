"""Python clients resume a subscription over 10,000 topics exactly (issue 18, item 3).

The WebSocket client resumes with a ``since`` map (one frame); the SSE client with
the hub's ``Last-Event-ID``, which stays a few KiB whatever the topic count.
"""

from __future__ import annotations

import asyncio
from typing import Any

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
