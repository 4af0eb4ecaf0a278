"""What the plain-HTTP transports (SSE, long polling, publish) share.

* ``Host`` and ``Origin``: every handler asks the hub's one
  :class:`~rtnb.core.origins.RequestGuard` (DNS rebinding, cross-site requests),
  and an allowed cross-site origin gets its CORS headers on errors too.
* Errors: a handler raises an :class:`~rtnb.core.errors.RtnbError`; the client
  gets its HTTP status and ``{"error": {"code": ..., "message": ...}}``, the
  same codes as on WebSocket, and the hub counts it. Nothing is logged as an
  uncaught exception, because bad input is expected, not a bug.
* Query parsing for subscriptions: ``topic`` (repeatable), ``last``, the resume
  cursor, each refused with a typed error when malformed.
* :func:`load_cursor` and :func:`resume_requests`: turning a cursor (inline or
  stored) into ``since`` subscriptions that also replay topics created after the
  cursor was issued, so that resuming is lossless for them too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import orjson
import tornado.httputil
import tornado.iostream
import tornado.web

from ..core.auth import Permissions
from ..core.cursor import ResumePoint, read_cursor
from ..core.cursor_store import ChainHead
from ..core.errors import BadField, MissingField, RtnbError, TooManySubscriptions, UnknownOp
from ..core.history import Gap
from ..core.origins import HostPolicy, RequestGuard
from ..core.protocol import MAX_LAST, SinceCursor, Subscribe
from ..core.topics import Pattern, validate_pattern
from .auth import AccessControl
from .hub import Hub

__all__ = ["HttpRouteHandler", "load_cursor", "parse_cursor", "parse_last", "parse_patterns", "resume_requests"]

log = logging.getLogger("rtnb.http")


class HttpRouteHandler(tornado.web.RequestHandler):
    """Base of the hub's HTTP handlers: the hub passed in, errors as typed JSON."""

    def initialize(
        self, hub: Hub, authenticator: AccessControl | None = None, guard: RequestGuard | None = None
    ) -> None:
        self.hub = hub
        # None (pages, /topics, /healthz): Host check only, no origin or token check.
        # Hub transports get one from make_handlers, so SSE, poll and publish all follow the same rules.
        self.authenticator = authenticator
        #: the hub's Host and Origin rules (rtnb.core.origins), shared by every route
        self.guard = guard or RequestGuard(HostPolicy.any_host())
        self.permissions = Permissions.allow_all()
        self._admitted_address: str | None = None
        self._cors_origin: str | None = None

    def http_connection(self) -> tornado.httputil.HTTPConnection:
        """The request's connection, which Tornado's server sets on every request it serves."""
        connection = self.request.connection
        assert connection is not None  # None only for a request built by hand, never one served
        return connection

    def http_stream(self) -> tornado.iostream.IOStream:
        """The client's socket stream, which Tornado's HTTP/1 connection has (its interface does not say so)."""
        connection: Any = self.http_connection()
        stream: tornado.iostream.IOStream = connection.stream
        return stream

    async def prepare(self) -> None:
        """Host check; on hub transports also the origin check, CORS headers and the token
        (not on a CORS preflight).

        Raises:
            Forbidden: a ``Host`` the hub does not answer to, or a cross-site
                ``Origin`` not in the allow-list (403).
            Unauthorized: authentication is required and the token is missing or bad (401).
        """
        headers = self.request.headers
        if self.authenticator is None:
            self.guard.check_host(headers.get("Host"))
            return
        self._cors_origin = self.guard.check(headers.get("Host"), headers.get("Origin"))
        self._set_cors_headers()
        if self.request.method == "OPTIONS":
            return
        self.permissions = self.authenticator.authenticate_request(headers, self.get_query_argument("token", None))

    def _set_cors_headers(self) -> None:
        """CORS headers for an allowed cross-site origin; set again on error responses,
        which Tornado starts from cleared headers, so a browser page can read the error."""
        if self._cors_origin is not None:
            self.set_header("Access-Control-Allow-Origin", self._cors_origin)
            self.set_header("Vary", "Origin")
            self.set_header("Access-Control-Expose-Headers", "Content-Type")

    def options(self, *args: str) -> None:
        """CORS preflight: which methods and headers a cross-site page may use."""
        self.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
        self.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID")
        self.set_header("Access-Control-Max-Age", "600")
        self.set_status(204)
        self.finish()

    def check_subscribe(self, patterns: Sequence[Pattern], since: SinceCursor | None) -> None:
        """Every pattern (and resume-cursor topic) within the request's subscribe grants.

        Raises:
            Forbidden: one is not (403).
        """
        for pattern in patterns:
            self.permissions.check_subscribe(pattern, since)

    def admit_connection(self) -> None:
        """Count this long-lived request against its address's connection limit.

        Raises:
            TooManyConnections: the address holds its limit (429).
        """
        if self.authenticator is None or self._admitted_address is not None:
            return
        address = self.request.remote_ip or "unknown"
        self.authenticator.connections.admit(address)
        self._admitted_address = address

    def release_connection(self) -> None:
        """Undo :meth:`admit_connection`; safe to call twice."""
        if self.authenticator is not None and self._admitted_address is not None:
            self.authenticator.connections.release(self._admitted_address)
            self._admitted_address = None

    def on_finish(self) -> None:
        self.release_connection()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if exc_info else None
        if not isinstance(error, RtnbError):
            error = self._error_for_status(status_code, error)
        self.hub.record_error(error.code)
        self._set_cors_headers()
        self.set_status(error.http_status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(orjson.dumps(error.to_http_body()))

    def _error_for_status(self, status_code: int, error: object) -> RtnbError:
        reason = getattr(error, "log_message", None)
        if status_code == 405:
            found: RtnbError = UnknownOp(
                f"{self.request.method} is not supported on {self.request.path}; see docs/transports.md."
            )
        elif status_code == 400:
            found = BadField(f"{reason or 'The request is malformed'}.")
        else:
            reason = getattr(error, "log_message", None) or self._reason
            found = RtnbError(f"{reason}.")
        found.http_status = status_code
        return found

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, RtnbError):
            log.debug("%s %s refused: %s %s", self.request.method, self.request.path, value.code, value.message)
            return
        super().log_exception(typ, value, tb)


def parse_patterns(handler: tornado.web.RequestHandler, hub: Hub) -> list[Pattern]:
    """The ``topic`` query arguments as compiled patterns, duplicates removed.

    Raises:
        MissingField: no ``topic`` argument.
        InvalidPattern: a pattern breaks the naming rules.
        TooManySubscriptions: more patterns than ``max_subscriptions``.
    """
    texts = handler.get_query_arguments("topic")
    if not texts:
        raise MissingField("Give at least one 'topic' query argument, e.g. ?topic=plant/%2B/temp.")
    limits = hub.limits
    if len(set(texts)) > limits.max_subscriptions:
        raise TooManySubscriptions(f"A request may hold at most {limits.max_subscriptions} topic patterns.")
    patterns: dict[str, Pattern] = {}
    for text in texts:
        validate_pattern(text, max_length=limits.max_topic_length, max_depth=limits.max_topic_depth)
        patterns.setdefault(text, Pattern.parse(text))
    return list(patterns.values())


def parse_last(value: str | None) -> int | None:
    """The ``last`` query argument: replay this many messages per matching topic.

    Raises:
        BadField: not an integer from 0 to ``MAX_LAST``.
    """
    if value is None or value == "":
        return None
    try:
        last = int(value)
    except ValueError:
        raise BadField(f"'last' must be an integer from 0 to {MAX_LAST}, got {value[:40]!r}.") from None
    if not 0 <= last <= MAX_LAST:
        raise BadField(f"'last' must be an integer from 0 to {MAX_LAST}, got {last}.")
    return last


def parse_cursor(value: str | None) -> ResumePoint | None:
    """A resume cursor from a header or query argument; ``None`` when absent.

    A stored cursor comes back with its id only; :func:`load_cursor` reads it.

    Raises:
        BadCursor: present but malformed.
    """
    if value is None or value == "":
        return None
    return read_cursor(value)


async def load_cursor(hub: Hub, point: ResumePoint | None) -> tuple[ResumePoint | None, ChainHead | None]:
    """Resolve a stored cursor into its positions (or mark it expired); inline ones pass.

    Returns:
        The point to resume from, and for a stored one its record (to extend).
    """
    if point is None or point.stored_id is None:
        return point, None
    head = await hub.cursors.load(point.stored_id)
    if head is None:
        return replace(point, expired=True), None
    positions: SinceCursor = dict(head.positions)
    return ResumePoint(positions, head.patterns, point.stored_id), head


async def resume_requests(
    hub: Hub, patterns: Sequence[Pattern], point: ResumePoint | None, last: int | None
) -> tuple[list[Subscribe], list[Gap]]:
    """One :class:`Subscribe` per pattern, resuming from ``point`` when given, and gaps to send first.

    A cursor lists every topic its patterns matched when it was issued, so a topic
    matching one of those patterns that it does not list was **created after it was
    issued**: it is replayed from its first message (or its oldest retained, with a
    ``trimmed`` gap), and ``last`` does not apply to it — a ``last=N`` left in an
    ``EventSource`` URL must not cut it short. ``last`` applies only to topics of
    patterns the cursor did not cover (added to the request since). Cursors that do
    not say which patterns they covered (older ones) count as covering every pattern.

    A stored cursor the hub no longer holds (expired) cannot say where the client
    stood: every matching topic gets a ``cursor_expired`` gap up to its latest offset,
    then live messages. Without a cursor, ``last`` applies as on WebSocket.
    """
    if point is None:
        return [Subscribe(pattern, last=last) for pattern in patterns], []
    requests = []
    gaps: list[Gap] = []
    for pattern in patterns:
        wanted = dict(point.positions)
        covered = point.covers(pattern.text)
        for topic, position in hub.backplane.positions(pattern).items():
            if point.expired:
                if position.last_offset and topic not in wanted:
                    gaps.append(Gap(topic, 1, position.last_offset, "cursor_expired", position.epoch))
                wanted.setdefault(topic, (position.epoch, position.last_offset))
            elif topic not in wanted:
                start = 0 if covered or last is None else max(0, position.first_offset - 1, position.last_offset - last)
                wanted[topic] = (position.epoch, start)
        if covered and not point.expired:
            gaps += await hub.lost_epochs(pattern, point.positions)
        requests.append(Subscribe(pattern, since=wanted))
    return requests, gaps
