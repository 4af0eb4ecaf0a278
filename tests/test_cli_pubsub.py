"""``rtnb publish`` and ``rtnb subscribe`` as real processes against a real hub."""

from __future__ import annotations

import asyncio
import os
import sys

import orjson

from rtnb.server.runner import HubServer
from rtnb.testing import wait_until


async def rtnb(*args: str, stdin: bytes | None = None, timeout: float = 30) -> tuple[int, str, str]:
    """Run ``python -m rtnb ARGS`` to completion; returns (status, stdout, stderr)."""
    environment = {key: value for key, value in os.environ.items() if key not in ("RTNB_URL", "RTNB_TOKEN")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rtnb",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_publish_one_message_prints_its_offset(hub_server: HubServer) -> None:
    assert await rtnb("publish", "plant/boiler/temp", '{"value": 71.5}', "--url", hub_server.url) == (0, "1\n", "")
    assert await rtnb("publish", "plant/boiler/temp", "72", "--url", hub_server.url) == (0, "2\n", "")
    history = hub_server.hub.backplane.store.get("plant/boiler/temp")  # type: ignore[attr-defined]
    assert [message.data for message in history] == [{"value": 71.5}, 72]


async def test_publish_json_lines_from_stdin(hub_server: HubServer) -> None:
    lines = b'{"n": 1}\n\n"two"\n[3]\n'
    status, out, _ = await rtnb("publish", "lines/x", "--url", hub_server.url, stdin=lines)
    assert (status, out.split()) == (0, ["1", "2", "3"])
    status, out, _ = await rtnb("publish", "lines/y", "--url", hub_server.url, "--no-ack", stdin=b"1\n2\n")
    assert (status, out) == (0, "")
    await wait_until(lambda: hub_server.hub.backplane.store.get("lines/y") is not None)  # type: ignore[attr-defined]
    assert [m.data for m in hub_server.hub.backplane.store.get("lines/x")] == [{"n": 1}, "two", [3]]  # type: ignore[attr-defined]


async def test_publish_refuses_bad_input_with_a_clear_message(hub_server: HubServer) -> None:
    status, _, err = await rtnb("publish", "bad/x", "not json", "--url", hub_server.url)
    assert status == 2 and "The message is not JSON" in err and "quote strings" in err
    status, out, err = await rtnb("publish", "bad/y", "--url", hub_server.url, stdin=b"1\n{oops\n3\n")
    assert status == 2 and out == "1\n"
    assert "Line 2 is not JSON" in err and "1 message(s) were published before the error" in err
    status, _, err = await rtnb("publish", "bad/+", "1", "--url", hub_server.url)
    assert status == 2 and "wildcard" in err.lower()
    status, _, err = await rtnb("publish", "t", "1", "--url", "http://127.0.0.1:9")
    assert status == 1 and "Cannot reach the hub" in err


async def test_subscribe_prints_json_lines_with_last_and_live(hub_server: HubServer) -> None:
    hub = hub_server.hub
    for value in range(5):
        hub.publish_now("plant/a", value)
    running = asyncio.ensure_future(
        rtnb("subscribe", "plant/#", "--last", "2", "--count", "4", "--url", hub_server.url)
    )
    await wait_until(lambda: hub.fanout.subscription_count() == 1, timeout=20)
    hub.publish_now("plant/b", {"live": True})
    hub.publish_now("plant/a", 5)
    status, out, err = await running
    assert status == 0, err
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert [(line["op"], line["topic"], line["data"]) for line in lines] == [
        ("message", "plant/a", 3),
        ("message", "plant/a", 4),
        ("message", "plant/b", {"live": True}),
        ("message", "plant/a", 5),
    ]
    assert all({"offset", "epoch", "ts"} <= line.keys() for line in lines)


async def test_subscribe_table_format(hub_server: HubServer) -> None:
    hub_server.hub.publish_now("room/temp", {"value": 21.5})
    status, out, err = await rtnb(
        "subscribe", "room/+", "--last", "1", "--count", "1", "--format", "table", "--url", hub_server.url
    )
    assert status == 0, err
    header, row = out.splitlines()
    assert header.split() == ["time", "topic", "offset", "data"]
    assert row.split()[1:] == ["room/temp", "1", '{"value":21.5}']


async def test_subscribe_refuses_a_bad_pattern(hub_server: HubServer) -> None:
    status, _, err = await rtnb("subscribe", "a/#/b", "--url", hub_server.url)
    assert status == 2 and "rtnb subscribe:" in err and "'#'" in err
