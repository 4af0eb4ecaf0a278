"""A real ``jupyter server`` on loopback with the rtnb extension, for the whole module.

The server finds the extension through the repository's ``jupyter-config``
directory (what installing the package puts in ``etc/jupyter``), so these
tests also prove the config file enables it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("jupyter_server", reason="the jupyter extra is not installed")

REPOSITORY = Path(__file__).resolve().parents[2]
TOKEN = "rtnb-test-token-5f1c"
START_TIMEOUT = 60.0


@dataclass
class JupyterServer:
    process: subprocess.Popen[bytes]
    url: str  # e.g. http://127.0.0.1:PORT/ (base_url included)
    hub_info: dict[str, object]
    runtime_dir: Path
    log_path: Path
    token: str = TOKEN

    @property
    def hub_url(self) -> str:
        return str(self.hub_info["url"])

    @property
    def hub_ws_url(self) -> str:
        return self.hub_url.replace("http", "ws", 1) + "/ws"

    @property
    def origin(self) -> str:
        return self.url.split("/", 3)[0] + "//" + self.url.split("/", 3)[2]


def _wait_for_files(runtime_dir: Path, process: subprocess.Popen[bytes], log_path: Path) -> tuple[dict, dict]:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter server exited with {process.returncode}:\n{log_path.read_text()}")
        servers = list(runtime_dir.glob("jpserver-*.json"))
        hubs = list(runtime_dir.glob("rtnb-hub-*.json"))
        if servers and hubs:
            try:
                return json.loads(servers[0].read_text()), json.loads(hubs[0].read_text())
            except ValueError:  # caught mid-write; read again
                pass
        time.sleep(0.05)  # polling a subprocess's files: no event to wait on
    raise TimeoutError(f"jupyter server did not start in {START_TIMEOUT}s:\n{log_path.read_text()}")


@contextlib.contextmanager
def start_jupyter_server(base: Path, *arguments: str, stdin: int | None = None) -> Iterator[JupyterServer]:
    """A ``jupyter server`` in ``base`` (its own runtime, config and root directories), stopped on exit.

    ``arguments`` are more command-line options, e.g. ``--RtnbExtension.redis=...``;
    ``stdin`` is the server's standard input (a terminal makes Ctrl-C ask, as for a user).
    """
    runtime_dir, root_dir = base / "runtime", base / "root"
    runtime_dir.mkdir()
    root_dir.mkdir()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_PATH": str(REPOSITORY / "jupyter-config"),
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_DATA_DIR": str(base / "data"),
        "JUPYTER_RUNTIME_DIR": str(runtime_dir),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")])),
    }
    for name in ("RTNB_URL", "RTNB_TOKEN", "RTNB_HUB_INFO", "JPY_PARENT_PID"):
        env.pop(name, None)
    log_path = base / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "jupyter_server",
                "--ServerApp.ip=127.0.0.1", "--ServerApp.port=0", "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={TOKEN}", "--ServerApp.open_browser=False",
                "--ServerApp.allow_root=True", f"--ServerApp.root_dir={root_dir}",
                "--ServerApp.shutdown_no_activity_timeout=600",
                *arguments,
            ],
            env=env, stdin=stdin, stdout=log, stderr=subprocess.STDOUT, cwd=root_dir,
        )
    try:
        server_info, hub_info = _wait_for_files(runtime_dir, process, log_path)
        yield JupyterServer(process, server_info["url"], hub_info, runtime_dir, log_path)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(scope="package")
def jupyter_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    with start_jupyter_server(tmp_path_factory.mktemp("jupyter")) as server:
        yield server
