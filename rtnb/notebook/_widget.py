"""The one widget class every view uses, and how a browser reaches the hub.

A view's widget state says *what* to draw (``kind`` and ``config``), *how the
browser may reach the hub* (``hub``: a URL with the embedded hub's view key, or
the Jupyter server's ``{base_url}rtnb/`` path, where Jupyter's login applies)
and which data path to use (``transport``). The browser draws; the kernel only
answers when a browser asks it to relay (see :mod:`rtnb.notebook._view`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import anywidget
import traitlets
from ipywidgets import widget_serialization

from ._assets import LOADER_ESM, ViewLibrary, library_version, shared_library

__all__ = ["TRANSPORTS", "ViewWidget", "browser_access", "display_widget"]

#: the data paths a view may take; see docs/notebooks.md
TRANSPORTS = ("auto", "direct", "relay")


class ViewWidget(anywidget.AnyWidget):
    """The browser side of a view: a small loader ESM plus a description of the view."""

    _esm = LOADER_ESM
    kind = traitlets.Unicode("").tag(sync=True)
    config = traitlets.Dict().tag(sync=True)
    hub = traitlets.Dict().tag(sync=True)
    transport = traitlets.Unicode("auto").tag(sync=True)
    library = traitlets.Instance(ViewLibrary, allow_none=True).tag(sync=True, **widget_serialization)
    library_version = traitlets.Unicode("").tag(sync=True)

    def __init__(self, **state: Any) -> None:
        super().__init__(library=shared_library(), library_version=library_version(), **state)


def _same_hub(first: str, second: str) -> bool:
    a, b = urlsplit(first), urlsplit(second)
    return (a.scheme, a.netloc, a.path.rstrip("/")) == (b.scheme, b.netloc, b.path.rstrip("/"))


def browser_access(client: Any) -> dict[str, Any]:
    """How a browser reaches the hub ``client`` talks to (the ``hub`` widget state).

    * the embedded hub of this kernel: its URL and its view key (the hub admits
      browsers from any origin with it, read only; WebSocket only);
    * the Jupyter server's hub: its path under Jupyter's ``base_url``, which the
      page resolves against its own origin, so Jupyter's login cookie applies;
    * any other hub: its URL, without a token (a token given to the view stays
      in the kernel and out of the saved notebook); if that hub wants one, the
      browser falls back to relay.

    An empty dict means the browser cannot subscribe by itself.
    """
    url = getattr(client, "url", None)
    if not isinstance(url, str):
        return {}
    from .discovery import find_jupyter_hub
    from .embedded import current_hub

    embedded = current_hub()
    if embedded is not None and _same_hub(url, embedded.url):
        return {"url": embedded.url, "token": embedded.view_key, "transports": ["ws"]}
    found = find_jupyter_hub()
    if found is not None and _same_hub(url, found[0]):
        return {"path": urlsplit(found[0]).path.rstrip("/"), "transports": ["ws", "sse", "poll"]}
    return {"url": url.rstrip("/"), "transports": ["ws", "sse", "poll"]}


def display_widget(widget: Any) -> None:
    """Display ``widget``'s own view (what ``display(widget)`` would, without its ``_ipython_display_``)."""
    from ._ipython import display

    bundle = widget._repr_mimebundle_()
    data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
    display(data, metadata=metadata, raw=True)
