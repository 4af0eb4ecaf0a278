"""Jupyter's ``allow_origin_pat`` admits browser origins to the hub's HTTP routes as to its WebSocket.

A server started with ``--ServerApp.allow_origin_pat`` must let a page on a
matching origin (with the token) publish over HTTP and long-poll, with the CORS
header its browser needs, and must still refuse an origin the pattern does not match.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets
from rtnb_jupyter_fixture import JupyterServer, start_jupyter_server
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPResponse

from rtnb.testing import WirePeer

PATTERN = r"https://[a-z]+\.dashboards\.example"
ALLOWED = "https://plant.dashboards.example"
FOREIGN = "https://dashboards.example.evil.test"


@pytest.fixture(scope="module")
def pattern_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    base: Path = tmp_path_factory.mktemp("jupyter-origin-pattern")
    with start_jupyter_server(base, f"--ServerApp.allow_origin_pat={PATTERN}") as server:
        yield server


def _headers(server: JupyterServer, origin: str) -> dict[str, str]:
    return {"Authorization": f"token {server.token}", "Origin": origin}


async def _fetch(url: str, headers: dict[str, str], method: str = "GET", body: Any = None) -> HTTPResponse:
    try:
        return await AsyncHTTPClient().fetch(
            url, method=method, headers=headers, body=None if body is None else orjson.dumps(body)
        )
    except HTTPClientError as error:
        assert error.response is not None, error
        return error.response


async def test_matching_origin_publishes_and_polls_over_http(pattern_server: JupyterServer) -> None:
    headers = _headers(pattern_server, ALLOWED)
    published = await _fetch(pattern_server.hub_url + "/publish/pattern/a", headers, "POST", {"value": 1})
    assert published.code == 200, published.body
    assert published.headers.get("Access-Control-Allow-Origin") == ALLOWED
    polled = await _fetch(pattern_server.hub_url + "/poll?topic=pattern/%23&last=1&timeout=0", headers)
    assert polled.code == 200, polled.body
    assert polled.headers.get("Access-Control-Allow-Origin") == ALLOWED
    assert [message["data"] for message in orjson.loads(polled.body)["messages"]] == [{"value": 1}]


async def test_matching_origin_opens_the_websocket(pattern_server: JupyterServer) -> None:
    async with WirePeer(pattern_server.hub_ws_url, additional_headers=_headers(pattern_server, ALLOWED)) as peer:
        assert (await peer.request({"op": "ping"}))["op"] == "pong"


async def test_origin_outside_the_pattern_is_refused(pattern_server: JupyterServer) -> None:
    headers = _headers(pattern_server, FOREIGN)
    refused = await _fetch(pattern_server.hub_url + "/publish/pattern/b", headers, "POST", {"value": 2})
    assert refused.code == 403 and orjson.loads(refused.body)["error"]["code"] == "forbidden"
    assert "Access-Control-Allow-Origin" not in refused.headers
    refused = await _fetch(pattern_server.hub_url + "/poll?topic=pattern/%23&timeout=0", headers)
    assert refused.code == 403
    with pytest.raises(websockets.InvalidStatus) as refused_socket:
        async with websockets.connect(pattern_server.hub_ws_url, additional_headers=headers):
            pass
    assert refused_socket.value.response.status_code == 403
