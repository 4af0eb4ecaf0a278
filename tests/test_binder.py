"""The Binder setup works: ``binder/requirements.txt`` installs into a fresh virtual
environment and ``binder/postBuild`` enables the server extension there.

This does what mybinder.org does (``pip install -r binder/requirements.txt`` from the
repository root, then ``binder/postBuild`` with the environment on ``PATH``), minus
Docker, and then starts a Jupyter server from that environment to check that the hub
answers at ``/rtnb/healthz``. It downloads from PyPI (pip's cache makes repeats fast),
so it runs in CI (``RTNB_CI``) or when ``RTNB_BINDER_TEST=1``; elsewhere it is skipped.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "jupyter"))
from rtnb_jupyter_fixture import start_jupyter_server  # the one Jupyter launcher

REPOSITORY = Path(__file__).resolve().parents[1]
BINDER = REPOSITORY / "binder"
#: seconds for the whole installation (one environment, all extras, JupyterLab)
INSTALL_TIMEOUT = 720
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")

pytestmark = [
    pytest.mark.timeout(INSTALL_TIMEOUT + 120),
    pytest.mark.skipif(
        not (os.environ.get("RTNB_CI") or os.environ.get("RTNB_BINDER_TEST")),
        reason="installs binder/requirements.txt from PyPI into a new environment (minutes); "
        "runs in CI, or set RTNB_BINDER_TEST=1",
    ),
]


def _run(command: list[str], env: dict[str, str], timeout: float) -> str:
    result = subprocess.run(
        command, cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)} failed ({result.returncode}):\n{output[-4000:]}"
    return output


@pytest.fixture(scope="module")
def binder_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A fresh virtual environment built the way Binder builds its image."""
    base = tmp_path_factory.mktemp("binder")
    prefix = base / "env"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("JUPYTER_", "RTNB_URL", "RTNB_TOKEN", "RTNB_HUB_INFO", "VIRTUAL_ENV", "PYTHON"))
    }
    env.update(
        PATH=os.pathsep.join([str(prefix / "bin"), env.get("PATH", "")]),
        JUPYTER_CONFIG_DIR=str(base / "config"),  # nothing from the user's ~/.jupyter
        JUPYTER_DATA_DIR=str(base / "data"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    _run([sys.executable, "-m", "venv", str(prefix)], env, 120)
    _run([str(prefix / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r", str(BINDER / "requirements.txt")],
         env, INSTALL_TIMEOUT)
    _run(["bash", str(BINDER / "postBuild")], env, 120)
    yield prefix, env


def test_requirements_install_and_post_build_enables_the_extension(
    binder_environment: tuple[Path, dict[str, str]],
) -> None:
    prefix, env = binder_environment
    # postBuild's own switch, in the environment's config (not only the one the wheel ships)
    enabled = json.loads((prefix / "etc" / "jupyter" / "jupyter_server_config.d" / "rtnb.notebook.json").read_text())
    assert enabled["ServerApp"]["jpserver_extensions"]["rtnb.notebook"] is True

    listing = ANSI_COLOUR.sub("", _run([str(prefix / "bin" / "jupyter"), "server", "extension", "list"], env, 120))
    assert re.search(r"rtnb\.notebook\s+enabled", listing), listing
    assert re.search(r"rtnb\.notebook\s+OK", listing), listing

    # what the tutorials import is there
    modules = "rtnb, rtnb.notebook, rtnb.record, rtnb.bridge, plotly, pandas, pyarrow, ipywidgets, redis, jupyterlab"
    _run([str(prefix / "bin" / "python"), "-c", f"import {modules}"], env, 120)


def test_the_hub_is_mounted_at_rtnb_in_a_server_of_that_environment(
    binder_environment: tuple[Path, dict[str, str]], tmp_path: Path,
) -> None:
    prefix, env = binder_environment
    # that environment's own jupyter, rtnb and config: nothing from this checkout
    with start_jupyter_server(
        tmp_path, command=(str(prefix / "bin" / "jupyter"), "server"), environment=env, from_repository=False
    ) as server:
        headers = {"Authorization": f"token {server.token}"}
        request = urllib.request.Request(f"{server.url}rtnb/healthz", headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
            assert json.loads(response.read())["status"] == "ok"
