"""How pytest runs the tutorials: nbval, with the sanitize file, and services they need.

``pyproject.toml`` turns nbval on (``--nbval-lax``: only cells marked
``# NBVAL_CHECK_OUTPUT`` have their output compared; every cell must run without
error). This file adds the sanitize file (ports, epochs, timestamps) by absolute
path, so the notebooks check the same from any working directory, and skips a
notebook whose service is missing, with the reason; in CI (``RTNB_CI``) nothing
is skipped, so a missing service fails the run.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

SANITIZE_FILE = Path(__file__).with_name("nbval-sanitize.cfg")

#: notebook file name -> (service, host, port) it cannot run without
REQUIRED_SERVICES = {
    "05-scaling-with-redis.ipynb": ("Redis", "127.0.0.1", 6379),
}


def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "nbval_sanitize_with", "unset") is None:
        config.option.nbval_sanitize_with = str(SANITIZE_FILE)


def _reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("RTNB_CI"):
        return
    missing: dict[str, str] = {}
    for item in items:
        required = REQUIRED_SERVICES.get(item.path.name)
        if required is None:
            continue
        name, host, port = required
        if item.path.name not in missing:
            missing[item.path.name] = "" if _reachable(host, port) else f"no {name} reachable at {host}:{port}"
        if missing[item.path.name]:
            item.add_marker(pytest.mark.skip(reason=missing[item.path.name]))
