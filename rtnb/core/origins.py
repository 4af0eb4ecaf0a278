"""Which ``Host`` names and browser ``Origin`` s the hub answers: one rule set, without I/O.

Two attacks by a web page the user happens to visit, both stopped here:

* **Cross-site requests** (WebSocket hijacking, cross-site publishes): the page's
  script talks to the hub from another origin. :class:`OriginPolicy` admits
  same-origin requests, listed origins (``--allow-origin``) and requests
  without an ``Origin`` (devices, curl, Python clients, which are not pages).
* **DNS rebinding**: the page's own name (``evil.example``) is made to resolve
  to 127.0.0.1, so its requests are *same-origin* to the browser and reach a
  hub on loopback. Only the ``Host`` header tells: it says ``evil.example``.
  :class:`HostPolicy` admits loopback names (``localhost``, ``127.0.0.1``,
  ``[::1]``, with any port) and configured ones (``--allow-host``) on a hub
  bound to loopback.

:class:`RequestGuard` joins the two; every route and transport of the hub
(HTTP handlers, the WebSocket upgrade, the Jupyter extension's handlers) asks
the same guard, so the rules cannot drift apart between them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from .errors import Forbidden

__all__ = ["HostPolicy", "OriginPolicy", "RequestGuard", "host_name", "is_loopback_name"]

_LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})
#: ``name``, ``name:port``, ``[v6]`` or ``[v6]:port``; anything else is malformed
_HOST_HEADER = re.compile(r"^(?:\[(?P<v6>[0-9a-f:.]+)\]|(?P<name>[^\s:\[\]/@]+))(?::(?P<port>\d{1,5}))?$")


def host_name(header: str) -> str | None:
    """The name in a ``Host`` header, lowercased, without port, brackets or a final dot.

    Returns:
        ``None`` when the header is not a host (spaces, a path, a bad port...).
    """
    match = _HOST_HEADER.match(header.strip().lower())
    if match is None:
        return None
    if match["v6"] is not None:
        return match["v6"]
    return match["name"].removesuffix(".") or None


def is_loopback_name(name: str) -> bool:
    """True for ``localhost`` and loopback address literals (127.0.0.0/8, ::1)."""
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class HostPolicy:
    """Which ``Host`` header names the hub answers (the DNS rebinding defence).

    Args:
        allowed: names admitted besides loopback ones, without port
            (``hub.lan``, ``10.0.0.5``); ``"*"`` admits any.
        check: False admits any ``Host`` (a hub bound beyond loopback with no
            ``--allow-host``: the names it is reached by are not known).

    A request without ``Host`` (HTTP/1.0) passes: every browser sends one.
    """

    def __init__(self, allowed: Iterable[str] = (), *, check: bool = True) -> None:
        names = {name.strip().lower().removesuffix(".") for name in allowed}
        names = {name[1:-1] if name.startswith("[") and name.endswith("]") else name for name in names}
        self.check_hosts = check and "*" not in names
        self.allowed = frozenset(names - {"*", ""})

    @classmethod
    def for_binding(cls, bind_address: str, allowed: Iterable[str] = ()) -> HostPolicy:
        """The policy for a hub bound to ``bind_address``.

        Bound to loopback: loopback names and ``allowed`` only. Bound beyond
        (``0.0.0.0``, a LAN address): ``allowed`` when given, else any name.
        """
        names = tuple(allowed)
        return cls(names, check=is_loopback_name(bind_address.strip("[]").lower()) or bool(names))

    @classmethod
    def any_host(cls) -> HostPolicy:
        return cls(check=False)

    def allows(self, header: str | None) -> bool:
        if header is None or not self.check_hosts:
            return True
        name = host_name(header)
        return name is not None and (is_loopback_name(name) or name in self.allowed)

    def check(self, header: str | None) -> None:
        """Raises:
        Forbidden: a ``Host`` the hub does not answer to.
        """
        if not self.allows(header):
            shown = header if header is not None and len(header) <= 100 else f"{(header or '')[:100]}..."
            raise Forbidden(
                f"This hub does not answer to the Host {shown!r}: it accepts loopback names"
                " (localhost, 127.0.0.1, [::1]) and the names given with --allow-host."
            )


def _normalize_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


class OriginPolicy:
    """Which browser origins may talk to the hub.

    Same-origin (the ``Origin`` host equals the ``Host`` header) is always
    allowed; others only when listed, matched by ``pattern`` (a regular
    expression matching the whole origin, as Jupyter's ``allow_origin_pat``), or with ``"*"``. Requests
    without an ``Origin`` header do not come from a web page's script
    (devices, curl, Python clients) and are allowed: the origin check defends
    browsers' users against other sites, it is not authentication.
    """

    def __init__(self, allowed: Iterable[str] = (), pattern: str | None = None) -> None:
        listed = {_normalize_origin(origin) for origin in allowed}
        self.allow_any = "*" in listed
        self.allowed = frozenset(listed - {"*"})
        self.pattern = re.compile(pattern) if pattern else None

    def _listed(self, normalized: str) -> bool:
        if self.allow_any or normalized in self.allowed:
            return True
        return self.pattern is not None and self.pattern.fullmatch(normalized) is not None

    def allows(self, origin: str | None, host: str | None) -> bool:
        if origin is None:
            return True
        normalized = _normalize_origin(origin)
        if self._listed(normalized):
            return True
        if host is None or normalized == "null":
            return False
        return urlsplit(normalized).netloc == host.strip().lower()

    def check(self, origin: str | None, host: str | None) -> None:
        """Raises:
        Forbidden: a cross-site origin that is not allowed.
        """
        if not self.allows(origin, host):
            raise Forbidden(f"Requests from the origin {origin!r} are not allowed (see --allow-origin).")

    def cors_origin(self, origin: str | None) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for an allowed cross-site ``origin``."""
        if origin is None:
            return None
        return origin if self._listed(_normalize_origin(origin)) else None


class RequestGuard:
    """The ``Host`` and ``Origin`` rules of one hub, asked by every route and transport.

    Args:
        hosts: the names the hub answers to.
        origins: the browser origins allowed besides same-origin.
    """

    def __init__(self, hosts: HostPolicy | None = None, origins: OriginPolicy | None = None) -> None:
        self.hosts = hosts or HostPolicy()
        self.origins = origins or OriginPolicy()

    def check_host(self, host: str | None) -> None:
        """Raises:
        Forbidden: a ``Host`` the hub does not answer to (DNS rebinding).
        """
        self.hosts.check(host)

    def cors_origin(self, host: str | None, origin: str | None) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for a request, or None; never raises
        (for answers given before a handler runs, such as a 413 from the HTTP server)."""
        if not (self.hosts.allows(host) and self.origins.allows(origin, host)):
            return None
        return self.origins.cors_origin(origin)

    def check(self, host: str | None, origin: str | None) -> str | None:
        """Check a request's ``Host`` and ``Origin``.

        Returns:
            The ``Access-Control-Allow-Origin`` value to answer with, or None.

        Raises:
            Forbidden: a foreign ``Host`` or a cross-site origin not allowed.
        """
        self.hosts.check(host)
        self.origins.check(origin, host)
        return self.origins.cors_origin(origin)
