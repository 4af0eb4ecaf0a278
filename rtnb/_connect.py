"""``rtnb.connect()``: a synchronous client to the hub you name, or to the one at hand.

Finding "the hub at hand" is a notebook matter (the embedded hub of this
process, the hub the Jupyter server mounts): it lives in
:mod:`rtnb.notebook._hub_at_hand`, which the views use directly. This module,
above both the client and the notebook layers, only picks between the two and
imports the notebook lazily, so ``import rtnb`` stays light and the client layer
never imports notebook code.
"""

from __future__ import annotations

from typing import Any

from .client import Client
from .client import connect as connect_to
from .core.errors import Unavailable

__all__ = ["connect", "resolve_url"]

_NO_NOTEBOOK = (
    "No hub URL was given and this rtnb has no embedded hub; pass one, e.g. rtnb.connect('http://127.0.0.1:8765')."
)


def resolve_url(url: str | None) -> tuple[str, dict[str, str]]:
    """The hub to talk to when none is named, and the headers it needs.

    In order: the hub running in this process (``rtnb.start_hub``), the hub
    mounted in the Jupyter server this kernel belongs to, else a new embedded
    hub started now (see :func:`rtnb.notebook._hub_at_hand.hub_at_hand`).

    Raises:
        Unavailable: no URL was given and the notebook helpers are not installed.
    """
    if url is not None:
        return url, {}
    try:
        from .notebook import _hub_at_hand
    except ImportError:
        raise Unavailable(_NO_NOTEBOOK) from None
    return _hub_at_hand.hub_at_hand()


def connect(url: str | None = None, **options: Any) -> Client:
    """A connected synchronous :class:`~rtnb.client.Client`.

    Args:
        url: the hub's base URL (``http://127.0.0.1:8765``) or WebSocket URL. Without
            one: the hub of this process, else the Jupyter server's, else a new
            embedded hub (see :func:`resolve_url`).
        **options: as for :class:`~rtnb.client.AsyncClient`.

    Raises:
        Unavailable: the hub cannot be reached, or none was named or found.
    """
    if url is not None:
        return connect_to(url, **options)
    try:
        from .notebook import _hub_at_hand
    except ImportError:
        raise Unavailable(_NO_NOTEBOOK) from None
    return _hub_at_hand.connect_hub_at_hand(**options)
