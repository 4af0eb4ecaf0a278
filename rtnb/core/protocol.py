"""The wire contract, version 1: typed frames and the parser for client requests.

Client frames are JSON objects (or MessagePack maps) with an ``op``. The parser
turns each into a typed request or raises the :mod:`rtnb.core.errors` error that
the hub sends back, carrying the request's ``id`` when it had one. It does no
I/O; adapters call :func:`parse_request` and act on the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import BadCursor, BadField, BadJson, MissingField, RtnbError, UnknownOp
from .limits import Limits
from .message import check_payload
from .topics import Pattern, validate_pattern, validate_topic

if TYPE_CHECKING:
    from .cursor import ResumePoint

__all__ = [
    "PROTOCOL_VERSION",
    "SUBPROTOCOL_JSON",
    "SUBPROTOCOL_MSGPACK",
    "Auth",
    "Checkpoint",
    "Ping",
    "Presence",
    "Publish",
    "Request",
    "RequestId",
    "SinceCursor",
    "Subscribe",
    "Unsubscribe",
    "parse_request",
    "parse_since",
]

PROTOCOL_VERSION = 1
SUBPROTOCOL_MSGPACK = "rtnb.msgpack"
SUBPROTOCOL_JSON = "rtnb.json"

#: a request's ``id``, echoed in its ``ack`` or ``error``
RequestId = str | int

#: topic -> (last seen offset, epoch or None when the client does not know it)
#: topic -> (epoch, last offset): a stream position as everywhere in rtnb, the epoch ``None``
#: where a hand-written ``since`` gives only offsets (the hub then takes the topic's current one)
SinceCursor = dict[str, tuple[int | None, int]]


# -- client -> hub requests ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscribe:
    """``{"op":"subscribe","topic":PATTERN}``, with ``last``, or ``since`` to resume.

    ``since`` is either a topic map, or a cursor text (``"~ID"`` from a
    ``checkpoint`` reply, or an SSE/poll cursor) with an optional ``delta`` map
    of topics that moved after it: then ``cursor`` holds the cursor as read
    and ``since`` the delta (the adapter merges them once the cursor is loaded).
    """

    pattern: Pattern
    last: int | None = None
    since: SinceCursor | None = None
    id: RequestId | None = None
    cursor: ResumePoint | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    pattern: str
    id: RequestId | None = None


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    data: Any
    id: RequestId | None = None


@dataclass(frozen=True, slots=True)
class Ping:
    id: RequestId | None = None


@dataclass(frozen=True, slots=True)
class Auth:
    token: str
    id: RequestId | None = None


@dataclass(frozen=True, slots=True)
class Presence:
    """``{"op":"presence","topic":TOPIC_OR_PATTERN}``: who is subscribed there, cluster-wide.

    Answered with ``{"op":"presence","topic":...,"members":[{"client":ID,"hub":HUB}, ...]}``.
    With ``"watch": true`` the connection also gets ``{"op":"join"|"leave","topic":...,
    "client":ID,"hub":HUB}`` as clients start or stop being present; ``"watch": false`` stops that.
    """

    pattern: Pattern
    id: RequestId | None = None
    watch: bool | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """``{"op":"checkpoint"}``: a resume cursor of bounded size for everything sent so far.

    Answered in order with the stream, ``{"op":"checkpoint","cursor":"~ID","patterns":[...]}``:
    the cursor covers every message (and gap) sent on the connection before the
    reply, so a client resubscribes with ``since: CURSOR`` plus a ``delta`` of
    the topics that moved after it. No ``cursor`` while the connection is still
    catching up (ask again later).
    """

    id: RequestId | None = None


Request = Subscribe | Unsubscribe | Publish | Ping | Auth | Presence | Checkpoint

_OPS = ("subscribe", "unsubscribe", "publish", "ping", "auth", "presence", "checkpoint")
MAX_LAST = 100_000


def _request_id(frame: dict[str, Any]) -> RequestId | None:
    """The request's ``id``, echoed back as given (a string, or an integer)."""
    value = frame.get("id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadField("Field 'id' must be a string or an integer.")
    if isinstance(value, str) and len(value) > 128:
        raise BadField("Field 'id' must be at most 128 characters.")
    return value


def _required(frame: dict[str, Any], field: str, op: str) -> Any:
    if field not in frame:
        raise MissingField(f"Op '{op}' needs the field '{field}'.")
    return frame[field]


def parse_since(value: object, limits: Limits | None = None) -> SinceCursor:
    """Read a ``since`` cursor: ``{TOPIC: OFFSET}`` or ``{TOPIC: {"offset": N, "epoch": E}}``.

    The object form lets the hub tell a client whose offsets belong to an old
    epoch; the plain form is accepted for hand-written clients.
    """
    limits = limits or Limits()
    if not isinstance(value, dict):
        raise BadCursor("Field 'since' must be an object of topic -> offset, e.g. {\"plant/a\": 41}.")
    cursor: SinceCursor = {}
    for topic, position in value.items():
        validate_topic(topic, allow_system=True, max_length=limits.max_topic_length, max_depth=limits.max_topic_depth)
        epoch: int | None = None
        if isinstance(position, dict):
            epoch = position.get("epoch")
            position = position.get("offset")
            if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int)):
                raise BadCursor(f"since[{topic!r}].epoch must be an integer.")
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise BadCursor(f"since[{topic!r}] must be a non-negative integer offset.")
        cursor[topic] = (epoch, position)
    return cursor


def parse_request(frame: Any, limits: Limits | None = None) -> Request:
    """Validate one decoded client frame and return the typed request.

    Raises:
        BadJson: the frame is not an object.
        UnknownOp / MissingField / BadField / InvalidTopic / InvalidPattern /
        WildcardPublish / TooDeep: as named, with ``request_id`` set.
    """
    limits = limits or Limits()
    if not isinstance(frame, dict):
        raise BadJson('A frame must be a JSON object such as {"op": "ping"}.')
    request_id = _request_id(frame)
    op = frame.get("op")
    if op not in _OPS:
        known = ", ".join(_OPS)
        if op is None:
            raise UnknownOp(f"The frame has no 'op' field; give one of: {known}.", request_id=request_id)
        shown = repr(op[:40]) if isinstance(op, str) else f"of type {type(op).__name__}"
        raise UnknownOp(f"Unknown op {shown}; expected one of: {known}.", request_id=request_id)
    try:
        if op == "publish":
            topic = validate_topic(
                _required(frame, "topic", op),
                max_length=limits.max_topic_length,
                max_depth=limits.max_topic_depth,
            )
            data = _required(frame, "data", op)
            check_payload(data, limits.max_nesting)
            return Publish(topic, data, request_id)
        if op == "subscribe":
            text = validate_pattern(
                _required(frame, "topic", op),
                max_length=limits.max_topic_length,
                max_depth=limits.max_topic_depth,
            )
            last = frame.get("last")
            if last is not None and (isinstance(last, bool) or not isinstance(last, int) or not 0 <= last <= MAX_LAST):
                raise BadField(f"Field 'last' must be an integer from 0 to {MAX_LAST}.")
            since = frame.get("since")
            delta = frame.get("delta")
            if isinstance(since, str):
                from .cursor import read_cursor  # cursor builds on this module

                point = read_cursor(since)
                cursor: SinceCursor | None = parse_since(delta, limits) if delta is not None else {}
            else:
                if delta is not None:
                    raise BadField("Field 'delta' goes with a cursor text in 'since', e.g. \"since\": \"~ID\".")
                point = None
                cursor = parse_since(since, limits) if since is not None else None
            if last is not None and cursor is not None:
                raise BadField("Give either 'last' or 'since', not both.")
            return Subscribe(Pattern.parse(text), last, cursor, request_id, point)
        if op == "unsubscribe":
            text = validate_pattern(
                _required(frame, "topic", op),
                max_length=limits.max_topic_length,
                max_depth=limits.max_topic_depth,
            )
            return Unsubscribe(text, request_id)
        if op == "auth":
            token = _required(frame, "token", op)
            if not isinstance(token, str):
                raise BadField("Field 'token' must be a string.")
            return Auth(token, request_id)
        if op == "presence":
            text = validate_pattern(
                _required(frame, "topic", op),
                max_length=limits.max_topic_length,
                max_depth=limits.max_topic_depth,
            )
            watch = frame.get("watch")
            if watch is not None and not isinstance(watch, bool):
                raise BadField("Field 'watch' must be true or false.")
            return Presence(Pattern.parse(text), request_id, watch)
        if op == "checkpoint":
            return Checkpoint(request_id)
        return Ping(request_id)
    except RtnbError as error:
        if error.request_id is None:
            error.request_id = request_id
        raise
