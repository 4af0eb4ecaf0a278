"""Authentication for every transport: one :class:`Authenticator` per hub.

:func:`~rtnb.server.app.make_handlers` passes the same authenticator to the
WebSocket, SSE, long-polling and publish handlers, so a token means the same
on each. It verifies JSON Web Tokens (PyJWT, the ``auth`` extra, imported only
when a hub uses it), turns their claims into
:class:`~rtnb.core.auth.Permissions`, and keeps the hub-wide rate-limit and
connection-count state. Decisions themselves live in :mod:`rtnb.core.auth`.

Where a token comes from, in order: ``Authorization: Bearer TOKEN``, the
``?token=`` query argument (EventSource and browser WebSockets cannot set
headers), or, on WebSocket only, a first ``{"op": "auth", "token": ...}``
request within :attr:`Authenticator.auth_timeout` seconds.

WebSocket close codes used by authentication (4000-4999 are the
application's range)::

    4001  no valid token within the deadline
    4002  the first ``auth`` request carried a bad token
    4003  a request other than ``auth`` came before authentication
    4004  the token expired and was not refreshed by a new ``auth`` request
    1008  persistent publishing over the rate limit (policy violation)
"""

from __future__ import annotations

import asyncio
import enum
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..core.auth import (
    ConnectionCounter,
    Permissions,
    PublishGuard,
    RateLimit,
    SubjectBuckets,
    Verdict,
)
from ..core.close_codes import CloseCode
from ..core.errors import RtnbError, Unauthorized
from ..core.origins import is_loopback_name
from ..core.protocol import RequestId, SinceCursor
from ..core.topics import Pattern

__all__ = [
    "MIN_HS256_SECRET_BYTES",
    "AuthState",
    "Authenticator",
    "ConnectionSecurity",
    "JwtVerifier",
    "check_hs256_secret",
    "is_loopback",
    "token_from_request",
]


#: Shortest HS256 secret accepted: RFC 7518 section 3.2 requires a key of at least the hash size.
MIN_HS256_SECRET_BYTES = 32

_ASYMMETRIC = {"RSA": ["RS256", "RS384", "RS512"], "EC": ["ES256", "ES384", "ES512"], "OKP": ["EdDSA"]}


def is_loopback(host: str) -> bool:
    """True when binding ``host`` only accepts connections from this machine."""
    return is_loopback_name(host.strip("[]").lower())


def check_hs256_secret(secret: str | bytes) -> None:
    """Raises:
    ValueError: ``secret`` is shorter than :data:`MIN_HS256_SECRET_BYTES` bytes (RFC 7518 section 3.2):
        a short HMAC key can be brute-forced from any token it signed.
    """
    size = len(secret.encode() if isinstance(secret, str) else secret)
    if size < MIN_HS256_SECRET_BYTES:
        raise ValueError(
            f"the HS256 secret is {size} bytes; it must be at least {MIN_HS256_SECRET_BYTES} (RFC 7518 section 3.2),"
            " e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )


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


class JwtVerifier:
    """Checks JSON Web Tokens and returns their claims.

    Exactly one key source: ``secret`` (HS256), ``public_key`` (PEM text; RS256
    or ES256 by its type) or ``jwks`` (a JWKS document, keys chosen by the
    token's ``kid``). Algorithms are fixed by the key, never taken from the
    token, so a token cannot pick ``none`` or HMAC with a public key.

    Args:
        audience: when set, tokens must carry this ``aud``.
        issuer: when set, tokens must carry this ``iss``.
        leeway: seconds of clock skew tolerated on ``exp`` / ``nbf``.

    Raises:
        ValueError: no key source, or more than one; an HS256 secret shorter
            than :data:`MIN_HS256_SECRET_BYTES`.
    """

    def __init__(
        self,
        *,
        secret: str | bytes | None = None,
        public_key: str | bytes | None = None,
        jwks: dict[str, Any] | None = None,
        algorithms: Sequence[str] | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        leeway: float = 0.0,
    ) -> None:
        import jwt

        if sum(source is not None for source in (secret, public_key, jwks)) != 1:
            raise ValueError("give exactly one of secret, public_key or jwks")
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway
        self._key: Any = None
        self._keys_by_id: dict[str | None, Any] = {}
        if secret is not None:
            check_hs256_secret(secret)
            self._key = secret
            self.algorithms = list(algorithms or ["HS256"])
        elif public_key is not None:
            key = jwt.PyJWK.from_dict(_jwk_from_pem(public_key))
            self._key = key.key
            self.algorithms = list(algorithms or _ASYMMETRIC.get(key.key_type or "", []))
        else:
            assert jwks is not None
            key_set = jwt.PyJWKSet.from_dict(jwks)
            for key in key_set.keys:
                self._keys_by_id[key.key_id] = key
            self.algorithms = list(algorithms or sorted({alg for k in key_set.keys for alg in _algorithms_of(k)}))
        if not self.algorithms:
            raise ValueError("cannot tell which algorithms the key is for; pass algorithms=")

    def verify(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token``.

        Raises:
            Unauthorized: unreadable, bad signature, expired, not yet valid,
                wrong audience or issuer; the message says which.
        """
        import jwt

        options: Any = {"require": ["sub"]}
        try:
            key = self._key if self._key is not None else self._key_for(token)
            return jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options=options,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The token has expired; get a new one.") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("The token is not valid yet (nbf/iat in the future).") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized(f"The token is not meant for this hub (audience must be {self.audience!r}).") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized(f"The token was not issued by {self.issuer!r}.") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("The token's signature does not verify.") from None
        except jwt.MissingRequiredClaimError as error:
            raise Unauthorized(f"The token lacks the {error.claim!r} claim.") from None
        except jwt.InvalidAlgorithmError:
            accepted = ", ".join(self.algorithms)
            raise Unauthorized(f"The token's algorithm is not accepted here (accepted: {accepted}).") from None
        except jwt.PyJWTError as error:
            raise Unauthorized(f"The token is not a valid JWT: {error}.") from None

    def _key_for(self, token: str) -> Any:
        import jwt

        key_id: str | None = jwt.get_unverified_header(token).get("kid")
        key = self._keys_by_id.get(key_id)
        if key is None and key_id is None and len(self._keys_by_id) == 1:
            key = next(iter(self._keys_by_id.values()))
        if key is None:
            raise Unauthorized(f"The token's key id {key_id!r} is not in this hub's key set.")
        return key


def _algorithms_of(key: Any) -> list[str]:
    algorithm = getattr(key, "algorithm_name", None) or key._jwk_data.get("alg")
    return [algorithm] if algorithm and algorithm != "none" else _ASYMMETRIC.get(key.key_type or "", [])


def _jwk_from_pem(pem: str | bytes) -> dict[str, Any]:
    """A JWK dict for a PEM public key (so PyJWT tells us its type)."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm

    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = load_pem_public_key(data)
    except ValueError as error:
        raise ValueError(f"not a PEM public key: {error}") from None
    jwk: dict[str, Any]
    if isinstance(key, rsa.RSAPublicKey):
        jwk = json.loads(RSAAlgorithm.to_jwk(key))
        return jwk
    if isinstance(key, ec.EllipticCurvePublicKey):
        jwk = json.loads(ECAlgorithm.to_jwk(key))
        return jwk
    raise ValueError(f"unsupported public key type {type(key).__name__}; use RSA or EC")


class Authenticator:
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
        self.failures = 0

    @classmethod
    def open(cls, **options: Any) -> Authenticator:
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
    ) -> Authenticator:
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
    ) -> Authenticator:
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

    @property
    def mode(self) -> str:
        return "none" if self.verifier is None else "jwt"

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
            self.failures += 1
            raise Unauthorized("This hub requires a token: 'Authorization: Bearer TOKEN', ?token=, or an auth request.")
        try:
            permissions = Permissions.from_claims(self.verifier.verify(token))
        except Unauthorized:
            self.failures += 1
            raise
        return permissions

    def authenticate_request(self, headers: Any, query_token: str | None) -> Permissions:
        """Permissions of an HTTP request (SSE, poll, publish); see :meth:`verify`."""
        return self.verify(token_from_request(headers, query_token))

    # -- limits ------------------------------------------------------------------------

    def publish_guard(self, permissions: Permissions, address: str) -> PublishGuard | None:
        """A fresh per-connection guard, sharing the subject's (or address's) bucket."""
        if self.rate_limit is None or self.subject_buckets is None:
            return None
        now = self.monotonic()
        key = f"subject:{permissions.subject}" if permissions.subject else f"address:{address}"
        return PublishGuard(
            self.rate_limit,
            self.subject_buckets.get(key, now),
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
        key = f"subject:{permissions.subject}" if permissions.subject else f"address:{address}"
        if not self.subject_buckets.get(key, self.monotonic()).take(self.monotonic(), count):
            from ..core.errors import RateLimited

            raise RateLimited(f"Publishing faster than {self.rate_limit.rate:g} messages/s; slow down.")


class AuthState(enum.Enum):
    """Where a WebSocket connection stands with authentication."""

    WAITING = "waiting"  # connected, no valid token yet; only ``auth`` is accepted
    AUTHENTICATED = "authenticated"
    CLOSED = "closed"


_TRANSITIONS = {
    AuthState.WAITING: {AuthState.AUTHENTICATED, AuthState.CLOSED},
    AuthState.AUTHENTICATED: {AuthState.AUTHENTICATED, AuthState.CLOSED},
    AuthState.CLOSED: set(),
}


class ConnectionSecurity:
    """One long-lived connection's permissions, publish guard, deadline and expiry timer.

    The transport creates it when the connection opens (after
    :meth:`Authenticator.connections` admitted the address), calls
    :meth:`start` with the permissions of a token given at the handshake (or
    ``None``), asks :meth:`check_publish` / :meth:`check_subscribe` before each
    request, and calls :meth:`close` when the connection ends.

    Args:
        authenticator: the hub's authenticator.
        address: the client's address (connection-limit and anonymous rate key).
        on_close: ``callback(code, reason)`` to end the connection: deadline
            missed (4001) or token expired (4004).
    """

    def __init__(self, authenticator: Authenticator, address: str, on_close: Callable[[int, str], None]) -> None:
        self.authenticator = authenticator
        self.address = address
        self.on_close = on_close
        self.state = AuthState.WAITING
        self.permissions: Permissions | None = None
        self.guard: PublishGuard | None = None
        self._timer: asyncio.TimerHandle | None = None

    def _transition(self, state: AuthState) -> None:
        if state not in _TRANSITIONS[self.state]:
            raise RuntimeError(f"illegal authentication transition {self.state.value} -> {state.value}")
        self.state = state

    @property
    def authenticated(self) -> bool:
        return self.state is AuthState.AUTHENTICATED

    def start(self, permissions: Permissions | None) -> None:
        """Begin with the handshake's permissions, or wait for an ``auth`` request."""
        if permissions is not None:
            self._accept(permissions)
        else:
            self._arm(
                self.authenticator.auth_timeout,
                CloseCode.AUTH_TIMEOUT,
                f"no valid token within {self.authenticator.auth_timeout:g} s",
            )

    def authenticate(self, token: str) -> Permissions:
        """An ``auth`` request: first authentication, or a refresh extending the expiry.

        A failed refresh leaves the current permissions (and their expiry) in place.

        Raises:
            Unauthorized: the token is missing, invalid or expired.
        """
        permissions = self.authenticator.verify(token)
        self._accept(permissions)
        return permissions

    def _accept(self, permissions: Permissions) -> None:
        first = self.state is AuthState.WAITING
        self._transition(AuthState.AUTHENTICATED)
        subject_changed = self.permissions is None or self.permissions.subject != permissions.subject
        self.permissions = permissions
        if first or subject_changed:
            self.guard = self.authenticator.publish_guard(permissions, self.address)
        self._cancel()
        left = permissions.seconds_left(self.authenticator.clock())
        if left is not None:
            self._arm(max(0.0, left), CloseCode.AUTH_EXPIRED, "the token expired")

    def _arm(self, delay: float, code: int, reason: str) -> None:
        self._cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire, code, reason)

    def _fire(self, code: int, reason: str) -> None:
        self._timer = None
        if self.state is not AuthState.CLOSED:
            self.on_close(code, reason)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def token_ran_out(self) -> bool:
        """True (and the connection being closed with 4004) once the token has expired.

        The expiry timer may fire a little late on a busy loop; transports ask this
        before writing, so nothing is delivered on an expired token meanwhile.
        """
        permissions = self.permissions
        if permissions is None or permissions.expires_at is None:
            return False
        if self.state is AuthState.CLOSED:
            return True  # the connection is ending: nothing more goes out
        if self.authenticator.clock() < permissions.expires_at:
            return False
        self._cancel()
        self._fire(CloseCode.AUTH_EXPIRED, "the token expired")
        self.close()
        return True

    def require(self, request_id: RequestId | None = None) -> Permissions:
        """The permissions, once authenticated.

        Raises:
            Unauthorized: no ``auth`` request has succeeded yet.
        """
        if self.permissions is None or self.state is not AuthState.AUTHENTICATED:
            raise Unauthorized('Authenticate first: send {"op": "auth", "token": ...}.', request_id=request_id)
        return self.permissions

    def check_publish(self, topic: str, request_id: RequestId | None) -> Verdict:
        """Permission and rate for one publish.

        Returns:
            ``Verdict.ALLOW``; or ``Verdict.CLOSE`` for persistent abuse (the
            caller reports the error and closes with 1008).

        Raises:
            Unauthorized / Forbidden / RateLimited: refused, the connection stays.
        """
        permissions = self.require(request_id)
        permissions.check_publish(topic, request_id)
        if self.guard is None:
            return Verdict.ALLOW
        verdict = self.guard.check(self.authenticator.monotonic())
        if verdict is Verdict.REFUSE:
            raise self.guard.refusal(request_id)
        return verdict

    def rate_error(self, request_id: RequestId | None) -> RtnbError:
        assert self.guard is not None
        return self.guard.refusal(request_id)

    def check_subscribe(self, pattern: Pattern, since: SinceCursor | None, request_id: RequestId | None) -> None:
        """Raises:
        Unauthorized / Forbidden: as :meth:`Permissions.check_subscribe`.
        """
        self.require(request_id).check_subscribe(pattern, since, request_id)

    def close(self) -> None:
        """The connection ended: stop timers; safe to call twice."""
        self._cancel()
        if self.state is not AuthState.CLOSED:
            self._transition(AuthState.CLOSED)
