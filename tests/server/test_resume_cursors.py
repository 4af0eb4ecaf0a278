"""Resume cursors on SSE and long polling over real sockets (issue 18, items 1 and 3).

* A topic created under a pattern while the subscriber was away is delivered from its
  first message, whatever ``last=N`` the URL still carries.
* A subscription over 10,000 topics resumes exactly, with a cursor of bounded size.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_poll import get, http, poll_url  # noqa: F401  (fixture)
from test_sse import SSEStream, sse_path
from tornado.httpclient import AsyncHTTPClient

from rtnb.core.cursor import encode_cursor
from rtnb.server.hub import HubConfig
from rtnb.testing import running_hub

BOUND = 4096  # "a few KiB at most, whatever the topic count"


async def read_messages(stream: SSEStream, count: int, timeout: float = 20.0) -> tuple[list[dict[str, Any]], str]:
    """The next ``count`` message events (gaps fail the test) and the last id seen."""
    found: list[dict[str, Any]] = []
    last_id = ""
    while len(found) < count:
        event = await stream.next(timeout)
        if event.id:
            last_id = event.id
        if event.event in ("message", "gap"):
            found.append(event.json)
    return found, last_id


async def ready_id(stream: SSEStream) -> str:
    event = await stream.until("ready")
    assert event.id
    return event.id


@pytest.mark.parametrize("cursor_kind", ["issued", "legacy"])
async def test_sse_a_topic_born_while_away_comes_from_its_first_message_despite_last(cursor_kind: str) -> None:
    async with running_hub(HubConfig(ping_interval=0)) as server:
        hub = server.hub
        hub.publish_now("n/old", 0)
        stream = await SSEStream(server, sse_path("n/#", last="5")).open()
        await ready_id(stream)  # after the replayed n/old 1
        hub.publish_now("n/old", 1)
        _, last_id = await read_messages(stream, 1)
        stream.writer.close()  # type: ignore[union-attr]
        for value in range(50):
            hub.publish_now("n/born", value)  # created while the subscriber is away
        if cursor_kind == "legacy":  # as older hubs issued them: no pattern list
            last_id = encode_cursor({"n/old": (hub.backplane.store.get("n/old").epoch, 2)})
        again = await SSEStream(server, sse_path("n/#", last="5"), {"Last-Event-ID": last_id}).open()
        items, _ = await read_messages(again, 50)
        assert [(item["op"], item["topic"], item["offset"]) for item in items] == [
            ("message", "n/born", offset) for offset in range(1, 51)
        ]
        again.writer.close()  # type: ignore[union-attr]


async def test_sse_last_still_applies_to_a_pattern_the_cursor_did_not_cover() -> None:
    async with running_hub(HubConfig(ping_interval=0)) as server:
        hub = server.hub
        for value in range(20):
            hub.publish_now("m/x", value)
        stream = await SSEStream(server, sse_path("n/#")).open()
        cursor = await ready_id(stream)
        stream.writer.close()  # type: ignore[union-attr]
        again = await SSEStream(server, sse_path("n/#", "m/#", last="3"), {"Last-Event-ID": cursor}).open()
        items, _ = await read_messages(again, 3)
        assert [item["offset"] for item in items] == [18, 19, 20]
        again.writer.close()  # type: ignore[union-attr]


async def test_poll_a_topic_born_while_away_comes_from_its_first_message_despite_last(
    http: AsyncHTTPClient,  # noqa: F811
) -> None:
    async with running_hub(HubConfig(ping_interval=0, poll_timeout=0.2)) as server:
        hub = server.hub
        hub.publish_now("n/old", 0)
        _, body = await get(http, poll_url(server, "n/#", last=5, timeout=0))
        assert [item["offset"] for item in body["messages"]] == [1]
        for value in range(50):
            hub.publish_now("n/born", value)
        _, body = await get(http, poll_url(server, "n/#", last=5, timeout=0, cursor=body["cursor"]))
        assert [(item["topic"], item["offset"]) for item in body["messages"]] == [
            ("n/born", offset) for offset in range(1, 51)
        ]


def publish_wide(hub: Any, topics: int, value: int, every: int = 1) -> None:
    for index in range(0, topics, every):
        hub.publish_now(f"w/{index}", value)


async def test_sse_resumes_ten_thousand_topics_with_a_bounded_event_id() -> None:
    topics = 10_000
    async with running_hub(HubConfig(ping_interval=0)) as server:
        hub = server.hub
        publish_wide(hub, topics, 0)
        stream = await SSEStream(server, sse_path("w/#")).open()
        ready = await ready_id(stream)
        assert len(ready) <= BOUND
        publish_wide(hub, topics, 1, every=7)
        _, last_id = await read_messages(stream, len(range(0, topics, 7)))
        assert len(last_id) <= BOUND and last_id.startswith("~")
        stream.writer.close()  # type: ignore[union-attr]
        publish_wide(hub, topics, 2, every=3)  # while away
        again = await SSEStream(server, sse_path("w/#"), {"Last-Event-ID": last_id}).open()
        missed, resumed_id = await read_messages(again, len(range(0, topics, 3)))
        assert sorted((item["topic"], item["offset"]) for item in missed) == sorted(
            (f"w/{index}", 3 if index % 7 == 0 else 2) for index in range(0, topics, 3)
        )
        assert all(item["op"] == "message" for item in missed)
        hub.publish_now("w/1", 3)  # live again, and nothing else was pending
        (live,), _ = await read_messages(again, 1)
        assert (live["topic"], live["offset"]) == ("w/1", 2)
        assert len(resumed_id) <= BOUND
        again.writer.close()  # type: ignore[union-attr]


async def test_poll_resumes_ten_thousand_topics_with_a_bounded_cursor(
    http: AsyncHTTPClient,  # noqa: F811
) -> None:
    topics = 10_000
    async with running_hub(HubConfig(ping_interval=0, poll_timeout=0.2)) as server:
        hub = server.hub
        publish_wide(hub, topics, 0)
        response, body = await get(http, poll_url(server, "w/#", timeout=0))
        assert response.code == 200 and body["messages"] == []
        cursor = body["cursor"]
        for round_number in range(1, 4):
            assert len(cursor) <= BOUND
            publish_wide(hub, topics, round_number, every=round_number + 1)
            seen: list[tuple[str, int]] = []
            while True:
                response, body = await get(http, poll_url(server, "w/#", timeout=0, cursor=cursor))
                assert response.code == 200, body
                cursor = body["cursor"]
                if not body["messages"]:
                    break
                assert all(item["op"] == "message" for item in body["messages"])
                seen += [(item["topic"], item["offset"]) for item in body["messages"]]
            assert len(seen) == len(set(seen)) == len(range(0, topics, round_number + 1))


async def test_an_expired_stored_cursor_is_answered_with_explicit_gaps(
    http: AsyncHTTPClient,  # noqa: F811
) -> None:
    async with running_hub(HubConfig(ping_interval=0, poll_timeout=0.2)) as server:
        hub = server.hub
        publish_wide(hub, 300, 0)
        response, body = await get(http, poll_url(server, "w/#", timeout=0, cursor="~" + "A" * 16))
        assert response.code == 200
        gaps = [gap for item in body["messages"] for gap in item["gaps"]]
        store = hub.backplane.store
        expected = [[f"w/{index}", 1, 1, "cursor_expired", store.get(f"w/{index}").epoch] for index in range(300)]
        assert sorted(gaps) == sorted(expected)
        hub.publish_now("w/5", 1)
        _, body = await get(http, poll_url(server, "w/#", timeout=0, cursor=body["cursor"]))
        assert [(item["topic"], item["offset"]) for item in body["messages"]] == [("w/5", 2)]


def test_the_inline_limit_leaves_room_in_headers() -> None:
    from rtnb.core.cursor import INLINE_CURSOR_LIMIT

    assert INLINE_CURSOR_LIMIT <= BOUND
