"""A single Redis whose pub/sub link stalls, or that comes back from an older file: never a silent loss.

* A hub's Redis connections go through a TCP proxy the test controls; the proxy
  stops forwarding Redis' replies (the link is frozen, not closed, as a half-open
  TCP connection or a hung proxy would be). The hub must notice within 5 s,
  and once the link works again, deliver what was published meanwhile, to every
  subscriber, exactly once.
* A private Redis is restored from an RDB file saved earlier, so offsets go
  backwards: hubs must see a new epoch with a gap, not drop the new messages as
  duplicates of ones they already delivered.
"""

from __future__ import annotations

import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from redis_cluster import need_redis_server
from redis_helpers import PrivateRedis, collect, redis_hub

from rtnb.backplane.redis import BackplaneState, RedisBackplane
from rtnb.testing import WirePeer, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "client"))
from tcp_proxy import TcpProxy  # the proxy the client tests use, one directory over

pytestmark = pytest.mark.timeout(60)


async def publish(peer: WirePeer, topic: str, data: Any) -> dict[str, Any]:
    return await peer.request({"op": "publish", "topic": topic, "data": data, "id": uuid.uuid4().hex[:8]})


def offsets(items: list[dict[str, Any]], topic: str) -> list[int]:
    return [item["offset"] for item in items if item.get("op") == "message" and item["topic"] == topic]


async def test_a_stalled_listener_is_noticed_within_5_s_and_what_it_missed_is_delivered(
    private_redis: PrivateRedis,
) -> None:
    async with TcpProxy("127.0.0.1", private_redis.port) as proxy:
        through_proxy = f"redis://127.0.0.1:{proxy.port}/0"
        async with (
            redis_hub(private_redis.url, "rtnb:stall:", "A") as hub_a,
            redis_hub(through_proxy, "rtnb:stall:", "B") as hub_b,
        ):
            backplane_b = hub_b.hub.backplane
            assert isinstance(backplane_b, RedisBackplane)
            async with (
                WirePeer(hub_a.ws_url) as publisher,
                WirePeer(hub_b.ws_url) as first,
                WirePeer(hub_b.ws_url) as second,
            ):
                await first.request({"op": "subscribe", "topic": "frozen/#"})
                await second.request({"op": "subscribe", "topic": "frozen/t"})
                await publish(publisher, "frozen/t", 0)
                for peer in (first, second):
                    await peer.messages(1)

                proxy.forward_replies = False  # the link stays open; nothing comes back
                began = time.monotonic()
                for n in range(1, 6):
                    assert (await publish(publisher, "frozen/t", n))["op"] == "ack"
                await wait_until(lambda: backplane_b.state is not BackplaneState.CONNECTED, timeout=5)
                assert time.monotonic() - began < 5
                proxy.forward_replies = True
                await wait_until(lambda: backplane_b.state is BackplaneState.CONNECTED, timeout=15)
                for peer in (first, second):
                    items, errors = await collect(peer, 5, timeout=10)
                    assert offsets(items, "frozen/t") == [2, 3, 4, 5, 6]
                    assert [error["code"] for error in errors] in ([], ["unavailable"])
                await publish(publisher, "frozen/t", "sentinel")
                for peer in (first, second):
                    item = await peer.next_op("message")
                    assert (item["offset"], item["data"]) == (7, "sentinel")  # nothing twice


class RdbRedis(PrivateRedis):
    """A private Redis that persists only when told (``SAVE``), so a test can restore an older file."""

    async def start(self) -> None:
        import subprocess

        from rtnb.testing import wait_until as until

        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--dbfilename",
                "dump.rdb",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        from redis_helpers import redis_reachable

        await until(lambda: redis_reachable("127.0.0.1", self.port), timeout=10, interval=0.02)


async def test_redis_restored_from_an_older_file_starts_a_new_epoch_with_a_gap(tmp_path: Path) -> None:
    import redis.asyncio

    need_redis_server()
    server = RdbRedis(tmp_path)
    await server.start()
    try:
        async with redis_hub(server.url, "rtnb:rdb:", "A") as hub_a, redis_hub(server.url, "rtnb:rdb:", "B") as hub_b:
            async with WirePeer(hub_a.ws_url) as publisher, WirePeer(hub_b.ws_url) as subscriber:
                await subscriber.request({"op": "subscribe", "topic": "rdb/#"})
                old = [await publish(publisher, "rdb/t", n) for n in range(5)]
                admin = redis.asyncio.Redis.from_url(server.url)
                try:
                    await admin.save()
                finally:
                    await admin.aclose()
                shutil.copy(tmp_path / "dump.rdb", tmp_path / "older.rdb")
                for n in range(5, 10):
                    await publish(publisher, "rdb/t", n)
                assert offsets(await subscriber.messages(10), "rdb/t") == list(range(1, 11))

                server.stop()  # SIGKILL: nothing saved since
                shutil.copy(tmp_path / "older.rdb", tmp_path / "dump.rdb")
                await server.start()  # back at offset 5: offsets 6.. would be handed out again
                for hub in (hub_a, hub_b):
                    await wait_until(lambda hub=hub: hub.hub.backplane.state is BackplaneState.CONNECTED, timeout=10)
                again = await publish(publisher, "rdb/t", "after the restore")
                assert again["op"] == "ack" and again["epoch"] > old[0]["epoch"], again
                gap = await subscriber.next_op("gap")
                assert (gap["topic"], gap["reason"], gap["from"]) == ("rdb/t", "epoch_changed", 11)
                item = await subscriber.next_op("message")
                assert (item["epoch"], item["offset"], item["data"]) == (
                    again["epoch"],
                    again["offset"],
                    "after the restore",
                )
                async with WirePeer(hub_a.ws_url) as resumer:
                    cursor = {"rdb/t": {"offset": 10, "epoch": old[0]["epoch"]}}
                    await resumer.request({"op": "subscribe", "topic": "rdb/t", "since": cursor})
                    gap = await resumer.next_op("gap")
                    assert gap["reason"] == "epoch_changed"
    finally:
        server.stop()
