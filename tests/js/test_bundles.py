"""The shipped rtnb.js and rtnb-rtc.js are esbuild bundles of ``rtnb/server/static/src/``,
committed so that installing rtnb needs no Node. This rebuilds them into a temporary
directory with the pinned esbuild (scripts/jsbuild/package-lock.json) and fails when the
committed files differ: someone edited src/ without rebuilding, or edited a bundle by hand."""

from __future__ import annotations

import difflib
import subprocess
from pathlib import Path

import pytest
from node_tools import ROOT, npm_installed, require_node

JSBUILD = ROOT / "scripts" / "jsbuild"
STATIC = ROOT / "rtnb" / "server" / "static"
BUNDLES = ("rtnb.js", "rtnb-rtc.js")
REBUILD = "npm ci --prefix scripts/jsbuild && node scripts/jsbuild/build.mjs"


@pytest.mark.timeout(600)
def test_committed_bundles_match_a_fresh_build(tmp_path: Path) -> None:
    node = require_node()
    tools = npm_installed(JSBUILD)
    assert (tools / "esbuild").exists(), "esbuild missing from scripts/jsbuild/node_modules"
    result = subprocess.run(
        [node, str(JSBUILD / "build.mjs"), "--outdir", str(tmp_path)],
        cwd=tmp_path,  # the output must not depend on where the build runs from
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in BUNDLES:
        fresh = (tmp_path / name).read_text(encoding="utf-8")
        committed = (STATIC / name).read_text(encoding="utf-8")
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True), fresh.splitlines(keepends=True), f"committed {name}", "fresh build"
            )
        )
        assert fresh == committed, f"{name} is out of date with src/: run `{REBUILD}`\n{diff[:4000]}"


def test_every_source_module_is_bundled() -> None:
    """No stray module in src/: each is imported by its bundle's entry, directly or not."""
    for folder, bundle in (("rtnb", "rtnb.js"), ("rtc", "rtnb-rtc.js")):
        text = (STATIC / bundle).read_text(encoding="utf-8")
        for module in sorted((STATIC / "src" / folder).glob("*.js")):
            marker = f"// rtnb/server/static/src/{folder}/{module.name}\n"
            assert marker in text, f"{module.relative_to(ROOT)} is not in {bundle}"
