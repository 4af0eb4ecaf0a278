"""The benchmark harness: start a server on one core, drive it from the other.

Every server (the rtnb hub and each peer in ``peers/``) is a script that binds
127.0.0.1 on a free port and prints ``READY <port>``. The load generator is a
Node process (``loadgen/loadgen.js``, the ``ws`` package) holding every
subscriber and the publisher. Server and generator are pinned to different
cores with :func:`os.sched_setaffinity`, so the generator never competes with
the server it measures. Both are bounded in time and only talk to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
LOADGEN = ROOT / "loadgen"
TOPIC = "bench/fanout"

__all__ = [
    "SERVERS",
    "RunningServer",
    "ServerSpec",
    "cpu_seconds",
    "ensure_loadgen",
    "hold_idle_connections",
    "pick_cores",
    "raise_open_file_limit",
    "rss_bytes",
    "run_loadgen",
    "start_server",
]


@dataclass(frozen=True)
class ServerSpec:
    """How to start one server and how the load generator talks to it.

    Attributes:
        name: short key used on the command line and in result files.
        label: the row title in tables.
        script: the server script, relative to ``benchmarks/``.
        subscriber_kind / publisher_kind: the generator's dialect
            (``rtnb``, ``plain``, ``socketio``, ``sse``).
        subscribe_path / publish_path: URL paths (with query) on the server.
        transport: ``ws`` or ``sse``, which table the server belongs to.
    """

    name: str
    label: str
    script: str
    subscriber_kind: str
    publisher_kind: str
    subscribe_path: str
    publish_path: str
    transport: str = "ws"
    extra_arguments: tuple[str, ...] = field(default=())


SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in (
        ServerSpec("rtnb", "rtnb hub", "rtnb_server.py", "rtnb", "rtnb", "/ws", "/ws"),
        ServerSpec("tornado", "classic Tornado loop", "peers/tornado_classic.py", "plain", "plain", "/sub", "/pub"),
        ServerSpec(
            "websockets", "websockets broadcast()", "peers/websockets_broadcast.py", "plain", "plain", "/sub", "/pub"
        ),
        ServerSpec(
            "socketio",
            "python-socketio (aiohttp)",
            "peers/socketio_room.py",
            "socketio",
            "socketio",
            "/socket.io/?EIO=4&transport=websocket",
            "/socket.io/?EIO=4&transport=websocket",
        ),
        ServerSpec("raw", "raw asyncio ceiling", "peers/raw_asyncio.py", "plain", "plain", "/sub", "/pub"),
        ServerSpec(
            "rtnb-sse", "rtnb hub GET /sse", "rtnb_server.py", "sse", "rtnb", f"/sse?topic={TOPIC}", "/ws", "sse"
        ),
        ServerSpec(
            "sse-starlette",
            "sse-starlette (uvicorn)",
            "peers/sse_starlette_peer.py",
            "sse",
            "plain",
            "/sse",
            "/pub",
            "sse",
        ),
    )
}


def pick_cores() -> tuple[int, int]:
    """Two distinct cores for (server, generator); the same one twice on a 1-core box."""
    cores = sorted(os.sched_getaffinity(0))
    return (cores[0], cores[1]) if len(cores) > 1 else (cores[0], cores[0])


def _pinned(core: int) -> Callable[[], None]:
    def pin() -> None:
        os.sched_setaffinity(0, {core})

    return pin


def raise_open_file_limit(wanted: int = 20_000) -> int:
    """Raise this process's (and so its children's) open-file limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def ensure_loadgen() -> None:
    """Install the generator's npm dependencies (``npm ci``) when they are missing."""
    if shutil.which("node") is None:
        raise SystemExit("node is required for the load generator (Node >= 18)")
    if not (LOADGEN / "node_modules" / "ws").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=LOADGEN, check=True)


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid``, from ``/proc``."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def machine_busy_seconds() -> float:
    """CPU seconds spent busy (not idle/iowait) by all cores since boot, from ``/proc/stat``."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class RunningServer:
    spec: ServerSpec
    process: subprocess.Popen[str]
    port: int

    @property
    def pid(self) -> int:
        return self.process.pid

    def url(self, path: str, scheme: str = "ws") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def subscribe_url(self) -> str:
        return self.url(self.spec.subscribe_path, "http" if self.spec.subscriber_kind == "sse" else "ws")

    def publish_url(self) -> str:
        return self.url(self.spec.publish_path)


@contextlib.contextmanager
def start_server(spec: ServerSpec, *, core: int, loop: str, log_path: Path | None = None) -> Iterator[RunningServer]:
    """Start ``spec``'s server pinned to ``core``; stop it (SIGTERM, then SIGKILL) on exit."""
    log_file = open(log_path or os.devnull, "w")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / spec.script), "--loop", loop, *spec.extra_arguments],
        stdout=subprocess.PIPE,
        stderr=log_file,
        text=True,
        preexec_fn=_pinned(core),
        cwd=ROOT,
    )
    try:
        port = _read_ready_line(process, timeout=30.0)
        yield RunningServer(spec, process, port)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log_file.close()


def _read_ready_line(process: subprocess.Popen[str], timeout: float) -> int:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if ready:
            line = process.stdout.readline()
            if line.startswith("READY "):
                return int(line.split()[1])
            if not line:
                break
        elif process.poll() is not None:
            break
    raise RuntimeError(f"server {process.args!r} did not become ready (exit code {process.poll()})")


def _loadgen_command(config: dict[str, Any]) -> list[str]:
    return ["node", str(LOADGEN / "loadgen.js"), json.dumps(config)]


def run_loadgen(
    config: dict[str, Any], *, core: int, timeout: float = 120.0, server_pid: int | None = None
) -> dict[str, Any]:
    """Run one generator process to completion and return its JSON result.

    When ``server_pid`` is given, the server's CPU use over the generator's
    measured window is added as ``server_cpu`` (fraction of one core): a server
    near 100% while the generator is well below shows which side is the limit.
    ``other_cpu`` is what every other process used meanwhile: on a shared
    machine a run with a high value was disturbed.

    Raises:
        RuntimeError: the generator failed, stalled or timed out.
    """
    process = subprocess.Popen(
        _loadgen_command(config),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_pinned(core),
        cwd=LOADGEN,
    )
    assert process.stdout is not None and process.stderr is not None
    result: dict[str, Any] | None = None
    window_start: tuple[float, float, float, float] | None = None
    window: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    try:
        for line in _lines_until(process, deadline):
            if not line.startswith("{"):
                continue
            message = json.loads(line)
            event = message.get("event")
            if event == "measure_start":
                window_start = _cpu_snapshot(process.pid, server_pid)
            elif event == "measure_end" and window_start is not None:
                window = _cpu_window(window_start, _cpu_snapshot(process.pid, server_pid))
            elif event is None:
                result = message
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    if result is None:
        raise RuntimeError(f"load generator gave no result: {process.stderr.read()[-2000:]}")
    if "error" in result:
        raise RuntimeError(f"load generator failed: {result['error']}")
    result.update(window)
    return result


def _cpu_snapshot(generator_pid: int, server_pid: int | None) -> tuple[float, float, float, float]:
    return (
        time.monotonic(),
        machine_busy_seconds(),
        cpu_seconds(generator_pid),
        0.0 if server_pid is None else cpu_seconds(server_pid),
    )


def _cpu_window(start: tuple[float, float, float, float], end: tuple[float, float, float, float]) -> dict[str, float]:
    """Server CPU and CPU used by anything else (other jobs on a shared box), as fractions of one core."""
    elapsed, machine, generator, server = (b - a for a, b in zip(start, end, strict=True))
    window = {"other_cpu": max(0.0, (machine - generator - server) / elapsed)}
    if server:
        window["server_cpu"] = server / elapsed
    return window


def _lines_until(process: subprocess.Popen[str], deadline: float) -> Iterator[str]:
    """Lines of ``process``'s stdout as they come, until it closes; raises past ``deadline``."""
    assert process.stdout is not None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeError("load generator timed out")
        ready, _, _ = select.select([process.stdout], [], [], min(remaining, 0.5))
        if ready:
            line = process.stdout.readline()
            if not line:
                return
            yield line


def hold_idle_connections(
    config: dict[str, Any], *, core: int, on_ready: Callable[[dict[str, Any]], Any], timeout: float = 180.0
) -> Any:
    """Open idle connections with the generator, call ``on_ready`` while they are held, then close them."""
    process = subprocess.Popen(
        _loadgen_command({**config, "mode": "idle"}),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_pinned(core),
        cwd=LOADGEN,
    )
    assert process.stdout is not None and process.stdin is not None
    try:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([process.stdout], [], [], max(0.0, min(remaining, 0.5)))
            if ready:
                line = process.stdout.readline()
                if not line:
                    raise RuntimeError(
                        f"load generator exited: {process.stderr.read()[-2000:] if process.stderr else ''}"
                    )
                status = json.loads(line)
                if "error" in status:
                    raise RuntimeError(f"load generator failed: {status['error']}")
                if status.get("ready"):
                    return on_ready(status)
            if time.monotonic() > deadline:
                raise RuntimeError(f"idle connections not open after {timeout}s")
    finally:
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
