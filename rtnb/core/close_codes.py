"""WebSocket close codes the hub and its clients use, by name (RFC 6455 section 7.4).

1000-1015 are the protocol's own; 4000-4999 are rtnb's (authentication). Every
close the hub makes goes out with an error frame saying why first (see
docs/protocol.md); this enum names the code that follows it.
"""

from __future__ import annotations

import enum

__all__ = ["DEFINED_CLOSE_CODES", "CloseCode", "is_valid_close_code"]


class CloseCode(enum.IntEnum):
    """A close code, named for what it means to the peer."""

    NORMAL = 1000
    #: the hub is shutting down, or a poller left
    GOING_AWAY = 1001
    #: the peer broke RFC 6455 framing
    PROTOCOL_ERROR = 1002
    #: text that is not UTF-8
    INVALID_PAYLOAD = 1007
    #: a policy: a slow consumer, persistent flooding
    POLICY_VIOLATION = 1008
    #: a message over the hub's frame limit
    MESSAGE_TOO_BIG = 1009
    #: the peer did not answer a ping in time
    INTERNAL_ERROR = 1011
    #: the hub cannot take the connection now (e.g. too many connections)
    TRY_AGAIN_LATER = 1013
    #: no ``auth`` request in time on a hub that wants a token
    AUTH_TIMEOUT = 4001
    #: the token did not verify
    AUTH_INVALID = 4002
    #: a request before authenticating on a hub that wants a token
    NOT_AUTHENTICATED = 4003
    #: the token expired and was not refreshed
    AUTH_EXPIRED = 4004


#: codes defined by RFC 6455 or registered with IANA that a peer may send
DEFINED_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


def is_valid_close_code(code: int) -> bool:
    """Whether a peer may put ``code`` in a close frame (RFC 6455 section 7.4).

    1004-1006 and 1015 are reserved and must never be sent; 3000-4999 belong to
    libraries and applications; everything else is undefined.
    """
    return code in DEFINED_CLOSE_CODES or 3000 <= code <= 4999
