"""The hub mounted in a real Jupyter server: auth, origin rules, kernels finding it."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import orjson
import pytest
import websockets
from rtnb_jupyter_fixture import REPOSITORY, JupyterServer
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from rtnb.testing import WirePeer


def _token_header(server: JupyterServer) -> dict[str, str]:
    return {"Authorization": f"token {server.token}"}


async def _http(url: str, method: str = "GET", headers: dict[str, str] | None = None, body: Any = None) -> Any:
    client = AsyncHTTPClient()
    payload = None if body is None else json.dumps(body)
    try:
        response = await client.fetch(url, method=method, headers=headers or {}, body=payload)
    except HTTPClientError as error:
        return error.code, error.response.body if error.response else b""
    return response.code, response.body


def test_config_file_enables_the_extension() -> None:
    config = json.loads((REPOSITORY / "jupyter-config/jupyter_server_config.d/rtnb.json").read_text())
    assert config == {"ServerApp": {"jpserver_extensions": {"rtnb.notebook": True}}}
    pyproject = (REPOSITORY / "pyproject.toml").read_text()
    assert '"jupyter-config/jupyter_server_config.d/rtnb.json" = "etc/jupyter/jupyter_server_config.d/rtnb.json"' in (
        pyproject
    )


def test_runtime_file_tells_kernels_where_the_hub_is(jupyter_server: JupyterServer) -> None:
    info = jupyter_server.hub_info
    assert info["url"] == jupyter_server.url.rstrip("/") + "/rtnb"
    assert info["token"] == jupyter_server.token
    assert info["pid"] == jupyter_server.process.pid
    path = next(jupyter_server.runtime_dir.glob("rtnb-hub-*.json"))
    assert path.stat().st_mode & 0o077 == 0  # owner-only: it holds the token


async def test_websocket_with_token_subscribes_and_receives(jupyter_server: JupyterServer) -> None:
    headers = _token_header(jupyter_server)
    async with WirePeer(jupyter_server.hub_ws_url, additional_headers=headers) as subscriber:
        assert subscriber.welcome is not None and subscriber.welcome["op"] == "welcome"
        assert (await subscriber.request({"op": "subscribe", "topic": "plant/+/temp"}))["op"] == "subscribed"
        # a device passing the token as a query parameter instead
        async with WirePeer(f"{jupyter_server.hub_ws_url}?token={jupyter_server.token}") as device:
            publish = {"op": "publish", "topic": "plant/boiler/temp", "data": {"value": 71}, "id": "p1"}
            reply = await device.request(publish)
            assert reply["op"] == "ack" and reply["offset"] >= 1
        (message,) = await subscriber.messages(1)
        assert message["topic"] == "plant/boiler/temp" and message["data"] == {"value": 71}


async def test_requests_without_token_are_refused(jupyter_server: JupyterServer) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(jupyter_server.hub_ws_url):
            pass
    assert refused.value.response.status_code == 403
    status, body = await _http(jupyter_server.hub_url + "/healthz")
    assert status == 403
    assert orjson.loads(body)["error"]["code"] == "unauthorized"
    status, _ = await _http(jupyter_server.hub_url + "/healthz", headers={"Authorization": "token wrong"})
    assert status == 403
    status, body = await _http(jupyter_server.hub_url + "/healthz", headers=_token_header(jupyter_server))
    assert status == 200 and orjson.loads(body)["status"] == "ok"


async def test_foreign_origin_is_refused_even_with_token(jupyter_server: JupyterServer) -> None:
    headers = {**_token_header(jupyter_server), "Origin": "http://evil.example"}
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(jupyter_server.hub_ws_url, additional_headers=headers):
            pass
    assert refused.value.response.status_code == 403
    status, body = await _http(jupyter_server.hub_url + "/healthz", headers=headers)
    assert status == 403 and orjson.loads(body)["error"]["code"] == "forbidden"
    same_origin = {**_token_header(jupyter_server), "Origin": jupyter_server.origin}
    async with WirePeer(jupyter_server.hub_ws_url, additional_headers=same_origin) as peer:
        assert (await peer.request({"op": "ping"}))["op"] == "pong"


class KernelSession:
    """Drives a kernel the server started, over the server's kernel WebSocket."""

    def __init__(self, server: JupyterServer) -> None:
        self.server = server
        self.kernel_id = ""
        self.session = uuid.uuid4().hex
        self.connection: Any = None

    async def __aenter__(self) -> KernelSession:
        status, body = await _http(
            self.server.url + "api/kernels", "POST", _token_header(self.server), {"name": "python3"}
        )
        assert status == 201, body
        self.kernel_id = orjson.loads(body)["id"]
        base = self.server.url.replace("http", "ws", 1)
        url = f"{base}api/kernels/{self.kernel_id}/channels?session_id={self.session}"
        self.connection = await websockets.connect(url, additional_headers=_token_header(self.server), max_size=None)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.connection.close()
        await _http(self.server.url + f"api/kernels/{self.kernel_id}", "DELETE", _token_header(self.server))

    async def execute(self, code: str, timeout: float = 60.0) -> str:
        """Run ``code``; return its stdout, or fail with the kernel's traceback."""
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "username": "test",
            "session": self.session,
            "msg_type": "execute_request",
            "version": "5.3",
            "date": "",
        }
        content = {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False}
        await self.connection.send(
            json.dumps({"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell"})
        )
        output: list[str] = []
        error: dict[str, Any] | None = None
        async with asyncio.timeout(timeout):
            while True:
                message = json.loads(await self.connection.recv())
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = message["msg_type"]
                if kind == "stream":
                    output.append(message["content"]["text"])
                elif kind == "error":
                    error = message["content"]
                elif kind == "execute_reply":
                    break
        if error is not None:
            raise AssertionError("kernel error:\n" + "\n".join(error["traceback"]))
        return "".join(output)


async def test_kernel_started_by_the_server_finds_the_hub(jupyter_server: JupyterServer) -> None:
    async with WirePeer(jupyter_server.hub_ws_url, additional_headers=_token_header(jupyter_server)) as subscriber:
        await subscriber.request({"op": "subscribe", "topic": "kernel/#"})
        async with KernelSession(jupyter_server) as kernel:
            found = await kernel.execute(
                "from rtnb.notebook.discovery import find_jupyter_hub\nprint(find_jupyter_hub())"
            )
            assert found.strip() == repr((jupyter_server.hub_url, jupyter_server.token))
            output = await kernel.execute(
                "import rtnb\n"
                "client = rtnb.connect()\n"
                "print(client.publish('kernel/hello', {'from': 'kernel'}))\n"
                "client.close()\n"
                "from rtnb.notebook import current_hub\n"
                "print(current_hub())"
            )
        offset_text, embedded = output.split()
        assert int(offset_text) >= 1
        assert embedded == "None"  # it used the server's hub, and started no embedded one
        (message,) = await subscriber.messages(1)
        assert message["topic"] == "kernel/hello" and message["data"] == {"from": "kernel"}
