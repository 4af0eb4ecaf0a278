"""The connection lifecycle of a client, as an explicit state machine."""

from __future__ import annotations

import enum

__all__ = ["ClientState", "check_transition"]


class ClientState(enum.Enum):
    """Where a client's connection stands.

    ``NEW -> CONNECTING -> CONNECTED``; a lost connection goes ``CONNECTED ->
    DISCONNECTED -> CONNECTING -> ...`` while the client retries (backing off
    in ``DISCONNECTED``); ``close()`` goes through ``CLOSING`` to ``CLOSED``,
    and giving up (reconnection off, or ``max_attempts`` reached) goes straight
    to ``CLOSED``. ``CLOSED`` is final.
    """

    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    CLOSING = "closing"
    CLOSED = "closed"


_ALLOWED: dict[ClientState, frozenset[ClientState]] = {
    ClientState.NEW: frozenset({ClientState.CONNECTING, ClientState.CLOSING, ClientState.CLOSED}),
    ClientState.CONNECTING: frozenset(
        {ClientState.CONNECTED, ClientState.DISCONNECTED, ClientState.CLOSING, ClientState.CLOSED}
    ),
    ClientState.CONNECTED: frozenset({ClientState.DISCONNECTED, ClientState.CLOSING, ClientState.CLOSED}),
    ClientState.DISCONNECTED: frozenset({ClientState.CONNECTING, ClientState.CLOSING, ClientState.CLOSED}),
    ClientState.CLOSING: frozenset({ClientState.CLOSED}),
    ClientState.CLOSED: frozenset(),
}


def check_transition(old: ClientState, new: ClientState) -> None:
    """Raise ``RuntimeError`` unless ``old -> new`` is a legal move."""
    if new not in _ALLOWED[old]:
        raise RuntimeError(f"illegal client state transition {old.value} -> {new.value}")
