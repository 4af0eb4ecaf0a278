"""LoopThread: the one helper that runs an asyncio loop on a thread (sync client, embedded hub, views' pump)."""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from collections.abc import Callable, Iterator

import pytest

from rtnb.client._loop_thread import LoopThread, LoopTimeout


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    started = LoopThread("rtnb-test-loop").start()
    yield started
    started.stop()
    assert not started.thread.is_alive() and started.loop.is_closed()


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_runs_coroutines_on_its_own_named_thread(loop_thread: LoopThread) -> None:
    async def where() -> tuple[str, asyncio.AbstractEventLoop]:
        return threading.current_thread().name, asyncio.get_running_loop()

    assert loop_thread.run(where(), timeout=5) == ("rtnb-test-loop", loop_thread.loop)
    assert loop_thread.thread.daemon and loop_thread.alive and not loop_thread.on_thread


def test_the_coroutines_error_is_raised_as_is(loop_thread: LoopThread) -> None:
    async def fail() -> None:
        raise ValueError("bad input")

    async def own_timeout() -> None:
        raise TimeoutError("the coroutine's own")

    with pytest.raises(ValueError, match="bad input"):
        loop_thread.run(fail(), timeout=5)
    with pytest.raises(TimeoutError, match="the coroutine's own") as caught:
        loop_thread.run(own_timeout(), timeout=5)
    assert not isinstance(caught.value, LoopTimeout)


def test_a_wait_past_its_timeout_raises_loop_timeout_and_cancels_the_coroutine(loop_thread: LoopThread) -> None:
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(LoopTimeout):
        loop_thread.run(forever(), timeout=0.05)
    assert cancelled.wait(5)


def test_waiting_from_the_loops_own_thread_is_refused(loop_thread: LoopThread) -> None:
    async def nested() -> str:
        async def inner() -> None:
            pass

        try:
            loop_thread.run(inner())
        except RuntimeError as error:
            return str(error)
        return "no error"

    assert "deadlock" in loop_thread.run(nested(), timeout=5)


def test_call_soon_runs_on_the_loop_until_it_stops(loop_thread: LoopThread) -> None:
    seen: list[str] = []
    assert loop_thread.call_soon(lambda: seen.append(threading.current_thread().name))
    wait_until(lambda: seen == ["rtnb-test-loop"])
    loop_thread.stop()
    assert loop_thread.finished and not loop_thread.alive
    assert not loop_thread.call_soon(seen.append, "late")


def test_stop_is_idempotent_and_a_stopped_loop_takes_no_coroutine() -> None:
    loop_thread = LoopThread("rtnb-test-loop").start()
    loop_thread.stop()
    loop_thread.stop()
    assert loop_thread.loop.is_closed() and not loop_thread.thread.is_alive()

    async def never() -> None:
        pass

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine was never awaited" would be an error here
        with pytest.raises(RuntimeError):
            loop_thread.submit(never())


def test_a_loop_never_started_is_closed_by_stop() -> None:
    loop_thread = LoopThread("rtnb-test-loop")
    loop_thread.stop()
    assert loop_thread.loop.is_closed() and not loop_thread.alive
