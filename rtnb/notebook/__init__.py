"""Live notebook dashboards: the embedded hub and the views (the Jupyter extension: rtnb.server.jupyter).

Views (plotly charts, ipywidgets values, tables, controls) are imported lazily,
on first use of their name, so ``import rtnb.notebook`` (and ``import rtnb``)
stays light and clients can use :mod:`rtnb.notebook.embedded` without plotly
or ipywidgets installed.
"""

from __future__ import annotations

import importlib
from typing import Any

from .discovery import find_jupyter_hub
from .embedded import EmbeddedHub, current_hub, start_hub

#: public name -> module (under rtnb.notebook) that defines it
_LAZY = {
    "View": "_view",
    "ViewState": "_view",
    "ViewStats": "_view",
    "Pump": "_pump",
    "LiveChart": "chart",
    "LiveValue": "values",
    "Gauge": "values",
    "LiveTable": "table",
    "Status": "status",
    "Control": "controls",
    "Slider": "controls",
    "Toggle": "controls",
    "Button": "controls",
    "TextBox": "controls",
    "Dashboard": "dashboard",
}

__all__ = ["EmbeddedHub", "current_hub", "find_jupyter_hub", "start_hub", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Jupyter's hook, kept for configs that enable ``rtnb.notebook``: the extension lives in
    :mod:`rtnb.server.jupyter`, imported here only when Jupyter asks, so ``import rtnb.notebook``
    stays light."""
    from ..server.jupyter import _jupyter_server_extension_points

    return _jupyter_server_extension_points()
