"""Limits every hub enforces, and the token bucket behind rate limits.

Every buffer, queue and input the hub accepts has a bound with a sane default
here. Where ``None`` is allowed it disables that one limit, and the field's
doc says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from .message import DEFAULT_MAX_NESTING
from .topics import DEFAULT_MAX_TOPIC_DEPTH, DEFAULT_MAX_TOPIC_LENGTH

__all__ = ["Limits", "TokenBucket"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection and per-input bounds.

    Attributes:
        max_frame_bytes: largest client frame or HTTP body; over it, WebSocket
            closes with 1009 and HTTP answers 413.
        max_queue_bytes: outbound bytes buffered for one subscriber before it is
            treated as a slow consumer (skipped, then caught up from history).
        max_lag_seconds: how long a subscriber may stay over ``max_queue_bytes``
            before it is closed with 1008; ``None`` never closes it.
        max_subscriptions: patterns one connection may hold.
        max_topic_length / max_topic_depth: bounds on names.
        max_nesting: deepest payload nesting accepted.
        max_batch_bytes: largest frame the hub builds when it coalesces several
            messages into one (clients commonly refuse frames over 1 MiB).
    """

    max_frame_bytes: int = 2**20
    max_queue_bytes: int = 4 * 2**20
    max_lag_seconds: float | None = 60.0
    max_subscriptions: int = 256
    max_topic_length: int = DEFAULT_MAX_TOPIC_LENGTH
    max_topic_depth: int = DEFAULT_MAX_TOPIC_DEPTH
    max_nesting: int = DEFAULT_MAX_NESTING
    max_batch_bytes: int = 256 * 2**10

    def __post_init__(self) -> None:
        for name in ("max_frame_bytes", "max_queue_bytes", "max_subscriptions", "max_batch_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")


class TokenBucket:
    """A token bucket: ``rate`` tokens per second, holding at most ``burst``.

    Time is passed in, never read, so the bucket is deterministic in tests.
    """

    __slots__ = ("_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float = 0.0) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = now

    def take(self, now: float, tokens: float = 1.0) -> bool:
        """Spend ``tokens`` if available at time ``now``; False when over the rate."""
        elapsed = now - self._stamp
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._stamp = now
        if self._tokens >= tokens:
            self._tokens -= tokens
            return True
        return False

    @property
    def tokens(self) -> float:
        return self._tokens
