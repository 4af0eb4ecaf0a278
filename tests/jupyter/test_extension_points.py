"""Both extension point names load the one extension, and both sides agree on the runtime file.

``rtnb.notebook`` is what the installed ``jupyter_server_config.d/rtnb.json``, Binder's
``postBuild`` and existing configs enable; ``rtnb.server.jupyter`` is where the extension
lives. The kernels' side (:mod:`rtnb.notebook.discovery`) must look for the file and the
variable the server side (:mod:`rtnb.server.jupyter`) writes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from jupyter_server.extension.manager import ExtensionPackage

import rtnb.notebook
import rtnb.server.jupyter
from rtnb.core.hub_info import HUB_INFO_ENV, hub_info_name
from rtnb.notebook import discovery


@pytest.mark.parametrize("name", ["rtnb.notebook", "rtnb.server.jupyter"])
def test_either_name_is_a_valid_extension_package_with_the_one_app(name: str) -> None:
    package = ExtensionPackage(name=name, enabled=True)
    assert package.validate()
    [point] = package.extension_points.values()
    assert isinstance(point.app, rtnb.server.jupyter.RtnbExtensionApp)
    assert point.name == "rtnb"


def test_both_hooks_return_the_same_extension_point() -> None:
    assert rtnb.notebook._jupyter_server_extension_points() == rtnb.server.jupyter._jupyter_server_extension_points()


def test_the_kernels_look_where_the_server_writes(tmp_path: Path) -> None:
    assert discovery.HUB_INFO_ENV == HUB_INFO_ENV == "RTNB_HUB_INFO"
    assert discovery.hub_info_path(4242, tmp_path) == tmp_path / hub_info_name(4242)


def test_loading_the_extension_package_loads_no_notebook_module() -> None:
    """The server side of the extension stands on its own: no views, no embedded hub, no discovery."""
    code = (
        "import sys, rtnb.server.jupyter\n"
        "print(sorted(name for name in sys.modules if name.startswith('rtnb.notebook')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
