"""Runs the ``node --test`` suites of this directory (the pure parts of rtnb.js and of
rtnb-rtc.js), so that ``./dev test`` covers them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from node_tools import ROOT, require_node

SUITES = sorted(Path(__file__).parent.glob("*.test.mjs"))


def test_node_test_suites_pass() -> None:
    node = require_node()
    assert SUITES, "no *.test.mjs suite found"
    result = subprocess.run([node, "--test", *map(str, SUITES)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
