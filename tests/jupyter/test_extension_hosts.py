"""The hub inside Jupyter answers only the Host names Jupyter and ``c.RtnbExtension.allowed_hosts`` trust.

DNS rebinding through Jupyter's port: a foreign ``Host`` gets a JSON 403 on every
hub route, even with Jupyter's token; loopback names, Jupyter's
``local_hostnames`` and the extension's ``allowed_hosts`` are answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest
import websockets
from rtnb_jupyter_fixture import JupyterServer, start_jupyter_server


@pytest.fixture(scope="module")
def hosts_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    base: Path = tmp_path_factory.mktemp("jupyter-hosts")
    arguments = ("--RtnbExtension.allowed_hosts=hub.lan", "--ServerApp.local_hostnames=notebook.lan")
    with start_jupyter_server(base, *arguments) as server:
        yield server


async def raw_get(server: JupyterServer, path: str, host: str) -> tuple[int, bytes]:
    parts = urlsplit(server.hub_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(
        f"GET {parts.path}{path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: token {server.token}\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize("path", ["/healthz", "/topics", "/poll?topic=a&timeout=0", "/rtnb.js"])
async def test_a_foreign_host_is_refused_even_with_the_token(hosts_server: JupyterServer, path: str) -> None:
    status, body = await raw_get(hosts_server, path, "evil.example:8888")
    assert status == 403, body
    assert orjson.loads(body)["error"]["code"] == "forbidden"
    assert "evil.example" in orjson.loads(body)["error"]["message"]


async def test_a_foreign_host_cannot_open_the_websocket(hosts_server: JupyterServer) -> None:
    parts = urlsplit(hosts_server.hub_ws_url)
    headers = {"Authorization": f"token {hosts_server.token}"}
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(
            f"ws://evil.example:{parts.port}{parts.path}",
            host=parts.hostname,
            port=parts.port,
            additional_headers=headers,
        ):
            pass
    assert refused.value.response.status_code == 403
    assert orjson.loads(refused.value.response.body)["error"]["code"] == "forbidden"


@pytest.mark.parametrize("host", ["hub.lan", "notebook.lan:8888", "localhost", "127.0.0.1:1"])
async def test_trusted_hosts_are_answered(hosts_server: JupyterServer, host: str) -> None:
    status, body = await raw_get(hosts_server, "/healthz", host)
    assert status == 200, body
    assert orjson.loads(body)["status"] == "ok"
