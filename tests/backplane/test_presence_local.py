"""The presence op on a single hub (in-memory backplane) and its parsing. No Redis needed."""

from __future__ import annotations

import pytest

from rtnb.core.errors import InvalidPattern, MissingField
from rtnb.core.protocol import Presence, parse_request
from rtnb.core.topics import Pattern
from rtnb.server.runner import HubServer
from rtnb.testing import WirePeer


def test_presence_requests_parse_and_bad_ones_get_typed_errors() -> None:
    assert parse_request({"op": "presence", "topic": "chat/+", "id": 7}) == Presence(Pattern.parse("chat/+"), 7)
    with pytest.raises(MissingField) as missing:
        parse_request({"op": "presence", "id": "q"})
    assert missing.value.request_id == "q"
    with pytest.raises(InvalidPattern):
        parse_request({"op": "presence", "topic": "chat/#/x"})


async def test_presence_on_one_hub_lists_its_subscribers(hub_server: HubServer) -> None:
    async with WirePeer(hub_server.ws_url) as asker, WirePeer(hub_server.ws_url) as member:
        await member.request({"op": "subscribe", "topic": "chat/+"})
        assert member.welcome is not None
        reply = await asker.request({"op": "presence", "topic": "chat/lobby", "id": "p"})
        # the same member shape as on Redis: the hub's id too
        hub_id = hub_server.hub.backplane.hub_id
        assert hub_id
        members = [{"client": member.welcome["client"], "hub": hub_id}]
        assert reply == {"op": "presence", "topic": "chat/lobby", "members": members, "id": "p"}
        assert (await asker.request({"op": "presence", "topic": "news/#"}))["members"] == []
        error = await asker.request({"op": "presence", "topic": "a/#/b", "id": "bad"})
        assert (error["op"], error["code"], error["id"]) == ("error", "invalid_pattern", "bad")


def test_a_redis_url_given_to_the_server_is_refused_with_the_way_to_build_the_hub() -> None:
    """The server layer builds no backplane; ``redis=`` must not pass silently as a Tornado setting."""
    from rtnb.server.hub import Hub

    for hub in (None, Hub()):
        with pytest.raises(TypeError, match=r"RedisBackplane\(url"):
            HubServer(hub, redis="redis://127.0.0.1:6379/0")


async def test_presence_watch_on_one_hub_sends_join_and_leave(hub_server: HubServer) -> None:
    async with WirePeer(hub_server.ws_url) as watcher:
        reply = await watcher.request({"op": "presence", "topic": "chat/#", "watch": True, "id": 1})
        assert (reply["op"], reply["members"], reply["id"]) == ("presence", [], 1)
        async with WirePeer(hub_server.ws_url) as member:
            assert member.welcome is not None
            await member.request({"op": "subscribe", "topic": "chat/lobby"})
            joined = await watcher.next_op("join")
            hub_id = hub_server.hub.backplane.hub_id
            assert joined == {"op": "join", "topic": "chat/#", "client": member.welcome["client"], "hub": hub_id}
        left = await watcher.next_op("leave")
        assert left == {"op": "leave", "topic": "chat/#", "client": member.welcome["client"], "hub": hub_id}
        await watcher.request({"op": "presence", "topic": "chat/#", "watch": False})
        async with WirePeer(hub_server.ws_url) as quiet:
            await quiet.request({"op": "subscribe", "topic": "chat/x"})
            pong = await watcher.request({"op": "ping", "id": "after"})
            assert pong["op"] == "pong", "no join after watch: false"
    error = parse_error({"op": "presence", "topic": "a", "watch": "yes"})
    assert error == "bad_field"


def parse_error(frame: dict[str, object]) -> str:
    from rtnb.core.errors import RtnbError

    try:
        parse_request(frame)
    except RtnbError as error:
        return error.code
    return "accepted"


async def test_a_memory_hub_takes_its_presence_name_from_hub_id() -> None:
    from rtnb.backplane.memory import MemoryBackplane
    from rtnb.server.hub import Hub

    async with HubServer(Hub(None, MemoryBackplane(hub_id="A"))) as server:
        async with WirePeer(server.ws_url) as member:
            await member.request({"op": "subscribe", "topic": "chat/x"})
            reply = await member.request({"op": "presence", "topic": "chat/x"})
            assert reply["members"][0]["hub"] == "A"
