"""Fixtures for tests against a real Jupyter server (see rtnb_jupyter_fixture)."""

from __future__ import annotations

from rtnb_jupyter_fixture import jupyter_server

__all__ = ["jupyter_server"]
