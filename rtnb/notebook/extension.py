"""The Jupyter server extension: the hub inside Jupyter, behind Jupyter's auth.

Installing rtnb drops ``jupyter_server_config.d/rtnb.json`` into
``etc/jupyter``, which enables the ``rtnb.notebook`` extension point. When the
server loads it, this module builds a :class:`~rtnb.server.hub.Hub` that runs
on Jupyter's own event loop and mounts the hub's routes (the same ones ``rtnb
serve`` has, from :func:`rtnb.server.app.make_handlers`) under
``{base_url}rtnb/``. That is what makes Binder and JupyterHub work: browsers,
kernels and devices all reach one hub through the one port the server exposes.

Security: every mounted handler is rebuilt as a subclass mixing in Jupyter's
``JupyterHandler``, so a request must carry what Jupyter accepts (its login
cookie, or the server token as ``?token=`` or ``Authorization: token ...``),
is checked by Jupyter's authorizer (resource ``"rtnb"``), and obeys the hub's
one :class:`~rtnb.core.origins.RequestGuard` built from Jupyter's settings:
``Host`` names (``allow_remote_access``, ``local_hostnames``, plus
``c.RtnbExtension.allowed_hosts``) and origins (``allow_origin``,
``allow_origin_pat``, plus ``c.RtnbExtension.allowed_origins``; a foreign
``Origin`` is refused even with a token). The extension then writes a runtime
file (see :mod:`rtnb.notebook.discovery`) so kernels find the hub.

Lifecycle: the extension point is an ``ExtensionApp`` (:class:`RtnbExtensionApp`)
because jupyter_server 2 calls shutdown hooks only on those: when the server
stops (SIGTERM, Ctrl-C answered, ``/api/shutdown``, idle culling), its
``cleanup_extensions`` awaits :meth:`RtnbExtensionApp.stop_extension`, which
closes every hub client with 1001, stops the MQTT bridge and the backplane,
and removes the runtime file.

Settings (``jupyter_server_config.py``): ``c.RtnbExtension.mount = "rtnb"``,
``c.RtnbExtension.history_messages = 1000``, ``c.RtnbExtension.allowed_origins = [...]``,
``c.RtnbExtension.allowed_hosts = ["hub.lan"]`` (``Host`` names answered besides loopback ones and
Jupyter's ``local_hostnames``; the DNS rebinding defence, as ``rtnb serve --allow-host``),
``c.RtnbExtension.redis = "redis://127.0.0.1:6379/0"`` (servers sharing one Redis share topics),
``c.RtnbExtension.mqtt = "mqtt://127.0.0.1:1883"`` with ``c.RtnbExtension.mqtt_in = ["plant/#"]``,
``mqtt_out``, ``mqtt_prefix`` and ``mqtt_options`` (an MQTT bridge started with the hub on
Jupyter's loop; see ``docs/mqtt.md``). Invalid MQTT settings stop the extension from loading
with a typed :mod:`rtnb.core.errors` error in the server's log.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import json
import logging
import os
from pathlib import Path
from typing import Any

import tornado.web
import tornado.websocket
from jupyter_server.extension.application import ExtensionApp
from traitlets import Dict, Int, List, Unicode
from traitlets.config import Configurable

from ..bridge.options import MqttOptions
from ..core.errors import Forbidden, RtnbError, Unauthorized
from ..core.history import HistoryLimits
from ..core.origins import HostPolicy, OriginPolicy, RequestGuard
from ..server._http import HubRequestHandler
from ..server.app import make_handlers
from ..server.hub import Hub, HubConfig
from .discovery import HUB_INFO_ENV, hub_info_path
from .embedded import MQTT_COMPONENT, mqtt_bridge_options

__all__ = [
    "HubExtension",
    "RtnbExtension",
    "RtnbExtensionApp",
    "jupyter_handler_class",
    "load_jupyter_server_extension",
    "mqtt_options_from_settings",
]

log = logging.getLogger("rtnb.extension")

#: key of the running :class:`HubExtension` in the Jupyter web app's settings
SETTINGS_KEY = "rtnb_hub_extension"
#: Jupyter authorizer resource checked on every request
AUTH_RESOURCE = "rtnb"


class RtnbExtension(Configurable):
    """Options of the rtnb Jupyter server extension (``c.RtnbExtension.*``)."""

    mount = Unicode("rtnb", help="Path under the server's base_url where the hub's routes live.").tag(config=True)
    history_messages = Int(1000, help="Messages kept per topic in the hub's history.").tag(config=True)
    allowed_origins = List(
        Unicode(),
        help="Browser origins allowed to open hub WebSockets besides those Jupyter's own rules allow.",
    ).tag(config=True)
    allowed_hosts = List(
        Unicode(),
        help="Host names the hub answers besides loopback ones and Jupyter's local_hostnames "
        "(when Jupyter's allow_remote_access is off); '*' for any. Guards against DNS rebinding.",
    ).tag(config=True)
    redis = Unicode("", help="Redis URL shared by several servers' hubs").tag(config=True)
    mqtt = Unicode(
        "", help="MQTT broker to bridge, e.g. 'mqtt://127.0.0.1:1883' or 'mqtts://user:password@host'; '' for none."
    ).tag(config=True)
    mqtt_in = List(Unicode(), help="MQTT topic filters bridged into the hub, e.g. ['plant/#'].").tag(config=True)
    mqtt_out = List(
        Unicode(), help="MQTT topic filters whose hub messages go out to the broker, e.g. ['plant/+/cmd']."
    ).tag(config=True)
    mqtt_prefix = Unicode("", help="Hub topic of MQTT topic T is '<prefix>/T' (default: T).").tag(config=True)
    mqtt_options = Dict(
        help="Other MQTT bridge options (rtnb.bridge.MqttOptions fields), e.g. {'qos': 0, 'ca_file': '...'}."
    ).tag(config=True)


class HubExtension:
    """The hub of one Jupyter server, its routes and its runtime file.

    Args:
        serverapp: the Jupyter ``ServerApp`` loading the extension.
        settings: the extension's options.

    Raises:
        BadField / InvalidPattern / InvalidTopic: invalid ``mqtt*`` settings.
    """

    def __init__(self, serverapp: Any, settings: RtnbExtension) -> None:
        from jupyter_server.utils import url_path_join

        self.serverapp = serverapp
        self.settings = settings
        self.mqtt_options = mqtt_options_from_settings(settings)
        self.hub = Hub(
            HubConfig(history=HistoryLimits(max_messages=settings.history_messages)),
            redis=settings.redis or None,
        )
        self.prefix = url_path_join(serverapp.base_url, settings.mount).rstrip("/")
        self.runtime_file: Path | None = None
        self._start_task: asyncio.Task[None] | None = None
        self._stopped = False

    def handlers(self) -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
        """The hub's routes, each handler wrapped in Jupyter's authentication."""
        routes = make_handlers(self.hub, self.prefix, guard=self.guard())
        return [(path, jupyter_handler_class(handler, self), kwargs) for path, handler, kwargs in routes]

    def guard(self) -> RequestGuard:
        """The hub's ``Host`` and ``Origin`` rules, from Jupyter's settings and the extension's.

        Hosts: any when Jupyter allows remote access (``allow_remote_access``),
        else loopback names, Jupyter's ``local_hostnames`` and
        ``c.RtnbExtension.allowed_hosts``. Origins: same-origin, Jupyter's
        ``allow_origin`` / ``allow_origin_pat`` and ``c.RtnbExtension.allowed_origins``.
        """
        app = self.serverapp
        if app.allow_remote_access:
            hosts = HostPolicy.any_host()
        else:
            hosts = HostPolicy([*app.local_hostnames, *self.settings.allowed_hosts])
        allow_origin = app.allow_origin
        origins = OriginPolicy(
            [*self.settings.allowed_origins, *([allow_origin] if allow_origin else [])],
            pattern=app.allow_origin_pat or None,
        )
        return RequestGuard(hosts, origins)

    async def ensure_started(self) -> None:
        """Start the hub (and its MQTT bridge, if configured) on the running (Jupyter's) loop, once.

        Raises:
            tornado.web.HTTPError: 503 once :meth:`stop` ran (a request on a
                kept-alive connection while the server shuts down).
        """
        if self._stopped:
            raise tornado.web.HTTPError(503, "rtnb: the Jupyter server is shutting down")
        if self._start_task is None:
            self._start_task = asyncio.ensure_future(self._start())
        await asyncio.shield(self._start_task)

    async def _start(self) -> None:
        await self.hub.start()
        if self.mqtt_options is None:
            return
        from ..bridge.mqtt import start_mqtt_bridge

        try:
            # connects in the background: a broker that is down is retried and shown on /healthz
            await start_mqtt_bridge(self.hub, self.mqtt_options, name=MQTT_COMPONENT)
        except BaseException:  # e.g. TLS files that cannot be read: no hub without its bridge
            await self.hub.stop()
            raise
        log.info("rtnb: hub bridging MQTT broker %s", self.mqtt_options.address.display)

    async def stop(self) -> None:
        """Close every hub client with 1001, stop the MQTT bridge and the backplane,
        and remove the runtime file; safe to call twice.

        A start still in progress finishes first, so what it opened is closed too.
        """
        self._stopped = True
        start, self._start_task = self._start_task, None
        if start is not None:
            await asyncio.wait([start])
            # a failed start already stopped what it had started (and was reported to its caller)
            if not start.cancelled() and start.exception() is None:
                await self.hub.stop()
        self.remove_runtime_file()

    # -- runtime file ------------------------------------------------------------------

    def hub_url(self) -> str | None:
        """The hub's base URL as a kernel on this machine reaches it, or None (Unix socket)."""
        app = self.serverapp
        if getattr(app, "sock", ""):
            return None
        host = app.ip or "127.0.0.1"
        if host in ("localhost", "0.0.0.0", "*", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if getattr(app, "certfile", None) else "http"
        return f"{scheme}://{host}:{app.port}{self.prefix}"

    def write_runtime_file(self) -> Path | None:
        """Write ``rtnb-hub-<pid>.json`` (owner-only) for kernels; returns its path."""
        from jupyter_core.paths import secure_write

        url = self.hub_url()
        if url is None:
            log.info("rtnb: the Jupyter server listens on a Unix socket; kernels will not find its hub")
            return None
        path = hub_info_path(os.getpid(), Path(self.serverapp.runtime_dir))
        info = {"url": url, "token": self.serverapp.identity_provider.token or None, "pid": os.getpid()}
        with secure_write(str(path)) as file:
            json.dump(info, file)
        self.runtime_file = path
        atexit.register(self.remove_runtime_file)
        return path

    def remove_runtime_file(self) -> None:
        if self.runtime_file is not None:
            self.runtime_file.unlink(missing_ok=True)
            self.runtime_file = None


def mqtt_options_from_settings(settings: RtnbExtension) -> MqttOptions | None:
    """The MQTT bridge the ``c.RtnbExtension.mqtt*`` settings ask for, or None.

    Raises:
        BadField / InvalidPattern / InvalidTopic: invalid settings, named as in
            ``jupyter_server_config.py``.
    """
    return mqtt_bridge_options(
        settings.mqtt,
        settings.mqtt_in,
        settings.mqtt_out,
        settings.mqtt_prefix,
        settings.mqtt_options,
        names=tuple(  # type: ignore[arg-type]
            f"c.RtnbExtension.{name}" for name in ("mqtt", "mqtt_in", "mqtt_out", "mqtt_prefix", "mqtt_options")
        ),
    )


# -- handlers behind Jupyter's auth ----------------------------------------------------


class _JupyterAuthentication:
    """Mixed in front of a hub handler: Jupyter's login, authorizer and origin rules."""

    rtnb_extension: HubExtension
    rtnb_handler_class: type[tornado.web.RequestHandler]
    auth_resource = AUTH_RESOURCE

    def _rtnb_action(self) -> str:
        request = self.request  # type: ignore[attr-defined]
        websocket = isinstance(self, tornado.websocket.WebSocketHandler)
        return "read" if request.method in ("GET", "HEAD") and not websocket else "write"

    async def prepare(self) -> None:
        from jupyter_core.utils import ensure_async
        from jupyter_server.base.handlers import JupyterHandler

        # The hub's Host and Origin rules first (one guard for every route, built from
        # Jupyter's settings by HubExtension.guard): a foreign Origin is refused even
        # with a token, and a foreign Host (DNS rebinding) before anything else.
        headers = self.request.headers  # type: ignore[attr-defined]
        self.guard.check(headers.get("Host"), headers.get("Origin"))  # type: ignore[attr-defined]
        # Jupyter's own checks: identity (cookie or token), CORS, XSRF for writes.
        # No redirect to the login page: devices and WebSockets need a plain 403.
        outcome = JupyterHandler.prepare(self, _redirect_to_login=False)  # type: ignore[arg-type]
        if inspect.isawaitable(outcome):
            await outcome
        user = self.current_user  # type: ignore[attr-defined]
        if user is None:
            raise tornado.web.HTTPError(403, "rtnb: not authenticated")
        authorized = await ensure_async(
            self.authorizer.is_authorized(self, user, self._rtnb_action(), AUTH_RESOURCE)  # type: ignore[attr-defined]
        )
        if not authorized:
            raise tornado.web.HTTPError(403, "rtnb: not authorized")
        await self.rtnb_extension.ensure_started()
        own_prepare = self.rtnb_handler_class.prepare
        if own_prepare is not tornado.web.RequestHandler.prepare:
            own_outcome = own_prepare(self)  # type: ignore[arg-type]
            if inspect.isawaitable(own_outcome):
                await own_outcome

    def check_host(self) -> bool:
        """Jupyter's Host check, answered by the hub's guard (Jupyter's
        ``local_hostnames`` and ``allow_remote_access`` plus ``c.RtnbExtension.allowed_hosts``)."""
        return bool(self.guard.hosts.allows(self.request.headers.get("Host")))  # type: ignore[attr-defined]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        if exc_info is not None and isinstance(exc_info[1], RtnbError):
            # refused by the hub's own rules (Host, Origin, bad input): its typed error as is
            if isinstance(self, HubRequestHandler):
                HubRequestHandler.write_error(self, status_code, **kwargs)
                return
            refusal: RtnbError = exc_info[1]
            self.set_status(refusal.http_status)  # type: ignore[attr-defined]
            self.set_header("Content-Type", "application/json")  # type: ignore[attr-defined]
            self.finish(json.dumps(refusal.to_http_body()))  # type: ignore[attr-defined]
            return
        if status_code in (401, 403):
            if self.current_user is None:  # type: ignore[attr-defined]
                error: Unauthorized | Forbidden = Unauthorized(
                    "Log in to Jupyter or pass its token (?token= or 'Authorization: token ...')."
                )
            else:
                exc_info = kwargs.get("exc_info")
                reason = getattr(exc_info[1], "log_message", None) if exc_info else None
                error = Forbidden(f"{(reason or 'rtnb: not allowed').removeprefix('rtnb: ').capitalize()}.")
            self.set_header("Content-Type", "application/json")  # type: ignore[attr-defined]
            self.finish(json.dumps(error.to_http_body()))  # type: ignore[attr-defined]
            return
        super().write_error(status_code, **kwargs)  # type: ignore[misc]


class _JupyterWebSocketAuthentication(_JupyterAuthentication):
    def set_default_headers(self) -> None:
        """No page headers (CSP...) on a WebSocket upgrade, as Jupyter's own kernel sockets."""


def jupyter_handler_class(
    handler: type[tornado.web.RequestHandler], extension: HubExtension
) -> type[tornado.web.RequestHandler]:
    """``handler`` rebuilt to require Jupyter's authentication and origin rules."""
    from jupyter_server.base.handlers import JupyterHandler

    websocket = issubclass(handler, tornado.websocket.WebSocketHandler)
    mixin = _JupyterWebSocketAuthentication if websocket else _JupyterAuthentication
    return type(
        f"Jupyter{handler.__name__}",
        (mixin, handler, JupyterHandler),
        {"rtnb_extension": extension, "rtnb_handler_class": handler, "__module__": __name__},
    )


# -- Jupyter's entry points ------------------------------------------------------------


def load_jupyter_server_extension(serverapp: Any) -> HubExtension:
    """Mount the hub's routes in ``serverapp`` (Jupyter's load step, via :class:`RtnbExtensionApp`)."""
    extension = HubExtension(serverapp, RtnbExtension(config=serverapp.config))
    serverapp.web_app.add_handlers(".*$", extension.handlers())
    serverapp.web_app.settings[SETTINGS_KEY] = extension
    # Kernels inherit the server's environment: this tells them where the runtime file is.
    os.environ[HUB_INFO_ENV] = str(hub_info_path(os.getpid(), Path(serverapp.runtime_dir)))
    serverapp.log.info("rtnb hub mounted at %s/", extension.prefix)
    return extension


async def start_jupyter_server_extension(serverapp: Any) -> None:
    """Start the hub on Jupyter's running loop and publish its address to kernels."""
    extension: HubExtension = serverapp.web_app.settings[SETTINGS_KEY]
    await extension.ensure_started()
    path = extension.write_runtime_file()
    if path is not None:
        serverapp.log.info("rtnb hub address for kernels written to %s", path)


class RtnbExtensionApp(ExtensionApp):  # type: ignore[misc]
    """The extension point Jupyter links, loads, starts and, at shutdown, stops.

    Options stay on :class:`RtnbExtension` (``c.RtnbExtension.*``); this class
    only ties the hub's lifetime to the server's. Jupyter's shutdown path
    (``ServerApp._cleanup`` -> ``cleanup_extensions``) awaits
    :meth:`stop_extension` before it stops the event loop, so the 1001 close
    frames and the bridge's disconnect go out while the loop still runs.
    """

    name = "rtnb"

    hub_extension: HubExtension | None = None

    def initialize_settings(self) -> None:
        """Mount the hub's routes (Jupyter's load step; bad ``mqtt*`` settings raise here)."""
        self.hub_extension = load_jupyter_server_extension(self.serverapp)

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        if self.hub_extension is None:
            return  # loading failed; Jupyter logged why
        await start_jupyter_server_extension(serverapp)

    async def stop_extension(self) -> None:
        """Close hub clients with 1001, stop the MQTT bridge, remove the runtime file."""
        if self.hub_extension is None:
            return
        await self.hub_extension.stop()
        bridge = self.hub_extension.hub.components.get(MQTT_COMPONENT)
        bridge_state = getattr(getattr(bridge, "state", None), "value", None)
        self.log.info(
            "rtnb hub at %s/ stopped%s",
            self.hub_extension.prefix,
            "" if bridge_state is None else f" (MQTT bridge {bridge_state})",
        )


# Module-style hooks, used only by a package whose metadata names no ``app``
# (the hub then starts but is never stopped: Jupyter has no module stop hook).
_load_jupyter_server_extension = load_jupyter_server_extension
_start_jupyter_server_extension = start_jupyter_server_extension
