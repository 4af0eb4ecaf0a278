"""A burst of publishes on one WebSocket, in memory: every one answered, in request order, with its id."""

from __future__ import annotations

from typing import Any

import pytest

from rtnb.testing import WirePeer, running_hub


def burst(count: int) -> tuple[list[dict[str, Any]], list[tuple[str, int]]]:
    """``count`` publish requests, valid and invalid mixed, and the answer expected for each (op or code, id)."""
    requests: list[dict[str, Any]] = []
    expected: list[tuple[str, int]] = []
    for n in range(count):
        kind = n % 5
        if kind == 1:
            requests.append({"op": "publish", "topic": "burst/+", "data": n, "id": n})
            expected.append(("wildcard_publish", n))
        elif kind == 3:
            requests.append({"op": "publish", "topic": "burst/1", "id": n})
            expected.append(("missing_field", n))
        else:
            requests.append({"op": "publish", "topic": f"burst/{n % 3}", "data": n, "id": n})
            expected.append(("ack", n))
    return requests, expected


async def answers(peer: WirePeer, count: int) -> list[dict[str, Any]]:
    """The next ``count`` replies (acks and errors), skipping delivered messages."""
    replies: list[dict[str, Any]] = []
    while len(replies) < count:
        item = await peer.next()
        if item["op"] not in ("message", "gap"):
            replies.append(item)
    return replies


@pytest.mark.parametrize("subprotocol", ["rtnb.json", "rtnb.msgpack"])
async def test_a_burst_of_mixed_publishes_is_answered_in_request_order_with_ids(subprotocol: str) -> None:
    requests, expected = burst(500)
    async with running_hub() as server, WirePeer(server.ws_url, subprotocols=[subprotocol]) as peer:
        for request in requests:  # no waiting: the hub reads many of them at once
            await peer.send(request)
        replies = await answers(peer, len(requests))
        assert [(reply.get("code", reply["op"]), reply.get("id")) for reply in replies] == expected
        for topic in ("burst/0", "burst/1", "burst/2"):
            acked = [reply for reply in replies if reply["op"] == "ack" and reply["topic"] == topic]
            assert [ack["offset"] for ack in acked] == list(range(1, len(acked) + 1))
            assert [ack["id"] % 3 for ack in acked] == [int(topic[-1])] * len(acked)


async def test_replies_to_other_requests_keep_their_place_among_publish_acks() -> None:
    async with running_hub() as server, WirePeer(server.ws_url) as peer:
        for n in range(3):
            await peer.send({"op": "publish", "topic": "order/t", "data": n, "id": f"p{n}"})
            await peer.send({"op": "ping", "id": f"ping{n}"})
        await peer.send({"op": "subscribe", "topic": "order/#", "last": 3, "id": "s"})
        replies = await answers(peer, 7)
        assert [reply["id"] for reply in replies] == ["p0", "ping0", "p1", "ping1", "p2", "ping2", "s"]
        assert [reply["data"] for reply in await peer.messages(3)] == [0, 1, 2]
