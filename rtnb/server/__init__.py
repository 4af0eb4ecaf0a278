"""Tornado adapters: the hub's transports, health and metrics, and the runner."""

from __future__ import annotations

from .app import make_app, make_handlers
from .hub import Hub, HubConfig
from .runner import HubServer, serve

__all__ = ["Hub", "HubConfig", "HubServer", "make_app", "make_handlers", "serve"]
