"""The Redis backplane over TLS (``rediss://``), against a ``redis-server`` that accepts only TLS.

The server's certificate is self-signed, made with ``cryptography`` when the
test runs, and handed to the hubs in the URL (``ssl_ca_certs=``), as a user
with a private CA would. The server listens on a TLS port only (``--port 0``),
so every connection the hubs make, commands, publishing and pub/sub
listeners alike, is necessarily TLS. Skipped, with the reason, where
``redis-server`` is absent or was built without TLS.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis_helpers import collect, eventually, free_port, redis_hub
from tls_support import self_signed_certificate

from rtnb.backplane.redis import BackplaneState, RedisBackplane
from rtnb.testing import WirePeer, wait_until

pytestmark = pytest.mark.timeout(60)


def skip_or_fail(reason: str) -> None:
    """Skip where a user's machine lacks a TLS-capable redis-server; CI must run the test (RTNB_CI)."""
    if os.environ.get("RTNB_CI"):
        pytest.fail(f"{reason} (CI must provide it)")
    pytest.skip(reason)


@pytest.fixture
async def tls_redis_url(tmp_path: Path) -> AsyncIterator[str]:
    """``rediss://`` URL of a TLS-only ``redis-server`` of this test's own."""
    if shutil.which("redis-server") is None:
        skip_or_fail("redis-server is not installed (apt-get install redis-server)")
    certificate, key = self_signed_certificate(tmp_path)
    port = free_port()
    log = tmp_path / "redis.log"
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            str(certificate),
            "--tls-key-file",
            str(key),
            "--tls-ca-cert-file",
            str(certificate),
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
            "--logfile",
            str(log),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={certificate}"
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not (log.exists() and "Ready to accept connections" in log.read_text()):
            if process.poll() is not None:
                output = (process.stdout.read() if process.stdout else b"").decode(errors="replace")
                # A redis-server built without TLS refuses the tls-* options at start.
                if "tls" in output.lower() or "tls" in (log.read_text() if log.exists() else "").lower():
                    skip_or_fail(f"this redis-server has no TLS support: {output.strip()[-300:]}")
                raise RuntimeError(f"redis-server exited with {process.returncode}: {output}")
            if loop.time() > deadline:
                raise RuntimeError(f"redis-server did not start on TLS port {port}")
            await asyncio.sleep(0.02)
        yield url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


async def publish(peer: WirePeer, topic: str, data: Any) -> dict[str, Any]:
    return await peer.request({"op": "publish", "topic": topic, "data": data, "id": uuid.uuid4().hex[:8]})


async def test_hubs_act_as_one_over_tls_and_recover_a_killed_listener(tls_redis_url: str) -> None:
    import redis.asyncio

    prefix = "rtnb:tls:"
    async with redis_hub(tls_redis_url, prefix, "A") as hub_a, redis_hub(tls_redis_url, prefix, "B") as hub_b:
        backplane_b = hub_b.hub.backplane
        assert isinstance(backplane_b, RedisBackplane)
        assert backplane_b.state is BackplaneState.CONNECTED, backplane_b.health()
        async with (
            WirePeer(hub_a.ws_url) as publisher,
            WirePeer(hub_b.ws_url) as subscriber,
            WirePeer(hub_a.ws_url) as asker,
        ):
            await subscriber.request({"op": "subscribe", "topic": "secure/#"})
            acks = [await publish(publisher, "secure/t", n) for n in range(10)]
            assert [ack.get("offset") for ack in acks] == list(range(1, 11)), acks
            received, errors = await collect(subscriber, 10)
            assert errors == [] and [item["data"] for item in received] == list(range(10))

            async def members() -> list[dict[str, str]]:
                reply = await asker.request({"op": "presence", "topic": "secure/t", "id": "p"})
                return list(reply["members"])

            assert subscriber.welcome is not None
            expected = [{"client": subscriber.welcome["client"], "hub": "B"}]
            assert await eventually(members, expected) == expected

            # The pub/sub listener reconnects over TLS too, and catches up from history.
            admin = redis.asyncio.Redis.from_url(tls_redis_url)
            try:
                listeners = [c["id"] for c in await admin.client_list(_type="pubsub") if c.get("name") == "rtnb-B"]
                assert len(listeners) == 1
                await admin.client_kill_filter(_id=listeners[0])
            finally:
                await admin.aclose()
            await wait_until(lambda: backplane_b.state is not BackplaneState.CONNECTED, timeout=5)
            for n in range(10, 15):
                assert (await publish(publisher, "secure/t", n))["op"] == "ack"
            await wait_until(lambda: backplane_b.state is BackplaneState.CONNECTED, timeout=10)
            received, _ = await collect(subscriber, 5)
            assert [item["offset"] for item in received] == list(range(11, 16))


async def test_a_certificate_the_hub_cannot_verify_is_refused(tls_redis_url: str) -> None:
    """Without the CA the self-signed certificate fails verification: the hub runs degraded, never in clear."""
    url = tls_redis_url.partition("?")[0]
    async with redis_hub(url, "rtnb:tls-unverified:", "X", start_timeout=1.0) as server:
        backplane = server.hub.backplane
        assert isinstance(backplane, RedisBackplane)
        assert backplane.state is not BackplaneState.CONNECTED
        assert "certificate" in (backplane.last_error or "").lower() or "ssl" in (backplane.last_error or "").lower(), (
            backplane.health()
        )
