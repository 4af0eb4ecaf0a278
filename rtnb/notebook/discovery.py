"""Find the hub that the Jupyter server running this kernel mounts.

The server extension (:mod:`rtnb.server.jupyter`) writes a small runtime
file, ``rtnb-hub-<server pid>.json`` in Jupyter's runtime directory (owner-only
permissions, like Jupyter's own ``jpserver-<pid>.json``), and puts its path in
the server's environment as ``RTNB_HUB_INFO``. Kernels inherit the server's
environment, and Jupyter also gives them ``JPY_PARENT_PID``; either leads a
kernel to the right file, so ``rtnb.connect()`` with no URL reaches the hub
of the server that started it, through the one port Binder exposes.

Explicit settings win: ``RTNB_URL`` (and ``RTNB_TOKEN``) name a hub directly.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from ..core.hub_info import HUB_INFO_ENV, hub_info_name

__all__ = ["HUB_INFO_ENV", "find_jupyter_hub", "hub_info_path", "read_hub_info"]

log = logging.getLogger("rtnb.discovery")

#: environment variables naming a hub explicitly
URL_ENV = "RTNB_URL"
TOKEN_ENV = "RTNB_TOKEN"


def runtime_dir() -> Path:
    """Jupyter's runtime directory (honours ``JUPYTER_RUNTIME_DIR``)."""
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir())


def hub_info_path(server_pid: int, directory: Path | None = None) -> Path:
    """Where the extension of the server with ``server_pid`` writes its hub's address."""
    return (directory or runtime_dir()) / hub_info_name(server_pid)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def read_hub_info(path: Path) -> dict[str, Any] | None:
    """The runtime file's content if it is readable and its server still runs, else None."""
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("url"), str):
        log.warning("ignoring malformed rtnb runtime file %s", path)
        return None
    pid = info.get("pid")
    if isinstance(pid, int) and not _process_alive(pid):
        return None
    return info


def find_jupyter_hub() -> tuple[str, str | None] | None:
    """``(base_url, token)`` of the hub this kernel's Jupyter server mounts, or None.

    ``base_url`` includes the mount prefix (``http://127.0.0.1:8888/rtnb``);
    ``token`` is the Jupyter server's token, or None when the server runs
    without one. Looked up, in order: ``RTNB_URL``/``RTNB_TOKEN``; the file
    named by ``RTNB_HUB_INFO``; the file of the server whose pid is
    ``JPY_PARENT_PID``. None outside a Jupyter server with the extension.
    """
    url = os.environ.get(URL_ENV)
    if url:
        return url.rstrip("/"), os.environ.get(TOKEN_ENV) or None
    candidates: list[Path] = []
    named = os.environ.get(HUB_INFO_ENV)
    if named:
        candidates.append(Path(named))
    parent = os.environ.get("JPY_PARENT_PID", "")
    if parent.isdigit():
        try:
            candidates.append(hub_info_path(int(parent)))
        except ImportError:  # jupyter_core missing: no Jupyter server either
            pass
    for path in candidates:
        info = read_hub_info(path)
        if info is not None:
            return str(info["url"]).rstrip("/"), info.get("token") or None
    return None
