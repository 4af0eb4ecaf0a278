"""Who is subscribed where: the pure part of cluster-wide presence.

Each hub keeps, in Redis, one hash of its own connections (client id -> JSON
list of patterns) with an expiry it refreshes while alive, so the members of a
hub that is killed vanish by themselves once the expiry passes. A presence
query reads every hub's hash and keeps the members
:func:`rtnb.core.presence.is_present` selects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import orjson

from ..core.presence import is_present, present_members

__all__ = ["decode_memberships", "encode_memberships", "is_present", "present_members"]


def encode_memberships(memberships: Mapping[str, Iterable[str]]) -> dict[str, bytes]:
    """Hash fields for Redis: client id -> JSON list of its patterns."""
    return {client: orjson.dumps(sorted(patterns)) for client, patterns in memberships.items() if patterns}


def decode_memberships(fields: Mapping[bytes, bytes]) -> dict[str, list[str]]:
    """The inverse of :func:`encode_memberships`; unreadable entries are skipped."""
    memberships: dict[str, list[str]] = {}
    for client, value in fields.items():
        try:
            patterns = orjson.loads(value)
        except orjson.JSONDecodeError:
            continue
        if isinstance(patterns, list):
            memberships[client.decode()] = [text for text in patterns if isinstance(text, str)]
    return memberships
