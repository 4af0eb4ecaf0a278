"""The hub of one Jupyter server: its routes, its Host/Origin rules, its lifetime and runtime file."""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tornado.web
from jupyter_core.paths import secure_write
from jupyter_server.utils import url_path_join

from ...core.history import HistoryLimits
from ...core.hub_info import hub_info_name
from ...core.origins import HostPolicy, OriginPolicy, RequestGuard
from ..app import make_handlers
from ..hub import Hub, HubConfig
from ._settings import MQTT_COMPONENT, RtnbExtension, mqtt_options_from_settings

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp

__all__ = ["MountedHub", "Route"]

log = logging.getLogger("rtnb.extension")

#: one Tornado route: (path pattern, handler class, handler keywords)
Route = tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]


class MountedHub:
    """The hub of one Jupyter server, its routes and its runtime file.

    Args:
        serverapp: the Jupyter ``ServerApp`` loading the extension.
        settings: the extension's options.

    Raises:
        BadField / InvalidPattern / InvalidTopic: invalid ``mqtt*`` settings.
    """

    def __init__(self, serverapp: ServerApp, settings: RtnbExtension) -> None:
        self.serverapp = serverapp
        self.settings = settings
        self.mqtt_options = mqtt_options_from_settings(settings)
        config = HubConfig(history=HistoryLimits(max_messages=settings.history_messages))
        backplane = None
        if settings.redis:
            from ...backplane.redis import RedisBackplane

            backplane = RedisBackplane(settings.redis, limits=config.history)
        self.hub = Hub(config, backplane)
        self.prefix: str = url_path_join(serverapp.base_url, settings.mount).rstrip("/")
        self.runtime_file: Path | None = None
        self._start_task: asyncio.Task[None] | None = None
        self._stopped = False

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
        allow_origin: str = app.allow_origin
        origins = OriginPolicy(
            [*self.settings.allowed_origins, *([allow_origin] if allow_origin else [])],
            pattern=app.allow_origin_pat or None,
        )
        return RequestGuard(hosts, origins)

    def routes(self) -> list[Route]:
        """The hub's routes under :attr:`prefix`, as ``rtnb serve`` has them (not yet behind Jupyter's auth)."""
        return make_handlers(self.hub, self.prefix, guard=self.guard())

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
        from ...bridge.mqtt import start_mqtt_bridge

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
        host: str = app.ip or "127.0.0.1"
        if host in ("localhost", "0.0.0.0", "*", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if getattr(app, "certfile", None) else "http"
        return f"{scheme}://{host}:{app.port}{self.prefix}"

    def runtime_file_path(self) -> Path:
        """Where this server's hub address goes: ``rtnb-hub-<pid>.json`` in Jupyter's runtime directory."""
        return Path(self.serverapp.runtime_dir) / hub_info_name(os.getpid())

    def write_runtime_file(self) -> Path | None:
        """Write ``rtnb-hub-<pid>.json`` (owner-only) for kernels; returns its path."""
        url = self.hub_url()
        if url is None:
            log.info("rtnb: the Jupyter server listens on a Unix socket; kernels will not find its hub")
            return None
        path = self.runtime_file_path()
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
