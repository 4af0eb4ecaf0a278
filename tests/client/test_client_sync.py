"""The thread-backed sync client: from threads, from inside a running loop, with callbacks.

The hub runs on its own thread here (as a kernel's embedded hub does), so the
test thread may block on the client without blocking the hub.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from client_helpers import ThreadedHub

import rtnb
from rtnb.client import Client, ClientState, connect
from rtnb.core.errors import ConnectionClosed, RtnbError, Timeout, Unavailable, WildcardPublish
from rtnb.core.message import Message

THREADS = 8
PER_THREAD = 150


def client_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "rtnb-client"]


def test_publish_and_iterate_with_timeouts(threaded_hub: ThreadedHub) -> None:
    with rtnb.connect(threaded_hub.url) as client:
        subscription = client.subscribe("s/#", last=5)
        assert client.publish("s/x", {"n": 1}) == 1
        item = subscription.get(timeout=5)
        assert isinstance(item, Message) and item.data == {"n": 1}
        with pytest.raises(Timeout):
            subscription.get(timeout=0.05)
        assert client.state is ClientState.CONNECTED
        assert client.positions == {"s/x": (item.epoch, 1)}
        subscription.close()
        with pytest.raises(ConnectionClosed):
            subscription.get(timeout=1)
    assert client_threads() == []


def test_many_threads_publish_and_read_at_once(threaded_hub: ThreadedHub) -> None:
    with connect(threaded_hub.url) as client:
        subscription = client.subscribe("threads/#")

        def publish_all(worker: int) -> list[int]:
            return [client.publish(f"threads/{worker}", index) for index in range(PER_THREAD)]  # type: ignore[misc]

        with ThreadPoolExecutor(THREADS) as pool:
            offsets = list(pool.map(publish_all, range(THREADS)))
        assert offsets == [list(range(1, PER_THREAD + 1))] * THREADS
        items = [subscription.get(timeout=5) for _ in range(THREADS * PER_THREAD)]
        for worker in range(THREADS):
            mine = [item.data for item in items if item.topic == f"threads/{worker}"]  # type: ignore[union-attr]
            assert mine == list(range(PER_THREAD))  # in order per topic


def test_several_clients_on_several_threads(threaded_hub: ThreadedHub) -> None:
    def own_client(worker: int) -> int:
        with connect(threaded_hub.url) as client:
            subscription = client.subscribe(f"own/{worker}")
            for index in range(50):
                client.publish(f"own/{worker}", index, ack=False)
            return sum(subscription.get(timeout=5).data for _ in range(50))  # type: ignore[union-attr, misc]

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(own_client, range(4))) == [sum(range(50))] * 4
    assert client_threads() == []


def test_works_from_inside_a_running_event_loop(threaded_hub: ThreadedHub) -> None:
    """As in a Jupyter kernel: a loop is running on the calling thread."""

    async def cell() -> list[object]:
        assert asyncio.get_running_loop().is_running()
        with connect(threaded_hub.url) as client:
            subscription = client.subscribe("cell/#")
            client.publish("cell/x", "from a running loop")
            other_task = asyncio.ensure_future(asyncio.sleep(0))
            item = subscription.get(timeout=5)
            await other_task  # the caller's loop is still usable afterwards
            return [item.data]  # type: ignore[union-attr]

    assert asyncio.run(asyncio.wait_for(cell(), 20)) == ["from a running loop"]


def test_callbacks_run_on_the_client_thread_and_may_publish_without_ack(threaded_hub: ThreadedHub) -> None:
    threads: list[str] = []
    done = threading.Event()

    with connect(threaded_hub.url) as client:

        def on_command(item: object) -> None:
            threads.append(threading.current_thread().name)
            with pytest.raises(RtnbError, match="deadlock"):
                client.publish("device/state", "x")  # ack=True would wait on this very thread
            client.publish("device/state", {"on": item.data["on"]}, ack=False)  # type: ignore[attr-defined]

        client.subscribe("device/cmd", on_command)
        states = client.subscribe("device/state")
        client.publish("device/cmd", {"on": True})
        reply = states.get(timeout=5)
        assert reply.data == {"on": True}  # type: ignore[union-attr]
        client.subscribe("device/done", lambda item: done.set())
        client.publish("device/done", 1)
        assert done.wait(5)
    assert threads == ["rtnb-client"]


def test_iteration_ends_when_the_client_closes(threaded_hub: ThreadedHub) -> None:
    client = connect(threaded_hub.url)
    subscription = client.subscribe("end/#")
    for index in range(3):
        client.publish("end/x", index)
    collected: list[object] = []
    reader = threading.Thread(target=lambda: collected.extend(item.data for item in subscription))  # type: ignore[union-attr]
    reader.start()
    client.close()
    reader.join(5)
    assert not reader.is_alive()
    assert collected == [0, 1, 2]
    client.close()  # twice is fine


def test_errors_are_typed(threaded_hub: ThreadedHub) -> None:
    with connect(threaded_hub.url) as client:
        with pytest.raises(WildcardPublish):
            client.publish("a/#", 1)
    with pytest.raises(Unavailable):
        Client("http://127.0.0.1:9", fail_fast=True)
    assert client_threads() == []


def test_connect_without_url_uses_the_process_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    embedded = pytest.importorskip("rtnb.notebook.embedded")
    for variable in ("RTNB_URL", "RTNB_TOKEN", "RTNB_HUB_INFO", "JPY_PARENT_PID"):
        monkeypatch.delenv(variable, raising=False)
    started = embedded.current_hub() is None
    hub = embedded.start_hub()
    try:
        with rtnb.connect() as client:
            assert client.url == hub.url
            assert client.publish("found/x", 1) >= 1  # type: ignore[operator]
    finally:
        if started:
            hub.stop()


def test_connect_without_url_finds_the_jupyter_servers_hub(
    threaded_hub: ThreadedHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedded = pytest.importorskip("rtnb.notebook.embedded")
    monkeypatch.setattr(embedded, "current_hub", lambda: None)  # no hub in this process
    monkeypatch.setenv("RTNB_URL", threaded_hub.url)  # what a kernel of a Jupyter server with rtnb sees
    monkeypatch.setenv("RTNB_TOKEN", "jupyter-token")
    with rtnb.connect() as client:
        assert client.url == threaded_hub.url
        assert client.async_client.headers["Authorization"] == "token jupyter-token"
        assert client.publish("jupyter/x", 1) == 1


def test_the_client_layers_connect_needs_a_url() -> None:
    with pytest.raises(TypeError, match=r"rtnb\.connect\(\) without a URL"):
        connect(None)  # type: ignore[arg-type]
