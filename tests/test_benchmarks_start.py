"""Every benchmark script still starts: its imports resolve and it prints its usage.

The benchmarks are run by hand, not by the suite (they measure; tests do not), so a
moved module or a renamed helper would otherwise break them unnoticed until the
next measurement.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
#: modules the scripts import, not scripts of their own
LIBRARIES = {"harness.py"}
SCRIPTS = sorted(path.name for path in BENCHMARKS.glob("*.py") if path.name not in LIBRARIES)


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_script_starts_and_prints_its_usage(script: str) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--help"], capture_output=True, text=True, timeout=90
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout, result.stdout[-2000:]
