"""Run a hub with its HTTP server: in a script, in ``rtnb serve``, in tests.

:class:`HubServer` binds the listening sockets and owns the shutdown order:
stop accepting, close every WebSocket with 1001 (going away), then close the
remaining HTTP connections. :func:`serve` adds signal handling for the CLI.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any

import tornado.httpserver
import tornado.netutil

from ..core.backplane import Backplane
from ..core.origins import HostPolicy, OriginPolicy, RequestGuard
from ._timeouts import GuardedHTTPServer
from .app import make_app
from .auth import AccessControl
from .hub import Hub, HubConfig

__all__ = ["HubServer", "ListenError", "serve"]

log = logging.getLogger("rtnb.server")


class ListenError(OSError):
    """The server cannot listen where asked: the port is taken, the address is not
    on this machine, or the host name does not resolve. Its text says which."""


class HubServer:
    """A :class:`Hub` listening on ``host:port`` (port 0 picks a free one).

    Args:
        hub: the hub to serve; a default one (in-memory backplane) when omitted.
            For a hub on Redis, build it: ``Hub(config, RedisBackplane(url))``.
        host: address to bind, ``127.0.0.1`` unless told otherwise.
        port: TCP port; 0 lets the OS choose (see :attr:`port` after start).
        prefix: URL prefix of every route.
        ssl_context: serve https/wss with this context.
        allowed_origins: extra browser origins allowed for WebSockets.
        allowed_hosts: ``Host`` names answered besides loopback ones (the DNS
            rebinding defence, see :class:`~rtnb.core.origins.HostPolicy`):
            bound to loopback, only loopback names and these are answered;
            bound beyond it, these when given, else any.
        authenticator: tokens, permissions and limits for every transport
            (see :mod:`rtnb.server.auth`); none by default.
        view_key: a secret admitting notebook views' browsers (read-only, any
            origin); see :func:`~rtnb.server.app.make_handlers`.
        app_settings: extra Tornado application settings.
    """

    def __init__(
        self,
        hub: Hub | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        prefix: str = "",
        ssl_context: ssl.SSLContext | None = None,
        allowed_origins: Sequence[str] = (),
        allowed_hosts: Sequence[str] = (),
        authenticator: AccessControl | None = None,
        view_key: str | None = None,
        **app_settings: Any,
    ) -> None:
        if "redis" in app_settings:  # it would pass silently as a Tornado setting, leaving the hub in memory
            raise TypeError(
                "HubServer does not build backplanes: pass a hub on Redis, e.g. HubServer(Hub(config, "
                "RedisBackplane(url, limits=config.history))) with RedisBackplane from rtnb.backplane.redis."
            )
        if not 0 <= port <= 65535:  # the OS would silently take the port modulo 65536
            raise ValueError(f"port must be from 0 to 65535, got {port}")
        self.hub = hub or Hub()
        self.host = host
        self.requested_port = port
        self.prefix = prefix.rstrip("/")
        self.ssl_context = ssl_context
        self.allowed_origins = tuple(allowed_origins)
        self.allowed_hosts = tuple(allowed_hosts)
        self.authenticator = authenticator or AccessControl.open()
        self.view_key = view_key
        self.app_settings = app_settings
        self.port: int | None = None
        self._http: tornado.httpserver.HTTPServer | None = None
        self._sockets: list[socket.socket] = []

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8765``; clients add ``/ws``, ``/sse``..."""
        if self.port is None:
            raise RuntimeError("the server is not started")
        scheme = "https" if self.ssl_context else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}{self.prefix}"

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "/ws"

    @property
    def guard(self) -> RequestGuard:
        """The ``Host`` and ``Origin`` rules of every route: loopback names (and
        ``allowed_hosts``) when bound to loopback, ``allowed_origins`` besides same-origin."""
        return RequestGuard(HostPolicy.for_binding(self.host, self.allowed_hosts), OriginPolicy(self.allowed_origins))

    def make_app(self) -> Any:
        return make_app(
            self.hub,
            self.prefix,
            guard=self.guard,
            authenticator=self.authenticator,
            view_key=self.view_key,
            **self.app_settings,
        )

    async def start(self) -> HubServer:
        """Listen, then start the hub.

        Raises:
            ListenError: the port is in use, the address is not on this machine,
                or the host name does not resolve (nothing is left started).
        """
        try:
            sockets = tornado.netutil.bind_sockets(self.requested_port, address=self.host)
        except OSError as error:
            refusal = ListenError(f"cannot listen on {self.host}:{self.requested_port}: {error.strerror or error}")
            refusal.errno = error.errno
            raise refusal from None
        try:
            await self.hub.start()
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        limits, config = self.hub.limits, self.hub.config
        self._http = GuardedHTTPServer(
            self.make_app(),
            ssl_options=self.ssl_context,
            idle_connection_timeout=config.handshake_timeout,
            body_timeout=config.body_timeout,
            max_body_size=max(limits.max_frame_bytes, 16 * 2**20),
            write_timeout=config.write_timeout,
            on_write_timeout=self._count_write_timeout,
            on_refused=self.hub.record_error,
            guard=self.guard,
        )
        self._sockets = sockets
        self._http.add_sockets(self._sockets)
        self.port = self._sockets[0].getsockname()[1]
        log.info("rtnb hub listening on %s", self.url)
        return self

    def _count_write_timeout(self) -> None:
        self.hub.stats.write_timeouts += 1

    async def stop(self) -> None:
        """Stop accepting, close clients with 1001, then drop what is left."""
        if self._http is None:
            return
        http, self._http = self._http, None
        http.stop()
        await self.hub.stop()
        try:
            await asyncio.wait_for(http.close_all_connections(), self.hub.config.close_timeout)
        except asyncio.TimeoutError:
            log.warning("some HTTP connections did not close in time")

    async def __aenter__(self) -> HubServer:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


async def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    config: HubConfig | None = None,
    *,
    on_ready: Callable[[HubServer], Any] | None = None,
    stop_event: asyncio.Event | None = None,
    backplane: Backplane | None = None,
    **server_options: Any,
) -> None:
    """Serve until SIGINT/SIGTERM (or ``stop_event``), then shut down cleanly.

    ``backplane`` (e.g. a :class:`~rtnb.backplane.redis.RedisBackplane`, built by
    the caller) shares the hub with other hubs; in-memory by default.
    """
    stop = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread / Windows
            pass
    server = HubServer(Hub(config, backplane), host=host, port=port, **server_options)
    await server.start()
    try:
        if on_ready is not None:
            result = on_ready(server)
            if asyncio.iscoroutine(result):
                await result
        await stop.wait()
    finally:
        log.info("shutting down")
        await server.stop()
