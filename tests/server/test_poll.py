"""``GET /poll`` over real loopback sockets: wait, wake on publish, timeout, resume, gaps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from rtnb.core.cursor import decode_cursor, encode_cursor
from rtnb.core.history import HistoryLimits
from rtnb.server.hub import HubConfig
from rtnb.server.runner import HubServer
from rtnb.testing import running_hub, wait_until


@pytest.fixture
async def http() -> AsyncIterator[AsyncHTTPClient]:
    client = AsyncHTTPClient(force_instance=True, max_clients=50)
    yield client
    client.close()


@pytest.fixture
async def hub_server() -> AsyncIterator[HubServer]:
    async with running_hub(HubConfig(poll_timeout=0.3, poll_max_timeout=1.0)) as server:
        yield server


def poll_url(server: HubServer, *patterns: str, **query: Any) -> str:
    parts = [f"topic={quote(pattern, safe='')}" for pattern in patterns]
    parts += [f"{name}={quote(str(value), safe='')}" for name, value in query.items()]
    return f"{server.url}/poll?" + "&".join(parts)


async def get(http: AsyncHTTPClient, url: str) -> tuple[HTTPResponse, Any]:
    response = await http.fetch(url, raise_error=False, request_timeout=10)
    return response, orjson.loads(response.body)


def offsets(body: dict[str, Any]) -> list[tuple[str, int]]:
    return [(item["topic"], item["offset"]) for item in body["messages"]]


async def test_poll_waits_and_wakes_on_publish(hub_server: HubServer, http: AsyncHTTPClient) -> None:
    hub = hub_server.hub
    started = time.monotonic()
    waiting = asyncio.ensure_future(get(http, poll_url(hub_server, "plant/+/temp", timeout=5)))
    await wait_until(lambda: hub.connection_count == 1)
    assert not waiting.done()
    hub.publish_now("plant/boiler/temp", {"value": 70})
    response, body = await asyncio.wait_for(waiting, 5)
    assert time.monotonic() - started < 2.0  # woke on the publish, long before the 5 s timeout
    assert response.code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert [item["data"] for item in body["messages"]] == [{"value": 70}]
    assert body["messages"][0]["op"] == "message"
    assert decode_cursor(body["cursor"]) == {"plant/boiler/temp": (body["messages"][0]["epoch"], 1)}
    await wait_until(lambda: hub.connection_count == 0)


async def test_poll_times_out_empty_with_a_cursor_for_known_topics(
    hub_server: HubServer, http: AsyncHTTPClient
) -> None:
    message = hub_server.hub.publish_now("plant/pump/temp", 1)
    started = time.monotonic()
    response, body = await get(http, poll_url(hub_server, "plant/#", timeout=0.2))
    elapsed = time.monotonic() - started
    assert response.code == 200
    assert body["messages"] == []
    assert 0.15 <= elapsed < 2.0
    # The empty answer still fixes the position, so the next poll misses nothing.
    assert decode_cursor(body["cursor"]) == {"plant/pump/temp": (message.epoch, 1)}


async def test_default_timeout_and_cap_come_from_the_config(hub_server: HubServer, http: AsyncHTTPClient) -> None:
    started = time.monotonic()
    _, body = await get(http, poll_url(hub_server, "nothing/here"))
    assert body["messages"] == [] and 0.25 <= time.monotonic() - started < 1.0  # poll_timeout=0.3
    started = time.monotonic()
    _, body = await get(http, poll_url(hub_server, "nothing/here", timeout=3600))
    assert body["messages"] == [] and 0.9 <= time.monotonic() - started < 2.5  # capped at 1.0


async def test_resume_with_cursor_across_two_topics(hub_server: HubServer, http: AsyncHTTPClient) -> None:
    hub = hub_server.hub
    for index in range(3):
        hub.publish_now("plant/a/temp", index)
        hub.publish_now("plant/b/temp", index)
    _, first = await get(http, poll_url(hub_server, "plant/+/temp", last=2, timeout=0))
    assert sorted(offsets(first)) == [
        ("plant/a/temp", 2),
        ("plant/a/temp", 3),
        ("plant/b/temp", 2),
        ("plant/b/temp", 3),
    ]
    for index in range(3, 6):
        hub.publish_now("plant/a/temp", index)
        hub.publish_now("plant/b/temp", index)
    hub.publish_now("plant/c/temp", 0)  # a topic created between polls is not missed either
    _, second = await get(http, poll_url(hub_server, "plant/+/temp", cursor=first["cursor"], timeout=0))
    assert sorted(offsets(second)) == sorted(
        [("plant/a/temp", offset) for offset in (4, 5, 6)]
        + [("plant/b/temp", offset) for offset in (4, 5, 6)]
        + [("plant/c/temp", 1)]
    )
    _, third = await get(http, poll_url(hub_server, "plant/+/temp", cursor=second["cursor"], timeout=0))
    assert third["messages"] == []
    assert third["cursor"] == second["cursor"]


async def test_chain_of_polls_loses_nothing_while_publishing(hub_server: HubServer, http: AsyncHTTPClient) -> None:
    hub = hub_server.hub
    published = 0

    async def publisher() -> None:
        nonlocal published
        for index in range(200):
            hub.publish_now(f"line/{index % 2}", index)
            published += 1
            if index % 10 == 0:
                await asyncio.sleep(0)

    _, body = await get(http, poll_url(hub_server, "line/+", timeout=0))
    cursor = body["cursor"]
    task = asyncio.ensure_future(publisher())
    seen: list[int] = []
    while len(seen) < 200:
        _, body = await get(http, poll_url(hub_server, "line/+", cursor=cursor, timeout=1))
        seen.extend(item["data"] for item in body["messages"])
        cursor = body["cursor"]
    await task
    assert sorted(seen) == list(range(200))
    assert len(seen) == len(set(seen))


async def test_trimmed_history_gives_a_gap_then_the_rest() -> None:
    async with running_hub(HubConfig(history=HistoryLimits(max_messages=3))) as server:
        client = AsyncHTTPClient(force_instance=True)
        try:
            hub = server.hub
            first = hub.publish_now("sensor/z", 0)
            cursor = encode_cursor({"sensor/z": (first.epoch, 1)})
            for index in range(1, 10):
                hub.publish_now("sensor/z", index)
            _, body = await get(client, poll_url(server, "sensor/z", cursor=cursor, timeout=0))
            gap, *messages = body["messages"]
            expected = {"op": "gap", "topic": "sensor/z", "from": 2, "to": 7, "reason": "trimmed", "epoch": first.epoch}
            assert gap == expected
            assert [item["offset"] for item in messages] == [8, 9, 10]
        finally:
            client.close()


async def test_large_backlog_is_answered_in_bounded_pieces(http: AsyncHTTPClient) -> None:
    from rtnb.core.limits import Limits

    config = HubConfig(limits=Limits(max_queue_bytes=4096), history=HistoryLimits(max_messages=1000))
    async with running_hub(config) as server:
        hub = server.hub
        epochs = {}
        for index in range(300):
            message = hub.publish_now(f"bulk/{index % 3}", {"index": index, "pad": "x" * 40})
            epochs[message.topic] = message.epoch
        cursor = encode_cursor({topic: (epoch, 0) for topic, epoch in epochs.items()})
        seen: list[int] = []
        responses = 0
        while len(seen) < 300 and responses < 100:
            _, body = await get(http, poll_url(server, "bulk/+", cursor=cursor, timeout=0))
            responses += 1
            # Bounded by the queue limit plus one topic's history read (100 messages of < 200 bytes).
            assert len(orjson.dumps(body)) < 4096 + 100 * 200
            seen.extend(item["data"]["index"] for item in body["messages"])
            cursor = body["cursor"]
        assert sorted(seen) == list(range(300))
        assert responses >= 3  # the backlog came in pieces, not as one unbounded answer


async def test_client_going_away_releases_the_waiting_poll(hub_server: HubServer) -> None:
    hub = hub_server.hub
    assert hub_server.port is not None
    _reader, writer = await asyncio.open_connection("127.0.0.1", hub_server.port)
    writer.write(b"GET /poll?topic=a/b&timeout=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await wait_until(lambda: hub.connection_count == 1)
    writer.close()
    await wait_until(lambda: hub.connection_count == 0, timeout=0.8)


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({}, "missing_field"),
        ({"topic": "a/+b"}, "invalid_pattern"),
        ({"topic": "a", "cursor": "%%%"}, "bad_cursor"),
        ({"topic": "a", "cursor": "eyJhIjoxfQ"}, "bad_cursor"),  # {"a":1}
        ({"topic": "a", "timeout": "soon"}, "bad_field"),
        ({"topic": "a", "timeout": "-1"}, "bad_field"),
        ({"topic": "a", "timeout": "nan"}, "bad_field"),
        ({"topic": "a", "last": "1.5"}, "bad_field"),
    ],
)
async def test_bad_requests_get_typed_json_errors(
    hub_server: HubServer, http: AsyncHTTPClient, query: dict[str, str], code: str
) -> None:
    url = f"{hub_server.url}/poll?" + "&".join(f"{name}={quote(value, safe='')}" for name, value in query.items())
    response, body = await get(http, url)
    assert response.code == 400
    assert body["error"]["code"] == code
    assert hub_server.hub.stats.errors[code] == 1
    assert hub_server.hub.connection_count == 0
