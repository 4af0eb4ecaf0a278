"""Backplanes: how hubs assign offsets, keep history and share messages."""

from __future__ import annotations

from .base import Backplane, Deliver, TopicPosition
from .memory import MemoryBackplane

__all__ = ["Backplane", "Deliver", "MemoryBackplane", "TopicPosition"]
