"""``POST /publish/<topic>`` over real loopback sockets: single, ndjson, and every bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from rtnb.core.limits import Limits
from rtnb.server.hub import HubConfig
from rtnb.server.publish import MAX_NDJSON_LINES
from rtnb.server.runner import HubServer
from rtnb.testing import WirePeer, running_hub

NDJSON = {"Content-Type": "application/x-ndjson"}


@pytest.fixture
async def hub_server() -> AsyncIterator[HubServer]:
    async with running_hub(HubConfig(limits=Limits(max_frame_bytes=4096, max_nesting=8))) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[AsyncHTTPClient]:
    client = AsyncHTTPClient(force_instance=True)
    yield client
    client.close()


async def post(
    http: AsyncHTTPClient, server: HubServer, path: str, body: bytes | str, headers: dict[str, str] | None = None
) -> tuple[HTTPResponse, Any]:
    response = await http.fetch(
        f"{server.url}/publish/{path}",
        method="POST",
        body=body,
        headers=headers or {"Content-Type": "application/json"},
        raise_error=False,
        request_timeout=10,
    )
    return response, orjson.loads(response.body)


async def test_single_json_body_is_published_and_delivered(hub_server: HubServer, http: AsyncHTTPClient) -> None:
    async with WirePeer(hub_server.ws_url) as peer:
        await peer.request({"op": "subscribe", "topic": "plant/+/temp"})
        response, body = await post(http, hub_server, "plant/boiler/temp", b'{"value": 71.5}')
        assert response.code == 200
        assert body["topic"] == "plant/boiler/temp" and body["offset"] == 1 and isinstance(body["epoch"], int)
        (delivered,) = await peer.messages(1)
        assert delivered["data"] == {"value": 71.5}
        assert (delivered["offset"], delivered["epoch"]) == (1, body["epoch"])
    _, again = await post(http, hub_server, "plant/boiler/temp", b"72")
    assert again["offset"] == 2


async def test_a_plain_curl_form_content_type_is_read_as_json(hub_server: HubServer, http: AsyncHTTPClient) -> None:
    # `curl -d '{...}' URL` sends application/x-www-form-urlencoded; devices should not need -H.
    response, body = await post(
        http, hub_server, "dev/1", b'{"on": true}', {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.code == 200 and body["offset"] == 1


async def test_percent_encoded_levels_are_decoded(hub_server: HubServer, http: AsyncHTTPClient) -> None:
    _, body = await post(http, hub_server, "plant/hall%20A/temp", b"1")
    assert body["topic"] == "plant/hall A/temp"


async def test_ndjson_publishes_every_line_in_order(hub_server: HubServer, http: AsyncHTTPClient) -> None:
    async with WirePeer(hub_server.ws_url) as peer:
        await peer.request({"op": "subscribe", "topic": "batch/x"})
        lines = b'{"i": 0}\n{"i": 1}\r\n\n{"i": 2}\n3\n"four"\n'
        response, body = await post(http, hub_server, "batch/x", lines, NDJSON)
        assert response.code == 200
        assert body["topic"] == "batch/x"
        assert body["offsets"] == [1, 2, 3, 4, 5]
        delivered = await peer.messages(5)
        assert [item["data"] for item in delivered] == [{"i": 0}, {"i": 1}, {"i": 2}, 3, "four"]


async def test_ndjson_with_one_bad_line_publishes_nothing(hub_server: HubServer, http: AsyncHTTPClient) -> None:
    response, body = await post(http, hub_server, "batch/y", b'1\n2\n{"broken": \n4\n', NDJSON)
    assert response.code == 400
    assert body["error"]["code"] == "bad_json"
    assert "Line 3" in body["error"]["message"]
    assert hub_server.hub.stats.messages_in == 0


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code"),
    [
        ("a/b", b"{not json", None, 400, "bad_json"),
        ("a/b", b"", None, 400, "bad_json"),
        ("a/b", b"  \n ", None, 400, "bad_json"),
        ("a/b", b"\n\n", NDJSON, 400, "bad_json"),
        ("plant/+/temp", b"1", None, 400, "wildcard_publish"),
        ("plant/%23", b"1", None, 400, "wildcard_publish"),
        ("a//b", b"1", None, 400, "invalid_topic"),
        ("a/b/", b"1", None, 400, "invalid_topic"),
        ("$SYS/x", b"1", None, 400, "invalid_topic"),
        ("", b"1", None, 400, "invalid_topic"),
        ("/".join(["l"] * 40), b"1", None, 400, "invalid_topic"),
        ("a/b", b'{"x": "' + b"y" * 5000 + b'"}', None, 413, "message_too_big"),
        ("a/b", b'"' + b"y" * 5000 + b'"\n', NDJSON, 413, "message_too_big"),
        ("a/b", b"[" * 20 + b"]" * 20, None, 400, "too_deep"),
        ("a/b", b"1\n" + b"[" * 20 + b"]" * 20 + b"\n", NDJSON, 400, "too_deep"),
        ("a/b", b"--x\r\n", {"Content-Type": "multipart/form-data; boundary=x"}, 400, "bad_field"),
    ],
)
async def test_bad_input_gets_a_typed_4xx(
    hub_server: HubServer,
    http: AsyncHTTPClient,
    path: str,
    body: bytes,
    headers: dict[str, str] | None,
    status: int,
    code: str,
) -> None:
    response, answer = await post(http, hub_server, path, body, headers)
    assert response.code == status
    assert response.headers["Content-Type"] == "application/json"
    assert set(answer) == {"error"}
    assert answer["error"]["code"] == code
    assert answer["error"]["message"].endswith(".")
    assert hub_server.hub.stats.errors[code] == 1
    assert hub_server.hub.stats.messages_in == 0


async def test_too_many_ndjson_lines_are_refused(hub_server: HubServer, http: AsyncHTTPClient) -> None:
    response, answer = await post(http, hub_server, "a/b", b"1\n" * (MAX_NDJSON_LINES + 1), NDJSON)
    assert response.code == 413
    assert answer["error"]["code"] == "message_too_big"
    assert hub_server.hub.stats.messages_in == 0


async def test_wrong_method_gets_a_json_error(hub_server: HubServer, http: AsyncHTTPClient) -> None:
    response = await http.fetch(f"{hub_server.url}/publish/a/b", raise_error=False)
    assert response.code == 405
    assert orjson.loads(response.body)["error"]["code"] == "unknown_op"


async def test_bad_input_does_not_disturb_other_clients(hub_server: HubServer, http: AsyncHTTPClient) -> None:
    async with WirePeer(hub_server.ws_url) as peer:
        await peer.request({"op": "subscribe", "topic": "ok/#"})
        await post(http, hub_server, "ok/+", b"1")
        await post(http, hub_server, "ok/x", b"{")
        _, good = await post(http, hub_server, "ok/x", b'"fine"')
        (delivered,) = await peer.messages(1)
        assert delivered["data"] == "fine" and delivered["offset"] == good["offset"] == 1
        pong = await peer.request({"op": "ping"})
        assert pong["op"] == "pong"
