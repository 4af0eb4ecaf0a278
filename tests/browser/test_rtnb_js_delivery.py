"""rtnb.js keeps the delivery promise in real Chromium (issue 18, items 1, 2 and 3).

* Over SSE and long polling, a topic created under a subscribed pattern while the page
  was away arrives from its first message, although the subscription asked ``last: 5``.
* Over SSE and long polling, a subscription over 10,000 topics resumes exactly.
* Over WebSocket, a re-subscribe refused while Redis is down is retried, the page is
  told, and once Redis is back what was published while it was away arrives, once.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from chromium_support import CHROMIUM_ARGUMENTS

from rtnb.server.hub import HubConfig
from rtnb.server.runner import HubServer
from rtnb.testing import running_hub, wait_until

if os.environ.get("RTNB_CI"):
    import playwright.async_api as playwright_api
else:
    playwright_api = pytest.importorskip(
        "playwright.async_api", reason="Playwright is not installed (pip install -e '.[test]')"
    )


#: the page's client: records every message, gap and error in window.seen
START_CLIENT = """async ([pattern, options]) => {
    const { RtnbClient } = await import('/rtnb.js');
    window.seen = { messages: [], gaps: [], errors: [], opened: 0 };
    const client = (window.client = new RtnbClient(undefined, options));
    client.on('message', (m) => window.seen.messages.push([m.topic, m.offset, m.data]));
    client.on('gap', (g) => window.seen.gaps.push(g));
    client.on('error', (e) => window.seen.errors.push(e));
    client.on('status', (s) => { if (s.status === 'open') window.seen.opened += 1; });
    client.subscribe(pattern, options.subscribe || {});
}"""


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGUMENTS)
        try:
            yield launched
        finally:
            await launched.close()


async def seen(page: Any) -> dict[str, Any]:
    return await page.evaluate("() => window.seen")  # type: ignore[no-any-return]


async def wait_for(page: Any, predicate: Any, timeout: float = 20.0) -> dict[str, Any]:
    """Poll the page's record until ``predicate(record)`` holds; returns the record."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        record = await seen(page)
        if predicate(record):
            return record
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {str(record)[:600]}")
        await asyncio.sleep(0.05)


async def keep_away(page: Any, server: HubServer, transport: str) -> Any:
    """Block the transport's requests and end the page's current one: the page is away."""
    path = "**/sse?**" if transport == "sse" else "**/poll?**"

    async def refuse(route: Any) -> None:
        await route.abort()

    await page.route(path, refuse)
    for member in list(server.hub.fanout.members.values()):
        member.sink.close(1011, "test: away")
    return lambda: page.unroute(path, refuse)


def client_options(transport: str) -> dict[str, Any]:
    return {"transports": [transport], "pollTimeout": 1, "backoff": {"initial": 200, "max": 400, "jitter": 0}}


@pytest.mark.parametrize("transport", ["sse", "poll"])
async def test_a_topic_born_while_away_arrives_from_its_first_message(browser: Any, transport: str) -> None:
    async with running_hub(HubConfig(ping_interval=0, poll_timeout=1)) as server:
        hub = server.hub
        for value in range(10):
            hub.publish_now("n/old", value)
        page = await browser.new_page()
        await page.goto(server.url + "/static/demo.css")
        options = {**client_options(transport), "subscribe": {"last": 5}}
        await page.evaluate(START_CLIENT, ["n/#", options])
        await wait_for(page, lambda record: len(record["messages"]) == 5 and record["opened"] >= 1)
        come_back = await keep_away(page, server, transport)
        await asyncio.sleep(0.5)
        for value in range(50):
            hub.publish_now("n/born", value)  # a new topic while the page is away
        await come_back()
        record = await wait_for(page, lambda record: len(record["messages"]) >= 55)
        assert [offset for topic, offset, _ in record["messages"] if topic == "n/born"] == list(range(1, 51))
        assert record["gaps"] == []


@pytest.mark.parametrize("transport", ["sse", "poll"])
async def test_ten_thousand_topics_resume_exactly(browser: Any, transport: str) -> None:
    topics = 10_000
    async with running_hub(HubConfig(ping_interval=0, poll_timeout=1)) as server:
        hub = server.hub
        for index in range(topics):
            hub.publish_now(f"w/{index}", 0)
        page = await browser.new_page()
        await page.goto(server.url + "/static/demo.css")
        await page.evaluate(START_CLIENT, ["w/#", client_options(transport)])
        await wait_for(page, lambda record: record["opened"] >= 1)
        expected = [(f"w/{index}", 2) for index in range(0, topics, 7)]
        for topic, _ in expected:
            hub.publish_now(topic, 1)
        await wait_for(page, lambda record: len(record["messages"]) >= len(expected))
        come_back = await keep_away(page, server, transport)
        await asyncio.sleep(0.5)
        missed = [(f"w/{index}", 3 if index % 7 == 0 else 2) for index in range(0, topics, 3)]
        for topic, _ in missed:
            hub.publish_now(topic, 2)
        await come_back()
        total = len(expected) + len(missed)
        record = await wait_for(page, lambda record: len(record["messages"]) >= total, timeout=60)
        received = [(topic, offset) for topic, offset, _ in record["messages"]]
        assert sorted(received) == sorted(expected + missed)
        assert record["gaps"] == []
        cursor = await page.evaluate("() => window.client._serverCursor")
        assert cursor.startswith("~") and len(cursor) < 4096


async def test_websocket_resume_over_ten_thousand_topics_sends_a_small_frame(browser: Any) -> None:
    """Over WebSocket rtnb.js resumes from the hub's checkpoint: the subscribe frame holds the
    cursor and the few topics moved after it (not a 600 KB map), and nothing is lost or repeated."""
    topics = 10_000
    async with running_hub(HubConfig(ping_interval=0)) as server:
        hub = server.hub
        for index in range(topics):
            hub.publish_now(f"w/{index}", 0)
        page = await browser.new_page()
        await page.goto(server.url + "/static/demo.css")
        frames: list[str] = []
        page.on("websocket", lambda socket: socket.on("framesent", lambda payload: frames.append(str(payload))))
        await page.evaluate(START_CLIENT, ["w/#", client_options("ws")])
        await wait_for(page, lambda record: record["opened"] >= 1)
        await wait_until(lambda: any('"op":"checkpoint"' in frame for frame in frames), timeout=20)
        expected = [(f"w/{index}", 2) for index in range(0, topics, 700)]
        for topic, _ in expected:
            hub.publish_now(topic, 1)
        await wait_for(page, lambda record: len(record["messages"]) >= len(expected))
        for _ in range(400):  # until the page holds the hub's checkpoint
            if await page.evaluate("() => window.client._checkpoint !== null"):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the page never got the hub's checkpoint")
        for member in list(hub.fanout.members.values()):
            member.sink.close(1011, "test: cut")
        await wait_until(lambda: hub.connection_count == 0)
        missed = [(f"w/{index}", 3 if index % 700 == 0 else 2) for index in range(0, topics, 900)]
        for topic, _ in missed:
            hub.publish_now(topic, 2)
        born = hub.publish_now("w/born", "new")
        total = len(expected) + len(missed) + 1
        record = await wait_for(page, lambda record: len(record["messages"]) >= total and record["opened"] >= 2)
        received = [(topic, offset) for topic, offset, _ in record["messages"]]
        assert sorted(received) == sorted([*expected, *missed, (born.topic, born.offset)])
        assert record["gaps"] == []
        subscribes = [frame for frame in frames if '"op":"subscribe"' in frame]
        assert len(subscribes) == 2 and '"since":"~' in subscribes[1]
        assert len(subscribes[1]) < 4096, len(subscribes[1])


async def test_websocket_resubscribe_refused_during_a_redis_outage_is_retried(browser: Any, tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backplane"))
    from redis_helpers import PrivateRedis, redis_hub

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed, so Redis cannot be stopped and restarted in a test")
    redis = PrivateRedis(tmp_path)
    await redis.start()
    try:
        async with redis_hub(redis.url, f"rtnb:js-outage-{uuid.uuid4().hex[:8]}:", "h1") as server:
            page = await browser.new_page()
            await page.goto(server.url + "/static/demo.css")
            options = {"transports": ["ws"], "backoff": {"initial": 1500, "max": 1500, "jitter": 0}}
            await page.evaluate(START_CLIENT, ["o/#", options])
            await wait_for(page, lambda record: record["opened"] >= 1)
            await asyncio.sleep(0.2)
            await server.hub.publish("o/a", "m1")
            await wait_for(page, lambda record: len(record["messages"]) == 1)
            for member in list(server.hub.fanout.members.values()):
                member.sink.close(1011, "test: cut")  # the page comes back in 1.5 s
            await wait_until(lambda: server.hub.connection_count == 0)
            missed = [(await server.hub.publish("o/a", value)).offset for value in ("m2", "m3")]
            redis.stop()
            record = await wait_for(page, lambda record: any(e["code"] == "unavailable" for e in record["errors"]))
            refusal = next(error for error in record["errors"] if error["code"] == "unavailable")
            assert refusal["pattern"] == "o/#" and refusal["retrying"] is True
            await redis.start()
            record = await wait_for(page, lambda record: len(record["messages"]) >= 3, timeout=30)
            assert record["messages"] == [["o/a", 1, "m1"], ["o/a", missed[0], "m2"], ["o/a", missed[1], "m3"]]
            assert record["gaps"] == []
    finally:
        redis.stop()
