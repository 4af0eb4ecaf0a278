"""The hub's handlers behind Jupyter's login, authorizer and Host/Origin rules.

Every hub handler is rebuilt as a subclass ``(mixin, handler, JupyterHandler)``:
the mixin's ``prepare`` runs the hub's guard, then Jupyter's own checks, then
the handler's own ``prepare``; the handler keeps its methods ahead of
Jupyter's (``check_origin``, ``write_error``...), Jupyter's fill the rest.
"""

from __future__ import annotations

import inspect
import json
from typing import TYPE_CHECKING, Any

import tornado.web
import tornado.websocket
from jupyter_core.utils import ensure_async
from jupyter_server.base.handlers import JupyterHandler

from ...core.errors import Forbidden, RtnbError, Unauthorized
from ...core.origins import RequestGuard
from .._http import HttpRouteHandler

if TYPE_CHECKING:
    from ._hub import MountedHub

    # For the type checker the mixins are Jupyter handlers, whose methods they call;
    # at run time they are plain mixins placed in front of the hub's handler.
    _MixinBase = JupyterHandler
else:
    _MixinBase = object

__all__ = ["AUTH_RESOURCE", "jupyter_handler_class"]

#: Jupyter authorizer resource checked on every request
AUTH_RESOURCE = "rtnb"


class _JupyterAuthentication(_MixinBase):
    """Mixed in front of a hub handler: Jupyter's login, authorizer and origin rules."""

    rtnb_extension: MountedHub
    rtnb_handler_class: type[tornado.web.RequestHandler]
    auth_resource = AUTH_RESOURCE
    guard: RequestGuard  # set by the hub's handler (HttpRouteHandler, the WebSocket handler)

    def _rtnb_action(self) -> str:
        websocket = isinstance(self, tornado.websocket.WebSocketHandler)
        return "read" if self.request.method in ("GET", "HEAD") and not websocket else "write"

    async def prepare(self, *, _redirect_to_login: bool = False) -> None:
        """The hub's guard, Jupyter's login and authorizer, then the hub handler's own ``prepare``.

        ``_redirect_to_login`` is there to match ``JupyterHandler.prepare``'s signature and is
        ignored: devices and WebSockets need a plain 403, never a redirect to the login page.
        """
        # The hub's Host and Origin rules first (one guard for every route, built from
        # Jupyter's settings by MountedHub.guard): a foreign Origin is refused even
        # with a token, and a foreign Host (DNS rebinding) before anything else.
        headers = self.request.headers
        self.guard.check(headers.get("Host"), headers.get("Origin"))
        # Jupyter's own checks: identity (cookie or token), CORS, XSRF for writes.
        # No redirect to the login page: devices and WebSockets need a plain 403.
        outcome = JupyterHandler.prepare(self, _redirect_to_login=False)
        if inspect.isawaitable(outcome):
            await outcome
        user = self.current_user
        if user is None:
            raise tornado.web.HTTPError(403, "rtnb: not authenticated")
        authorized = await ensure_async(self.authorizer.is_authorized(self, user, self._rtnb_action(), AUTH_RESOURCE))
        if not authorized:
            raise tornado.web.HTTPError(403, "rtnb: not authorized")
        await self.rtnb_extension.ensure_started()
        own_prepare = self.rtnb_handler_class.prepare
        if own_prepare is not tornado.web.RequestHandler.prepare:
            own_outcome = own_prepare(self)
            if inspect.isawaitable(own_outcome):
                await own_outcome

    def check_host(self) -> bool:
        """Jupyter's Host check, answered by the hub's guard (Jupyter's
        ``local_hostnames`` and ``allow_remote_access`` plus ``c.RtnbExtension.allowed_hosts``)."""
        return bool(self.guard.hosts.allows(self.request.headers.get("Host")))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        if exc_info is not None and isinstance(exc_info[1], RtnbError):
            # refused by the hub's own rules (Host, Origin, bad input): its typed error as is
            if isinstance(self, HttpRouteHandler):
                HttpRouteHandler.write_error(self, status_code, **kwargs)
                return
            refusal: RtnbError = exc_info[1]
            self.set_status(refusal.http_status)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(refusal.to_http_body()))
            return
        if status_code in (401, 403):
            if self.current_user is None:
                error: Unauthorized | Forbidden = Unauthorized(
                    "Log in to Jupyter or pass its token (?token= or 'Authorization: token ...')."
                )
            else:
                reason = getattr(exc_info[1], "log_message", None) if exc_info else None
                error = Forbidden(f"{(reason or 'rtnb: not allowed').removeprefix('rtnb: ').capitalize()}.")
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(error.to_http_body()))
            return
        super().write_error(status_code, **kwargs)


class _JupyterWebSocketAuthentication(_JupyterAuthentication):
    def set_default_headers(self) -> None:
        """No page headers (CSP...) on a WebSocket upgrade, as Jupyter's own kernel sockets."""


def jupyter_handler_class(
    handler: type[tornado.web.RequestHandler], extension: MountedHub
) -> type[tornado.web.RequestHandler]:
    """``handler`` rebuilt to require Jupyter's authentication and origin rules."""
    websocket = issubclass(handler, tornado.websocket.WebSocketHandler)
    mixin = _JupyterWebSocketAuthentication if websocket else _JupyterAuthentication
    return type(
        f"Jupyter{handler.__name__}",
        (mixin, handler, JupyterHandler),
        {"rtnb_extension": extension, "rtnb_handler_class": handler, "__module__": __name__},
    )
