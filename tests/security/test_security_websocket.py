"""Every security rule on the WebSocket transport, over real loopback sockets."""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import websockets
from security_helpers import SECRET, TokenFactory, expired_token, jwt_authenticator, make_token

from rtnb.core.auth import RateLimit
from rtnb.core.limits import Limits
from rtnb.server.hub import HubConfig
from rtnb.server.runner import HubServer
from rtnb.testing import WirePeer, running_hub, wait_until


def forge_hs256(claims: dict[str, Any], key: bytes) -> str:
    """An HS256 token signed with ``key`` by hand (PyJWT refuses to sign with a PEM key)."""
    import base64
    import hashlib
    import hmac

    def encode(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing_input = encode(b'{"alg":"HS256","typ":"JWT"}') + b"." + encode(orjson.dumps(claims))
    signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + encode(signature)).decode()


def bearer(token: str) -> dict[str, Any]:
    return {"additional_headers": {"Authorization": f"Bearer {token}"}}


async def closed_with(peer: WirePeer, code: int, timeout: float = 5.0) -> None:
    """Read whatever is left until the hub closes, then check the close code."""

    async def drain() -> None:
        try:
            while True:
                await peer.connection.recv()
        except websockets.ConnectionClosed:
            pass

    await asyncio.wait_for(drain(), timeout)
    assert peer.connection.close_code == code, (peer.connection.close_code, peer.connection.close_reason)


async def refused_handshake(url: str, status: int, code: str, **options: Any) -> None:
    with pytest.raises(websockets.InvalidStatus) as caught:
        await websockets.connect(url, **options)
    response = caught.value.response
    assert response.status_code == status
    assert orjson.loads(response.body)["error"]["code"] == code


# -- authentication ------------------------------------------------------------------------


async def test_token_in_header_authenticates(jwt_hub: HubServer, token: TokenFactory) -> None:
    async with WirePeer(jwt_hub.ws_url, **bearer(token())) as peer:
        reply = await peer.request({"op": "subscribe", "topic": "plant/7/#", "id": 1})
        assert reply == {"op": "subscribed", "topic": "plant/7/#", "id": 1}


async def test_token_in_query_authenticates(jwt_hub: HubServer, token: TokenFactory) -> None:
    async with WirePeer(f"{jwt_hub.ws_url}?token={token()}") as peer:
        assert (await peer.request({"op": "ping", "id": 1}))["op"] == "pong"


async def test_auth_message_authenticates(jwt_hub: HubServer, token: TokenFactory) -> None:
    async with WirePeer(jwt_hub.ws_url) as peer:
        reply = await peer.request({"op": "auth", "token": token(), "id": "a"})
        assert reply["op"] == "authenticated" and reply["subject"] == "device-7" and reply["id"] == "a"
        assert reply["expires"] > time.time()
        assert (await peer.request({"op": "ping", "id": 2}))["op"] == "pong"


async def test_no_token_closes_4001_after_the_deadline(jwt_hub: HubServer) -> None:
    started = time.monotonic()
    async with WirePeer(jwt_hub.ws_url) as peer:
        error = await peer.next_op("error", timeout=3)
        assert error["code"] == "unauthorized"
        await closed_with(peer, 4001)
    assert 0.9 <= time.monotonic() - started < 3


async def test_request_before_auth_closes_4003(jwt_hub: HubServer) -> None:
    async with WirePeer(jwt_hub.ws_url) as peer:
        reply = await peer.request({"op": "subscribe", "topic": "plant/7/#", "id": 5})
        assert reply["op"] == "error" and reply["code"] == "unauthorized" and reply["id"] == 5
        await closed_with(peer, 4003)


@pytest.mark.parametrize(
    "make_bad_token, words",
    [
        # made when the test runs, not at collection: a slow suite must not expire them first
        (lambda: make_token(secret="another-secret-that-is-long-enough-for-hs256"), "signature"),
        (expired_token, "expired"),
        (lambda: make_token(audience="some-other-hub"), "audience"),
        (lambda: make_token(audience=None), "aud"),
        (lambda: "not.a.jwt", "valid JWT"),
    ],
    ids=["bad-signature", "expired", "wrong-audience", "no-audience", "garbage"],
)
async def test_bad_tokens(jwt_hub: HubServer, make_bad_token: Callable[[], str], words: str) -> None:
    bad_token = make_bad_token()
    # in the handshake: refused before the upgrade
    await refused_handshake(jwt_hub.ws_url, 401, "unauthorized", **bearer(bad_token))
    await refused_handshake(f"{jwt_hub.ws_url}?token={bad_token}", 401, "unauthorized")
    # in an auth request: error, then close 4002
    async with WirePeer(jwt_hub.ws_url) as peer:
        reply = await peer.request({"op": "auth", "token": bad_token, "id": 1})
        assert reply["op"] == "error" and reply["code"] == "unauthorized" and words in reply["message"]
        await closed_with(peer, 4002)


async def test_unsigned_token_is_refused(jwt_hub: HubServer) -> None:
    import jwt

    unsigned = jwt.encode({"sub": "x", "pub": ["#"], "aud": "rtnb-tests"}, None, algorithm="none")
    await refused_handshake(jwt_hub.ws_url, 401, "unauthorized", **bearer(unsigned))


async def test_expiry_closes_4004_unless_refreshed() -> None:
    async with running_hub(authenticator=jwt_authenticator()) as server:
        short = make_token(ttl=1)
        async with (
            WirePeer(server.ws_url, **bearer(short)) as lapsing,
            WirePeer(server.ws_url, **bearer(short)) as refreshed,
        ):
            reply = await refreshed.request({"op": "auth", "token": make_token(ttl=600), "id": "r"})
            assert reply["op"] == "authenticated"
            error = await lapsing.next_op("error", timeout=4)
            assert error["code"] == "unauthorized" and "expired" in error["message"]
            await closed_with(lapsing, 4004)
            assert (await refreshed.request({"op": "ping", "id": 1}))["op"] == "pong"


async def test_failed_refresh_keeps_the_connection(jwt_hub: HubServer, token: TokenFactory) -> None:
    async with WirePeer(jwt_hub.ws_url, **bearer(token())) as peer:
        reply = await peer.request({"op": "auth", "token": expired_token(), "id": 1})
        assert reply["code"] == "unauthorized"
        assert (await peer.request({"op": "ping", "id": 2}))["op"] == "pong"


async def test_public_key_tokens(tmp_path: Any) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "hub.pub").write_bytes(pem)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    from rtnb.server.auth import AccessControl

    authenticator = AccessControl.jwt_from_files(public_key_file=tmp_path / "hub.pub")
    async with running_hub(authenticator=authenticator) as server:
        good = make_token(secret=private_pem, algorithm="ES256", audience=None)  # type: ignore[arg-type]
        async with WirePeer(server.ws_url, **bearer(good)) as peer:
            assert (await peer.request({"op": "publish", "topic": "plant/7/a", "data": 1, "id": 1}))["op"] == "ack"
        # an HS256 token signed with the public key as secret (algorithm confusion) is refused
        confused = forge_hs256({"sub": "x", "pub": ["#"], "exp": int(time.time()) + 60}, pem)
        await refused_handshake(server.ws_url, 401, "unauthorized", **bearer(confused))


# -- permissions -----------------------------------------------------------------------------


async def test_publish_outside_permissions_is_forbidden(jwt_hub: HubServer, token: TokenFactory) -> None:
    async with WirePeer(jwt_hub.ws_url, **bearer(token())) as peer:
        assert (await peer.request({"op": "publish", "topic": "plant/7/temp", "data": 1, "id": 1}))["op"] == "ack"
        reply = await peer.request({"op": "publish", "topic": "plant/8/temp", "data": 1, "id": 2})
        assert reply["op"] == "error" and reply["code"] == "forbidden" and reply["id"] == 2
        assert (await peer.request({"op": "ping", "id": 3}))["op"] == "pong"  # still open


@pytest.mark.parametrize("pattern", ["#", "plant/#", "+/7/#", "plant/+/temp"])
async def test_wildcard_escalation_is_forbidden(jwt_hub: HubServer, token: TokenFactory, pattern: str) -> None:
    async with WirePeer(jwt_hub.ws_url, **bearer(token())) as peer:
        reply = await peer.request({"op": "subscribe", "topic": pattern, "id": 1})
        assert reply["op"] == "error" and reply["code"] == "forbidden"
        reply = await peer.request({"op": "presence", "topic": pattern, "id": 2})
        assert reply["op"] == "error" and reply["code"] == "forbidden"
        reply = await peer.request({"op": "subscribe", "topic": "plant/7/+/temp", "id": 3})
        assert reply["op"] == "subscribed"


async def test_history_outside_permissions_is_forbidden(jwt_hub: HubServer, token: TokenFactory) -> None:
    async with WirePeer(jwt_hub.ws_url, **bearer(token(publish=("#",), subscribe=("#",)))) as admin:
        for topic in ("plant/7/temp", "plant/8/secret"):
            await admin.request({"op": "publish", "topic": topic, "data": {"v": topic}, "id": topic})
    async with WirePeer(jwt_hub.ws_url, **bearer(token())) as peer:
        reply = await peer.request({"op": "subscribe", "topic": "plant/8/secret", "last": 10, "id": 1})
        assert reply["code"] == "forbidden"
        reply = await peer.request({"op": "subscribe", "topic": "plant/7/#", "since": {"plant/8/secret": 0}, "id": 2})
        assert reply["code"] == "forbidden"
        reply = await peer.request({"op": "subscribe", "topic": "plant/7/#", "last": 10, "id": 3})
        assert reply["op"] == "subscribed"
        [message] = await peer.messages(1)
        assert message["topic"] == "plant/7/temp"


async def test_subscriber_receives_only_what_it_may(jwt_hub: HubServer, token: TokenFactory) -> None:
    url = jwt_hub.ws_url
    async with (
        WirePeer(url, **bearer(token())) as device,
        WirePeer(url, **bearer(token("ops", publish=("plant/#",), subscribe=()))) as ops,
    ):
        await device.request({"op": "subscribe", "topic": "plant/7/#"})
        for topic in ("plant/8/cmd", "plant/7/cmd"):
            assert (await ops.request({"op": "publish", "topic": topic, "data": 1, "id": topic}))["op"] == "ack"
        [message] = await device.messages(1)
        assert message["topic"] == "plant/7/cmd"
        assert (await ops.request({"op": "subscribe", "topic": "plant/7/cmd", "id": 1}))["code"] == "forbidden"


# -- origins -----------------------------------------------------------------------------------


async def test_foreign_origin_is_refused(hub_server: HubServer) -> None:
    await refused_handshake(hub_server.ws_url, 403, "forbidden", origin="http://evil.example")
    host = hub_server.url.split("//", 1)[1]
    async with WirePeer(hub_server.ws_url, origin=f"http://{host}") as same_origin:
        assert (await same_origin.request({"op": "ping", "id": 1}))["op"] == "pong"


async def test_allowed_origin_is_accepted() -> None:
    async with running_hub(allowed_origins=["https://dash.example"]) as server:
        async with WirePeer(server.ws_url, origin="https://dash.example") as peer:
            assert (await peer.request({"op": "ping", "id": 1}))["op"] == "pong"
        await refused_handshake(server.ws_url, 403, "forbidden", origin="https://evil.example")


async def test_foreign_origin_is_refused_even_with_a_token(jwt_hub: HubServer, token: TokenFactory) -> None:
    await refused_handshake(jwt_hub.ws_url, 403, "forbidden", origin="http://evil.example", **bearer(token()))


# -- rate and connection limits ------------------------------------------------------------------


async def test_rate_limit_then_close_1008_on_persistent_abuse() -> None:
    authenticator = jwt_authenticator(rate_limit=RateLimit(1, 5), max_strikes=20, strike_rate=1)
    async with running_hub(authenticator=authenticator) as server:
        async with (
            WirePeer(server.ws_url, **bearer(make_token())) as abuser,
            WirePeer(server.ws_url, **bearer(make_token("device-8", ("plant/8/#",), ("plant/#",)))) as other,
        ):
            await other.request({"op": "subscribe", "topic": "plant/#"})
            replies = [
                (await abuser.request({"op": "publish", "topic": "plant/7/x", "data": index, "id": index}))
                for index in range(8)
            ]
            assert [reply["op"] for reply in replies[:5]] == ["ack"] * 5
            assert {reply.get("code") for reply in replies[5:]} == {"rate_limited"}
            for index in range(8, 60):
                await abuser.send({"op": "publish", "topic": "plant/7/x", "data": index})
            await closed_with(abuser, 1008)
            # the others are untouched
            ack = await other.request({"op": "publish", "topic": "plant/8/x", "data": "ok", "id": "o"})
            assert ack["op"] == "ack"
            received = await other.messages(6)
            assert received[-1]["topic"] == "plant/8/x"


async def test_subject_limit_spans_connections() -> None:
    async with running_hub(authenticator=jwt_authenticator(rate_limit=RateLimit(1, 3))) as server:
        async with (
            WirePeer(server.ws_url, **bearer(make_token())) as first,
            WirePeer(server.ws_url, **bearer(make_token())) as second,
        ):
            ops = []
            for index in range(4):
                peer = first if index % 2 == 0 else second
                reply = await peer.request({"op": "publish", "topic": "plant/7/x", "data": index, "id": index})
                ops.append(reply.get("code", reply["op"]))
            assert ops == ["ack", "ack", "ack", "rate_limited"]


async def test_connections_per_address_are_limited() -> None:
    async with running_hub(authenticator=jwt_authenticator(max_connections_per_address=2)) as server:
        authenticator = server.authenticator
        token = make_token()
        async with WirePeer(server.ws_url, **bearer(token)), WirePeer(server.ws_url, **bearer(token)):
            async with WirePeer(server.ws_url, **bearer(token)) as third:
                error = await third.next_op("error")
                assert error["code"] == "too_many_connections"
                await closed_with(third, 1008)
        await wait_until(lambda: len(authenticator.connections) == 0)
        async with WirePeer(server.ws_url, **bearer(token)) as again:
            assert (await again.request({"op": "ping", "id": 1}))["op"] == "pong"


async def test_subscription_count_is_limited(token: TokenFactory) -> None:
    config = HubConfig(limits=Limits(max_subscriptions=3))
    async with running_hub(config, authenticator=jwt_authenticator()) as server:
        async with WirePeer(server.ws_url, **bearer(token())) as peer:
            for index in range(3):
                assert (await peer.request({"op": "subscribe", "topic": f"plant/7/{index}"}))["op"] == "subscribed"
            reply = await peer.request({"op": "subscribe", "topic": "plant/7/3", "id": 9})
            assert reply["code"] == "too_many_subscriptions"


# -- sizes -------------------------------------------------------------------------------------


async def test_oversize_frame_closes_1009(jwt_hub: HubServer, token: TokenFactory) -> None:
    async with WirePeer(jwt_hub.ws_url, **bearer(token())) as peer:
        await peer.send({"op": "publish", "topic": "plant/7/x", "data": "x" * 2**20})
        await closed_with(peer, 1009)


async def test_oversize_before_auth_closes_1009(jwt_hub: HubServer) -> None:
    async with WirePeer(jwt_hub.ws_url) as peer:
        await peer.send("x" * (2**20 + 1))
        await closed_with(peer, 1009)


async def test_deep_nesting_and_long_topics_are_refused(jwt_hub: HubServer, token: TokenFactory) -> None:
    deep: Any = 1
    for _ in range(200):
        deep = [deep]
    async with WirePeer(jwt_hub.ws_url, **bearer(token())) as peer:
        reply = await peer.request({"op": "publish", "topic": "plant/7/x", "data": deep, "id": 1})
        assert reply["code"] == "too_deep"
        reply = await peer.request({"op": "publish", "topic": "plant/7/" + "x" * 300, "data": 1, "id": 2})
        assert reply["code"] == "invalid_topic"
        reply = await peer.request({"op": "subscribe", "topic": "plant/7/" + "a/" * 20 + "b", "id": 3})
        assert reply["code"] == "invalid_pattern"


async def test_compression_is_off_by_default(hub_server: HubServer) -> None:
    async with websockets.connect(hub_server.ws_url, compression="deflate") as connection:
        assert connection.response.headers.get("Sec-WebSocket-Extensions") is None


async def test_compression_bomb_is_bounded() -> None:
    config = HubConfig(websocket_compression=True, limits=Limits(max_frame_bytes=64 * 2**10))
    async with running_hub(config) as server:
        async with WirePeer(server.ws_url, compression="deflate") as peer:
            assert "permessage-deflate" in peer.connection.response.headers["Sec-WebSocket-Extensions"]
            small = {"op": "publish", "topic": "a", "data": "y" * 1000, "id": 1}
            assert (await peer.request(small))["op"] == "ack"
            bomb = orjson.dumps({"op": "publish", "topic": "a", "data": "x" * 8 * 2**20}).decode()
            assert len(zlib.compress(bomb.encode())) < 64 * 2**10  # small on the wire, 8 MiB inflated
            await peer.send(bomb)
            await closed_with(peer, 1009)


async def test_secret_never_reaches_clients(jwt_hub: HubServer) -> None:
    with pytest.raises(websockets.InvalidStatus) as caught:
        await websockets.connect(jwt_hub.ws_url, additional_headers={"Authorization": "Bearer x.y.z"})
    assert SECRET.encode() not in caught.value.response.body
