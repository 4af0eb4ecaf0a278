"""``Dashboard``: views and controls laid out in a grid that fits its cell, stopped together.

The grid has at most ``columns`` columns, each at least :data:`MIN_COLUMN_WIDTH`
pixels wide: in a narrower cell (a 480 px window, a side panel) it puts fewer
views on a row instead of squeezing them, so every view stays readable.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from ..core.errors import BadField

__all__ = ["MIN_COLUMN_WIDTH", "Dashboard", "grid_columns"]

#: a grid column is never narrower than this (pixels), unless the cell itself is
MIN_COLUMN_WIDTH = 320
GAP = 8


def grid_columns(columns: int) -> str:
    """CSS ``grid-template-columns``: up to ``columns`` columns of at least :data:`MIN_COLUMN_WIDTH` px."""
    share = f"(100% - {(columns - 1) * GAP}px) / {columns}"
    return f"repeat(auto-fill, minmax(min(100%, max({MIN_COLUMN_WIDTH}px, calc({share}))), 1fr))"


class Dashboard:
    """A grid of views (anything with a ``.widget``, or a bare widget).

    Args:
        items: views, controls, Status panels or ipywidgets, in reading order.
        columns: grid columns.
        title: a heading above the grid (escaped).
    """

    def __init__(self, items: Sequence[Any], columns: int = 2, title: str | None = None) -> None:
        import ipywidgets

        if columns < 1:
            raise BadField(f"columns must be at least 1, not {columns}.")
        self.items = list(items)
        self.title, self.columns = title, columns
        self.static: Any = None
        widgets = [getattr(item, "widget", item) for item in self.items]
        self.grid = ipywidgets.GridBox(
            widgets,
            layout=ipywidgets.Layout(grid_template_columns=grid_columns(columns), grid_gap=f"{GAP}px", width="100%"),
        )
        self.grid.add_class("rtnb-dashboard-grid")
        children: list[Any] = [self.grid]
        if title:
            children.insert(0, ipywidgets.HTML(value=f"<h3>{html.escape(title)}</h3>"))
        self.widget = ipywidgets.VBox(children, layout=ipywidgets.Layout(width="100%"))
        self.widget.add_class("rtnb-dashboard")
        self.widget.observe(self._on_comm_change, names="comm")

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
        self.widget.close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

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
        from ._ipython import display
        from ._static import StaticDisplay

        display(self.widget)
        static = self.static = StaticDisplay(self.static_html, self._catch_up)
        for item in self.items:
            displays = getattr(item, "static_displays", None)
            if isinstance(displays, list):
                displays.append(static)
        static.show()
