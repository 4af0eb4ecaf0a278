"""rtnb.core.auth: permissions, rate limits, connection counts and origins, without sockets."""

from __future__ import annotations

import pytest

from rtnb.core.auth import (
    ConnectionCounter,
    Permissions,
    PublishGuard,
    RateLimit,
    SubjectBuckets,
    Verdict,
)
from rtnb.core.errors import Forbidden, TooManyConnections, Unauthorized
from rtnb.core.origins import HostPolicy, OriginPolicy
from rtnb.core.topics import Pattern


def device_seven() -> Permissions:
    return Permissions.from_claims(
        {"sub": "device-7", "pub": ["plant/7/#"], "sub_topics": ["plant/7/#", "plant/+/status"], "exp": 100}
    )


def assert_forbidden(call: object, *args: object) -> Forbidden:
    with pytest.raises(Forbidden) as caught:
        call(*args)  # type: ignore[operator]
    assert caught.value.code == "forbidden" and caught.value.http_status == 403
    return caught.value


# -- permissions -----------------------------------------------------------------------


def test_claims_become_permissions() -> None:
    permissions = device_seven()
    assert permissions.subject == "device-7"
    assert [grant.text for grant in permissions.publish] == ["plant/7/#"]
    assert permissions.expires_at == 100.0
    assert permissions.seconds_left(40.0) == 60.0


def test_publish_only_within_grants() -> None:
    permissions = device_seven()
    assert permissions.may_publish("plant/7/temp")
    assert permissions.may_publish("plant/7")  # '#' includes the parent level, as in MQTT
    assert not permissions.may_publish("plant/8/temp")
    error = assert_forbidden(permissions.check_publish, "plant/8/temp")
    assert "device-7" in error.message and "plant/8/temp" in error.message


@pytest.mark.parametrize(
    "pattern", ["plant/7/#", "plant/7/+/temp", "plant/7/boiler", "plant/3/status", "plant/+/status"]
)
def test_subscriptions_inside_grants_are_allowed(pattern: str) -> None:
    device_seven().check_subscribe(Pattern.parse(pattern))


@pytest.mark.parametrize("pattern", ["#", "plant/#", "+/7/#", "plant/+/temp", "plant/8/temp", "plant/+/#"])
def test_wildcard_escalation_is_forbidden(pattern: str) -> None:
    assert_forbidden(device_seven().check_subscribe, Pattern.parse(pattern))


def test_history_cursor_topics_must_be_readable() -> None:
    permissions = device_seven()
    permissions.check_subscribe(Pattern.parse("plant/7/#"), {"plant/7/temp": (3, None)})
    assert_forbidden(permissions.check_subscribe, Pattern.parse("plant/7/#"), {"plant/8/temp": (3, None)})


def test_system_topics_need_an_explicit_grant() -> None:
    everything = Permissions.from_claims({"sub": "ops", "sub_topics": ["#"]})
    assert not everything.may_subscribe(Pattern.parse("$rtnb/bridge/mqtt"))
    system = Permissions.from_claims({"sub": "ops", "sub_topics": ["$rtnb/#"]})
    assert system.may_subscribe(Pattern.parse("$rtnb/bridge/mqtt"))


def test_missing_grants_grant_nothing() -> None:
    reader = Permissions.from_claims({"sub": "reader", "sub_topics": "plant/#"})
    assert not reader.may_publish("plant/1")
    assert reader.may_subscribe(Pattern.parse("plant/1/temp"))


@pytest.mark.parametrize(
    "claims",
    [
        {"pub": ["a"]},
        {"sub": ""},
        {"sub": "x", "pub": "a//b"},
        {"sub": "x", "pub": {"a": 1}},
        {"sub": "x", "sub_topics": ["a/#/b"]},
        {"sub": "x", "exp": "tomorrow"},
        {"sub": "x", "pub": ["a"] * 300},
    ],
)
def test_malformed_claims_are_unauthorized(claims: dict[str, object]) -> None:
    with pytest.raises(Unauthorized):
        Permissions.from_claims(claims)


def test_allow_all_allows_everything() -> None:
    permissions = Permissions.allow_all()
    assert permissions.may_publish("any/topic") and permissions.may_subscribe(Pattern.parse("#"))
    assert permissions.seconds_left(0.0) is None


# -- rate limits -------------------------------------------------------------------------


def test_rate_limit_parsing() -> None:
    assert RateLimit.parse("1000/2000") == RateLimit(1000, 2000)
    assert RateLimit.parse("5") == RateLimit(5, 10)
    for bad in ("", "fast", "0/1", "-1/5", "10/0", "nan", "inf/1"):
        with pytest.raises(ValueError):
            RateLimit.parse(bad)


def test_guard_allows_a_burst_then_refuses_then_recovers() -> None:
    guard = PublishGuard(RateLimit(10, 5), None, now=0.0)
    assert [guard.check(0.0) for _ in range(5)] == [Verdict.ALLOW] * 5
    assert guard.check(0.0) is Verdict.REFUSE
    assert guard.check(0.1) is Verdict.ALLOW  # 0.1 s at 10/s gave one token back
    assert guard.refused == 1
    assert guard.refusal("p1").code == "rate_limited" and guard.refusal("p1").request_id == "p1"


def test_persistent_abuse_closes() -> None:
    guard = PublishGuard(RateLimit(10, 1), None, now=0.0, max_strikes=3, strike_rate=1)
    assert guard.check(0.0) is Verdict.ALLOW
    assert [guard.check(0.0) for _ in range(4)] == [Verdict.REFUSE] * 3 + [Verdict.CLOSE]


def test_subject_bucket_is_shared_by_connections() -> None:
    buckets = SubjectBuckets(RateLimit(1, 3))
    first = PublishGuard(RateLimit(100, 100), buckets.get("device-7", 0.0), now=0.0)
    second = PublishGuard(RateLimit(100, 100), buckets.get("device-7", 0.0), now=0.0)
    verdicts = [first.check(0.0), second.check(0.0), first.check(0.0), second.check(0.0)]
    assert verdicts == [Verdict.ALLOW, Verdict.ALLOW, Verdict.ALLOW, Verdict.REFUSE]


def test_subject_buckets_are_bounded() -> None:
    buckets = SubjectBuckets(RateLimit(1, 1), max_subjects=3)
    for index in range(10):
        buckets.get(f"s{index}", 0.0)
    assert len(buckets) == 3


# -- connections and origins ---------------------------------------------------------------


def test_connection_counter_limits_and_releases() -> None:
    counter = ConnectionCounter(2)
    counter.admit("10.0.0.1")
    counter.admit("10.0.0.1")
    counter.admit("10.0.0.2")
    with pytest.raises(TooManyConnections) as caught:
        counter.admit("10.0.0.1")
    assert caught.value.code == "too_many_connections" and caught.value.http_status == 429
    counter.release("10.0.0.1")
    counter.admit("10.0.0.1")
    for _ in range(3):
        counter.release("10.0.0.1")
    counter.release("10.0.0.2")
    assert len(counter) == 0


def test_unlimited_counter_still_counts() -> None:
    counter = ConnectionCounter(None)
    for _ in range(5000):
        counter.admit("a")
    assert counter.count("a") == 5000


def test_origin_policy() -> None:
    policy = OriginPolicy(["https://dash.example"])
    assert policy.allows(None, "hub:8765")  # not a browser page
    assert policy.allows("http://hub:8765", "hub:8765")  # same origin
    assert policy.allows("https://DASH.example/", "hub:8765")
    assert not policy.allows("https://evil.example", "hub:8765")
    assert not policy.allows("null", "hub:8765")
    assert policy.cors_origin("https://dash.example") == "https://dash.example"
    assert policy.cors_origin("http://hub:8765") is None
    with pytest.raises(Forbidden):
        policy.check("https://evil.example", "hub:8765")
    assert OriginPolicy(["*"]).allows("https://anything.example", "hub")


def test_host_policy_on_loopback() -> None:
    policy = HostPolicy.for_binding("127.0.0.1", ["hub.lan"])
    for host in (
        "localhost",
        "LOCALHOST:8765",
        "127.0.0.1",
        "127.0.0.1:1",
        "127.9.9.9:80",
        "[::1]",
        "[::1]:8765",
        "localhost.:8765",
        "hub.lan",
        "Hub.Lan:443",
        None,
    ):
        assert policy.allows(host), host
    for host in (
        "evil.example",
        "evil.example:8765",
        "localhost.evil.example",
        "127.0.0.1.nip.io:8765",
        "",
        "10.0.0.5",
        "[::2]:80",
        "a b",
        "localhost:port",
        "localhost:8765/x",
        "user@localhost",
    ):
        assert not policy.allows(host), host
    with pytest.raises(Forbidden, match=r"evil\.example"):
        policy.check("evil.example:8765")


def test_host_policy_beyond_loopback() -> None:
    assert HostPolicy.for_binding("0.0.0.0").allows("anything.example")
    named = HostPolicy.for_binding("0.0.0.0", ["hub.lan"])
    assert named.allows("hub.lan:8765") and named.allows("localhost") and not named.allows("evil.example")
    assert HostPolicy.for_binding("::1").allows("[::1]:1") and not HostPolicy.for_binding("::1").allows("x.example")
    assert HostPolicy.for_binding("127.0.0.1", ["*"]).allows("evil.example")


def test_origin_policy_pattern() -> None:
    policy = OriginPolicy(pattern=r"https://.*\.dash\.example")
    assert policy.allows("https://a.dash.example", "hub")
    assert policy.cors_origin("https://a.dash.example") == "https://a.dash.example"
    assert not policy.allows("https://evil.example", "hub")
