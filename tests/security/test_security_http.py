"""Every security rule on SSE, long polling and HTTP publish, over real loopback sockets."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from security_helpers import expired_token, jwt_authenticator, make_token

from rtnb.core.auth import RateLimit
from rtnb.core.cursor import encode_cursor
from rtnb.server.runner import HubServer
from rtnb.testing import running_hub, wait_until


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def error_code(self) -> str:
        return str(orjson.loads(self.body)["error"]["code"])


async def open_request(
    server: HubServer, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    assert server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return reader, writer


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers


async def request(
    server: HubServer, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> Response:
    """One request on its own connection; the whole response (not for live streams)."""
    reader, writer = await open_request(server, method, path, headers, body)
    try:
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    status, response_headers = parse_head(head)
    return Response(status, response_headers, payload)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def topic_query(*patterns: str, **extra: str) -> str:
    parts = [f"topic={quote(pattern, safe='')}" for pattern in patterns]
    parts += [f"{name}={quote(value, safe='')}" for name, value in extra.items()]
    return "&".join(parts)


ENDPOINTS = ["sse", "poll"]


def read_path(kind: str, *patterns: str, **extra: str) -> str:
    if kind == "poll":
        extra.setdefault("timeout", "0")
    return f"/{kind}?{topic_query(*patterns, **extra)}"


# -- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ENDPOINTS)
@pytest.mark.parametrize(
    "bad_token",
    [
        None,
        make_token(secret="another-secret-that-is-long-enough-for-hs256"),
        expired_token(),
        make_token(audience="some-other-hub"),
    ],
    ids=["no-token", "bad-signature", "expired", "wrong-audience"],
)
async def test_reading_needs_a_valid_token(jwt_hub: HubServer, kind: str, bad_token: str | None) -> None:
    headers = bearer(bad_token) if bad_token else {}
    response = await request(jwt_hub, "GET", read_path(kind, "plant/7/#"), headers)
    assert response.status == 401 and response.error_code == "unauthorized"
    if bad_token:
        response = await request(jwt_hub, "GET", read_path(kind, "plant/7/#", token=bad_token))
        assert response.status == 401 and response.error_code == "unauthorized"


@pytest.mark.parametrize(
    "bad_token",
    [
        None,
        make_token(secret="another-secret-that-is-long-enough-for-hs256"),
        expired_token(),
        make_token(audience="some-other-hub"),
    ],
    ids=["no-token", "bad-signature", "expired", "wrong-audience"],
)
async def test_publishing_needs_a_valid_token(jwt_hub: HubServer, bad_token: str | None) -> None:
    headers = bearer(bad_token) if bad_token else {}
    response = await request(jwt_hub, "POST", "/publish/plant/7/temp", headers, b'{"value": 1}')
    assert response.status == 401 and response.error_code == "unauthorized"
    assert jwt_hub.hub.stats.messages_in == 0


async def test_poll_and_publish_with_header_and_query_tokens(jwt_hub: HubServer) -> None:
    token = make_token()
    response = await request(jwt_hub, "POST", "/publish/plant/7/temp", bearer(token), b'{"value": 1}')
    assert response.status == 200, response.body
    response = await request(jwt_hub, "POST", f"/publish/plant/7/temp?token={token}", {}, b'{"value": 2}')
    assert response.status == 200, response.body
    response = await request(jwt_hub, "GET", read_path("poll", "plant/7/#", last="5", token=token))
    assert response.status == 200
    assert [item["data"]["value"] for item in orjson.loads(response.body)["messages"]] == [1, 2]


async def test_jupyter_style_authorization_header_is_not_a_token(jwt_hub: HubServer) -> None:
    response = await request(jwt_hub, "GET", read_path("poll", "plant/7/#"), {"Authorization": "token abc"})
    assert response.status == 401


# -- permissions -----------------------------------------------------------------------------


async def test_publish_outside_permissions_is_forbidden(jwt_hub: HubServer) -> None:
    response = await request(jwt_hub, "POST", "/publish/plant/8/temp", bearer(make_token()), b"1")
    assert response.status == 403 and response.error_code == "forbidden"
    ndjson = {**bearer(make_token()), "Content-Type": "application/x-ndjson"}
    response = await request(jwt_hub, "POST", "/publish/plant/8/temp", ndjson, b"1\n2\n")
    assert response.status == 403
    assert jwt_hub.hub.stats.messages_in == 0


@pytest.mark.parametrize("kind", ENDPOINTS)
@pytest.mark.parametrize("pattern", ["#", "plant/#", "plant/+/temp"])
async def test_wildcard_escalation_is_forbidden(jwt_hub: HubServer, kind: str, pattern: str) -> None:
    token = make_token()
    response = await request(jwt_hub, "GET", read_path(kind, "plant/7/#", pattern), bearer(token))
    assert response.status == 403 and response.error_code == "forbidden"


@pytest.mark.parametrize("kind", ENDPOINTS)
async def test_cursor_outside_permissions_is_forbidden(jwt_hub: HubServer, kind: str) -> None:
    cursor = encode_cursor({"plant/8/secret": (1, 3)})
    name = "cursor" if kind == "poll" else "lastEventId"
    response = await request(jwt_hub, "GET", read_path(kind, "plant/7/#", **{name: cursor}), bearer(make_token()))
    assert response.status == 403 and response.error_code == "forbidden"


async def test_sse_stream_within_permissions_then_ends_when_the_token_expires() -> None:
    async with running_hub(authenticator=jwt_authenticator()) as server:
        admin = make_token("admin", ("#",), ("#",))
        for topic in ("plant/7/temp", "plant/8/temp"):
            response = await request(server, "POST", f"/publish/{topic}", bearer(admin), b'{"v": 1}')
            assert response.status == 200
        reader, writer = await open_request(
            server, "GET", read_path("sse", "plant/7/#", last="5"), bearer(make_token(ttl=2))
        )
        try:
            started = time.monotonic()
            raw = await asyncio.wait_for(reader.read(), 5)  # the hub ends the stream at expiry
            assert 0.5 < time.monotonic() - started < 4.5  # exp has whole seconds: 1-2 s left
        finally:
            writer.close()
        assert raw.startswith(b"HTTP/1.1 200")
        assert b'"topic":"plant/7/temp"' in raw and b"plant/8/temp" not in raw
        assert b'"code":"unauthorized"' in raw and b"expired" in raw
        await wait_until(lambda: server.hub.connection_count == 0)


# -- origins and CORS --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path", [("GET", read_path("sse", "a")), ("GET", read_path("poll", "a")), ("POST", "/publish/a")]
)
async def test_foreign_origin_is_refused(hub_server: HubServer, method: str, path: str) -> None:
    body = b"1" if method == "POST" else b""
    response = await request(hub_server, method, path, {"Origin": "http://evil.example"}, body)
    assert response.status == 403 and response.error_code == "forbidden"
    assert "access-control-allow-origin" not in response.headers
    assert hub_server.hub.stats.messages_in == 0


async def test_same_origin_and_no_origin_pass(hub_server: HubServer) -> None:
    for headers in ({}, {"Origin": hub_server.url}):
        response = await request(hub_server, "POST", "/publish/a", headers, b"1")
        assert response.status == 200, response.body
        assert "access-control-allow-origin" not in response.headers


async def test_allowed_origin_gets_cors_headers() -> None:
    async with running_hub(allowed_origins=["https://dash.example"]) as server:
        origin = {"Origin": "https://dash.example"}
        response = await request(server, "POST", "/publish/a", origin, b"1")
        assert response.status == 200
        assert response.headers["access-control-allow-origin"] == "https://dash.example"
        assert response.headers["vary"] == "Origin"
        response = await request(server, "GET", read_path("poll", "a", last="1"), origin)
        assert response.headers["access-control-allow-origin"] == "https://dash.example"
        preflight = {
            **origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        }
        response = await request(server, "OPTIONS", "/publish/a", preflight)
        assert response.status == 204
        assert "POST" in response.headers["access-control-allow-methods"]
        assert "Authorization" in response.headers["access-control-allow-headers"]
        response = await request(server, "OPTIONS", "/publish/a", {"Origin": "https://evil.example"})
        assert response.status == 403


async def test_preflight_needs_no_token(jwt_hub: HubServer) -> None:
    response = await request(jwt_hub, "OPTIONS", "/publish/plant/7/a", {})
    assert response.status == 204


# -- limits ------------------------------------------------------------------------------------


async def test_publish_rate_limit_per_subject() -> None:
    async with running_hub(authenticator=jwt_authenticator(rate_limit=RateLimit(1, 3))) as server:
        token = bearer(make_token())
        statuses = [(await request(server, "POST", "/publish/plant/7/a", token, b"1")).status for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        response = await request(server, "POST", "/publish/plant/7/a", token, b"1")
        assert response.error_code == "rate_limited"
        other = bearer(make_token("device-8", ("plant/8/#",)))
        assert (await request(server, "POST", "/publish/plant/8/a", other, b"1")).status == 200
        ndjson = {**bearer(make_token("device-9", ("plant/9/#",))), "Content-Type": "application/x-ndjson"}
        response = await request(server, "POST", "/publish/plant/9/a", ndjson, b"1\n2\n3\n4\n")
        assert response.status == 429  # four lines spend four tokens at once


async def test_anonymous_publishers_are_limited_by_address() -> None:
    from rtnb.server.auth import AccessControl

    async with running_hub(authenticator=AccessControl.open(rate_limit=RateLimit(1, 2))) as server:
        statuses = [(await request(server, "POST", "/publish/a", {}, b"1")).status for _ in range(3)]
        assert statuses == [200, 200, 429]


@pytest.mark.parametrize("kind", ENDPOINTS)
async def test_connections_per_address(kind: str) -> None:
    async with running_hub(authenticator=jwt_authenticator(max_connections_per_address=1)) as server:
        token = make_token()
        extra = {"timeout": "5"} if kind == "poll" else {}
        _, writer = await open_request(server, "GET", read_path(kind, "plant/7/#", **extra), bearer(token))
        try:
            await wait_until(lambda: server.authenticator.connections.count("127.0.0.1") == 1)
            response = await request(server, "GET", read_path(kind, "plant/7/#"), bearer(token))
            assert response.status == 429 and response.error_code == "too_many_connections"
        finally:
            writer.close()
        await wait_until(lambda: len(server.authenticator.connections) == 0)
        response = await request(server, "GET", read_path("poll", "plant/7/#"), bearer(token))
        assert response.status == 200


async def test_oversize_and_deep_bodies(jwt_hub: HubServer) -> None:
    token = bearer(make_token())
    response = await request(jwt_hub, "POST", "/publish/plant/7/a", token, b'"' + b"x" * 2**20 + b'"')
    assert response.status == 413 and response.error_code == "message_too_big"
    response = await request(jwt_hub, "POST", "/publish/plant/7/a", token, b"[" * 200 + b"]" * 200)
    assert response.status == 400 and response.error_code == "too_deep"
    response = await request(jwt_hub, "POST", "/publish/plant/7/" + "x" * 300, token, b"1")
    assert response.status == 400 and response.error_code == "invalid_topic"
    response = await request(jwt_hub, "GET", read_path("poll", "plant/7/" + "a/" * 20 + "b"), token)
    assert response.status == 400 and response.error_code == "invalid_pattern"


async def test_body_over_the_server_limit_is_refused(hub_server: HubServer) -> None:
    reader, writer = await open_request(hub_server, "POST", "/publish/a", {"Content-Length": str(64 * 2**20)})
    try:
        raw: Any = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    assert raw == b"" or b" 413 " in raw.split(b"\r\n", 1)[0] or b" 400 " in raw.split(b"\r\n", 1)[0]
