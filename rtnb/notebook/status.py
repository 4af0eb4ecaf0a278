"""``Status``: each watched view's data path, message rate, lag, gaps and points.

Drawn in the browser from the views' own counters (every view on a page
registers its feed there), refreshed twice a second by default: rates are per
view's subscription, as the browser measures them, never summed over views of
the same stream, and nothing crosses the kernel to update it.

When the kernel's hub has an MQTT bridge, the panel also shows its row
(broker, state, retries, last error, messages in/out), from the bridge's
status topic: the browser subscribes to it itself, or the kernel relays it
(see :mod:`rtnb.notebook._bridge_row`).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from ..core.errors import BadArgument
from ._bridge_row import BridgeRelay, bridge_row_config, bridge_static_line
from ._view import ViewState, default_client
from ._widget import ViewWidget, browser_access, display_widget

__all__ = ["Status"]


class Status(ViewWidget):
    """A small panel describing some views, as their browser sees them (an anywidget, like the views).

    Args:
        views: the views to describe (anything with a view widget).
        client: the hub whose MQTT bridge the panel shows; by default the first view's, else
            the kernel's (``rtnb.connect()``). The views' rows read the views' own connections.
        refresh: updates per second.
        loop: the loop the bridge status relay runs on; the kernel's by default.
        bridge: show the row of the hub's MQTT bridge (``tr[data-rtnb-bridge="mqtt"]``), if it has one.
    """

    # until __init__ runs (a panel refused by its own checks is still collected: Widget.__del__ closes it)
    bridge_relay: BridgeRelay | None = None

    def __init__(
        self,
        views: Sequence[Any] = (),
        *,
        client: Any = None,
        refresh: float = 2.0,
        loop: Any = None,
        bridge: bool = True,
    ) -> None:
        if refresh <= 0:
            raise BadArgument(f"refresh must be greater than 0, not {refresh}.")
        self.views = list(views)
        self.client = client
        self.refresh = refresh
        self.state = ViewState.RUNNING
        bridge_row: dict[str, str] | None = None
        hub: dict[str, Any] = {}
        if bridge:
            if client is None:
                client = next((view.client for view in self.views if getattr(view, "client", None) is not None), None)
            hub_client = client if client is not None else default_client()
            bridge_row = bridge_row_config(hub_client)
            if bridge_row is not None:
                hub = browser_access(hub_client)
                self.bridge_relay = BridgeRelay(hub_client, bridge_row["topic"], self._send_bridge, loop)
        watched = [view.widget for view in self.views if isinstance(getattr(view, "widget", None), ViewWidget)]
        super().__init__(
            kind="status",
            transport="direct",
            hub=hub,
            config={
                "views": [view.view_id for view in self.views if view.widget in watched],
                "names": [f"{type(view).__name__} {view.pattern}" for view in self.views if view.widget in watched],
                "interval_ms": round(1000 / refresh),
                "bridge": bridge_row,
            },
        )
        self.widget = self
        self.on_msg(self._on_browser_message)

    def _send_bridge(self, content: dict[str, Any]) -> None:
        self.widget.send(content)

    def _on_browser_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """``{"op": "bridge"}``: this browser cannot reach the hub; relay the bridge's status."""
        if not isinstance(content, dict):
            return
        if content.get("op") == "bridge" and self.bridge_relay is not None and self.state is ViewState.RUNNING:
            self.bridge_relay.request()
        elif content.get("op") == "library":
            from ._assets import library_reply

            self.widget.send(library_reply())

    def static_html(self) -> str:
        from ._static import wrap

        lines = []
        for view in self.views:
            stats = view.stats
            lines.append(
                f"<li>{html.escape(type(view).__name__)} {html.escape(view.pattern)}: {view.transport}, "
                f"{stats.received:,} received by the kernel, {stats.gaps:,} gaps</li>"
            )
        bridge = self.bridge_relay.snapshot() if self.bridge_relay is not None else None
        if bridge is not None:
            lines.append(f"<li>{html.escape(bridge_static_line(bridge))}</li>")
        return wrap("status", "Status", f'<ul style="margin:2px 0">{"".join(lines)}</ul>')

    def _ipython_display_(self) -> None:

        from ._static import StaticDisplay

        display_widget(self)
        static = StaticDisplay(self.static_html)
        for view in self.views:  # refreshed with its views' data
            displays = getattr(view, "static_displays", None)
            if isinstance(displays, list):
                displays.append(static)
        static.show()

    def stop(self) -> None:
        """Stop relaying the bridge status (the only thing the panel runs in the kernel)."""
        self.state = ViewState.STOPPED
        if self.bridge_relay is not None:
            self.bridge_relay.stop()

    def close(self) -> None:
        self.stop()
        super().close()
