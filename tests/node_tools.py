"""Node.js for the tests of rtnb.js: the ``node --test`` suite, the TypeScript check and
the React example's esbuild build. Importable from any test (``tests/`` is on
``sys.path`` through its conftest).

Like Redis or Chromium, a missing Node skips these tests with the reason, and fails
them under ``RTNB_CI=1``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REACT_EXAMPLE = ROOT / "examples" / "react"
IN_CI = bool(os.environ.get("RTNB_CI"))


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI must provide it)")
    pytest.skip(reason)


def require_node() -> str:
    """Path of ``node`` (18 or later: ``node --test``); skip, or fail in CI, without it."""
    node = shutil.which("node")
    if node is None:
        _missing("no Node.js on PATH (apt-get install nodejs npm)")
    assert node is not None
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 18:
        _missing(f"Node.js {version} is too old for node --test (18 or later)")
    return node


def npm_installed(project: Path) -> Path:
    """``project``'s ``node_modules``, installed with ``npm ci`` from its lockfile when absent or stale.

    Returns:
        the ``node_modules/.bin`` directory (esbuild, tsc).
    """
    require_node()
    npm = shutil.which("npm")
    if npm is None:
        _missing("no npm on PATH (apt-get install npm)")
    assert npm is not None
    modules = project / "node_modules"
    marker = modules / ".package-lock.json"  # written by npm at the end of an install
    lockfile = project / "package-lock.json"
    if not marker.is_file() or marker.stat().st_mtime < lockfile.stat().st_mtime:
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            _missing(f"npm ci failed in {project.relative_to(ROOT)} (is the npm registry reachable?):\n{result.stderr}")
    return modules / ".bin"
