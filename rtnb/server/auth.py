"""Request authentication for every transport: one :class:`AccessControl` per hub.

:func:`~rtnb.server.app.make_handlers` passes the same authenticator to the
WebSocket, SSE, long-polling and publish handlers, so a token means the same
on each. It finds the token a request carries, has it verified
(:class:`~rtnb.core.jwt_verifier.JwtVerifier`, pure), turns its claims into
:class:`~rtnb.core.auth.Permissions`, and keeps the hub-wide rate-limit and
connection-count state. Decisions themselves live in :mod:`rtnb.core.auth`; a
long-lived connection's authentication lifecycle (deadline, refresh, expiry)
in :mod:`rtnb.server._connection_auth`.

Where a token comes from, in order: ``Authorization: Bearer TOKEN``, the
``?token=`` query argument (EventSource and browser WebSockets cannot set
headers), or, on WebSocket only, a first ``{"op": "auth", "token": ...}``
request within :attr:`AccessControl.auth_timeout` seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..core.auth import ConnectionCounter, Permissions, PublishGuard, RateLimit, SubjectBuckets
from ..core.errors import RateLimited, Unauthorized
from ..core.jwt_verifier import MIN_HS256_SECRET_BYTES, JwtVerifier, check_hs256_secret
from ..core.origins import is_loopback_name
from ._connection_auth import AuthState, ConnectionSecurity

__all__ = [
    "MIN_HS256_SECRET_BYTES",
    "AccessControl",
    "AuthState",
    "Authenticator",
    "ConnectionSecurity",
    "JwtVerifier",
    "check_hs256_secret",
    "is_loopback",
    "token_from_request",
]


def is_loopback(host: str) -> bool:
    """True when binding ``host`` only accepts connections from this machine."""
    return is_loopback_name(host.strip("[]").lower())


def token_from_request(headers: Any, query_token: str | None) -> str | None:
    """The token an HTTP request carries: ``Authorization: Bearer``, else ``?token=``.

    Other ``Authorization`` schemes (Jupyter's ``token ...``, Basic) are not
    rtnb tokens and are ignored.
    """
    header: str | None = headers.get("Authorization")
    if header:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return query_token or None


class AccessControl:
    """Authentication, rate limits and connection limits shared by a hub's handlers.

    Build one with :meth:`open` (no authentication; the default) or
    :meth:`jwt`. Holds hub-wide state (subject buckets, connection counts),
    so each hub gets its own.

    Args:
        verifier: checks tokens; ``None`` means no authentication (everyone
            gets :meth:`Permissions.allow_all`, and tokens are ignored).
        rate_limit: publish rate per connection and per subject; ``None`` disables it.
        max_connections_per_address: open WebSocket/SSE/poll connections one
            client address may hold; ``None`` disables the limit.
        auth_timeout: seconds a WebSocket may stay unauthenticated.
        max_strikes / strike_rate: when publishing over the limit becomes
            abuse and closes the connection (see :class:`~rtnb.core.auth.PublishGuard`).
        clock: seconds since the epoch (token expiry); monotonic: for rate buckets.
    """

    def __init__(
        self,
        verifier: JwtVerifier | None = None,
        *,
        rate_limit: RateLimit | None = None,
        max_connections_per_address: int | None = None,
        auth_timeout: float = 5.0,
        max_strikes: float = 100,
        strike_rate: float = 10,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.verifier = verifier
        self.rate_limit = rate_limit
        self.auth_timeout = auth_timeout
        self.max_strikes = max_strikes
        self.strike_rate = strike_rate
        self.clock = clock
        self.monotonic = monotonic
        self.connections = ConnectionCounter(max_connections_per_address)
        self.subject_buckets = SubjectBuckets(rate_limit) if rate_limit is not None else None

    @classmethod
    def open(cls, **options: Any) -> AccessControl:
        """No authentication: every client may do everything (limits still apply if given)."""
        return cls(None, **options)

    @classmethod
    def jwt(
        cls,
        *,
        secret: str | bytes | None = None,
        public_key: str | bytes | None = None,
        jwks: dict[str, Any] | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        leeway: float = 0.0,
        algorithms: Sequence[str] | None = None,
        **options: Any,
    ) -> AccessControl:
        """JWT authentication with one key source; see :class:`JwtVerifier`."""
        verifier = JwtVerifier(
            secret=secret,
            public_key=public_key,
            jwks=jwks,
            algorithms=algorithms,
            audience=audience,
            issuer=issuer,
            leeway=leeway,
        )
        return cls(verifier, **options)

    @classmethod
    def jwt_from_files(
        cls, *, public_key_file: str | Path | None = None, jwks_file: str | Path | None = None, **options: Any
    ) -> AccessControl:
        """:meth:`jwt` with the public key (PEM) or the JWKS document read from a file."""
        if public_key_file is not None:
            return cls.jwt(public_key=Path(public_key_file).read_bytes(), **options)
        if jwks_file is not None:
            return cls.jwt(jwks=json.loads(Path(jwks_file).read_text()), **options)
        raise ValueError("give public_key_file or jwks_file")

    @property
    def required(self) -> bool:
        """True when clients must present a valid token."""
        return self.verifier is not None

    # -- tokens ------------------------------------------------------------------------

    def verify(self, token: str | None) -> Permissions:
        """The permissions ``token`` grants.

        Raises:
            Unauthorized: authentication is required and the token is missing,
                invalid or expired.
        """
        if self.verifier is None:
            return Permissions.allow_all()
        if not token:
            raise Unauthorized("This hub requires a token: 'Authorization: Bearer TOKEN', ?token=, or an auth request.")
        return Permissions.from_claims(self.verifier.verify(token))

    def authenticate_request(self, headers: Any, query_token: str | None) -> Permissions:
        """Permissions of an HTTP request (SSE, poll, publish); see :meth:`verify`."""
        return self.verify(token_from_request(headers, query_token))

    # -- limits ------------------------------------------------------------------------

    def publish_guard(self, permissions: Permissions, address: str) -> PublishGuard | None:
        """A fresh per-connection guard, sharing the subject's (or address's) bucket."""
        if self.rate_limit is None or self.subject_buckets is None:
            return None
        now = self.monotonic()
        return PublishGuard(
            self.rate_limit,
            self.subject_buckets.get(_bucket_key(permissions, address), now),
            now,
            max_strikes=self.max_strikes,
            strike_rate=self.strike_rate,
        )

    def check_http_publish(self, permissions: Permissions, address: str, count: int) -> None:
        """Spend ``count`` publishes of an HTTP request from the subject's (or address's) bucket.

        Raises:
            RateLimited: over the limit.
        """
        if self.rate_limit is None or self.subject_buckets is None:
            return
        bucket = self.subject_buckets.get(_bucket_key(permissions, address), self.monotonic())
        if not bucket.take(self.monotonic(), count):
            raise RateLimited(f"Publishing faster than {self.rate_limit.rate:g} messages/s; slow down.")


def _bucket_key(permissions: Permissions, address: str) -> str:
    """Whose shared rate bucket a publish spends from: the token's subject, else the client's address."""
    return f"subject:{permissions.subject}" if permissions.subject else f"address:{address}"


#: The name :class:`AccessControl` had in rtnb 0.1 (it decides more than who someone is:
#: rate limits and connection counts too); kept so that existing scripts still import it.
Authenticator = AccessControl
