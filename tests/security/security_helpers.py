"""Helpers for security tests: tokens for a hub requiring JWTs, and its authenticator."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rtnb.cli.token import mint_token
from rtnb.core.auth import RateLimit
from rtnb.server.auth import AccessControl

SECRET = "tests-secret-that-is-long-enough-for-hs256!"
AUDIENCE = "rtnb-tests"

TokenFactory = Callable[..., str]


def make_token(
    subject: str = "device-7",
    publish: tuple[str, ...] = ("plant/7/#",),
    subscribe: tuple[str, ...] = ("plant/7/#",),
    *,
    ttl: float | None = 600,
    secret: str = SECRET,
    audience: str | None = AUDIENCE,
    **options: Any,
) -> str:
    return mint_token(secret, subject, publish=publish, subscribe=subscribe, ttl=ttl, audience=audience, **options)


def expired_token() -> str:
    return make_token(ttl=60, now=time.time() - 3600)


def jwt_authenticator(**options: Any) -> AccessControl:
    options.setdefault("rate_limit", RateLimit(1000, 2000))
    return AccessControl.jwt(secret=SECRET, audience=AUDIENCE, **options)
