"""The one launcher of a real Jupyter server on loopback with the rtnb extension.

Every test that needs a Jupyter server starts it here: the extension tests
(``tests/jupyter``, through the package-scoped ``jupyter_server`` fixture),
JupyterLab in a browser (``tests/e2e``, ``command=(python, "-m", "jupyterlab")``)
and the Binder environment (``tests/test_binder.py``, its own ``jupyter`` and
environment). By default the server finds the extension through the
repository's ``jupyter-config`` directory (what installing the package puts in
``etc/jupyter``), so these tests also prove the config file enables it.

Other directories import it after putting ``tests/jupyter`` on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
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
def start_jupyter_server(
    base: Path,
    *arguments: str,
    stdin: int | None = None,
    command: Sequence[str] = (sys.executable, "-m", "jupyter_server"),
    environment: Mapping[str, str] | None = None,
    from_repository: bool = True,
    stop_timeout: float = 15.0,
) -> Iterator[JupyterServer]:
    """A Jupyter server in ``base`` (its own runtime, config, data and root directories), stopped on exit.

    Args:
        base: an empty directory, or one whose ``config`` and ``root`` the caller
            already filled (JupyterLab settings, a notebook to open).
        arguments: more command-line options, e.g. ``--RtnbExtension.redis=...``.
        stdin: the server's standard input (a terminal makes Ctrl-C ask, as for a user).
        command: what starts the server (``python -m jupyterlab`` for JupyterLab,
            another environment's ``jupyter server``).
        environment: the server's environment before the Jupyter directories are
            set (default: this process's).
        from_repository: load rtnb and the extension's config from this checkout
            (``PYTHONPATH`` and ``JUPYTER_CONFIG_PATH``); False for an environment
            where rtnb is installed.
        stop_timeout: seconds to wait for a clean exit before killing the server.
    """
    runtime_dir, root_dir = base / "runtime", base / "root"
    runtime_dir.mkdir()
    root_dir.mkdir(exist_ok=True)
    env = dict(os.environ if environment is None else environment)
    env.update(
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_DATA_DIR=str(base / "data"),
        JUPYTER_RUNTIME_DIR=str(runtime_dir),
    )
    if from_repository:
        env["JUPYTER_CONFIG_PATH"] = str(REPOSITORY / "jupyter-config")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPOSITORY), env.get("PYTHONPATH")]))
    for name in ("RTNB_URL", "RTNB_TOKEN", "RTNB_HUB_INFO", "JPY_PARENT_PID"):
        env.pop(name, None)
    log_path = base / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *command,
                "--ServerApp.ip=127.0.0.1",
                "--ServerApp.port=0",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={TOKEN}",
                "--ServerApp.open_browser=False",
                "--ServerApp.allow_root=True",
                f"--ServerApp.root_dir={root_dir}",
                "--ServerApp.shutdown_no_activity_timeout=600",
                *arguments,
            ],
            env=env,
            stdin=stdin,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=root_dir,
        )
    try:
        server_info, hub_info = _wait_for_files(runtime_dir, process, log_path)
        yield JupyterServer(process, server_info["url"], hub_info, runtime_dir, log_path)
    finally:
        process.terminate()
        try:
            process.wait(stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(scope="package")
def jupyter_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    with start_jupyter_server(tmp_path_factory.mktemp("jupyter")) as server:
        yield server
