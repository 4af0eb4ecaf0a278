"""What every live view shares: a subscription, a pump, a widget and a clean stop.

A view subscribes through the public sync client (``rtnb.connect``). The
client calls back on its own thread; the view's :class:`~rtnb.notebook._pump.Pump`
carries the items to the kernel's loop as conflated frames, and the view's
``apply_frame`` turns a frame into widget changes there. ``stop()`` (or
closing the widget) closes the subscription, stops the pump, and closes the
client if the view opened it, so nothing keeps running behind a dead cell.
"""

from __future__ import annotations

import abc
import asyncio
import atexit
import enum
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..core.errors import BadField, RtnbError
from ._pump import Frame, Pump

__all__ = ["View", "ViewState", "ViewStats", "default_client", "open_client"]

log = logging.getLogger("rtnb.views")

_default_client: Any = None
_default_client_lock = threading.Lock()


def default_client() -> Any:
    """The process's shared sync client, from ``rtnb.connect()`` (created on first use).

    ``connect()`` with no URL finds the Jupyter server's hub or starts the
    embedded one, so views work in Binder and in a plain kernel alike.
    """
    global _default_client
    with _default_client_lock:
        client = _default_client
        if client is None or getattr(client.state, "value", None) == "closed":
            from .._connect import connect

            client = _default_client = connect()
            atexit.register(_close_default_client)
        return client


def _close_default_client() -> None:
    global _default_client
    client, _default_client = _default_client, None
    if client is not None:
        client.close()


def open_client(client: Any = None, url: str | None = None, token: str | None = None) -> tuple[Any, bool]:
    """``(client, owned)``: the given client, a new one for ``url``, or the shared default."""
    if client is not None:
        if url is not None:
            raise BadField("Pass either client= or url= to a view, not both.")
        return client, False
    if url is not None:
        from ..client import connect

        return connect(url, token=token), True
    return default_client(), False


class ViewState(enum.Enum):
    """A view's lifecycle: RUNNING until stopped, then STOPPED for good."""

    RUNNING = "running"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ViewStats:
    """A snapshot of a view's counters.

    Attributes:
        received: messages delivered to the view by its subscription.
        applied: messages that reached the widget.
        conflated: messages replaced by newer ones before a frame (never drawn
            individually), or refused for being over the topic limit.
        frames: frames applied (each is at most one batch of widget updates).
        gaps: gap notices (messages the hub could not deliver).
        errors: frames that failed to apply (logged).
        seconds: time since the view started.
    """

    received: int
    applied: int
    conflated: int
    frames: int
    gaps: int
    errors: int
    seconds: float


class View(abc.ABC):
    """Base of live views: subscribe ``pattern``, apply frames to ``self.widget``.

    Subclasses build their widget, then call :meth:`_start`, and implement
    :meth:`apply_frame`.

    Args:
        pattern: topic or MQTT-style pattern to subscribe.
        client: a sync client (``rtnb.connect(...)``); the shared default when omitted.
        url: open a client of this hub for the view alone (closed on stop).
        token: token for ``url``.
        max_fps: frames per second at most (the view's budget of widget updates).
        last: replay the last N messages of each matching topic first.
        loop: the loop that applies frames; the kernel's by default.
    """

    keep_per_topic = 1
    max_topics = 100

    def __init__(
        self,
        pattern: str,
        *,
        client: Any = None,
        url: str | None = None,
        token: str | None = None,
        max_fps: float = 10.0,
        last: int | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.pattern = pattern
        self.max_fps = max_fps
        self.last = last
        self.state = ViewState.RUNNING
        self.applied = 0
        self._client_args = (client, url, token)
        self._loop = loop
        self.client: Any = None
        self._owns_client = False
        self.subscription: Any = None
        self.pump: Pump | None = None
        self.widget: Any = None
        self._started_at = time.monotonic()

    # -- lifecycle -------------------------------------------------------------------

    def _start(self) -> None:
        """Subscribe and start pumping; call once the widget exists."""
        self.pump = Pump(
            self._apply,
            max_fps=self.max_fps,
            keep_per_topic=self.keep_per_topic,
            max_topics=self.max_topics,
            loop=self._loop,
            name=type(self).__name__,
        )
        self._watch_widget_close(self.widget)
        client, url, token = self._client_args
        self.client, self._owns_client = open_client(client, url, token)
        try:
            self.subscription = self.client.subscribe(self.pattern, callback=self.pump.feed, last=self.last)
        except BaseException:
            self.stop()
            raise

    def _apply(self, frame: Frame) -> None:
        if self.state is ViewState.RUNNING:
            self.apply_frame(frame)
            self.applied += sum(len(messages) for messages in frame.messages.values())

    @abc.abstractmethod
    def apply_frame(self, frame: Frame) -> None:
        """Turn one frame into widget changes; runs on the kernel's loop."""

    def _watch_widget_close(self, widget: Any) -> None:
        if widget is not None and hasattr(widget, "observe"):
            widget.observe(self._on_comm_change, names="comm")

    def _on_comm_change(self, change: dict[str, Any]) -> None:
        if change.get("new") is None:
            self.stop()

    def stop(self) -> None:
        """Unsubscribe, stop the pump, close the view's own client. Idempotent."""
        if self.state is ViewState.STOPPED:
            return
        self.state = ViewState.STOPPED
        if self.pump is not None:
            self.pump.stop()
        subscription, self.subscription = self.subscription, None
        try:
            if subscription is not None:
                subscription.close()
        except RtnbError as error:  # the connection is already gone: nothing left to release
            log.debug("closing %s's subscription: %s", type(self).__name__, error)
        if self._owns_client and self.client is not None:
            self.client.close()

    def close(self) -> None:
        """Stop the view and close its widget (removing it from the page)."""
        self.stop()
        if self.widget is not None:
            self.widget.close()

    # -- introspection ---------------------------------------------------------------

    @property
    def stats(self) -> ViewStats:
        pump = self.pump.stats if self.pump is not None else None
        return ViewStats(
            received=pump.received if pump else 0,
            applied=self.applied,
            conflated=pump.conflated if pump else 0,
            frames=pump.frames if pump else 0,
            gaps=pump.gaps if pump else 0,
            errors=pump.errors if pump else 0,
            seconds=time.monotonic() - self._started_at,
        )

    @property
    def conflated(self) -> int:
        """Messages this view merged away instead of drawing each (see :class:`ViewStats`)."""
        return self.pump.stats.conflated if self.pump is not None else 0

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        stats = self.stats
        return (
            f"<{type(self).__name__} {self.pattern!r} {self.state.value}: "
            f"{stats.received} received, {stats.conflated} conflated, {stats.frames} frames>"
        )
