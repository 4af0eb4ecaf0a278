"""One error tree for rtnb, with codes that travel on the wire.

Every error the hub can report carries a stable ``code`` string. The same code
appears in ``{"op": "error", "code": ...}`` on WebSocket, as an SSE ``error``
event, and in ``{"error": {"code": ..., "message": ...}}`` HTTP bodies, so a
client can branch on it whatever transport it uses. Adapters map each class to
an HTTP status and, where the connection must end, to a WebSocket close code.

Tree::

    RtnbError
    ├── ProtocolError              the peer sent something we cannot accept
    │   ├── BadJson                "bad_json"        not JSON / MessagePack, or not an object
    │   ├── UnknownOp              "unknown_op"      "op" missing or not one we know
    │   ├── MissingField           "missing_field"   a required field is absent
    │   ├── BadField               "bad_field"       a field has the wrong type or value
    │   ├── InvalidTopic           "invalid_topic"   a topic name breaks the naming rules
    │   ├── InvalidPattern         "invalid_pattern" a subscription pattern breaks the rules
    │   ├── WildcardPublish        "wildcard_publish" publishing to a pattern, not a topic
    │   ├── MessageTooBig          "message_too_big" a frame or body over the size limit (HTTP 413)
    │   ├── HeadTooLarge           "header_too_large" an HTTP request head over 64 KiB (HTTP 431)
    │   ├── TooDeep                "too_deep"        a payload nested deeper than allowed
    │   └── BadCursor              "bad_cursor"      a resume cursor that cannot be read
    │       └── CursorExpired      "cursor_expired"  a stored cursor the hub no longer holds (WebSocket)
    ├── LimitExceeded              the peer is within the rules but over a limit
    │   ├── RateLimited            "rate_limited"
    │   ├── TooManySubscriptions   "too_many_subscriptions"
    │   ├── TooManyConnections     "too_many_connections"  per client address
    │   └── SlowConsumer           "slow_consumer"   its queue did not drain in time (sent before close 1008)
    ├── AuthError
    │   ├── Unauthorized           "unauthorized"    no or bad credentials
    │   └── Forbidden              "forbidden"       credentials lack the permission
    ├── Unavailable                "unavailable"     the backplane cannot take the request
    ├── Timeout                    "timeout"         no answer in time (client side)
    └── ConnectionClosed           "closed"          the connection is gone (client side)
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AuthError",
    "BadCursor",
    "BadField",
    "BadJson",
    "ConnectionClosed",
    "CursorExpired",
    "Forbidden",
    "HeadTooLarge",
    "InvalidPattern",
    "InvalidTopic",
    "LimitExceeded",
    "MessageTooBig",
    "MissingField",
    "ProtocolError",
    "RateLimited",
    "RtnbError",
    "SlowConsumer",
    "Timeout",
    "TooDeep",
    "TooManyConnections",
    "TooManySubscriptions",
    "Unauthorized",
    "Unavailable",
    "UnknownOp",
    "WildcardPublish",
    "error_from_wire",
]


class RtnbError(Exception):
    """Root of every error rtnb raises on purpose.

    Attributes:
        code: stable machine-readable code, also sent on the wire.
        message: one sentence for humans.
        http_status: the status an HTTP adapter answers with.
        request_id: the ``id`` of the request that failed, when it had one.
    """

    code: ClassVar[str] = "error"
    #: a default per class; an HTTP adapter may set it on one instance (a status with no class of its own)
    http_status: int = 500

    def __init__(self, message: str, *, request_id: str | int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id

    def to_wire(self) -> dict[str, Any]:
        """The ``error`` frame that reports this error to a peer."""
        frame: dict[str, Any] = {"op": "error", "code": self.code, "message": self.message}
        if self.request_id is not None:
            frame["id"] = self.request_id
        return frame

    def to_http_body(self) -> dict[str, Any]:
        """The JSON body an HTTP adapter sends for this error."""
        return {"error": {"code": self.code, "message": self.message}}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class ProtocolError(RtnbError):
    code = "protocol_error"
    http_status = 400


class BadJson(ProtocolError):
    code = "bad_json"


class UnknownOp(ProtocolError):
    code = "unknown_op"


class MissingField(ProtocolError):
    code = "missing_field"


class BadField(ProtocolError):
    code = "bad_field"


class InvalidTopic(ProtocolError):
    code = "invalid_topic"


class InvalidPattern(ProtocolError):
    code = "invalid_pattern"


class WildcardPublish(ProtocolError):
    code = "wildcard_publish"


class MessageTooBig(ProtocolError):
    code = "message_too_big"
    http_status = 413


class HeadTooLarge(ProtocolError):
    code = "header_too_large"
    http_status = 431


class TooDeep(ProtocolError):
    code = "too_deep"


class BadCursor(ProtocolError):
    code = "bad_cursor"


class CursorExpired(BadCursor):
    """A stored cursor (``"~ID"``) in a WebSocket ``since`` that the hub no longer holds.

    The client still knows where it stands: it subscribes again with the full
    ``since`` map (SSE and polling, which have no such map, get gaps instead).
    """

    code = "cursor_expired"


class LimitExceeded(RtnbError):
    code = "limit_exceeded"
    http_status = 429


class RateLimited(LimitExceeded):
    code = "rate_limited"


class TooManySubscriptions(LimitExceeded):
    code = "too_many_subscriptions"


class TooManyConnections(LimitExceeded):
    code = "too_many_connections"


class SlowConsumer(LimitExceeded):
    code = "slow_consumer"


class AuthError(RtnbError):
    code = "auth_error"
    http_status = 401


class Unauthorized(AuthError):
    code = "unauthorized"


class Forbidden(AuthError):
    code = "forbidden"
    http_status = 403


class Unavailable(RtnbError):
    code = "unavailable"
    http_status = 503


class Timeout(RtnbError):
    code = "timeout"
    http_status = 504


class ConnectionClosed(RtnbError):
    code = "closed"
    http_status = 503


def _all_subclasses(cls: type[RtnbError]) -> list[type[RtnbError]]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


def error_from_wire(code: str, message: str, request_id: str | int | None = None) -> RtnbError:
    """Rebuild the typed error a hub reported, for clients.

    An unknown code (a newer hub) still gives an :class:`RtnbError` whose
    ``code`` attribute is the code received.
    """
    for cls in _all_subclasses(RtnbError):
        if cls.code == code:
            return cls(message, request_id=request_id)
    error = RtnbError(message, request_id=request_id)
    vars(error)["code"] = code  # this instance's own code, shadowing the class's "error"
    return error
