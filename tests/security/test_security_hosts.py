"""DNS rebinding (the ``Host`` rule) and CORS on errors and on ``/rtnb.js``, over real loopback sockets.

A page on ``evil.example`` whose name resolves to 127.0.0.1 sends requests that
its browser considers same-origin: only the ``Host`` header shows where they
come from. Every route and transport must refuse them with a JSON 403.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest
import websockets
from security_helpers import jwt_authenticator

from rtnb.core.topics import Pattern
from rtnb.server.runner import HubServer
from rtnb.testing import running_hub

EVIL = "evil.example"


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def error_code(self) -> str:
        return str(orjson.loads(self.body)["error"]["code"])


async def raw_request(
    server: HubServer,
    method: str,
    path: str,
    *,
    host: str | None,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> Response:
    """One HTTP/1.1 request with exactly the ``Host`` given (``None``: no Host header)."""
    assert server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    lines = [f"{method} {path} HTTP/1.1", "Connection: close"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    try:
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    response_headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        response_headers[name.strip().lower()] = value.strip()
    return Response(int(status_line.split()[1]), response_headers, payload)


READ_PATHS = [
    "/",
    "/rtnb.js",
    "/topics",
    "/healthz",
    "/metrics",
    "/sse?topic=a/b",
    "/poll?topic=a/b&timeout=0",
    "/static/demo.js",
    "/no/such/path",
]


@pytest.mark.parametrize("path", READ_PATHS)
async def test_a_foreign_host_is_refused_on_every_route(path: str) -> None:
    async with running_hub() as server:
        refused = await raw_request(server, "GET", path, host=f"{EVIL}:{server.port}")
        assert refused.status == 403
        assert refused.headers["content-type"] == "application/json"
        assert refused.error_code == "forbidden"
        assert EVIL in orjson.loads(refused.body)["error"]["message"]


async def test_a_foreign_host_cannot_publish_and_a_loopback_one_can() -> None:
    async with running_hub() as server:
        refused = await raw_request(server, "POST", "/publish/a/b", host=f"{EVIL}:{server.port}", body=b"1")
        assert refused.status == 403 and refused.error_code == "forbidden"
        assert server.hub.backplane.positions(Pattern.parse("#")) == {}
        for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", f"[::1]:{server.port}", "localhost"):
            accepted = await raw_request(server, "POST", "/publish/a/b", host=host, body=b"1")
            assert accepted.status == 200, (host, accepted.body)


async def test_a_foreign_host_cannot_open_a_websocket() -> None:
    async with running_hub() as server:
        # The URL's name goes into Host; the socket still goes to 127.0.0.1 (what DNS rebinding achieves).
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(f"ws://{EVIL}:{server.port}/ws", host="127.0.0.1", port=server.port):
                pass
        response = refused.value.response
        assert response.status_code == 403
        assert orjson.loads(response.body)["error"]["code"] == "forbidden"
        async with websockets.connect(f"ws://localhost:{server.port}/ws", host="127.0.0.1", port=server.port) as ws:
            assert orjson.loads(await ws.recv())["op"] == "welcome"


async def test_allowed_hosts_are_answered() -> None:
    async with running_hub(allowed_hosts=["hub.lan", "Dash.Example"]) as server:
        for host in (f"hub.lan:{server.port}", "dash.example", "HUB.LAN"):
            assert (await raw_request(server, "GET", "/healthz", host=host)).status == 200, host
        assert (await raw_request(server, "GET", "/healthz", host=f"{EVIL}:{server.port}")).status == 403
        async with websockets.connect(f"ws://hub.lan:{server.port}/ws", host="127.0.0.1", port=server.port) as ws:
            assert orjson.loads(await ws.recv())["op"] == "welcome"


async def test_allow_host_star_answers_any_name() -> None:
    async with running_hub(allowed_hosts=["*"]) as server:
        assert (await raw_request(server, "GET", "/healthz", host=EVIL)).status == 200


async def test_malformed_or_missing_host() -> None:
    async with running_hub() as server:
        assert (await raw_request(server, "GET", "/healthz", host="localhost:8765/x")).status in (400, 403)
        # HTTP/1.1 requires Host, but no browser omits it: a request without one is not a rebinding attack.
        assert (await raw_request(server, "GET", "/healthz", host=None)).status in (200, 400)


# -- CORS -------------------------------------------------------------------------------------------

DASH = "https://dash.example"


async def test_errors_to_an_allowed_origin_carry_cors_headers() -> None:
    async with running_hub(allowed_origins=[DASH]) as server:
        host = f"127.0.0.1:{server.port}"
        bad = await raw_request(server, "POST", "/publish/a/b", host=host, headers={"Origin": DASH}, body=b"{nope")
        assert bad.status == 400 and bad.error_code == "bad_json"
        assert bad.headers.get("access-control-allow-origin") == DASH
        wildcard = await raw_request(server, "POST", "/publish/a/%23", host=host, headers={"Origin": DASH}, body=b"1")
        assert wildcard.status == 400 and wildcard.headers.get("access-control-allow-origin") == DASH
        missing = await raw_request(server, "GET", "/poll", host=host, headers={"Origin": DASH})
        assert missing.status == 400 and missing.error_code == "missing_field"
        assert missing.headers.get("access-control-allow-origin") == DASH
        # a refused origin gets no CORS header: its page must not read anything
        foreign = await raw_request(
            server, "POST", "/publish/a/b", host=host, headers={"Origin": "https://x.example"}, body=b"1"
        )
        assert foreign.status == 403 and "access-control-allow-origin" not in foreign.headers


async def test_unauthorized_to_an_allowed_origin_carries_cors_headers() -> None:
    async with running_hub(allowed_origins=[DASH], authenticator=jwt_authenticator()) as server:
        refused = await raw_request(
            server, "POST", "/publish/plant/7/x", host=f"127.0.0.1:{server.port}", headers={"Origin": DASH}, body=b"1"
        )
        assert refused.status == 401 and refused.error_code == "unauthorized"
        assert refused.headers.get("access-control-allow-origin") == DASH


async def test_rtnb_js_is_importable_cross_origin_and_answers_head() -> None:
    async with running_hub() as server:
        host = f"127.0.0.1:{server.port}"
        script = await raw_request(server, "GET", "/rtnb.js", host=host, headers={"Origin": "http://localhost:8888"})
        assert script.status == 200 and script.headers.get("access-control-allow-origin") == "*"
        assert b"RtnbClient" in script.body
        head = await raw_request(server, "HEAD", "/rtnb.js", host=host)
        assert head.status == 200, head.body
        assert head.headers["content-type"].startswith("text/javascript")
        assert int(head.headers["content-length"]) == len(script.body)
        assert head.body == b""
        assert head.headers.get("access-control-allow-origin") == "*"
