"""Assemble the hub's HTTP routes into a Tornado application.

:func:`make_handlers` gives the routes alone, so the Jupyter server extension
(and any Tornado app) can mount them under its own prefix; :func:`make_app`
wraps them in a standalone application for ``rtnb serve``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tornado.web

from ..core.origins import HostPolicy, OriginPolicy, RequestGuard
from .auth import AccessControl
from .hub import Hub
from .metrics import HealthHandler, MetricsHandler
from .pages import NotFoundHandler, page_handlers
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
    authenticator: AccessControl | None = None,
    guard: RequestGuard | None = None,
    view_key: str | None = None,
) -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
    """The hub's routes as ``(path, handler, kwargs)`` tuples under ``prefix``.

    Args:
        hub: the hub the handlers serve.
        prefix: URL prefix without a trailing slash, e.g. ``"/rtnb"``.
        allowed_origins: extra browser origins allowed to open WebSockets
            (same-origin is always allowed; ``"*"`` allows any); SSE, poll and
            publish follow the same list, with CORS headers for the listed ones.
            Ignored when ``guard`` is given.
        authenticator: tokens, permissions, rate and connection limits shared by
            every transport (see :mod:`rtnb.server.auth`); none by default.
        guard: the ``Host`` and ``Origin`` rules of every route (see
            :mod:`rtnb.core.origins`); by default ``allowed_origins`` and any
            ``Host`` (:class:`~rtnb.server.runner.HubServer` passes the rule of
            its binding: loopback names and ``--allow-host`` names on loopback).
        view_key: a secret that admits a browser WebSocket from any origin, with
            read-only permissions (data topics and the bridges' status topics
            ``$rtnb/bridge/#``): an embedded hub gives it to its notebook views
            (in their widget state) so their pages, served by Jupyter on another
            origin, can subscribe directly. None: no such key.
    """
    prefix = prefix.rstrip("/")
    guard = guard or RequestGuard(HostPolicy.any_host(), OriginPolicy(allowed_origins))
    security = {"guard": guard, "authenticator": authenticator or AccessControl.open()}
    return [
        (f"{prefix}/ws", HubWebSocket, {"hub": hub, "view_key": view_key, **security}),
        (f"{prefix}/healthz", HealthHandler, {"hub": hub, "guard": guard}),
        (f"{prefix}/metrics", MetricsHandler, {"hub": hub, "guard": guard}),
        (f"{prefix}/sse", SSEHandler, {"hub": hub, **security}),
        (f"{prefix}/poll", PollHandler, {"hub": hub, **security}),
        (f"{prefix}/publish/?(.*)", PublishHandler, {"hub": hub, **security}),
        *page_handlers(hub, prefix, guard),
    ]


def make_app(hub: Hub, prefix: str = "", **settings: Any) -> tornado.web.Application:
    """A standalone Tornado application serving ``hub`` under ``prefix``.

    ``allowed_origins``, ``authenticator`` and ``guard`` go to
    :func:`make_handlers`; other settings to Tornado. Paths that match no route
    get a 404 JSON error, after the same ``Host`` check.

    Returns:
        The application; its routes are the ones :func:`make_handlers` returns.
    """
    guard = settings.pop("guard", None) or RequestGuard(
        HostPolicy.any_host(), OriginPolicy(settings.pop("allowed_origins", ()))
    )
    settings.pop("allowed_origins", None)
    authenticator, view_key = settings.pop("authenticator", None), settings.pop("view_key", None)
    # list[Any]: Tornado's annotation of a rule list differs between 6.4 and 6.6; both take these tuples
    handlers: list[Any] = make_handlers(hub, prefix, authenticator=authenticator, guard=guard, view_key=view_key)
    settings.setdefault("default_handler_class", NotFoundHandler)
    settings.setdefault("default_handler_args", {"hub": hub, "guard": guard})
    return tornado.web.Application(handlers, **settings)
