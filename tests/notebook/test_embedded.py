"""The embedded hub, the pump's frame budget, and the lazy imports."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

import rtnb
from rtnb.core.errors import BadField, Unavailable
from rtnb.core.message import Message
from rtnb.notebook import current_hub, start_hub
from rtnb.notebook._fields import parse_window
from rtnb.notebook._pump import Frame, Pump
from rtnb.notebook.embedded import EmbeddedHub
from rtnb.testing import WirePeer, wait_until


def test_start_hub_is_idempotent_and_reports_where_it_listens(embedded: EmbeddedHub) -> None:
    assert start_hub() is embedded and rtnb.start_hub() is embedded
    assert current_hub() is embedded
    assert embedded.url.startswith("http://127.0.0.1:")
    assert embedded.ws_url == embedded.url.replace("http", "ws") + "/ws"
    assert embedded.url in repr(embedded) and "running" in repr(embedded)
    with pytest.raises(Unavailable):
        start_hub(port=embedded.port + 1)


def test_call_runs_on_the_hub_thread(embedded: EmbeddedHub) -> None:
    assert embedded.call(threading.current_thread) is embedded.thread
    message = embedded.call(embedded.hub.publish_now, "embedded/call", {"value": 1})
    assert message.offset >= 1

    async def coroutine() -> str:
        return threading.current_thread().name

    assert embedded.call(coroutine) == "rtnb-hub"


def test_hub_keeps_serving_while_the_main_thread_is_busy(embedded: EmbeddedHub) -> None:
    """A device on another thread talks to the hub while this thread blocks."""
    done = threading.Event()
    replies: list[Any] = []

    def device() -> None:
        async def talk() -> None:
            async with WirePeer(embedded.ws_url) as peer:
                await peer.request({"op": "subscribe", "topic": "busy/#"})
                replies.append(await peer.request({"op": "publish", "topic": "busy/x", "data": 1, "id": "a"}))
                replies.append((await peer.messages(1))[0])

        asyncio.run(talk())
        done.set()

    thread = threading.Thread(target=device)
    thread.start()
    assert done.wait(10)  # this thread is blocked the whole time, like a busy cell
    thread.join(5)
    assert replies[0]["op"] == "ack" and replies[1]["data"] == 1


def test_stopped_hub_refuses_calls_and_a_new_one_can_start() -> None:
    # in a fresh process: this package's tests share one running embedded hub
    code = (
        "import threading\n"
        "from rtnb.core.errors import Unavailable\n"
        "from rtnb.notebook import current_hub, start_hub\n"
        "hub = start_hub()\n"
        "hub.stop(); hub.stop()\n"
        "assert not hub.thread.is_alive() and current_hub() is None and 'stopped' in repr(hub)\n"
        "try:\n"
        "    hub.call(int)\n"
        "    raise SystemExit('call on a stopped hub did not fail')\n"
        "except Unavailable:\n"
        "    pass\n"
        "again = start_hub()\n"
        "assert again is not hub and again.running\n"
        "assert any(t.name == 'rtnb-hub' for t in threading.enumerate())\n"
        # no explicit stop: the atexit hook must stop it and the process must exit
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_pump_applies_at_most_max_fps_frames() -> None:
    frames: list[Frame] = []
    pump = Pump(frames.append, max_fps=20, keep_per_topic=2)
    total = 3000

    def feed() -> None:
        for offset in range(1, total + 1):
            pump.feed(Message(f"t/{offset % 3}", offset, 1, time.time(), offset))

    started = time.monotonic()
    thread = threading.Thread(target=feed)
    thread.start()
    thread.join()
    await wait_until(lambda: sum(frame.received for frame in frames) == total)
    elapsed = time.monotonic() - started
    assert len(frames) <= 20 * elapsed + 1
    assert pump.stats.received == total
    assert pump.stats.conflated == total - sum(len(m) for frame in frames for m in frame.messages.values())
    assert all(len(messages) <= 2 for frame in frames for messages in frame.messages.values())
    last = frames[-1].messages
    assert max(message.offset for messages in last.values() for message in messages) == total
    pump.stop()
    pump.feed(Message("t/0", total + 1, 1, time.time(), 0))
    assert pump.stats.received == total


async def test_pump_keeps_going_after_a_failing_frame() -> None:
    calls: list[int] = []

    def apply(frame: Frame) -> None:
        calls.append(frame.received)
        if len(calls) == 1:
            raise ValueError("boom")

    pump = Pump(apply, max_fps=100)
    pump.feed(Message("t", 1, 1, 0.0, 1))
    await wait_until(lambda: len(calls) == 1)
    pump.feed(Message("t", 2, 1, 0.0, 2))
    await wait_until(lambda: len(calls) == 2)
    assert pump.stats.errors == 1
    pump.stop()


def test_bad_pump_and_window_arguments() -> None:
    with pytest.raises(BadField):
        Pump(lambda frame: None, max_fps=0, loop=asyncio.new_event_loop())
    assert parse_window(500) == (500, None)
    assert parse_window("60s") == (None, 60.0) and parse_window("250ms") == (None, 0.25)
    assert parse_window("5m") == (None, 300.0)
    for bad in (0, "-1s", "fast", True, [1]):
        with pytest.raises(BadField):
            parse_window(bad)  # type: ignore[arg-type]


def test_import_rtnb_stays_light() -> None:
    code = (
        "import sys, rtnb, rtnb.notebook\n"
        "heavy = [m for m in ('plotly', 'ipywidgets', 'pandas', 'comm', 'anywidget') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert callable(rtnb.start_hub) and 'plotly' not in sys.modules\n"
        "assert rtnb.LiveChart.__name__ == 'LiveChart' and rtnb.Dashboard.__name__ == 'Dashboard'\n"
        "assert 'plotly' not in sys.modules  # imported when a chart is built, not before\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_the_view_key_admits_a_browser_from_another_origin_to_read_only(embedded: EmbeddedHub) -> None:
    """Views' pages are served by Jupyter (another origin): the embedded hub lets them in with its view key only."""
    import json

    import websockets
    from websockets.asyncio.client import connect

    origin = "http://localhost:8888"
    assert embedded.view_key and len(embedded.view_key) >= 24
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(embedded.ws_url, origin=origin):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403
    with pytest.raises(websockets.InvalidStatus):
        async with connect(f"{embedded.ws_url}?token=not-the-key", origin=origin):  # type: ignore[arg-type]
            pass
    embedded.call(embedded.hub.publish_now, "viewkey/a", {"value": 1})
    async with connect(f"{embedded.ws_url}?token={embedded.view_key}", origin=origin) as socket:  # type: ignore[arg-type]
        assert json.loads(await socket.recv())["op"] == "welcome"
        await socket.send(json.dumps({"op": "subscribe", "topic": "viewkey/#", "last": 1, "id": "s"}))
        replies = [json.loads(line) for _ in range(2) for line in str(await socket.recv()).splitlines()]
        assert any(reply.get("op") == "message" and reply["data"] == {"value": 1} for reply in replies), replies
        await socket.send(json.dumps({"op": "publish", "topic": "viewkey/a", "data": 2, "id": "p"}))
        answer = json.loads(str(await socket.recv()).splitlines()[0])
        assert answer["op"] == "error" and answer["id"] == "p"  # read only: a view never publishes
