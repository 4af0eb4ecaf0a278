"""A WebSocket connection's requests: parsed, checked against its grant, dispatched to the hub."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..core.auth import Verdict
from ..core.close_codes import CloseCode
from ..core.errors import RtnbError
from ..core.fanout import Member
from ..core.message import Message, decode_frame
from ..core.protocol import Auth, Checkpoint, Ping, Presence, Publish, Subscribe, Unsubscribe, parse_request
from ._wssink import WebSocketSink, frame_log
from .auth import ConnectionSecurity

__all__ = ["MAX_PUBLISHES_IN_FLIGHT", "WebSocketRequests"]

#: Publishes one WebSocket may have waiting on a shared backplane before reading pauses.
MAX_PUBLISHES_IN_FLIGHT = 1024


class WebSocketRequests(WebSocketSink):
    """The reading half of :class:`~rtnb.server.websocket.HubWebSocket`: one request per frame."""

    awaiting_pong_since: float | None
    _last_publish: asyncio.Future[None] | None
    _publishes_in_flight: int

    def on_message(self, frame: str | bytes) -> Any:
        self.awaiting_pong_since = None  # any frame proves the peer is alive
        member = self.member
        if member is None:
            return None
        if frame_log.isEnabledFor(logging.DEBUG):
            frame_log.debug("<- %s %r", member.id, frame)
        try:
            request = parse_request(decode_frame(frame, self.format), self.hub.limits)
            security = self.security
            if security is None:  # refused at open (connection limit); closing
                return None
            if isinstance(request, Auth):
                return self._authenticate(security, request)
            if not security.authenticated:
                from ..core.errors import Unauthorized

                self._report(
                    Unauthorized('Authenticate first with {"op": "auth", "token": ...}.', request_id=request.id)
                )
                self.close(CloseCode.NOT_AUTHENTICATED, "not authenticated")
                return None
            if isinstance(request, Publish):
                if security.check_publish(request.topic, request.id) is Verdict.CLOSE:
                    self._report(security.rate_error(request.id))
                    self.close(CloseCode.POLICY_VIOLATION, "persistently over the publish rate limit")
                    return None
            elif isinstance(request, Subscribe):
                security.check_subscribe(request.pattern, request.since, request.id)
            elif isinstance(request, Presence):
                security.check_subscribe(request.pattern, None, request.id)
            if isinstance(request, Publish):
                if self.hub.backplane.is_local:
                    message = self.hub.publish_now(request.topic, request.data, trusted=True)
                    if request.id is not None:
                        self._ack(request.id, message)
                    return None
                return self._publish_pipelined(request)
            if isinstance(request, Subscribe):
                return self._subscribe(member, request)
            if isinstance(request, Presence):
                return self._presence(member, request)
            if isinstance(request, Unsubscribe):
                self.hub.unsubscribe(member, request.pattern)
                self._reply({"op": "unsubscribed", "topic": request.pattern}, request.id)
            elif isinstance(request, Ping):
                self._reply({"op": "pong"}, request.id)
            elif isinstance(request, Checkpoint):
                self._reply(self.hub.checkpoint(member), request.id)
        except RtnbError as error:
            self._report(error)
        return None

    def _authenticate(self, security: ConnectionSecurity, request: Auth) -> None:
        """First authentication (a bad token closes 4002) or a refresh (a bad one keeps the old grant)."""
        was_authenticated = security.authenticated
        try:
            permissions = security.authenticate(request.token)
        except RtnbError as error:
            error.request_id = request.id
            self._report(error)
            if not was_authenticated:
                self.close(CloseCode.AUTH_INVALID, "invalid token")
            return
        reply: dict[str, Any] = {"op": "authenticated"}
        if permissions.subject is not None:
            reply["subject"] = permissions.subject
        if permissions.expires_at is not None:
            reply["expires"] = permissions.expires_at
        self._reply(reply, request.id)

    def _reply(self, frame: dict[str, Any], request_id: Any) -> None:
        if request_id is not None:
            frame["id"] = request_id
        self.send_control(frame)

    def _ack(self, request_id: Any, message: Message) -> None:
        self.send_control(
            {"op": "ack", "id": request_id, "topic": message.topic, "offset": message.offset, "epoch": message.epoch}
        )

    def _report(self, error: RtnbError) -> None:
        self.hub.record_error(error.code)
        self.send_control(error.to_wire())

    def _publish_pipelined(self, request: Publish) -> asyncio.Future[None] | None:
        """Start a publish on a shared backplane and read the next frame at once.

        Publishes then reach the backplane in request order while earlier ones
        are still in flight, so a busy connection's publishes share round trips
        (the Redis backplane batches them); acknowledgements and errors still go
        out in request order. At most ``MAX_PUBLISHES_IN_FLIGHT`` wait at a time:
        beyond that, reading pauses until this one is acknowledged.
        """
        task = asyncio.ensure_future(self._publish_async(request, self._last_publish))
        self._last_publish = task
        self._publishes_in_flight += 1
        return task if self._publishes_in_flight >= MAX_PUBLISHES_IN_FLIGHT else None

    async def _publish_async(self, request: Publish, previous: asyncio.Future[None] | None) -> None:
        try:
            message: Message | None = await self.hub.publish(request.topic, request.data, trusted=True)
            failure: RtnbError | None = None
        except RtnbError as error:
            message, failure = None, error
        if previous is not None and not previous.done():
            await asyncio.wait([previous])  # the ack of the publish before this one goes first
        self._publishes_in_flight -= 1
        if failure is not None:
            if failure.request_id is None:
                failure.request_id = request.id
            self._report(failure)
        elif request.id is not None and message is not None:
            self._ack(request.id, message)

    async def _subscribe(self, member: Member, request: Subscribe) -> None:
        try:
            if request.cursor is not None:
                request = await self.hub.resume_from_cursor(request)
                if self.security is not None:
                    self.security.check_subscribe(request.pattern, request.since, request.id)
            await self.hub.subscribe(member, request)
        except RtnbError as error:
            if error.request_id is None:
                error.request_id = request.id
            self._report(error)

    async def _presence(self, member: Member, request: Presence) -> None:
        if request.watch is not None:
            self.hub.watch_presence(member, request.pattern, request.watch)
        try:
            members = await self.hub.presence(request.pattern)
        except RtnbError as error:
            if error.request_id is None:
                error.request_id = request.id
            self._report(error)
            return
        self._reply({"op": "presence", "topic": request.pattern.text, "members": members}, request.id)
