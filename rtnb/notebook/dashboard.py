"""``Dashboard``: views and controls laid out in a grid that fits its cell, stopped together.

The grid has at most ``columns`` columns, each at least :data:`MIN_COLUMN_WIDTH`
pixels wide: in a narrower cell (a 480 px window, a side panel) it puts fewer
views on a row instead of squeezing them, so every view stays readable.

The Dashboard is an anywidget like every view (``mo.ui.anywidget(dashboard)``
works in marimo). Its children travel as widget references; the browser draws
each rtnb child with the views library itself (the same code a view's own
output runs), so no ipywidgets view manager is needed for them. Any other
ipywidget child is drawn by the host's widget manager where it offers one.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import ipywidgets
import traitlets
from ipywidgets import widget_serialization

from ..core.errors import BadArgument, BadArgumentType
from ._assets import library_reply
from ._widget import ViewWidget, display_widget

__all__ = ["MIN_COLUMN_WIDTH", "Dashboard", "grid_columns"]

#: a grid column is never narrower than this (pixels), unless the cell itself is
MIN_COLUMN_WIDTH = 320
GAP = 8


def grid_columns(columns: int) -> str:
    """CSS ``grid-template-columns``: up to ``columns`` columns of at least :data:`MIN_COLUMN_WIDTH` px."""
    share = f"(100% - {(columns - 1) * GAP}px) / {columns}"
    return f"repeat(auto-fill, minmax(min(100%, max({MIN_COLUMN_WIDTH}px, calc({share}))), 1fr))"


def _widget_of(item: Any) -> ipywidgets.Widget:
    widget = getattr(item, "widget", item)
    if not isinstance(widget, ipywidgets.Widget):
        raise BadArgumentType(f"a Dashboard item must be a view, a control or an ipywidget, not {type(item).__name__}.")
    return widget


class Dashboard(ViewWidget):
    """A grid of views (anything with a ``.widget``, or a bare widget), itself a widget.

    Args:
        items: views, controls, Status panels or ipywidgets, in reading order.
        columns: grid columns.
        title: a heading above the grid (escaped).

    In the browser its root is ``.rtnb-view.rtnb-dashboard``: ``data-rtnb-points``
    is the sum of its views' points (Status panels left out: they count their
    views' again), ``data-rtnb-mode`` is ``relay`` if any of its views relays,
    else ``direct`` once one of them is direct.
    """

    children = traitlets.Tuple().tag(sync=True, **widget_serialization)

    def __init__(self, items: Sequence[Any], columns: int = 2, title: str | None = None) -> None:
        # set first: a widget refused below is still closed (and so stopped) when collected
        self.items: list[Any] = []
        self.static: Any = None
        if columns < 1:
            raise BadArgument(f"columns must be at least 1, not {columns}.")
        items = list(items)
        widgets = tuple(_widget_of(item) for item in items)
        config = {
            "columns": columns,
            "title": title or "",
            "template": grid_columns(columns),
            "gap": GAP,
            "min_column_width": MIN_COLUMN_WIDTH,
        }
        super().__init__(kind="dashboard", transport="direct", config=config, children=widgets)
        self.items = items
        self.title, self.columns = title, columns
        self.observe(self._on_comm_change, names="comm")
        self.on_msg(self._on_browser_message)

    def _on_browser_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """A loader in a host without a widget manager asks once for the views library."""
        if isinstance(content, dict) and content.get("op") == "library":
            self.send(library_reply())

    @property
    def widget(self) -> Dashboard:
        """The Dashboard itself (it is its own widget; kept for code written for the views' ``.widget``)."""
        return self

    def _on_comm_change(self, change: dict[str, Any]) -> None:
        if change.get("new") is None:
            self.stop()

    def stop(self) -> None:
        """Stop every item that can be stopped (and the grid's static fallback's refreshes)."""
        if self.static is not None:
            self.static.close()
        for item in self.items:
            stop = getattr(item, "stop", None)
            if callable(stop):
                stop()

    def close(self) -> None:
        """Stop everything and close every widget."""
        self.stop()
        for item in self.items:
            close = getattr(item, "close", None)
            if callable(close):
                close()
        super().close()

    def static_html(self) -> str:
        """Each item's static fallback, in a grid (see :mod:`rtnb.notebook._static`)."""
        cells = [item.static_html() for item in self.items if callable(getattr(item, "static_html", None))]
        heading = f"<h3>{html.escape(self.title)}</h3>" if self.title else ""
        return (
            f'<div class="rtnb-static rtnb-static-dashboard">{heading}<div style="display:grid;'
            f'grid-template-columns:{grid_columns(self.columns)};gap:{GAP}px">{"".join(cells)}</div></div>'
        )

    def _catch_up(self) -> None:
        for item in self.items:
            catch_up = getattr(item, "catch_up", None)
            if callable(catch_up):
                catch_up()

    def _ipython_display_(self) -> None:
        """Show the grid and its static fallback, refreshed as its views' data changes."""
        from ._static import StaticDisplay

        display_widget(self)
        static = self.static = StaticDisplay(self.static_html, self._catch_up)
        for item in self.items:
            displays = getattr(item, "static_displays", None)
            if isinstance(displays, list):
                displays.append(static)
        static.show()

    def __repr__(self) -> str:
        return f"<Dashboard {len(self.items)} items, columns={self.columns}>"
