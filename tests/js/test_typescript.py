"""``tsc --noEmit`` over typed code using the served declarations (rtnb.d.ts,
rtnb-react.d.ts, rtnb-rtc.d.ts): the React example, and tests/js/types, whose
``@ts-expect-error`` lines prove the types refuse what they should. TypeScript comes
from npm, pinned by examples/react/package-lock.json."""

from __future__ import annotations

import subprocess

import pytest
from node_tools import REACT_EXAMPLE, ROOT, npm_installed


@pytest.mark.timeout(600)
@pytest.mark.parametrize("project", ["examples/react", "tests/js"])
def test_typescript_accepts_the_typed_examples(project: str) -> None:
    tools = npm_installed(REACT_EXAMPLE)
    result = subprocess.run(
        [str(tools / "tsc"), "--noEmit", "-p", project], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
