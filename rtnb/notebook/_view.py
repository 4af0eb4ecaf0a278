"""What every live view shares: its widget, its two data paths, a clean stop.

The browser draws every view (``static/views.js``) and holds its window. How it
gets messages is the view's *transport*:

* ``"direct"``: the view's JavaScript subscribes to the hub itself (rtnb.js);
  nothing per message crosses the kernel. The kernel does not subscribe.
* ``"relay"``: the kernel subscribes (through the public sync client) and
  forwards, over the widget's comm, only what is new since the previous frame,
  at most ``max_fps`` messages a second (see :class:`~rtnb.notebook._pump.Pump`).
* ``"auto"`` (the default): the browser tries direct and falls back to relay
  within 3 seconds (and back again); the kernel keeps a subscription (its
  *mirror*: the relay's buffer, and what ``.stats``, ``.topics`` and friends
  read) but sends nothing until a browser asks it to relay.

The browser speaks to the kernel only when its path changes: ``{"op": "relay",
"id", "since": {topic: [epoch, offset]}}`` (relay to me from there) and
``{"op": "direct", "id"}`` (stop relaying for me). Offsets make each switch
lossless: the kernel sends what its buffer holds after ``since``, the browser's
own client resumes from the last offset it drew.
"""

from __future__ import annotations

import asyncio
import atexit
import enum
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

from ..core.errors import BadArgument, RtnbError
from ..core.position import Position
from ._pump import Frame, Pump
from ._static import StaticDisplay
from ._widget import TRANSPORTS, ViewWidget, browser_access, display_widget

__all__ = ["Position", "View", "ViewState", "ViewStats", "default_client", "open_client"]

log = logging.getLogger("rtnb.views")


_default_client: Any = None
_default_client_lock = threading.Lock()


def default_client() -> Any:
    """The process's shared sync client of the hub at hand (created on first use).

    Like ``rtnb.connect()`` with no URL, it finds the Jupyter server's hub or starts
    the embedded one, so views work in Binder and in a plain kernel alike.
    """
    global _default_client
    with _default_client_lock:
        client = _default_client
        if client is None or getattr(client.state, "value", None) == "closed":
            from ._hub_at_hand import connect_hub_at_hand

            client = _default_client = connect_hub_at_hand()
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
            raise BadArgument("Pass either client= or url= to a view, not both.")
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
    """A snapshot of a view's kernel-side counters.

    Attributes:
        received: messages delivered to the kernel's subscription (0 in direct mode).
        applied: messages that reached the kernel's buffer.
        conflated: messages dropped before a frame (over the buffer or topic limit).
        frames: frames applied in the kernel.
        gaps: gap notices (messages the hub could not deliver).
        errors: frames that failed to apply (logged).
        seconds: time since the view started.
        relayed_messages: comm messages sent to browsers in relay mode.
        relayed_bytes: their binary buffers' bytes.
        relaying: browser views currently fed by relay.
    """

    received: int
    applied: int
    conflated: int
    frames: int
    gaps: int
    errors: int
    seconds: float
    relayed_messages: int = 0
    relayed_bytes: int = 0
    relaying: int = 0


class View(ViewWidget):
    """Base of live views: an anywidget (:class:`ViewWidget`), a mirror subscription, relay on request.

    A view *is* its widget (``view.widget is view``, kept for older code), so hosts
    that take an anywidget (marimo's ``mo.ui.anywidget(view)``) take a view.
    Subclasses set their configuration, then call :meth:`_start`; they implement
    :meth:`browser_config`, :meth:`apply_frame` (fold a frame into the kernel's
    buffer) and :meth:`encode_since` (the buffer after some positions, as comm
    messages).

    Args:
        pattern: topic or MQTT-style pattern to subscribe.
        transport: ``"auto"``, ``"direct"`` or ``"relay"`` (see the module docstring).
        client: a sync client (``rtnb.connect(...)``). Without one (and without ``url``) the
            kernel's mirror opens a connection of its own (``rtnb.connect()``), closed with the view.
        url: open a client of this hub for the view alone (closed on stop).
        token: token for ``url`` (kept in the kernel; never put in the widget state).
        max_fps: relay messages per second at most (and the kernel's frame rate).
        last: replay the last N messages of each matching topic first.
        loop: the loop that applies frames; the kernel's by default.
    """

    view_kind: ClassVar[str] = ""
    # until __init__ runs (a view refused by its own checks is still collected: Widget.__del__ closes it)
    state = ViewState.STOPPED
    widget: Any = None
    keep_per_topic = 1
    max_topics = 100

    def __init__(
        self,
        pattern: str,
        *,
        transport: str = "auto",
        client: Any = None,
        url: str | None = None,
        token: str | None = None,
        max_fps: float = 10.0,
        last: int | None = None,
        loop: Any = None,
    ) -> None:
        if transport not in TRANSPORTS:
            raise BadArgument(f"transport must be one of {', '.join(map(repr, TRANSPORTS))}, not {transport!r}.")
        if max_fps <= 0:
            raise BadArgument(f"max_fps must be greater than 0, not {max_fps}.")
        self.pattern = pattern
        self._transport_wanted = transport
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
        self.relaying: set[str] = set()
        self.relayed_messages = 0
        self.relayed_bytes = 0
        self._relayed_to: dict[str, Position] = {}
        #: names this view on the page (Status panels find views by it)
        self.view_id = uuid.uuid4().hex
        #: the static fallbacks showing this view (its own, a Dashboard's), refreshed as data changes
        self.static_displays: list[StaticDisplay] = [StaticDisplay(self.static_html, self.catch_up)]
        self._started_at = time.monotonic()

    # -- what subclasses provide -------------------------------------------------------

    def browser_config(self) -> dict[str, Any]:
        """The widget's ``config``: everything the browser needs to draw and subscribe."""
        raise NotImplementedError

    def direct_unsupported(self) -> str | None:
        """Why this view cannot subscribe from the browser (e.g. a Python callable field), or None."""
        return None

    def apply_frame(self, frame: Frame) -> None:
        """Fold one frame into the kernel's buffer; runs on the kernel's loop."""
        raise NotImplementedError

    def encode_since(self, since: dict[str, Position]) -> list[tuple[dict[str, Any], list[bytes]]]:
        """Comm messages carrying what the kernel's buffer holds after ``since`` (all of it for unknown topics)."""
        raise NotImplementedError

    def buffer_end(self) -> dict[str, Position]:
        """The position of the newest message of each topic in the kernel's buffer."""
        raise NotImplementedError

    def history_last(self) -> int | None:
        """``last`` for the kernel's subscription: the user's, or what fills the window."""
        return self.last

    def static_html(self) -> str:
        """The static fallback a saved notebook shows (see :mod:`rtnb.notebook._static`)."""
        from ._static import wrap

        return wrap(self.view_kind, self.pattern, "")

    # -- lifecycle -------------------------------------------------------------------

    def _start(self) -> None:
        """Build the widget and, unless direct, subscribe the kernel's mirror."""
        client, url, token = self._client_args
        if client is None and url is None and self._transport_wanted != "direct":
            # the mirror gets a connection of its own: a client shared with other views would replay
            # history only for topics it does not follow yet (it delivers each message once)
            from ._hub_at_hand import connect_hub_at_hand

            self.client, self._owns_client = connect_hub_at_hand(), True
        else:
            self.client, self._owns_client = open_client(client, url, token)
        reason = self.direct_unsupported()
        if reason is not None and self._transport_wanted == "direct":
            self.stop()
            raise BadArgument(f"transport='direct' is not possible for this view: {reason}")
        transport = "relay" if reason is not None else self._transport_wanted
        ViewWidget.__init__(
            self,
            kind=self.view_kind,
            config={**self.browser_config(), "view_id": self.view_id},
            hub={} if reason is not None else browser_access(self.client),
            transport=transport,
        )
        self.widget = self
        self.on_msg(self._on_browser_message)
        self.observe(self._on_comm_change, names="comm")
        if transport == "direct":
            return
        self.pump = Pump(
            self._apply,
            max_fps=self.max_fps,
            keep_per_topic=self.keep_per_topic,
            max_topics=self.max_topics,
            loop=self._loop,
            name=type(self).__name__,
        )
        try:
            self.subscription = self.client.subscribe(self.pattern, callback=self.pump.feed, last=self.history_last())
        except BaseException:
            self.stop()
            raise

    def _apply(self, frame: Frame) -> None:
        if self.state is not ViewState.RUNNING:
            return
        self.apply_frame(frame)
        self.applied += sum(len(messages) for messages in frame.messages.values())
        if self.relaying:
            if frame.gaps:
                self.widget.send({"op": "gaps", "count": len(frame.gaps)})
            self._relay(self._relayed_to)
        for display in self.static_displays:
            display.data_changed()

    def _relay(self, since: dict[str, Position]) -> None:
        """Send what the buffer holds after ``since``, then remember the buffer's end as sent."""
        for content, buffers in self.encode_since(since):
            self.widget.send(content, buffers)
            self.relayed_messages += 1
            self.relayed_bytes += sum(len(buffer) for buffer in buffers)
        self._relayed_to = self.buffer_end()

    def _on_browser_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        op = content.get("op")
        if op == "library":
            from ._assets import library_reply

            self.widget.send(library_reply())
        elif op == "relay" and self.state is ViewState.RUNNING and self.pump is not None:
            self.relaying.add(str(content.get("id")))
            self._relay(_positions(content.get("since")))
        elif op == "direct":
            self.relaying.discard(str(content.get("id")))

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
        self.static_displays[0].close()

    def close(self) -> None:
        """Stop the view and close its widget (removing it from the page)."""
        self.stop()
        if self.widget is not None:
            super().close()

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
            relayed_messages=self.relayed_messages,
            relayed_bytes=self.relayed_bytes,
            relaying=len(self.relaying),
        )

    @property
    def conflated(self) -> int:
        """Messages this view's kernel buffer dropped (see :class:`ViewStats`)."""
        return self.pump.stats.conflated if self.pump is not None else 0

    def _ipython_display_(self) -> None:
        """Show the widget and, beside it, its static fallback for saved notebooks."""

        display_widget(self)
        self.catch_up()  # what has arrived so far, into the fallback
        self.static_displays[0].show()

    def catch_up(self) -> None:
        """Apply what the pump holds now, when called on its loop (e.g. at the end of a cell)."""
        if self.pump is not None and self.state is ViewState.RUNNING and _on_loop(self.pump.loop):
            self.pump.flush()

    def __repr__(self) -> str:
        stats = self.stats
        return (
            f"<{type(self).__name__} {self.pattern!r} {self._transport_wanted} {self.state.value}: "
            f"{stats.received} received, {stats.conflated} conflated, {stats.frames} frames>"
        )


def _on_loop(loop: Any) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _positions(value: Any) -> dict[str, Position]:
    """Positions from a browser's ``since`` (``{topic: [epoch, offset]}``); malformed entries are ignored."""
    positions: dict[str, Position] = {}
    if isinstance(value, dict):
        for topic, position in value.items():
            if (
                isinstance(topic, str)
                and isinstance(position, (list, tuple))
                and len(position) == 2
                and all(isinstance(part, int) and not isinstance(part, bool) for part in position)
            ):
                positions[topic] = Position(position[0], position[1])
    return positions
