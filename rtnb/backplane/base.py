"""The backplane protocols, defined in :mod:`rtnb.core.backplane` (below both the hub and the backplanes)."""

from __future__ import annotations

from ..core.backplane import Backplane, Deliver, HubLink, LocalBackplane, ReadResult, TopicPosition

__all__ = ["Backplane", "Deliver", "HubLink", "LocalBackplane", "ReadResult", "TopicPosition"]
