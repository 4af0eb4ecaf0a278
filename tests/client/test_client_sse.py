"""The SSE client against the hub's real ``GET /sse`` endpoint, through a cuttable proxy."""

from __future__ import annotations

import asyncio
import random

import pytest
from client_helpers import FAST_BACKOFF
from tcp_proxy import TcpProxy

from rtnb.client import BackoffPolicy, ClientState
from rtnb.client.sse import SSEClient
from rtnb.core.errors import BadCursor, ConnectionClosed, InvalidPattern, Timeout, Unavailable
from rtnb.core.history import Gap
from rtnb.core.message import Message
from rtnb.server.hub import Hub
from rtnb.server.runner import HubServer
from rtnb.testing import wait_until

TOTAL = 3_000
CUT_AT = (500, 1_200, 2_000, 2_600)


async def test_replay_then_live_messages(hub_server: HubServer) -> None:
    hub = hub_server.hub
    for value in range(5):
        hub.publish_now("sse/a", value)
    async with SSEClient(hub_server.url, ["sse/a", "sse/+/deep"], last=2) as stream:
        assert [(await stream.get(timeout=5)).data for _ in range(2)] == [3, 4]  # type: ignore[union-attr]
        hub.publish_now("sse/b/deep", "live")
        hub.publish_now("sse/other", "not subscribed")
        hub.publish_now("sse/a", 5)
        items = [await stream.get(timeout=5) for _ in range(2)]
        assert sorted((item.topic, item.data) for item in items) == [("sse/a", 5), ("sse/b/deep", "live")]  # type: ignore[union-attr]
        with pytest.raises(Timeout):
            await stream.get(timeout=0.05)
        assert stream.last_event_id is not None
        assert stream.state is ClientState.CONNECTED


async def test_cuts_resume_with_last_event_id_exactly_once_in_order(
    big_history_hub: HubServer, proxy: TcpProxy
) -> None:
    hub = big_history_hub.hub
    received: list[Message | Gap] = []
    async with SSEClient(proxy.url, "count/#", backoff=BackoffPolicy(**FAST_BACKOFF)) as stream:

        async def read() -> None:
            async for item in stream:
                received.append(item)

        reader = asyncio.ensure_future(read())
        for number in range(TOTAL):
            if number in CUT_AT:
                # Cut only a live stream: the client must have come back from the previous cut.
                cuts = CUT_AT.index(number)
                await wait_until(
                    lambda cuts=cuts: stream.reconnects == cuts and stream.state is ClientState.CONNECTED, timeout=10
                )
                assert proxy.cut() >= 1
            hub.publish_now("count/a", number)
            if number % 50 == 0:
                await asyncio.sleep(0)
        await wait_until(lambda: len(received) >= TOTAL, timeout=30)
        reader.cancel()
        assert stream.reconnects == len(CUT_AT)
    assert [item for item in received if not isinstance(item, Message)] == []
    assert [item.data for item in received] == list(range(TOTAL))  # type: ignore[union-attr]
    assert [item.offset for item in received] == list(range(1, TOTAL + 1))  # type: ignore[union-attr]


async def test_a_hub_restart_is_reported_as_a_gap() -> None:
    first = HubServer(Hub())
    await first.start()
    assert first.port is not None
    port = first.port
    async with TcpProxy("127.0.0.1", port) as proxy:
        async with SSEClient(proxy.url, "plant/#", backoff=BackoffPolicy(**FAST_BACKOFF)) as stream:
            await wait_until(lambda: stream.last_event_id is not None)  # the stream is live
            for value in range(3):
                first.hub.publish_now("plant/boiler", value)
            assert [(await stream.get(timeout=5)).data for _ in range(3)] == [0, 1, 2]  # type: ignore[union-attr]
            proxy.refuse()
            await first.stop()
            second = HubServer(Hub(), port=port)
            await second.start()
            try:
                second.hub.publish_now("plant/boiler", "new")
                proxy.allow()
                gap, message = await stream.get(timeout=10), await stream.get(timeout=10)
            finally:
                await second.stop()
    assert isinstance(gap, Gap) and gap.reason == "epoch_changed" and gap.from_offset == 4
    assert isinstance(message, Message) and (message.offset, message.data) == (1, "new")
    assert gap.epoch in (None, message.epoch)


async def test_refusals_are_typed_errors(hub_server: HubServer) -> None:
    with pytest.raises(InvalidPattern):
        SSEClient(hub_server.url, "a/#/b")
    stream = SSEClient(hub_server.url, "a/#")
    stream.last_event_id = "not a cursor"
    with pytest.raises(BadCursor):
        await stream.connect()  # the hub refused it with 400 and a typed body
    assert stream.state is ClientState.CLOSED
    async with TcpProxy("127.0.0.1", 9) as proxy:
        proxy.refuse()
        with pytest.raises(Unavailable):
            await SSEClient(proxy.url, "a/#", fail_fast=True).connect()


async def test_gives_up_after_max_attempts_with_the_policys_delays(hub_server: HubServer) -> None:
    assert hub_server.port is not None
    policy = BackoffPolicy(initial=1.0, cap=8.0, max_attempts=4)
    asked: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        asked.append(seconds)

    async with TcpProxy("127.0.0.1", hub_server.port) as proxy:
        stream = SSEClient(proxy.url, "x/#", backoff=policy, random=random.Random(3).random, sleep=fake_sleep)
        await stream.connect()
        proxy.refuse()
        proxy.cut()
        await wait_until(lambda: stream.state is ClientState.CLOSED, timeout=10)
    reference = random.Random(3)
    assert asked == [policy.delay(attempt, reference.random) for attempt in range(1, 5)]
    with pytest.raises(ConnectionClosed):
        await stream.get(timeout=1)
