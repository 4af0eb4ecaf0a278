"""The ``rtnb`` command refuses bad options with one clear line on stderr and exit status 2, never a traceback.

Each case runs the real command in a subprocess, as a user would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from rtnb.core.topics import Pattern
from rtnb.testing import running_hub, wait_until

LONG_SECRET = "a-secret-that-is-long-enough-for-hs256-0123456789"


def rtnb(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **(env or {})}
    for name in ("RTNB_SECRET", "RTNB_URL", "RTNB_TOKEN"):
        if env is None or name not in env:
            environment.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "rtnb", *argv], capture_output=True, text=True, timeout=60, env=environment
    )


def assert_refused(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """Exit status 2 and exactly one line on stderr, holding ``words``; returns the line."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def test_a_port_out_of_range_is_refused() -> None:
    assert_refused(rtnb("serve", "--port", "99999"), "--port", "65535", "99999")
    assert_refused(rtnb("serve", "--port", "-1"), "--port")


def test_a_port_in_use_is_named() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = assert_refused(rtnb("serve", "--port", str(port)), f"127.0.0.1:{port}")
        assert "in use" in line.lower()


def test_a_host_not_on_this_machine_is_refused() -> None:
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): never an address of this machine; binding sends nothing.
    assert_refused(rtnb("serve", "--host", "192.0.2.1", "--port", "0"), "cannot listen on 192.0.2.1")


def test_a_negative_history_is_refused() -> None:
    assert_refused(rtnb("serve", "--port", "0", "--history", "-1"), "--history", ">= 0")
    assert_refused(rtnb("serve", "--port", "0", "--max-frame-bytes", "0"), "--max-frame-bytes")


def test_a_missing_certfile_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere-cert.pem"
    assert_refused(rtnb("serve", "--port", "0", "--certfile", str(missing)), "--certfile", str(missing))
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    assert_refused(rtnb("serve", "--port", "0", "--certfile", str(not_pem)), str(not_pem))


def test_mqtt_options_without_a_broker_are_refused() -> None:
    assert_refused(rtnb("serve", "--port", "0", "--mqtt-in", "plant/#"), "--mqtt-in", "--mqtt URL")
    assert_refused(rtnb("serve", "--port", "0", "--mqtt-out", "a/#", "--mqtt-prefix", "m"), "--mqtt-out, --mqtt-prefix")


def test_a_negative_token_lifetime_is_refused() -> None:
    assert_refused(rtnb("token", "--secret", LONG_SECRET, "--sub", "x", "--ttl", "-5"), "--ttl")


def test_a_short_hs256_secret_is_refused() -> None:
    assert_refused(rtnb("token", "--secret", "short", "--sub", "x"), "32", "RFC 7518")
    assert_refused(rtnb("token", "--sub", "x", env={"RTNB_SECRET": "x" * 31}), "31 bytes")
    assert_refused(rtnb("serve", "--port", "0", "--auth", "jwt", "--secret", "short"), "32", "RFC 7518")
    accepted = rtnb("token", "--secret", "x" * 32, "--sub", "x")
    assert accepted.returncode == 0 and accepted.stdout.strip()


async def test_sim_publishes_to_the_hub_named_by_rtnb_url() -> None:
    async with running_hub() as server:
        environment = {**os.environ, "RTNB_URL": server.url}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "rtnb",
            "sim",
            "--duration",
            "1",
            "--rate",
            "20",
            "--device",
            "boiler",
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, stderr.decode()
        assert server.url in stderr.decode()
        await wait_until(lambda: bool(server.hub.backplane.positions(Pattern.parse("plant/+/temp"))))
        (position,) = server.hub.backplane.positions(Pattern.parse("plant/+/temp")).values()
        assert position.last_offset >= 5


async def http_status(port: int, host: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return int(raw.split()[1])


async def test_serve_answers_loopback_and_allow_host_names_only() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rtnb",
        "serve",
        "--port",
        "0",
        "--allow-host",
        "hub.lan",
        "--allow-host",
        "b.lan",
        stderr=subprocess.PIPE,
        env={name: value for name, value in os.environ.items() if name != "RTNB_URL"},
    )
    try:
        assert process.stderr is not None
        line = b""
        while b"rtnb hub on" not in line:
            line = await asyncio.wait_for(process.stderr.readline(), 30)
            assert line, "rtnb serve exited early"
        port = int(line.decode().split("rtnb hub on ", 1)[1].split()[0].rsplit(":", 1)[1])
        assert await http_status(port, f"evil.example:{port}") == 403
        for host in (f"hub.lan:{port}", "b.lan", f"localhost:{port}", f"127.0.0.1:{port}"):
            assert await http_status(port, host) == 200, host
    finally:
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 10) == 0
