"""Where a Jupyter server's hub tells its kernels how to reach it.

The contract between the server extension (:mod:`rtnb.server.jupyter`, which
writes the file) and kernels (:mod:`rtnb.notebook.discovery`, which reads it).
It lives in core, below both, so the two sides name the same file and the same
environment variable without importing each other. Pure: names only, no I/O.
"""

from __future__ import annotations

__all__ = ["HUB_INFO_ENV", "hub_info_name"]

#: environment variable holding the runtime file's path (set by the server extension;
#: kernels inherit the server's environment)
HUB_INFO_ENV = "RTNB_HUB_INFO"


def hub_info_name(server_pid: int) -> str:
    """File name (in Jupyter's runtime directory) of the hub of the server with ``server_pid``."""
    return f"rtnb-hub-{server_pid}.json"
