"""``Dashboard``: views and controls laid out in an ipywidgets grid, stopped together."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from ..core.errors import BadField

__all__ = ["Dashboard"]


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
        widgets = [getattr(item, "widget", item) for item in self.items]
        self.grid = ipywidgets.GridBox(
            widgets,
            layout=ipywidgets.Layout(grid_template_columns=f"repeat({columns}, minmax(0, 1fr))", grid_gap="8px"),
        )
        children: list[Any] = [self.grid]
        if title:
            children.insert(0, ipywidgets.HTML(value=f"<h3>{html.escape(title)}</h3>"))
        self.widget = ipywidgets.VBox(children)
        self.widget.observe(self._on_comm_change, names="comm")

    def _on_comm_change(self, change: dict[str, Any]) -> None:
        if change.get("new") is None:
            self.stop()

    def stop(self) -> None:
        """Stop every item that can be stopped."""
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
