"""``rtnb.start_hub(redis=...)``: a kernel's embedded hub on the shared Redis backplane.

The kernel's hub runs in a fresh process (this package's tests share one
embedded hub on the memory backplane); a second hub in this process, on the
same Redis URL and key prefix, must see what the kernel's hub publishes.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator

import pytest

from rtnb.backplane.redis import RedisBackplane
from rtnb.server.hub import Hub
from rtnb.server.runner import HubServer
from rtnb.testing import WirePeer

REDIS = ("127.0.0.1", 6379)

KERNEL = """
import sys
from rtnb.backplane.redis import RedisBackplane
from rtnb.notebook import start_hub

hub = start_hub(redis=sys.argv[1])
assert isinstance(hub.hub.backplane, RedisBackplane), type(hub.hub.backplane)
message = hub.call(hub.hub.publish, "shared/from-kernel", {"value": 42})
print("published", message.offset, flush=True)
"""


def redis_reachable() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=0.5) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """The machine's Redis with a key prefix of this test's own, deleted afterwards."""
    if not redis_reachable():
        reason = "no Redis reachable at 127.0.0.1:6379 (start redis-server to test start_hub(redis=...))"
        if os.environ.get("RTNB_CI"):
            pytest.fail(reason + " (required: RTNB_CI is set)")
        pytest.skip(reason)
    import redis.asyncio

    prefix = f"rtnb:test-{uuid.uuid4().hex[:12]}:"
    yield f"redis://127.0.0.1:6379/0?prefix={prefix}"
    client = redis.asyncio.Redis(host=REDIS[0], port=REDIS[1], db=0)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
        assert not [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
    finally:
        await client.aclose()


async def test_kernel_hub_on_redis_reaches_another_hub(redis_url: str) -> None:
    other = HubServer(Hub(backplane=RedisBackplane(redis_url)), host="127.0.0.1", port=0)
    await other.start()
    try:
        async with WirePeer(other.ws_url) as peer:
            reply = await peer.request({"op": "subscribe", "topic": "shared/#"})
            assert reply["op"] != "error", reply
            kernel = await asyncio.create_subprocess_exec(
                sys.executable, "-c", KERNEL, redis_url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            output, errors = await asyncio.wait_for(kernel.communicate(), timeout=60)
            assert kernel.returncode == 0, errors.decode()
            assert output.decode().startswith("published "), output
            (message,) = await peer.messages(1)
            assert message["topic"] == "shared/from-kernel" and message["data"] == {"value": 42}
    finally:
        await other.stop()
