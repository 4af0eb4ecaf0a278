"""Presence: which subscriptions count as present for a query. Pure; used by the hub
for local presence and join/leave events, and by the Redis backplane for the cluster."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .topics import Pattern

__all__ = ["is_present", "present_members"]


def is_present(subscription: Pattern, query: Pattern) -> bool:
    """True when a client holding ``subscription`` counts as present for ``query``.

    A concrete query (``chat/room1``) selects every subscription that receives
    that topic (``chat/room1``, ``chat/+``, ``#``...). A wildcard query
    (``chat/#``) selects every subscription it covers: all clients listening
    somewhere inside ``chat/``.
    """
    if query.is_wildcard:
        return query.covers(subscription)
    return subscription.matches(query.text)


def present_members(
    memberships: Mapping[str, Iterable[str]], query: Pattern, hub_id: str | None = None
) -> list[dict[str, str]]:
    """Members (``{"client": ID}``, plus ``"hub"`` when given) present for ``query``, sorted by id."""
    found = []
    for client, patterns in sorted(memberships.items()):
        if any(is_present(Pattern.parse(text), query) for text in patterns):
            found.append({"client": client} if hub_id is None else {"client": client, "hub": hub_id})
    return found
