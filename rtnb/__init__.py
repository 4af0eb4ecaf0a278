"""rtnb: live data in Jupyter notebooks, through a Tornado hub.

The public API is re-exported here; heavy optional parts (pandas, plotly,
ipywidgets, redis) and the hub's web server are imported only where they are used.
"""

from __future__ import annotations

from . import sim  # light (core only): rtnb.sim.sensors(...) works after "import rtnb"
from ._connect import connect
from .client import AsyncClient, Client
from .core.errors import RtnbError
from .core.history import Gap, HistoryLimits
from .core.limits import Limits
from .core.message import Message

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "Client",
    "Gap",
    "HistoryLimits",
    "Limits",
    "Message",
    "RtnbError",
    "__version__",
    "connect",
    "sim",
]

#: names loaded on first use so that ``import rtnb`` does not import pandas/pyarrow:
#: public name -> module that defines it
_LAZY_ATTRIBUTES = {
    # the hub and its Tornado server load only when a hub is made: a script that
    # only publishes or subscribes never imports tornado.web
    "Hub": ".server.hub",
    "HubConfig": ".server.hub",
    "HubServer": ".server.runner",
    "Recorder": ".record",
    "load": ".record",
    "replay": ".record",
    # notebook views (plotly/ipywidgets are imported by the view modules, on first use)
    "start_hub": ".notebook.embedded",
    "current_hub": ".notebook.embedded",
    "LiveChart": ".notebook.chart",
    "LiveValue": ".notebook.values",
    "Gauge": ".notebook.values",
    "LiveTable": ".notebook.table",
    "Status": ".notebook.status",
    "Control": ".notebook.controls",
    "Slider": ".notebook.controls",
    "Toggle": ".notebook.controls",
    "Button": ".notebook.controls",
    "TextBox": ".notebook.controls",
    "Dashboard": ".notebook.dashboard",
}
__all__ += list(_LAZY_ATTRIBUTES)


def __getattr__(name: str) -> object:
    module_name = _LAZY_ATTRIBUTES.get(name)
    if module_name is None:
        raise AttributeError(f"module 'rtnb' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value
