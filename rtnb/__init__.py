"""rtnb: live data in Jupyter notebooks, through a Tornado hub.

The public API is re-exported here; heavy optional parts (pandas, plotly,
ipywidgets, redis) are imported only where they are used.
"""

from __future__ import annotations

from .core.errors import RtnbError
from .core.history import Gap, HistoryLimits
from .core.limits import Limits
from .core.message import Message
from .server.hub import Hub, HubConfig
from .server.runner import HubServer

__version__ = "0.1.0"

__all__ = [
    "Gap",
    "HistoryLimits",
    "Hub",
    "HubConfig",
    "HubServer",
    "Limits",
    "Message",
    "RtnbError",
    "__version__",
]
