"""A burst of publishes refused for permissions and rate limits: each answered with its error and
id, in request order among the acks (the answers of one loop turn leave in one frame)."""

from __future__ import annotations

from typing import Any

from security_helpers import jwt_authenticator, make_token

from rtnb.core.auth import RateLimit
from rtnb.testing import WirePeer, running_hub


def bearer(token: str) -> dict[str, Any]:
    return {"additional_headers": {"Authorization": f"Bearer {token}"}}


async def test_forbidden_and_rate_limited_publishes_in_a_burst_keep_their_place_and_ids() -> None:
    authenticator = jwt_authenticator(rate_limit=RateLimit(0.001, 12), max_strikes=1000)
    async with running_hub(authenticator=authenticator) as server:
        async with WirePeer(server.ws_url, **bearer(make_token())) as peer:
            requests = []
            for n in range(30):
                topic = "plant/8/x" if n % 4 == 2 else "plant/7/x"  # the token grants plant/7/# only
                requests.append({"op": "publish", "topic": topic, "data": n, "id": n})
            for request in requests:
                await peer.send(request)
            replies = []
            while len(replies) < len(requests):
                item = await peer.next()
                if item["op"] != "message":
                    replies.append(item)
            assert [reply["id"] for reply in replies] == list(range(30))
            outcomes = [reply.get("code", reply["op"]) for reply in replies]
            for n, outcome in enumerate(outcomes):
                if n % 4 == 2:
                    assert outcome in ("forbidden", "rate_limited"), (n, outcome)
                else:
                    assert outcome in ("ack", "rate_limited"), (n, outcome)
            assert outcomes[0] == "ack" and outcomes[-1] == "rate_limited"
            assert "forbidden" in outcomes
            limited = outcomes.index("rate_limited")
            assert all(outcome != "ack" for outcome in outcomes[limited:]), outcomes
            acked = [reply["offset"] for reply in replies if reply["op"] == "ack"]
            assert acked == list(range(1, len(acked) + 1))
