"""The backoff policy, pure: a fake clock and a seeded random, no sockets, no sleeps."""

from __future__ import annotations

import random

import pytest

from rtnb.client import Backoff, BackoffPolicy


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_ceilings_grow_exponentially_up_to_the_cap() -> None:
    policy = BackoffPolicy(initial=0.5, cap=4.0, multiplier=2.0)
    assert [policy.ceiling(attempt) for attempt in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert policy.ceiling(10_000) == 4.0  # no float overflow for huge attempt numbers


def test_delays_are_full_jitter_within_the_ceiling() -> None:
    policy = BackoffPolicy(initial=1.0, cap=8.0)
    assert policy.delay(3, random=lambda: 0.0) == 0.0
    assert policy.delay(3, random=lambda: 0.5) == 2.0
    assert policy.delay(3, random=lambda: 0.999) == pytest.approx(3.996)
    rng = random.Random(7)
    delays = [policy.delay(attempt, rng.random) for attempt in range(1, 200)]
    assert all(0.0 <= delay <= policy.ceiling(attempt) for attempt, delay in enumerate(delays, start=1))
    assert len(set(delays)) == len(delays)  # jittered, not a fixed schedule


def test_backoff_counts_attempts_and_gives_up_after_max_attempts() -> None:
    backoff = Backoff(BackoffPolicy(initial=1.0, cap=10.0, max_attempts=3), random=lambda: 1.0)
    assert [backoff.next_delay() for _ in range(3)] == [1.0, 2.0, 4.0]
    assert backoff.exhausted
    assert backoff.next_delay() is None
    assert backoff.attempts == 3


def test_a_stable_connection_resets_the_count_and_a_flapping_one_does_not() -> None:
    clock = FakeClock()
    backoff = Backoff(BackoffPolicy(initial=1.0, cap=60.0, reset_after=10.0), random=lambda: 1.0, clock=clock)
    assert [backoff.next_delay() for _ in range(3)] == [1.0, 2.0, 4.0]
    backoff.connected()
    clock.advance(2.0)  # dropped again after 2 s: still flapping
    backoff.disconnected()
    assert backoff.next_delay() == 8.0
    backoff.connected()
    clock.advance(10.0)  # stayed up 10 s: stable
    backoff.disconnected()
    assert backoff.next_delay() == 1.0


def test_policy_rejects_nonsense() -> None:
    for bad in ({"initial": -1.0}, {"multiplier": 0.5}, {"max_attempts": 0}, {"reset_after": -1.0}):
        with pytest.raises(ValueError):
            BackoffPolicy(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        BackoffPolicy().ceiling(0)
