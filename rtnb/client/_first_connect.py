"""The first connection of a client, retried like reconnections.

A script started together with its hub (``rtnb serve & python script.py``) must
not fail because the hub is a second late. So ``connect()`` retries a hub that
cannot be reached yet with the client's :class:`~rtnb.client.BackoffPolicy`,
for at most ``connect_timeout`` seconds (and ``max_attempts`` attempts, when the
policy sets it). Errors that retrying cannot fix (a refused token, a bad
request) fail at once, and ``fail_fast=True`` restores the single attempt, so a
wrong URL fails at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..core.errors import Unavailable
from ._backoff import Backoff

__all__ = ["connect_with_retries"]

log = logging.getLogger("rtnb.client")

T = TypeVar("T")


async def connect_with_retries(
    attempt: Callable[[], Awaitable[T]],
    backoff: Backoff,
    sleep: Callable[[float], Awaitable[object]],
    *,
    fail_fast: bool,
    connect_timeout: float | None,
    target: str,
    still_wanted: Callable[[], bool] = lambda: True,
) -> T:
    """Run ``attempt`` until it succeeds, retrying :class:`Unavailable` with backoff.

    Args:
        attempt: one connection attempt.
        backoff: the client's backoff (its policy, random and clock are used).
        sleep: how to wait (injectable for tests).
        fail_fast: no retry at all.
        connect_timeout: give up once this many seconds have passed (``None``: only
            ``max_attempts`` bounds the retries).
        target: what is being reached, for the log.
        still_wanted: False once the client was closed meanwhile (the last error is raised).

    Raises:
        Unavailable: still unreachable when the retries ran out.
        RtnbError: any other refusal, at once.
    """
    policy = backoff.policy
    started = backoff.clock()
    failures = 0
    while True:
        try:
            return await attempt()
        except Unavailable as error:
            failures += 1
            if fail_fast or not still_wanted():
                raise
            if policy.max_attempts is not None and failures >= policy.max_attempts:
                raise
            delay = policy.delay(failures, backoff.random)
            if connect_timeout is not None and backoff.clock() - started + delay > connect_timeout:
                raise
            log.info("cannot reach %s yet (%s); trying again in %.3f s", target, error.message, delay)
            await sleep(delay)
