"""A real 3-master Redis Cluster for the tests: started on free ports, or given by CI.

``.ci/run`` starts one and exports its address in ``RTNB_REDIS_CLUSTER``
(``redis://127.0.0.1:PORT``, any node). Without it, the session starts its own
when ``redis-server`` is installed, and skips (fails under ``RTNB_CI``)
otherwise. Tests that kill masters always start a private cluster of their own.
Every cluster runs with ``cluster-require-full-coverage no``, so a dead shard
leaves the others serving.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis_helpers import free_port, redis_reachable

from rtnb.testing import wait_until

ENVIRONMENT_VARIABLE = "RTNB_REDIS_CLUSTER"


def cluster_port(taken: list[int]) -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    while True:
        port = free_port()
        if port + 10000 > 65535 or port in taken:
            continue
        try:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port


def need_redis_server() -> None:
    """Skip without redis-server and redis-cli; fail instead under RTNB_CI."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        reason = "redis-server/redis-cli are not installed, so no Redis Cluster can be started"
        if os.environ.get("RTNB_CI"):
            pytest.fail(reason + " (CI must provide them)")
        pytest.skip(reason)


class PrivateCluster:
    """Three ``redis-server --cluster-enabled yes`` masters on free ports, joined with ``redis-cli --cluster create``.

    Args:
        directory: where each node keeps its ``nodes.conf`` and append-only file.
        persistent: ``appendfsync always``, so a killed and restarted master keeps what it acknowledged.
    """

    def __init__(self, directory: Path, masters: int = 3, persistent: bool = True) -> None:
        self.directory = directory
        self.persistent = persistent
        self.ports: list[int] = []
        for _ in range(masters):
            self.ports.append(cluster_port(self.ports))
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}"

    def _launch(self, port: int) -> None:
        node_directory = self.directory / str(port)
        node_directory.mkdir(parents=True, exist_ok=True)
        durability = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        self.processes[port] = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                *durability,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
                "--cluster-require-full-coverage",
                "no",
                "--dir",
                str(node_directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def start(self) -> PrivateCluster:
        """Start and join the masters; on failure, stop whatever started.

        Raises:
            RuntimeError: a node did not come up or the cluster did not form.
        """
        try:
            return await self._start()
        except BaseException:
            self.stop()
            raise

    async def _start(self) -> PrivateCluster:
        for port in self.ports:
            self._launch(port)
        for port in self.ports:
            await wait_until(lambda port=port: redis_reachable("127.0.0.1", port), timeout=10, interval=0.02)
        process = await asyncio.create_subprocess_exec(
            "redis-cli",
            "--cluster",
            "create",
            *(f"127.0.0.1:{port}" for port in self.ports),
            "--cluster-replicas",
            "0",
            "--cluster-yes",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {output.decode(errors='replace')}")
        await self.wait_ok()
        return self

    async def _state(self, port: int) -> str:
        process = await asyncio.create_subprocess_exec(
            "redis-cli",
            "-p",
            str(port),
            "cluster",
            "info",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        output, _ = await process.communicate()
        for line in output.decode(errors="replace").splitlines():
            if line.startswith("cluster_state:"):
                return line.split(":", 1)[1].strip()
        return "unreachable"

    async def wait_ok(self, timeout: float = 20.0) -> None:
        """Until every live node says ``cluster_state:ok``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            states = [await self._state(port) for port in self.ports if port in self.processes]
            if all(state == "ok" for state in states):
                return
            if loop.time() > deadline:
                raise RuntimeError(f"the Redis Cluster did not become ok: {states}")
            await asyncio.sleep(0.1)

    def kill(self, port: int) -> None:
        process = self.processes.pop(port)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    async def restart(self, port: int) -> None:
        self._launch(port)
        await wait_until(lambda: redis_reachable("127.0.0.1", port), timeout=10, interval=0.02)
        await self.wait_ok()

    def pause(self, port: int) -> None:
        """SIGSTOP: the node keeps its sockets open and answers nothing (a stalled node)."""
        self.processes[port].send_signal(signal.SIGSTOP)

    def resume(self, port: int) -> None:
        self.processes[port].send_signal(signal.SIGCONT)

    def stop(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGCONT)
            process.kill()
        for process in self.processes.values():
            process.wait(timeout=10)
        self.processes.clear()


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Any node of a 3-master Redis Cluster shared by the session (never stopped by a test)."""
    given = os.environ.get(ENVIRONMENT_VARIABLE)
    if given:
        yield given
        return
    need_redis_server()
    cluster = PrivateCluster(tmp_path_factory.mktemp("redis-cluster"), persistent=False)
    asyncio.run(cluster.start())
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture
async def private_cluster(tmp_path: Path) -> AsyncIterator[PrivateCluster]:
    """A cluster of this test's own, whose masters it may kill, pause and restart."""
    need_redis_server()
    cluster = PrivateCluster(tmp_path)
    try:
        await cluster.start()
        yield cluster
    finally:
        cluster.stop()
