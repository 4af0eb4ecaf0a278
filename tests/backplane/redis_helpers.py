"""Helpers for the Redis backplane tests: the shared Redis, a private Redis we may stop, hub processes.

The machine's Redis on 127.0.0.1:6379 is shared with other test runs, so every
test uses its own key prefix and deletes its keys at teardown, and tests that
stop Redis start their own ``redis-server`` on a free port instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from rtnb.backplane.redis import RedisBackplane
from rtnb.server.hub import Hub, HubConfig
from rtnb.server.runner import HubServer
from rtnb.testing import wait_until

SHARED_REDIS = ("127.0.0.1", 6379)


def redis_reachable(host: str, port: int) -> bool:
    """True when a Redis answers PING at host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def shared_redis_url() -> str:
    if not redis_reachable(*SHARED_REDIS):
        reason = "no Redis reachable at 127.0.0.1:6379 (start redis-server to run the Redis backplane tests)"
        if os.environ.get("RTNB_REQUIRE_REDIS") or os.environ.get("RTNB_CI"):
            pytest.fail(reason + " (required here: RTNB_CI or RTNB_REQUIRE_REDIS is set)")
        pytest.skip(reason)
    return "redis://127.0.0.1:6379/0"


async def delete_prefix(url: str, prefix: str) -> None:
    """Delete every key under ``prefix``."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=prefix.replace("*", "\\*") + "*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
    finally:
        await client.aclose()


@pytest.fixture
async def prefix(shared_redis_url: str) -> AsyncIterator[str]:
    """A key prefix no other test uses; its keys are deleted afterwards."""
    name = f"rtnb:test-{uuid.uuid4().hex[:12]}:"
    yield name
    await delete_prefix(shared_redis_url, name)


class PrivateRedis:
    """A ``redis-server`` of our own on a free port, which tests may stop and restart.

    It writes an append-only file with ``appendfsync always``, so whatever it
    acknowledged survives a stop, as a production Redis configured for
    durability would.
    """

    def __init__(self, directory: Path, persistent: bool = True) -> None:
        self.directory = directory
        self.persistent = persistent
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        durability = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                *durability,
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        process = self.process

        def listening() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {process.returncode} on port {self.port}")
            return redis_reachable("127.0.0.1", self.port)

        await wait_until(listening, timeout=10, interval=0.02)

    def stop(self, sig: int = signal.SIGKILL) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(sig)
            process.wait(timeout=10)


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed, so Redis cannot be stopped and restarted in a test")
    server = PrivateRedis(tmp_path)
    await server.start()
    yield server
    server.stop()


@contextlib.asynccontextmanager
async def redis_hub(
    url: str,
    prefix: str,
    hub_id: str,
    config: HubConfig | None = None,
    backplane_class: type[RedisBackplane] = RedisBackplane,
    **backplane_options: Any,
) -> AsyncIterator[HubServer]:
    """An in-process hub on the Redis backplane, on a free port."""
    config = config or HubConfig(ping_interval=0)
    backplane = backplane_class(url, prefix=prefix, hub_id=hub_id, limits=config.history, **backplane_options)
    server = HubServer(Hub(config, backplane))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


_URL_LINE = re.compile(r"rtnb hub on (http://\S+)")


class HubProcess:
    """``python -m rtnb serve --port 0 --redis ...`` in a subprocess; finds its URL in its log."""

    def __init__(self, redis_url: str, prefix: str, hub_id: str, log_directory: Path, *extra: str) -> None:
        self.hub_id = hub_id
        self.log_path = log_directory / f"hub-{hub_id}.log"
        self._log = self.log_path.open("wb")
        environment = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rtnb",
                "--log-level",
                "WARNING",
                "serve",
                "--port",
                "0",
                "--redis",
                redis_url,
                "--redis-prefix",
                prefix,
                "--hub-id",
                hub_id,
                "--presence-ttl",
                "2",
                "--ping-interval",
                "0",
                *extra,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=environment,
        )
        self.url: str | None = None

    async def ready(self, timeout: float = 20.0) -> HubProcess:
        def announced() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"hub {self.hub_id} exited: {self.log_path.read_text()}")
            found = _URL_LINE.search(self.log_path.read_text())
            if found:
                self.url = found.group(1)
            return self.url is not None

        await wait_until(announced, timeout=timeout, interval=0.02)
        return self

    @property
    def ws_url(self) -> str:
        assert self.url is not None
        return self.url.replace("http", "ws", 1) + "/ws"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


@contextlib.asynccontextmanager
async def hub_processes(
    redis_url: str, prefix: str, names: list[str], log_directory: Path
) -> AsyncIterator[list[HubProcess]]:
    """Start hub processes in parallel, wait until each announces its URL, stop them all on exit."""
    hubs = [HubProcess(redis_url, prefix, name, log_directory) for name in names]
    try:
        await asyncio.gather(*(hub.ready() for hub in hubs))
        yield hubs
    finally:
        for hub in hubs:
            hub.stop()


async def eventually(fetch: Any, expected: Any, timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Await ``fetch()`` until it returns ``expected``; returns the last value (assert on it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    value = await fetch()
    while value != expected and loop.time() < deadline:
        await asyncio.sleep(interval)
        value = await fetch()
    return value


async def collect(peer: Any, count: int, timeout: float = 10.0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The next ``count`` messages a peer receives, and the error frames that came among them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    messages: list[dict[str, Any]] = [item for item in peer._held if item.get("op") == "message"]
    peer._held.clear()
    errors: list[dict[str, Any]] = []
    while len(messages) < count:
        item = await peer.next(max(0.001, deadline - loop.time()))
        if item.get("op") == "message":
            messages.append(item)
        elif item.get("op") == "error":
            errors.append(item)
    return messages, errors
