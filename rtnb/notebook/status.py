"""``Status``: each watched view's data path, message rate, lag, gaps and points.

Drawn in the browser from the views' own counters (every view on a page
registers its feed there), refreshed twice a second by default: rates are per
view's subscription, as the browser measures them, never summed over views of
the same stream, and nothing crosses the kernel to update it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from ..core.errors import BadField
from ._view import ViewState
from ._widget import ViewWidget, display_widget

__all__ = ["Status"]


class Status(ViewWidget):
    """A small panel describing some views, as their browser sees them (an anywidget, like the views).

    Args:
        views: the views to describe (anything with a view widget).
        client: accepted for compatibility; the panel reads the views' own connections.
        refresh: updates per second.
        loop: accepted for compatibility (the panel runs in the browser).
    """

    def __init__(
        self,
        views: Sequence[Any] = (),
        *,
        client: Any = None,
        refresh: float = 2.0,
        loop: Any = None,
    ) -> None:
        if refresh <= 0:
            raise BadField(f"refresh must be greater than 0, not {refresh}.")
        self.views = list(views)
        self.client = client
        self.refresh = refresh
        self.state = ViewState.RUNNING
        watched = [view.widget for view in self.views if isinstance(getattr(view, "widget", None), ViewWidget)]
        super().__init__(
            kind="status",
            transport="direct",
            config={
                "views": [view.view_id for view in self.views if view.widget in watched],
                "names": [f"{type(view).__name__} {view.pattern}" for view in self.views if view.widget in watched],
                "interval_ms": round(1000 / refresh),
            },
        )
        self.widget = self

    def static_html(self) -> str:
        from ._static import wrap

        lines = []
        for view in self.views:
            stats = view.stats
            lines.append(
                f"<li>{html.escape(type(view).__name__)} {html.escape(view.pattern)}: {view.transport}, "
                f"{stats.received:,} received by the kernel, {stats.gaps:,} gaps</li>"
            )
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
        """Nothing runs in the kernel; kept so a Dashboard can stop everything alike."""
        self.state = ViewState.STOPPED

    def close(self) -> None:
        self.stop()
        super().close()
