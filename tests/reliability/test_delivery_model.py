"""Model-based randomized test of the delivery promise (issue 18, "Done when").

A hypothesis state machine drives a real hub, in memory and on a private Redis, through
publishes on new and old topics, subscriptions over WebSocket, SSE and long polling (with
``last`` and wide patterns), connection cuts, history trims (a 4-message history), topic
resets, and on Redis hub restarts and Redis outages. At the end of each run every
subscriber must have seen each message published after it subscribed once, in order per
topic, or an explicit gap covering it — and no message a gap said was lost
(see ``delivery_model.violations``).

Example counts are bounded so each backend runs in well under a minute. Runs that once
failed are kept below as plain regression tests (``test_regression_*``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from delivery_model import Driver, private_redis_directory
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from rtnb.core.history import HistoryLimits

TOPICS = ["m/a", "m/b", "m/c/d", "m/e", "m/f/g"]
PATTERNS = ["m/#", "m/+", "m/a", "m/+/+"]
KINDS = ["ws", "sse", "poll"]
MAX_SUBSCRIBERS = 4
HISTORY = HistoryLimits(max_messages=4)
RUNS = settings(
    max_examples=int(os.environ.get("RTNB_MODEL_EXAMPLES", "6")),
    stateful_step_count=14,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class DeliveryMachine(RuleBasedStateMachine):
    """Steps on a real hub; the invariant is checked once the run has settled (teardown)."""

    redis_url: str | None = None
    redis: object = None

    def __init__(self) -> None:
        super().__init__()
        self.driver: Driver | None = None

    @initialize()
    def start(self) -> None:
        self.driver = Driver(self.redis_url, HISTORY)

    @property
    def hub(self) -> Driver:
        assert self.driver is not None
        return self.driver

    @rule(topic=st.sampled_from(TOPICS), count=st.integers(1, 6))
    def publish(self, topic: str, count: int) -> None:
        for _ in range(count):
            self.hub.publish(topic)

    @precondition(lambda self: self.driver is not None and len(self.driver.subscribers) < MAX_SUBSCRIBERS)
    @rule(kind=st.sampled_from(KINDS), pattern=st.sampled_from(PATTERNS), last=st.sampled_from([None, 0, 2]))
    def subscribe(self, kind: str, pattern: str, last: int | None) -> None:
        self.hub.subscribe(kind, pattern, last)

    @rule()
    def cut_connections(self) -> None:
        self.hub.cut()

    @rule(topic=st.sampled_from(TOPICS))
    def reset_topic(self, topic: str) -> None:
        self.hub.reset(topic)

    @precondition(lambda self: self.redis_url is not None)
    @rule()
    def restart_hub(self) -> None:
        self.hub.restart_hub()

    @precondition(lambda self: self.redis_url is not None)
    @rule()
    def redis_outage(self) -> None:
        self.hub.outage(self.redis)

    def teardown(self) -> None:
        if self.driver is None:
            return
        try:
            problems = self.driver.settle()
            assert problems == [], "\n".join(problems[:20])
        finally:
            self.driver.close()


@RUNS
class InMemoryDelivery(DeliveryMachine):
    pass


def test_the_promise_holds_on_an_in_memory_hub() -> None:
    InMemoryDelivery.TestCase().runTest()


def start_private_redis(tmp_path: Path) -> Any:
    """A ``redis-server`` of the test's own (stopped and restarted by outages)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backplane"))
    from redis_helpers import PrivateRedis

    if shutil.which("redis-server") is None:
        if os.environ.get("RTNB_CI"):
            pytest.fail("redis-server is not installed (CI must provide it)")
        pytest.skip("redis-server is not installed: a private Redis is needed for outages")
    redis = PrivateRedis(private_redis_directory(tmp_path))
    asyncio.run(redis.start())
    return redis


#: The Redis model runs a fixed set of examples in CI (``RTNB_MODEL_RANDOM=1`` explores at random).
#: The random search once found (twice in about six full runs) a WebSocket on ``m/#`` that never got
#: a new topic's messages nor a gap; it depended on timing, so replaying its steps passed. Cause: a
#: subscribe awaits Redis before its member joins a group, and a poll ending meanwhile made the hub
#: watch only its groups' patterns, dropping the one being subscribed (Redis stopped sending it,
#: its topics' positions were forgotten and later re-read from their current offset). Fixed in the
#: hub (patterns being subscribed stay watched); the interleaving is made deterministic in
#: ``tests/backplane/test_redis_watch_race.py``, and the steps are kept below as a regression run.
REDIS_RUNS = settings(RUNS, derandomize=not os.environ.get("RTNB_MODEL_RANDOM"), database=None)


def test_the_promise_holds_on_a_redis_hub(tmp_path: Path) -> None:
    redis = start_private_redis(tmp_path)
    try:

        @REDIS_RUNS
        class RedisDelivery(DeliveryMachine):
            pass

        RedisDelivery.redis_url = redis.url
        RedisDelivery.redis = redis
        RedisDelivery.TestCase().runTest()
    finally:
        redis.stop()


def checkpoint_on_every_move(monkeypatch: pytest.MonkeyPatch) -> None:
    """WebSocket clients ask for a checkpoint whenever a topic moved (not past 256 topics, once
    a second) and resume from it, and every cursor is a stored one (not inline below 2 KiB): the
    model's few topics then exercise the bounded resume, on SSE and polling too."""
    import rtnb.client._checkpoints
    import rtnb.client._resume
    import rtnb.core.cursor_store

    monkeypatch.setattr(rtnb.core.cursor_store, "INLINE_CURSOR_LIMIT", 0)

    monkeypatch.setattr(rtnb.client._resume, "CHECKPOINT_MIN_TOPICS", 1)
    monkeypatch.setattr(rtnb.client._resume, "CHECKPOINT_RENEW_TOPICS", 1)
    monkeypatch.setattr(rtnb.client._checkpoints, "CHECKPOINT_INTERVAL", 0.02)


def test_the_promise_holds_with_websocket_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    checkpoint_on_every_move(monkeypatch)
    InMemoryDelivery.TestCase().runTest()


def test_the_promise_holds_with_websocket_checkpoints_on_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkpoint_on_every_move(monkeypatch)
    redis = start_private_redis(tmp_path)
    try:

        @REDIS_RUNS
        class RedisCheckpointDelivery(DeliveryMachine):
            pass

        RedisCheckpointDelivery.redis_url = redis.url
        RedisCheckpointDelivery.redis = redis
        RedisCheckpointDelivery.TestCase().runTest()
    finally:
        redis.stop()


# -- runs that once failed, kept as plain regression tests ------------------------------


def run_steps(redis_url: str | None, steps: list[tuple[str, tuple[object, ...]]], repeat: int = 3) -> None:
    for _ in range(repeat):
        driver = Driver(redis_url, HISTORY)
        try:
            for name, arguments in steps:
                getattr(driver, name)(*arguments)
            problems = driver.settle()
            assert problems == [], "\n".join(problems[:20])
        finally:
            driver.close()


def test_regression_a_topic_created_and_reset_while_away_is_reported() -> None:
    """The topic's only epoch was created after the subscriber's cursor and lost before it came back."""
    run_steps(None, [("subscribe", ("ws", "m/#", None)), ("cut", ()), ("publish", ("m/a",)), ("reset", ("m/a",))])


def test_regression_a_poll_answer_and_its_cursor_are_taken_together() -> None:
    """A batch flushed while the poll left the hub went into the answer but not into its cursor."""
    steps: list[tuple[str, tuple[object, ...]]] = [
        ("subscribe", ("ws", "m/#", None)),
        ("cut", ()),
        ("subscribe", ("poll", "m/#", None)),
        *[("publish", ("m/f/g",))] * 5,
        ("cut", ()),
        ("publish", ("m/b",)),
    ]
    run_steps(None, steps)


def test_regression_redis_a_topic_reset_before_its_first_publish_is_found(tmp_path: Path) -> None:
    """The Redis reset script set an epoch without listing the topic: pattern lookups never found it."""
    redis = start_private_redis(tmp_path)
    try:
        steps: list[tuple[str, tuple[object, ...]]] = [
            ("subscribe", ("poll", "m/+", 2)),
            ("restart_hub", ()),
            ("reset", ("m/b",)),
            *[("publish", ("m/b",))] * 4,
        ]
        run_steps(redis.url, steps, repeat=1)
    finally:
        redis.stop()


def test_regression_redis_an_epoch_lost_while_away_on_an_unknown_topic_is_reported(tmp_path: Path) -> None:
    """Created and reset while the subscriber was away; the Redis backplane did not remember the lost epoch."""
    redis = start_private_redis(tmp_path)
    try:
        steps: list[tuple[str, tuple[object, ...]]] = [
            ("subscribe", ("ws", "m/#", None)),
            *[("cut", ())] * 3,
            ("publish", ("m/b",)),
            ("cut", ()),
            ("reset", ("m/b",)),
        ]
        run_steps(redis.url, steps, repeat=2)
    finally:
        redis.stop()


def test_regression_redis_a_new_topic_reaches_a_websocket_while_polls_come_and_go(tmp_path: Path) -> None:
    """The random search's run: polls ending while the WebSocket resubscribed dropped ``m/#`` from Redis."""
    redis = start_private_redis(tmp_path)
    try:
        steps: list[tuple[str, tuple[object, ...]]] = [
            ("subscribe", ("ws", "m/#", None)),
            *[("cut", ())] * 4,
            ("subscribe", ("poll", "m/a", 2)),
            *[("publish", ("m/c/d",))] * 4,
            ("cut", ()),
            ("subscribe", ("ws", "m/a", 0)),
            ("cut", ()),
            ("subscribe", ("poll", "m/+/+", None)),
            *[("cut", ())] * 2,
        ]
        run_steps(redis.url, steps, repeat=2)
    finally:
        redis.stop()
