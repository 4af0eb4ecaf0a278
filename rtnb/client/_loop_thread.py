"""An asyncio event loop on a daemon thread of its own: the one way rtnb runs a loop beside the caller's.

The synchronous client, the kernel's embedded hub and the views' private frame
loop each need a loop that keeps running while the caller's thread blocks (a
script, a notebook cell) and that works from inside a running loop (a Jupyter
kernel, ``asyncio.run``). :class:`LoopThread` is that loop: start it, hand it
coroutines or callbacks from any thread, stop it. It lives in the client layer,
the lowest that needs it; the notebook and the simulator build on it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread", "LoopTimeout"]

T = TypeVar("T")


class LoopTimeout(TimeoutError):
    """:meth:`LoopThread.run` waited ``timeout`` seconds without a result (not an error the coroutine raised)."""


class LoopThread:
    """An event loop that runs forever on a daemon thread, until :meth:`stop`.

    Args:
        name: the thread's name (``rtnb-client``, ``rtnb-hub``...), as debuggers and logs show it.

    Attributes:
        loop: the event loop; use it from other threads only through :meth:`submit`,
            :meth:`run` and :meth:`call_soon`.
        thread: the daemon thread running ``loop``.
    """

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._finished = threading.Event()

    def start(self) -> LoopThread:
        """Start the thread; the loop takes work at once (queued until it runs). Returns ``self``."""
        self.thread.start()
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            try:
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            finally:
                self.loop.close()
                self._finished.set()

    @property
    def on_thread(self) -> bool:
        """True when called from the loop's own thread (a callback running on the loop)."""
        return threading.current_thread() is self.thread

    @property
    def finished(self) -> bool:
        """True once the loop has stopped and is closed: it takes no more work."""
        return self._finished.is_set()

    @property
    def alive(self) -> bool:
        """True from :meth:`start` until the loop is stopped and closed."""
        return self.thread.is_alive() and not self._finished.is_set()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coroutine`` on the loop, from any thread; its future gives the result.

        Raises:
            RuntimeError: the loop is closed (the coroutine is closed, never run).
        """
        try:
            return asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        except RuntimeError:
            coroutine.close()
            raise

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the loop and wait for its result, from another thread.

        Raises:
            LoopTimeout: no result within ``timeout`` seconds (the coroutine is cancelled).
            RuntimeError: called on the loop's own thread, where waiting would deadlock.
            Exception: whatever the coroutine raised.
        """
        if self.on_thread:
            coroutine.close()
            raise RuntimeError("waiting on a loop from its own thread would deadlock")
        future = self.submit(coroutine)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if future.done():  # the coroutine's own TimeoutError, not the wait's
                raise
            future.cancel()
            raise LoopTimeout(f"no result within {timeout} s") from None

    def call_soon(self, callback: Callable[..., object], *args: Any) -> bool:
        """Run ``callback(*args)`` on the loop soon, from any thread; False when the loop is closed."""
        try:
            self.loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed
            return False
        return True

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the loop (what is scheduled is dropped) and wait up to ``timeout`` s for its thread to end.

        Safe to call twice, before :meth:`start`, and from the loop's own thread
        (which then ends once the current callback returns, unwaited).
        """
        if not self.thread.is_alive():
            if not self.thread.ident and not self.loop.is_closed():  # never started
                self.loop.close()
            return
        self.call_soon(self.loop.stop)
        if not self.on_thread:
            self.thread.join(timeout)
