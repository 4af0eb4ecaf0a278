"""The default backplane, defined in :mod:`rtnb.core.memory_backplane` (pure: the hub's default)."""

from __future__ import annotations

from ..core.memory_backplane import MemoryBackplane

__all__ = ["MemoryBackplane"]
