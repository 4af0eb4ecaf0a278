"""``c.RtnbExtension.redis``: the hub of a Jupyter server on the shared Redis backplane.

A real ``jupyter server`` is started with ``--RtnbExtension.redis=URL`` (a key
prefix of this module's own); a second hub on the same URL, outside Jupyter,
must see what is published through Jupyter's hub, and the other way round.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from rtnb_jupyter_fixture import JupyterServer, start_jupyter_server

from rtnb.backplane.redis import RedisBackplane
from rtnb.server.hub import Hub
from rtnb.server.runner import HubServer
from rtnb.testing import WirePeer

REDIS = ("127.0.0.1", 6379)


def redis_reachable() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=0.5) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def delete_keys(prefix: str) -> list[bytes]:
    """Delete every key under ``prefix``; returns what is left (nothing, normally)."""
    import redis

    client = redis.Redis(host=REDIS[0], port=REDIS[1], db=0)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        return list(client.scan_iter(match=prefix + "*", count=1000))
    finally:
        client.close()


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    if not redis_reachable():
        reason = "no Redis reachable at 127.0.0.1:6379 (start redis-server to test c.RtnbExtension.redis)"
        if os.environ.get("RTNB_CI"):
            pytest.fail(reason + " (required: RTNB_CI is set)")
        pytest.skip(reason)
    prefix = f"rtnb:test-{uuid.uuid4().hex[:12]}:"
    yield f"redis://127.0.0.1:6379/0?prefix={prefix}"
    assert delete_keys(prefix) == []


@pytest.fixture(scope="module")
def redis_jupyter_server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    base: Path = tmp_path_factory.mktemp("jupyter-redis")
    with start_jupyter_server(base, f"--RtnbExtension.redis={redis_url}") as server:
        yield server


async def test_jupyter_hub_and_another_hub_share_topics_through_redis(
    redis_jupyter_server: JupyterServer, redis_url: str
) -> None:
    token = {"Authorization": f"token {redis_jupyter_server.token}"}
    other = HubServer(Hub(backplane=RedisBackplane(redis_url)), host="127.0.0.1", port=0)
    await other.start()
    try:
        async with (
            WirePeer(other.ws_url) as outside,
            WirePeer(redis_jupyter_server.hub_ws_url, additional_headers=token) as inside,
        ):
            for peer in (outside, inside):
                assert (await peer.request({"op": "subscribe", "topic": "shared/#"}))["op"] == "subscribed"
            sent = {"op": "publish", "topic": "shared/from-jupyter", "data": {"value": 1}, "id": "j1"}
            assert (await inside.request(sent))["op"] == "ack"
            sent = {"op": "publish", "topic": "shared/from-outside", "data": {"value": 2}, "id": "o1"}
            assert (await outside.request(sent))["op"] == "ack"
            received = await asyncio.gather(outside.messages(2), inside.messages(2))
            for messages in received:
                assert sorted((m["topic"], m["data"]["value"]) for m in messages) == [
                    ("shared/from-jupyter", 1),
                    ("shared/from-outside", 2),
                ]
    finally:
        await other.stop()
