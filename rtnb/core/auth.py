"""Who may do what, and how fast: the hub's security decisions, without I/O.

Adapters find a token (see :mod:`rtnb.server.auth`), have it verified
(:mod:`rtnb.core.jwt_verifier`), hand its claims here and get a
:class:`Permissions` object back; from then on every publish, subscribe and
history request of that connection is checked against it, the same way on
every transport. Rate limits and connection counts per address are
decided here too, with time passed in, so all of it is unit-tested without
sockets or clocks. ``Host`` and ``Origin`` rules live in :mod:`rtnb.core.origins`.

Claims (the names are rtnb's; ``sub`` and ``exp`` are standard JWT claims)::

    {"sub": "device-7",              # subject: who this is, also the rate-limit key
     "pub": ["plant/7/#"],           # patterns it may publish to
     "sub_topics": ["plant/7/cmd"],  # patterns it may subscribe to (history included)
     "exp": 1767225600}              # expiry, seconds since the epoch

A missing ``pub`` or ``sub_topics`` claim grants nothing: permissions are
denied unless granted. A single string is accepted where a list is expected.
"""

from __future__ import annotations

import enum
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import Forbidden, InvalidPattern, RateLimited, TooManyConnections, Unauthorized
from .limits import TokenBucket
from .protocol import RequestId, SinceCursor
from .topics import SYSTEM_PREFIX, Pattern

__all__ = [
    "CLAIM_PUBLISH",
    "CLAIM_SUBJECT",
    "CLAIM_SUBSCRIBE",
    "DEFAULT_RATE_LIMIT",
    "ConnectionCounter",
    "Permissions",
    "PublishGuard",
    "RateLimit",
    "SubjectBuckets",
    "Verdict",
]

CLAIM_SUBJECT = "sub"
CLAIM_PUBLISH = "pub"
CLAIM_SUBSCRIBE = "sub_topics"

#: Most patterns one claim may list; a token is small, a bigger list is a mistake or an attack.
MAX_GRANTS = 256


def _grants(claims: Mapping[str, Any], name: str) -> tuple[Pattern, ...]:
    value = claims.get(name, ())
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise Unauthorized(f"The token's {name!r} claim must be a list of topic patterns.")
    if len(value) > MAX_GRANTS:
        raise Unauthorized(f"The token's {name!r} claim lists {len(value)} patterns; the limit is {MAX_GRANTS}.")
    try:
        return tuple(Pattern.parse(text) for text in value)
    except InvalidPattern as error:
        raise Unauthorized(f"The token's {name!r} claim holds a bad pattern: {error.message}") from None


def _grant_covers(grant: Pattern, pattern: Pattern) -> bool:
    # As in matching, a grant starting with a wildcard does not reach system ($) topics.
    if pattern.text.startswith(SYSTEM_PREFIX) and grant.levels[0] in ("+", "#"):
        return False
    return grant.covers(pattern)


@dataclass(frozen=True)
class Permissions:
    """What one authenticated connection (or HTTP request) may do.

    Attributes:
        subject: who the token names (``sub``); ``None`` without authentication.
        publish: patterns whose topics it may publish to.
        subscribe: patterns it may subscribe within; a subscription must be
            covered by one of them (``plant/7/#`` covers ``plant/7/+/temp`` but
            not ``plant/#`` nor ``#``).
        expires_at: when the grant ends, seconds since the epoch; ``None`` never.
        unrestricted: everything is allowed (hubs running without authentication).
    """

    subject: str | None = None
    publish: tuple[Pattern, ...] = ()
    subscribe: tuple[Pattern, ...] = ()
    expires_at: float | None = None
    unrestricted: bool = False
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def allow_all(cls) -> Permissions:
        """The permissions of a client of a hub without authentication."""
        return cls(unrestricted=True)

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Permissions:
        """Read verified token claims.

        Raises:
            Unauthorized: the subject is missing or a grant is malformed.
        """
        subject = claims.get(CLAIM_SUBJECT)
        if not isinstance(subject, str) or not subject:
            raise Unauthorized(f"The token has no {CLAIM_SUBJECT!r} (subject) claim.")
        expires = claims.get("exp")
        if expires is not None and (isinstance(expires, bool) or not isinstance(expires, (int, float))):
            raise Unauthorized("The token's 'exp' claim must be a number of seconds since the epoch.")
        return cls(
            subject=subject,
            publish=_grants(claims, CLAIM_PUBLISH),
            subscribe=_grants(claims, CLAIM_SUBSCRIBE),
            expires_at=None if expires is None else float(expires),
            claims=dict(claims),
        )

    # -- questions ---------------------------------------------------------------------

    def may_publish(self, topic: str) -> bool:
        """True when ``topic`` (concrete) falls under a publish grant."""
        return self.unrestricted or any(grant.matches(topic) for grant in self.publish)

    def may_subscribe(self, pattern: Pattern) -> bool:
        """True when every topic ``pattern`` matches falls under one subscribe grant."""
        return self.unrestricted or any(_grant_covers(grant, pattern) for grant in self.subscribe)

    def may_read(self, topic: str) -> bool:
        """True when the history of the concrete ``topic`` may be read."""
        return self.unrestricted or any(grant.matches(topic) for grant in self.subscribe)

    def seconds_left(self, now: float) -> float | None:
        """Seconds until the grant expires (<= 0 once expired); ``None`` when it never does."""
        return None if self.expires_at is None else self.expires_at - now

    # -- checks that raise the wire errors ---------------------------------------------

    def check_publish(self, topic: str, request_id: RequestId | None = None) -> None:
        """Raises:
        Forbidden: ``topic`` is outside the publish grants.
        """
        if not self.may_publish(topic):
            raise Forbidden(f"{self._who()} may not publish to {topic!r}.", request_id=request_id)

    def check_subscribe(
        self, pattern: Pattern, since: SinceCursor | None = None, request_id: RequestId | None = None
    ) -> None:
        """Check a subscription and the history it asks for (``last`` rides on the pattern).

        Raises:
            Forbidden: the pattern reaches beyond the subscribe grants (wildcard
                escalation such as ``#`` when ``plant/7/#`` is granted), or a
                ``since`` cursor names a topic the subject may not read.
        """
        if not self.may_subscribe(pattern):
            raise Forbidden(
                f"{self._who()} may not subscribe to {pattern.text!r}; allowed: {self._listed(self.subscribe)}.",
                request_id=request_id,
            )
        for topic in since or ():
            if not self.may_read(topic):
                raise Forbidden(f"{self._who()} may not read the history of {topic!r}.", request_id=request_id)

    def _who(self) -> str:
        return f"Subject {self.subject!r}" if self.subject else "This client"

    @staticmethod
    def _listed(grants: tuple[Pattern, ...]) -> str:
        return ", ".join(repr(grant.text) for grant in grants) if grants else "nothing"


# -- rate limits ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RateLimit:
    """A publish rate: ``rate`` messages per second on average, ``burst`` at once."""

    rate: float
    burst: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate > 0 and math.isfinite(self.burst) and self.burst >= 1):
            raise ValueError("a rate limit needs rate > 0 and burst >= 1")

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """Read ``RATE`` or ``RATE/BURST`` (burst defaults to twice the rate).

        Raises:
            ValueError: not two positive numbers.
        """
        rate_text, _, burst_text = text.partition("/")
        try:
            rate = float(rate_text)
            burst = float(burst_text) if burst_text else max(1.0, 2 * rate)
            return cls(rate, burst)
        except ValueError:
            raise ValueError(
                f"expected RATE or RATE/BURST with positive numbers, e.g. 1000/2000, not {text!r}"
            ) from None

    def bucket(self, now: float) -> TokenBucket:
        return TokenBucket(self.rate, self.burst, now)


#: The publish limit ``--auth jwt`` applies unless told otherwise.
DEFAULT_RATE_LIMIT = RateLimit(1000.0, 2000.0)


class Verdict(enum.Enum):
    """What to do with one publish: go ahead, refuse it, or refuse and close the connection."""

    ALLOW = "allow"
    REFUSE = "refuse"
    CLOSE = "close"


class SubjectBuckets:
    """One shared token bucket per subject (or address), bounded in number.

    The least recently used bucket is forgotten past ``max_subjects``; a
    forgotten subject starts again with a full burst, which is the price of
    bounded memory against a flood of distinct subjects.
    """

    def __init__(self, limit: RateLimit, max_subjects: int = 100_000) -> None:
        self.limit = limit
        self.max_subjects = max_subjects
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def get(self, key: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = self.limit.bucket(now)
            while len(self._buckets) > self.max_subjects:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def __len__(self) -> int:
        return len(self._buckets)


class PublishGuard:
    """The publish limits of one connection: its own bucket and its subject's shared one.

    Every refused publish is a strike; strikes drain at ``strike_rate`` per
    second, and a connection that piles up more than ``max_strikes`` keeps
    publishing far over its limit: it is closed (1008), since answering each
    frame with an error would cost the hub more than the abuser.

    Args:
        limit: the per-connection rate.
        subject_bucket: the bucket shared by every connection of the subject, or None.
        now: current time (monotonic seconds).
        max_strikes: refused publishes tolerated in a burst.
        strike_rate: refused publishes tolerated per second, sustained.
    """

    def __init__(
        self,
        limit: RateLimit,
        subject_bucket: TokenBucket | None,
        now: float,
        *,
        max_strikes: float = 100,
        strike_rate: float = 10,
    ) -> None:
        self.bucket = limit.bucket(now)
        self.subject_bucket = subject_bucket
        self.strikes = TokenBucket(strike_rate, max_strikes, now)
        self.refused = 0

    def check(self, now: float, count: int = 1) -> Verdict:
        """Spend ``count`` publishes at time ``now``."""
        if self.bucket.take(now, count):
            if self.subject_bucket is None or self.subject_bucket.take(now, count):
                return Verdict.ALLOW
        self.refused += count
        return Verdict.REFUSE if self.strikes.take(now, 1) else Verdict.CLOSE

    def refusal(self, request_id: RequestId | None = None) -> RateLimited:
        rate = self.bucket.rate
        return RateLimited(f"Publishing faster than {rate:g} messages/s; slow down.", request_id=request_id)


class ConnectionCounter:
    """Open connections per key (a client address), refused past ``max_per_key``."""

    def __init__(self, max_per_key: int | None) -> None:
        self.max_per_key = max_per_key
        self._counts: dict[str, int] = {}

    def admit(self, key: str) -> None:
        """Count one more connection for ``key``.

        Raises:
            TooManyConnections: ``key`` already holds ``max_per_key``.
        """
        count = self._counts.get(key, 0)
        if self.max_per_key is not None and count >= self.max_per_key:
            raise TooManyConnections(f"{key} already holds {count} connections; the limit is {self.max_per_key}.")
        self._counts[key] = count + 1

    def release(self, key: str) -> None:
        count = self._counts.get(key, 0) - 1
        if count > 0:
            self._counts[key] = count
        else:
            self._counts.pop(key, None)

    def count(self, key: str) -> int:
        return self._counts.get(key, 0)

    def __len__(self) -> int:
        """Keys holding at least one connection (for leak checks)."""
        return len(self._counts)
