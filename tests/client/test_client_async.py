"""AsyncClient features against a real hub on loopback."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest
from client_helpers import FAST_BACKOFF
from tcp_proxy import TcpProxy
from websockets.asyncio.server import ServerConnection, serve

from rtnb.client import AsyncClient, BackoffPolicy, ClientState
from rtnb.core.errors import (
    BadField,
    ConnectionClosed,
    InvalidPattern,
    InvalidTopic,
    MessageTooBig,
    RtnbError,
    Timeout,
    Unavailable,
    WildcardPublish,
)
from rtnb.core.history import Gap
from rtnb.core.limits import Limits
from rtnb.core.message import Message
from rtnb.server.hub import HubConfig
from rtnb.server.runner import HubServer
from rtnb.testing import running_hub, wait_until


def data_of(items: list[Message | Gap]) -> list[object]:
    return [item.data for item in items if isinstance(item, Message)]


async def test_publish_returns_offsets_and_subscribers_get_messages(hub_server: HubServer) -> None:
    async with AsyncClient(hub_server.url) as client:
        subscription = await client.subscribe("plant/+/temp")
        assert await client.publish("plant/boiler/temp", {"value": 71.5}) == 1
        assert await client.publish("plant/boiler/temp", {"value": 72.0}) == 2
        assert await client.publish("plant/boiler/pressure", 3) == 1
        first, second = await subscription.get(timeout=5), await subscription.get(timeout=5)
        assert isinstance(first, Message) and (first.topic, first.offset, first.data) == (
            "plant/boiler/temp",
            1,
            {"value": 71.5},
        )
        assert isinstance(second, Message) and second.offset == 2
        with pytest.raises(Timeout):
            await subscription.get(timeout=0.05)  # the pressure topic does not match
        assert client.positions == {"plant/boiler/temp": (first.epoch, 2)}
        assert client.status()["state"] == "connected"


async def test_last_and_since_replay_history(hub_server: HubServer) -> None:
    for value in range(10):
        hub_server.hub.publish_now("h/t", value)
    async with AsyncClient(hub_server.url) as client:
        recent = await client.subscribe("h/#", last=3)
        assert data_of([await recent.get(timeout=5) for _ in range(3)]) == [7, 8, 9]
    async with AsyncClient(hub_server.url) as client:
        resumed = await client.subscribe("h/t", since={"h/t": 6})
        assert [item.offset for item in [await resumed.get(timeout=5) for _ in range(4)]] == [7, 8, 9, 10]  # type: ignore[union-attr]


async def test_callbacks_sync_and_async_and_overlapping_patterns(hub_server: HubServer) -> None:
    plain: list[object] = []
    awaited: list[object] = []

    async def slow_callback(item: Message | Gap) -> None:
        await asyncio.sleep(0)
        awaited.append(item.data)  # type: ignore[union-attr]

    async with AsyncClient(hub_server.url) as client:
        await client.subscribe("cb/#", callback=lambda item: plain.append(item.data))  # type: ignore[union-attr]
        await client.subscribe("cb/+/x", callback=slow_callback)
        iterated = await client.subscribe("cb/#")  # a second reader of the same pattern
        for value in range(3):
            await client.publish("cb/a/x", value)
        await client.publish("cb/b", "only the wide pattern")
        await wait_until(lambda: len(plain) == 4 and len(awaited) == 3)
        assert plain == [0, 1, 2, "only the wide pattern"]
        assert awaited == [0, 1, 2]
        assert data_of([await iterated.get(timeout=5) for _ in range(4)]) == plain
        with pytest.raises(BadField):
            await (await client.subscribe("cb/z", callback=print)).get()


async def test_a_failing_callback_is_logged_and_delivery_goes_on(
    hub_server: HubServer, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[object] = []

    def fragile(item: Message | Gap) -> None:
        if item.data == "boom":  # type: ignore[union-attr]
            raise ValueError("application bug")
        seen.append(item.data)  # type: ignore[union-attr]

    async with AsyncClient(hub_server.url) as client:
        await client.subscribe("f/#", callback=fragile)
        for value in ("a", "boom", "b"):
            await client.publish("f/x", value)
        await wait_until(lambda: seen == ["a", "b"])
    assert any("callback of subscription 'f/#' failed" in record.getMessage() for record in caplog.records)


async def test_unsubscribe_and_close_end_iteration(hub_server: HubServer) -> None:
    async with AsyncClient(hub_server.url) as client:
        subscription = await client.subscribe("u/#")
        other = await client.subscribe("v/#")
        await client.publish("u/x", 1)
        received = []

        async def read_all() -> None:
            async for item in subscription:
                received.append(item)

        reader = asyncio.ensure_future(read_all())
        await wait_until(lambda: len(received) == 1)
        assert await client.unsubscribe("u/#")
        await asyncio.wait_for(reader, 5)  # iteration ended by itself
        assert not await client.unsubscribe("u/#")
        await client.publish("u/x", 2)
        await other.close()
        with pytest.raises(ConnectionClosed):
            await other.get(timeout=1)
        assert client.status()["subscriptions"] == []
        assert hub_server.hub.fanout.subscription_count() == 0


async def test_msgpack_format_carries_the_same_items(hub_server: HubServer) -> None:
    async with AsyncClient(hub_server.url, format="msgpack") as client:
        subscription = await client.subscribe("m/#")
        payload = {"value": 1.5, "tags": ["a", "b"], "nested": {"ok": True}}
        assert await client.publish("m/x", payload) == 1
        item = await subscription.get(timeout=5)
        assert isinstance(item, Message) and item.data == payload


async def test_bad_input_gets_typed_errors(hub_server: HubServer) -> None:
    async with AsyncClient(hub_server.url) as client:
        with pytest.raises(WildcardPublish):
            await client.publish("plant/+/temp", 1)
        with pytest.raises(InvalidTopic):
            await client.publish("a//b", 1)
        with pytest.raises(BadField):
            await client.publish("a/b", {"raw": b"\x00bytes"})
        with pytest.raises(InvalidPattern):
            await client.subscribe("a/#/b")
        with pytest.raises(BadField):
            await client.subscribe("a/#", last=2, since={"a/b": 1})
        with pytest.raises(BadField):
            await client.subscribe("a/#", last=-1)
    with pytest.raises(BadField):
        AsyncClient("not a url")
    with pytest.raises(BadField):
        AsyncClient("http://127.0.0.1:1", format="xml")  # type: ignore[arg-type]


async def test_errors_the_hub_reports_reach_the_caller_or_on_error() -> None:
    config = HubConfig(limits=Limits(max_topic_length=12))
    reported: list[RtnbError] = []
    async with running_hub(config) as server, AsyncClient(server.url, on_error=reported.append) as client:
        with pytest.raises(InvalidTopic) as refused:
            await client.publish("a/much/longer/topic", 1)  # fine here, too long for this hub
        assert refused.value.code == "invalid_topic"
        await client.publish("a/much/longer/topic", 1, ack=False)
        await wait_until(lambda: len(reported) == 1)
        assert reported[0].code == "invalid_topic" and client.last_error is reported[0]
        assert client.state is ClientState.CONNECTED
        assert await client.publish("short", 1) == 1  # the connection stayed usable


async def test_oversized_publishes_fail_without_poisoning_the_connection() -> None:
    config = HubConfig(limits=Limits(max_frame_bytes=2_000))
    async with running_hub(config) as server:
        async with AsyncClient(server.url, max_publish_bytes=1_000) as careful:
            with pytest.raises(MessageTooBig):
                await careful.publish("big/x", "x" * 1_500)  # refused before sending
        async with AsyncClient(server.url, backoff=BackoffPolicy(**FAST_BACKOFF)) as client:
            # The hub closes with 1009 on the oversized frame: that publish fails, the others go on.
            with pytest.raises(MessageTooBig) as too_big:
                await client.publish("big/x", "x" * 2_500)
            assert "1009" in too_big.value.message
            assert await client.publish("big/x", "small") == 1
            assert client.reconnects == 1


async def test_an_unreachable_hub_fails_at_once_with_unavailable_when_told_to_fail_fast() -> None:
    async with TcpProxy("127.0.0.1", 9) as proxy:
        proxy.refuse()
        client = AsyncClient(proxy.url, fail_fast=True)
        with pytest.raises(Unavailable) as unreachable:
            await client.connect()
        assert proxy.url.replace("http", "ws") in unreachable.value.message
        assert client.state is ClientState.CLOSED


async def test_reconnection_delays_follow_the_policy_and_give_up(hub_server: HubServer) -> None:
    """Backoff timings through the real client, with a fake sleep: no time passes."""
    assert hub_server.port is not None
    policy = BackoffPolicy(initial=0.5, cap=4.0, max_attempts=6)
    asked: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        asked.append(seconds)

    async with TcpProxy("127.0.0.1", hub_server.port) as proxy:
        client = AsyncClient(proxy.url, backoff=policy, random=random.Random(42).random, sleep=fake_sleep)
        await client.connect()
        subscription = await client.subscribe("b/#")
        queued = asyncio.ensure_future(client.publish("b/x", "never sent", timeout=30))
        proxy.refuse()
        proxy.cut()
        await wait_until(lambda: client.state is ClientState.CLOSED, timeout=10)
    reference = random.Random(42)
    assert asked == [policy.delay(attempt, reference.random) for attempt in range(1, 7)]
    assert all(delay <= policy.ceiling(attempt) for attempt, delay in enumerate(asked, start=1))
    with pytest.raises(ConnectionClosed) as gave_up:
        await subscription.get(timeout=1)
    assert "Gave up reconnecting" in gave_up.value.message and "6 attempts" in gave_up.value.message
    with pytest.raises(ConnectionClosed):
        await queued
    with pytest.raises(ConnectionClosed):
        await client.publish("b/x", 1)


async def test_with_reconnect_off_a_lost_connection_closes_the_client(
    big_history_hub: HubServer, proxy: TcpProxy
) -> None:
    client = AsyncClient(proxy.url, reconnect=False)
    await client.connect()
    subscription = await client.subscribe("n/#")
    proxy.cut()
    await wait_until(lambda: client.state is ClientState.CLOSED)
    with pytest.raises(ConnectionClosed):
        await subscription.get(timeout=1)


async def test_an_ack_that_never_comes_times_out() -> None:
    async def silent_hub(connection: ServerConnection) -> None:
        await connection.send('{"op":"welcome","client":"x","version":1}')
        async for _frame in connection:
            pass  # never answers

    async with serve(silent_hub, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with AsyncClient(f"http://127.0.0.1:{port}", close_timeout=0.1) as client:
            with pytest.raises(Timeout) as timed_out:
                await client.publish("t", 1, timeout=0.1)
            assert "may or may not have been delivered" in timed_out.value.message
            assert client.pending == 0


async def test_close_sends_what_is_queued_first(hub_server: HubServer) -> None:
    async with AsyncClient(hub_server.url) as observer:
        watched = await observer.subscribe("q/#")
        client = AsyncClient(hub_server.url)
        await client.connect()
        for value in range(200):
            await client.publish("q/x", value, ack=False)
        await client.close()
        assert data_of([await watched.get(timeout=5) for _ in range(200)]) == list(range(200))
        assert client.state is ClientState.CLOSED
        await client.close()  # twice is fine


async def test_no_tasks_are_left_behind(big_history_hub: HubServer, proxy: TcpProxy) -> None:
    before = set(asyncio.all_tasks())
    async with AsyncClient(proxy.url, backoff=BackoffPolicy(**FAST_BACKOFF)) as client:
        await client.subscribe("leak/#")
        await client.publish("leak/x", 1)
        proxy.cut()
        await wait_until(lambda: client.reconnects == 1 and client.state is ClientState.CONNECTED)
    await asyncio.sleep(0)
    assert {task for task in asyncio.all_tasks() if not task.done()} - before == set()
    await wait_until(lambda: big_history_hub.hub.connection_count == 0)


async def test_frames_are_logged_at_debug_level_when_asked(
    hub_server: HubServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="rtnb.client.frames")
    async with AsyncClient(hub_server.url) as client:
        await client.publish("log/x", {"v": 1})
    lines = [record.getMessage() for record in caplog.records if record.name == "rtnb.client.frames"]
    assert any(line.startswith("<-") and "welcome" in line for line in lines)
    assert any(line.startswith("->") and "log/x" in line for line in lines)
    assert any(line.startswith("<-") and '"ack"' in line for line in lines)


async def test_token_is_sent_as_bearer_header_and_auth_request(hub_server: HubServer) -> None:
    async with AsyncClient(hub_server.url, token="secret-token") as client:
        assert client.headers["Authorization"] == "Bearer secret-token"
        assert await client.publish("auth/x", 1) == 1
