"""One long-lived connection's authentication: deadline, refresh, expiry, publish guard.

A WebSocket may authenticate after it opened (a first ``auth`` request), must
do so within a deadline, may refresh its token, and is closed when the token
expires. :class:`ConnectionSecurity` holds that lifecycle as explicit states
(:class:`AuthState`) and the timers that go with it; the hub-wide parts (token
verification, shared rate buckets, connection counts) are the
:class:`~rtnb.server.auth.AccessControl`'s, which the transport passes in.

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
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..core.auth import Permissions, PublishGuard, Verdict
from ..core.close_codes import CloseCode
from ..core.errors import RtnbError, Unauthorized
from ..core.protocol import RequestId, SinceCursor
from ..core.topics import Pattern

if TYPE_CHECKING:
    from .auth import AccessControl

__all__ = ["AuthState", "ConnectionSecurity"]


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
    :attr:`AccessControl.connections <rtnb.server.auth.AccessControl.connections>` admitted the address), calls
    :meth:`start` with the permissions of a token given at the handshake (or
    ``None``), asks :meth:`check_publish` / :meth:`check_subscribe` before each
    request, and calls :meth:`close` when the connection ends.

    Args:
        authenticator: the hub's authenticator.
        address: the client's address (connection-limit and anonymous rate key).
        on_close: ``callback(code, reason)`` to end the connection: deadline
            missed (4001) or token expired (4004).
    """

    def __init__(self, authenticator: AccessControl, address: str, on_close: Callable[[int, str], None]) -> None:
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
