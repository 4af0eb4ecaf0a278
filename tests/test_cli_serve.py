"""`rtnb serve` options become the hub's configuration."""

from __future__ import annotations

import pytest

from rtnb.cli import build_parser
from rtnb.cli.serve import config_from_args


def parse(*argv: str):  # type: ignore[no-untyped-def]
    return build_parser().parse_args(["serve", *argv])


def test_defaults_are_the_documented_ones() -> None:
    config = config_from_args(parse())
    assert config.history.max_messages == 1000
    assert config.limits.max_frame_bytes == 2**20
    assert config.limits.max_queue_bytes == 4 * 2**20
    assert config.limits.max_lag_seconds == 60.0
    assert (config.ping_interval, config.ping_timeout) == (20.0, 20.0)
    assert (config.handshake_timeout, config.body_timeout, config.write_timeout) == (10.0, 30.0, 30.0)


def test_every_limit_and_timeout_can_be_set() -> None:
    config = config_from_args(
        parse(
            "--history",
            "50",
            "--history-age",
            "120",
            "--max-frame-bytes",
            "4096",
            "--max-queue-bytes",
            "65536",
            "--max-lag",
            "off",
            "--ping-interval",
            "5",
            "--ping-timeout",
            "3",
            "--handshake-timeout",
            "2",
            "--body-timeout",
            "4",
            "--write-timeout",
            "off",
        )
    )
    assert (config.history.max_messages, config.history.max_age) == (50, 120.0)
    assert (config.limits.max_frame_bytes, config.limits.max_queue_bytes) == (4096, 65536)
    assert config.limits.max_lag_seconds is None
    assert (config.ping_interval, config.ping_timeout) == (5.0, 3.0)
    assert (config.handshake_timeout, config.body_timeout, config.write_timeout) == (2.0, 4.0, None)


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_bad_durations_are_refused_with_a_message(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse("--write-timeout", value)
    assert exited.value.code == 2
    assert "--write-timeout" in capsys.readouterr().err
