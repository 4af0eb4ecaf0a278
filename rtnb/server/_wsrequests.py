"""A WebSocket connection's requests: parsed, checked against its grant, dispatched to the hub."""

from __future__ import annotations

import logging
from typing import Any

from ..core.auth import Verdict
from ..core.close_codes import CloseCode
from ..core.errors import RtnbError
from ..core.fanout import Member
from ..core.message import decode_frame
from ..core.protocol import Auth, Checkpoint, Ping, Presence, Publish, Subscribe, Unsubscribe, parse_request
from ._publish_pipeline import MAX_PUBLISHES_IN_FLIGHT, PublishPipeline
from ._wsoutgoing import split_frames
from ._wssink import WebSocketSink, frame_log
from .auth import ConnectionSecurity

__all__ = ["MAX_PUBLISHES_IN_FLIGHT", "WebSocketRequests"]


class WebSocketRequests(WebSocketSink):
    """The reading half of :class:`~rtnb.server.websocket.HubWebSocket`: one request per frame."""

    awaiting_pong_since: float | None
    _publishes: PublishPipeline

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
                    self._publishes.acknowledge(request.id, message)
                    return None
                return self._publishes.publish(request.id, self.hub.publish(request.topic, request.data, trusted=True))
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
            self._publishes.refuse(error)  # in request order, after the answers of earlier publishes
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

    def _report(self, error: RtnbError) -> None:
        self.hub.record_error(error.code)
        self.send_control(error.to_wire())

    def _write_answers(self, parts: list[bytes]) -> None:
        """Publish answers (acks, errors) ready together: one write, as few frames as fit."""
        if frame_log.isEnabledFor(logging.DEBUG):
            frame_log.debug("-> %s %r", self.member.id if self.member else "-", parts)
        frames = split_frames(parts, self.format, self.hub.limits.max_batch_bytes)
        self._write(frames[0] if len(frames) == 1 else b"".join(frames))

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
