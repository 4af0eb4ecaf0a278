"""Reconnection delays: exponential backoff with full jitter, without I/O.

After the ``n``-th failed attempt in a row the client waits a random time in
``[0, min(cap, initial * multiplier ** (n - 1))]`` ("full jitter"): when a hub
restarts, its thousand clients spread their reconnections over the window
instead of arriving together. The randomness and the clock are injected, so the
schedule is testable without sleeping.
"""

from __future__ import annotations

import random as random_module
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff", "BackoffPolicy"]


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """How long to wait between reconnection attempts.

    Attributes:
        initial: upper bound of the first delay, seconds.
        cap: largest upper bound any delay may have, seconds.
        multiplier: growth of the upper bound per failed attempt.
        max_attempts: failed attempts in a row before giving up; ``None`` retries forever.
        reset_after: a connection that stayed up this many seconds resets the count,
            so a flapping link does not restart at the smallest delay every time.
    """

    initial: float = 0.5
    cap: float = 30.0
    multiplier: float = 2.0
    max_attempts: int | None = None
    reset_after: float = 10.0

    def __post_init__(self) -> None:
        if self.initial < 0 or self.cap < 0:
            raise ValueError("initial and cap must be >= 0")
        if self.multiplier < 1:
            raise ValueError("multiplier must be >= 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1 or None")
        if self.reset_after < 0:
            raise ValueError("reset_after must be >= 0")

    def ceiling(self, attempt: int) -> float:
        """Upper bound of the delay before attempt ``attempt`` (1 = first retry)."""
        if attempt < 1:
            raise ValueError("attempt counts from 1")
        bound = self.initial
        # Grow step by step so a huge attempt number never overflows a float power.
        for _ in range(attempt - 1):
            bound *= self.multiplier
            if bound >= self.cap:
                return self.cap
        return min(bound, self.cap)

    def delay(self, attempt: int, random: Callable[[], float] = random_module.random) -> float:
        """A full-jitter delay for attempt ``attempt``: ``random() * ceiling(attempt)``."""
        return random() * self.ceiling(attempt)


class Backoff:
    """The running count of failed attempts for one client.

    Args:
        policy: the delays and limits to follow.
        random: a function returning floats in ``[0, 1)``; injectable for tests.
        clock: monotonic seconds; injectable for tests.
    """

    def __init__(
        self,
        policy: BackoffPolicy | None = None,
        *,
        random: Callable[[], float] = random_module.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy or BackoffPolicy()
        self.random = random
        self.clock = clock
        self.attempts = 0
        self._connected_at: float | None = None

    @property
    def exhausted(self) -> bool:
        """True once ``max_attempts`` failed attempts in a row were made."""
        limit = self.policy.max_attempts
        return limit is not None and self.attempts >= limit

    def next_delay(self) -> float | None:
        """Count one more failed attempt; the delay before the next one, or ``None`` to give up."""
        if self.exhausted:
            return None
        self.attempts += 1
        return self.policy.delay(self.attempts, self.random)

    def connected(self) -> None:
        """Note that a connection was established now."""
        self._connected_at = self.clock()

    def disconnected(self) -> None:
        """Note that the connection was lost; resets the count if it had been stable."""
        connected_at, self._connected_at = self._connected_at, None
        if connected_at is not None and self.clock() - connected_at >= self.policy.reset_after:
            self.attempts = 0

    def reset(self) -> None:
        self.attempts = 0
        self._connected_at = None
