"""``Status``: connection state, message rates, conflation and gaps at a glance.

It subscribes to nothing: it reads the client's state and the counters of the
views it watches, a couple of times a second, on the same loop as the views.
"""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import Sequence
from typing import Any

from ..core.errors import BadField
from ._pump import find_target_loop
from ._view import View, ViewState, open_client

__all__ = ["Status"]


class Status:
    """A small HTML panel describing a client and some views.

    Args:
        views: the views whose counters to show (received, rate, conflated, gaps).
        client: the client whose state to show; the shared default, or the first
            view's client, when omitted.
        refresh: updates per second.
        loop: where updates run; the kernel's loop by default.
    """

    def __init__(
        self,
        views: Sequence[View] = (),
        *,
        client: Any = None,
        refresh: float = 2.0,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        import ipywidgets

        if refresh <= 0:
            raise BadField(f"refresh must be greater than 0, not {refresh}.")
        self.views = list(views)
        if client is None:
            client = self.views[0].client if self.views else open_client()[0]
        self.client = client
        self.interval = 1.0 / refresh
        self.loop = loop or find_target_loop()
        self.state = ViewState.RUNNING
        self.updates = 0
        self._previous: tuple[float, int] = (time.monotonic(), self._received())
        self._timer: asyncio.TimerHandle | None = None
        self.widget = ipywidgets.HTML(value=self.render(0.0))
        self.widget.observe(self._on_comm_change, names="comm")
        self.loop.call_soon_threadsafe(self._tick)

    def _received(self) -> int:
        return sum(view.stats.received for view in self.views)

    def render(self, rate: float) -> str:
        state = getattr(self.client, "state", None)
        state_text = getattr(state, "value", None) or str(state)
        colour = {"open": "green", "connected": "green"}.get(str(state_text).lower(), "orange")
        cells = [f'<b style="color:{colour}">{html.escape(str(state_text))}</b>', f"{rate:,.0f} msg/s"]
        totals = [view.stats for view in self.views]
        if totals:
            cells.append(f"{sum(s.received for s in totals):,} received")
            cells.append(f"{sum(s.conflated for s in totals):,} conflated")
            cells.append(f"{sum(s.gaps for s in totals):,} gaps")
            errors = sum(s.errors for s in totals)
            if errors:
                cells.append(f'<span style="color:red">{errors:,} errors</span>')
        style = "font-family:sans-serif;font-size:0.85em"
        return f'<div class="rtnb-status" style="{style}">' + " · ".join(cells) + "</div>"

    def _tick(self) -> None:
        self._timer = None
        if self.state is ViewState.STOPPED:
            return
        now, received = time.monotonic(), self._received()
        then, before = self._previous
        self._previous = (now, received)
        rate = (received - before) / (now - then) if now > then else 0.0
        value = self.render(rate)
        if value != self.widget.value:
            self.widget.value = value
            self.updates += 1
        self._timer = self.loop.call_later(self.interval, self._tick)

    def _on_comm_change(self, change: dict[str, Any]) -> None:
        if change.get("new") is None:
            self.stop()

    def stop(self) -> None:
        """Stop refreshing. Idempotent; safe from any thread."""
        if self.state is ViewState.STOPPED:
            return
        self.state = ViewState.STOPPED
        timer = self._timer
        if timer is not None:
            try:
                self.loop.call_soon_threadsafe(timer.cancel)
            except RuntimeError:  # the loop is closed; its timers went with it
                pass

    def close(self) -> None:
        self.stop()
        self.widget.close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
