"""Assemble the hub's HTTP routes into a Tornado application.

:func:`make_handlers` gives the routes alone, so the Jupyter server extension
(and any Tornado app) can mount them under its own prefix; :func:`make_app`
wraps them in a standalone application for ``rtnb serve``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tornado.web

from .auth import Authenticator
from .hub import Hub
from .metrics import HealthHandler, MetricsHandler
from .pages import page_handlers
from .poll import PollHandler
from .publish import PublishHandler
from .sse import SSEHandler
from .websocket import HubWebSocket

__all__ = ["make_app", "make_handlers"]


def make_handlers(
    hub: Hub,
    prefix: str = "",
    *,
    allowed_origins: Sequence[str] = (),
    authenticator: Authenticator | None = None,
    view_key: str | None = None,
) -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
    """The hub's routes as ``(path, handler, kwargs)`` tuples under ``prefix``.

    Args:
        hub: the hub the handlers serve.
        prefix: URL prefix without a trailing slash, e.g. ``"/rtnb"``.
        allowed_origins: extra browser origins allowed to open WebSockets
            (same-origin is always allowed; ``"*"`` allows any); SSE, poll and
            publish follow the same list, with CORS headers for the listed ones.
        authenticator: tokens, permissions, rate and connection limits shared by
            every transport (see :mod:`rtnb.server.auth`); none by default.
        view_key: a secret that admits a browser WebSocket from any origin, with
            read-only permissions: an embedded hub gives it to its notebook views
            (in their widget state) so their pages, served by Jupyter on another
            origin, can subscribe directly. None: no such key.
    """
    prefix = prefix.rstrip("/")
    security = {"allowed_origins": tuple(allowed_origins), "authenticator": authenticator or Authenticator.open()}
    return [
        (f"{prefix}/ws", HubWebSocket, {"hub": hub, "view_key": view_key, **security}),
        (f"{prefix}/healthz", HealthHandler, {"hub": hub}),
        (f"{prefix}/metrics", MetricsHandler, {"hub": hub}),
        (f"{prefix}/sse", SSEHandler, {"hub": hub, **security}),
        (f"{prefix}/poll", PollHandler, {"hub": hub, **security}),
        (f"{prefix}/publish/?(.*)", PublishHandler, {"hub": hub, **security}),
        *page_handlers(hub, prefix),
    ]


def make_app(hub: Hub, prefix: str = "", **settings: Any) -> tornado.web.Application:
    """A standalone Tornado application serving ``hub`` under ``prefix``.

    Returns:
        The application; its routes are the ones :func:`make_handlers` returns.
    """
    return tornado.web.Application(make_handlers(hub, prefix, allowed_origins=settings.pop("allowed_origins", ()),
                                                 authenticator=settings.pop("authenticator", None),
                                                 view_key=settings.pop("view_key", None)),
                                   **settings)
