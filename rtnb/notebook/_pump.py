"""The pump: subscription items in on the client's thread, frames out on the kernel's loop.

Why: a hub can push 10,000 messages a second; a widget that re-rendered on
each would flood Jupyter's IOPub channel (about 1000 messages/s and 1 MB/s)
and freeze the browser. And ipywidgets are not thread-safe: a trait change
sends a comm message and touches ``_property_lock``/``hold_sync`` state that
the kernel's main thread also uses when the frontend writes back. So:

1. The client calls :meth:`Pump.feed` on its own thread. Items go into a
   bounded, conflating buffer (per topic, the newest ``keep_per_topic``
   messages; older ones are dropped and counted as *conflated*).
2. The first item of a frame wakes the target loop with
   ``call_soon_threadsafe`` (the only thread-safe entry to an asyncio loop;
   the kernel's Tornado ``IOLoop.add_callback`` is the same call). Idle views
   cost nothing: no periodic timer runs.
3. On the loop, a frame runs at most ``max_fps`` times a second: it takes the
   whole buffer and hands one :class:`Frame` to the view, which applies it in
   one go (one ``batch_update`` for a chart).

The target loop is the kernel's (found through IPython), else the loop running
in the thread that built the view, else one private daemon thread shared by
all views of the process (plain scripts have no frontend to protect).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ..client._loop_thread import LoopThread
from ..core.errors import BadArgument
from ..core.history import Gap
from ..core.message import Message

__all__ = ["Frame", "Pump", "PumpStats", "find_target_loop"]

log = logging.getLogger("rtnb.pump")

#: gaps kept between two frames; more are counted, not kept
MAX_GAPS_PER_FRAME = 100


@dataclass
class Frame:
    """What arrived since the previous frame, conflated.

    Attributes:
        messages: per topic, the newest messages in arrival order (at most
            ``keep_per_topic`` each); topics in first-seen order.
        gaps: gap notices received (at most :data:`MAX_GAPS_PER_FRAME`).
        received: messages that arrived for this frame.
        conflated: of those, how many were dropped before the frame.
    """

    messages: dict[str, list[Message]]
    gaps: list[Gap]
    received: int
    conflated: int


@dataclass
class PumpStats:
    """Counters of a pump; plain ints, readable from any thread.

    ``conflated`` counts messages that never reached the view individually:
    a newer message for the same topic replaced them within one frame, or
    they belonged to a topic over ``max_topics``.
    """

    received: int = 0
    conflated: int = 0
    gaps: int = 0
    frames: int = 0
    errors: int = 0
    topics_refused: int = 0
    started_at: float = field(default_factory=time.monotonic)


class _Buffer:
    """Bounded per-topic rings, filled on one thread and taken on another."""

    def __init__(self, keep_per_topic: int, max_topics: int) -> None:
        self.keep_per_topic = keep_per_topic
        self.max_topics = max_topics
        self.rings: dict[str, deque[Message]] = {}
        self.known_topics: set[str] = set()
        self.gaps: list[Gap] = []
        self.received = 0
        self.dropped = 0

    def add(self, item: Message | Gap, stats: PumpStats) -> None:
        if isinstance(item, Gap):
            stats.gaps += 1
            if len(self.gaps) < MAX_GAPS_PER_FRAME:
                self.gaps.append(item)
            return
        self.received += 1
        ring = self.rings.get(item.topic)
        if ring is None:
            if item.topic not in self.known_topics:
                if len(self.known_topics) >= self.max_topics:
                    self.dropped += 1
                    stats.topics_refused += 1
                    return
                self.known_topics.add(item.topic)
            ring = self.rings[item.topic] = deque(maxlen=self.keep_per_topic)
        if len(ring) == self.keep_per_topic:
            self.dropped += 1
        ring.append(item)

    def take(self) -> Frame:
        frame = Frame({topic: list(ring) for topic, ring in self.rings.items()}, self.gaps, self.received, self.dropped)
        self.rings = {}
        self.gaps = []
        self.received = self.dropped = 0
        return frame


_private_loop: LoopThread | None = None
_private_loop_lock = threading.Lock()


def _shared_private_loop() -> asyncio.AbstractEventLoop:
    """One daemon thread with a loop, for views built outside any loop or kernel."""
    global _private_loop
    with _private_loop_lock:
        if _private_loop is None or _private_loop.finished:
            _private_loop = LoopThread("rtnb-pump").start()
        return _private_loop.loop


def find_target_loop() -> asyncio.AbstractEventLoop:
    """The loop that may touch widgets: the kernel's, else the caller's, else a private one."""
    if "IPython" in sys.modules:
        from IPython import get_ipython

        kernel = getattr(get_ipython(), "kernel", None)
        io_loop = getattr(kernel, "io_loop", None)
        # ipykernel's io_loop is a Tornado IOLoop, whose asyncio_loop is the asyncio loop under it
        asyncio_loop: asyncio.AbstractEventLoop | None = getattr(io_loop, "asyncio_loop", None)
        if asyncio_loop is not None:
            return asyncio_loop
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return _shared_private_loop()


class Pump:
    """Gathers items off-thread and applies them as frames, at most ``max_fps`` a second.

    Args:
        apply: called on the target loop with each :class:`Frame`.
        max_fps: frames per second at most; the view's budget on the wire.
        keep_per_topic: newest messages kept per topic between frames
            (1 for latest-value views, the window for charts).
        max_topics: distinct topics accepted; messages of further topics are
            counted in ``stats.topics_refused`` and dropped.
        loop: where ``apply`` runs; see :func:`find_target_loop`.
        name: for log lines.
    """

    def __init__(
        self,
        apply: Callable[[Frame], None],
        *,
        max_fps: float = 10.0,
        keep_per_topic: int = 1,
        max_topics: int = 100,
        loop: asyncio.AbstractEventLoop | None = None,
        name: str = "view",
    ) -> None:
        if max_fps <= 0:
            raise BadArgument(f"max_fps must be greater than 0, not {max_fps}.")
        if keep_per_topic < 1 or max_topics < 1:
            raise BadArgument("keep_per_topic and max_topics must be at least 1.")
        self.apply = apply
        self.max_fps = max_fps
        self.loop = loop or find_target_loop()
        self.name = name
        self.stats = PumpStats()
        self._buffer = _Buffer(keep_per_topic, max_topics)
        self._lock = threading.Lock()
        self._frame_pending = False
        self._next_frame_at = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._stopped = False

    @property
    def stopped(self) -> bool:
        return self._stopped

    def feed(self, item: Message | Gap) -> None:
        """Take one subscription item; safe from any thread."""
        if self._stopped:
            return
        with self._lock:
            if isinstance(item, Message):
                self.stats.received += 1
            self._buffer.add(item, self.stats)
            if self._frame_pending:
                return
            self._frame_pending = True
        try:
            self.loop.call_soon_threadsafe(self._schedule_frame)
        except RuntimeError:  # the target loop is closed: nothing can display anything
            self._stopped = True

    def _schedule_frame(self) -> None:
        if self._stopped:
            return
        delay = max(0.0, self._next_frame_at - self.loop.time())
        self._timer = self.loop.call_later(delay, self._run_frame)

    def _run_frame(self) -> None:
        self._timer = None
        with self._lock:
            frame = self._buffer.take()
            self._frame_pending = False
            self.stats.conflated += frame.conflated
        if self._stopped or not (frame.messages or frame.gaps):
            return
        self._next_frame_at = self.loop.time() + 1.0 / self.max_fps
        self.stats.frames += 1
        try:
            self.apply(frame)
        except Exception:  # a bad frame must not stop the view: log it, count it, go on
            self.stats.errors += 1
            log.exception("rtnb %s could not apply a frame", self.name)

    def flush(self) -> None:
        """Apply what is buffered now, ignoring the frame budget; call on the target loop."""
        if self._timer is not None:
            self._timer.cancel()
        self._run_frame()

    def stop(self) -> None:
        """Stop applying frames; buffered items are discarded. Safe from any thread, twice."""
        self._stopped = True
        with self._lock:
            self._buffer.take()
        timer = self._timer
        if timer is not None:
            try:
                self.loop.call_soon_threadsafe(timer.cancel)
            except RuntimeError:  # loop already closed: the timer died with it
                pass
