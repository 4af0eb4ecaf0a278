"""The package type-checks and lints clean: STYLE.md asks for both in CI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.timeout(600)
def test_mypy_finds_no_type_errors_in_the_package() -> None:
    result = run(sys.executable, "-m", "mypy", "--strict")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_finds_no_lint_errors() -> None:
    result = run(sys.executable, "-m", "ruff", "check", "rtnb", "tests", "benchmarks", "scripts")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_leaves_every_file_as_it_is() -> None:
    result = run(sys.executable, "-m", "ruff", "format", "--check", "rtnb", "tests", "benchmarks", "scripts")
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_rtnb_stays_light() -> None:
    """`rtnb serve` starts fast: the heavy optional parts load only when used."""
    code = (
        "import sys, rtnb; heavy = [m for m in ('pandas', 'plotly', 'ipywidgets', 'redis', 'jwt', 'aiomqtt', 'pyarrow')"
        " if m in sys.modules]; print(','.join(heavy))"
    )
    result = run(sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_import_rtnb_loads_no_web_server() -> None:
    """A script that only publishes or subscribes never loads Tornado's web server or the hub."""
    code = (
        "import sys, rtnb; rtnb.connect; rtnb.AsyncClient; rtnb.sim; "
        "print(','.join(m for m in ('tornado.web', 'tornado.httpserver', 'rtnb.server.hub') if m in sys.modules))"
    )
    result = run(sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
