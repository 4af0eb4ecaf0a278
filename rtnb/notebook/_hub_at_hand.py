"""The hub at hand, for code that names none: views, and ``rtnb.connect()`` without a URL.

In order: the hub running in this process (:func:`rtnb.start_hub`), the hub
mounted in the Jupyter server this kernel belongs to, else a new embedded hub
started now. This is a notebook matter, so it lives in the notebook layer: the
views use it directly, and ``rtnb.connect()`` (above the notebook) delegates here.
"""

from __future__ import annotations

from typing import Any

from ..client import Client
from ..client import connect as connect_to
from . import discovery, embedded

__all__ = ["connect_hub_at_hand", "hub_at_hand"]


def hub_at_hand() -> tuple[str, dict[str, str]]:
    """The URL of the hub at hand and the headers it needs (a Jupyter token, if any).

    Raises:
        OSError / Timeout: no hub was found and a new embedded one could not start.
    """
    running = embedded.current_hub()
    if running is not None:
        return running.url, {}
    found = discovery.find_jupyter_hub()
    if found is not None:
        base_url, token = found
        return base_url, ({"Authorization": f"token {token}"} if token else {})
    return embedded.start_hub().url, {}


def connect_hub_at_hand(**options: Any) -> Client:
    """A connected synchronous :class:`~rtnb.client.Client` of :func:`hub_at_hand`.

    Args:
        **options: as for :class:`~rtnb.client.AsyncClient`; given ``headers`` win
            over the found ones.

    Raises:
        Unavailable: the hub cannot be reached.
    """
    url, headers = hub_at_hand()
    if headers:
        options["headers"] = {**headers, **dict(options.get("headers") or {})}
    return connect_to(url, **options)
