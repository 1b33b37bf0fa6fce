"""WebSocket endpoints: a ticket's room (/tickets/{id}/ws) and the agents' inbox (/ws/inbox).

Authentication happens before the upgrade, so refused sockets get a plain 401/403/404 with the
JSON error body. Every frame is JSON text with a "type"; docs/protocol.md describes them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import asyncpg
import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from ..db import messages as messages_db
from ..db import users as users_db
from ..db.pool import is_unavailable
from ..errors import DATABASE_RETRY_AFTER, ApiError, database_unavailable, forbidden, unauthorized
from ..jsonutil import json_response
from ..keys import (
    AI,
    AI_SERVICE,
    AVAILABILITY,
    DB_HEALTH,
    DB_POOL,
    HUB,
    MAILER,
    MESSAGE_HOOK,
    MESSAGE_WRITER,
    PRESENCE,
    PUBLISHER,
    SEND_BUDGET,
    SETTINGS,
    SOCKET_LIMITS,
    WS_TICKETS,
)
from ..realtime import events
from ..realtime.client import Connection
from ..realtime.tickets import TICKET_TTL, issue_ws_ticket, redeem_ws_ticket
from ..security import Identity
from ..services import messages as message_service
from ..services import reads as read_service
from ..services import tickets as ticket_service
from ..services.api_keys import check_frame
from ..services.attachments import parse_attachment_ids
from ..services.hooks import AiControl
from ..settings import Settings
from ..validation import Bool, Choice, Int, Str, Uuid, parse_uuid, query_int, validate
from ..views import message_view, participant_view, ticket_for, ticket_view
from ..web_session import own_origin
from .identity import checked_bearer_identity, checked_identity, require_identity, session_identity
from .tickets import MAX_SEQ

log = logging.getLogger(__name__)

# The join snapshot: the latest messages, or on resume every message after the client's seq up
# to this many (has_more tells the client to page the rest over REST).
JOIN_HISTORY = 50
RESUME_LIMIT = 500
# A client that keeps sending frames we cannot use is disconnected after this many.
MAX_BAD_FRAMES = 50
# Typing: an unchanged "typing" state is re-broadcast at most every TYPING_THROTTLE seconds; an
# indicator nobody refreshes goes away after TYPING_EXPIRE seconds. Whatever a client sends (say
# active true/false alternating as fast as it can), one socket causes at most one typing broadcast
# per TYPING_MIN_GAP seconds: a change that comes sooner is sent when the gap ends, if it is still
# the current state then.
TYPING_THROTTLE = 2.0
TYPING_EXPIRE = 6.0
TYPING_MIN_GAP = 1.0

SEND_SCHEMA = {
    "type": Str(),
    "client_id": Str(max_len=message_service.MAX_CLIENT_ID_CHARS),
    "body": Str(max_len=message_service.MAX_BODY_CHARS),
    "internal": Bool(required=False),
}
SEND_WITH_FILES_SCHEMA = {
    **SEND_SCHEMA,
    "body": Str(required=False, min_len=0, max_len=message_service.MAX_BODY_CHARS),
}
TYPING_SCHEMA = {"type": Str(), "active": Bool()}
READ_SCHEMA = {"type": Str(), "seq": Int(lo=0, hi=MAX_SEQ)}
TOOL_CALL_DECISION_SCHEMA = {"type": Str(), "call_id": Uuid(), "client_id": Str(required=False, max_len=100)}
UPDATE_SCHEMA = {
    "type": Str(),
    "status": Choice(*ticket_service.STATUSES, required=False),
    "priority": Choice(*ticket_service.PRIORITIES, required=False),
    "assignee_id": Uuid(required=False, nullable=True),
    "ai_enabled": Bool(required=False),
}


class FrameError(Exception):
    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


def _check_origin(request: web.Request) -> None:
    """Cookie-authenticated sockets must come from our own pages, or any site could open a socket
    with the agent's cookie (cross-site WebSocket hijacking). ALLOWED_ORIGINS does not apply: it
    lists the sites that embed the widget, and the widget authenticates with single-use tickets."""
    origin = request.headers.get("Origin")
    if origin is None:
        raise forbidden("Origin header required for cookie-authenticated sockets")
    if origin.rstrip("/") != own_origin(request):
        raise forbidden("Origin not allowed")


async def socket_identity(request: web.Request) -> Identity:
    """Bearer header (clients, bots) > single-use ?ticket= (browsers) > session cookie (console).
    Each is checked against its account (handlers/identity.py) before the upgrade."""
    identity = await checked_bearer_identity(request)
    if identity is not None:
        return identity
    ticket = request.query.get("ticket")
    if ticket:
        identity = await redeem_ws_ticket(request.app[SETTINGS].secret_key, request.app[WS_TICKETS], ticket)
        return await checked_identity(request, identity)
    identity = await session_identity(request)
    if identity is not None:
        _check_origin(request)
        return identity
    raise unauthorized("Authenticate with an Authorization header, a ?ticket= from POST /ws/tickets, or a session")


async def create_ws_ticket(request: web.Request) -> web.Response:
    """POST /ws/tickets: a single-use ticket to put on a WebSocket URL."""
    who = require_identity(request)
    ticket = issue_ws_ticket(request.app[SETTINGS].secret_key, who)
    return json_response({"ticket": ticket, "expires_in": TICKET_TTL}, status=201)


def _resume_seq(request: web.Request) -> int | None:
    if "?" not in request.raw_path:
        # No query string: parsing one anyway would keep an empty query mapping on the request,
        # which lives as long as the socket (~0.2-0.4 KiB per idle socket).
        return None
    # The REST history's bounds: a seq beyond bigint failed in the database after the upgrade.
    return query_int(request, "after_seq", None, 0, MAX_SEQ)


async def _participant(pool: asyncpg.Pool, who: Identity) -> dict[str, Any]:
    """The caller as other participants see them. Only the view outlives this call, not the
    database row: this handler's frame lives as long as the socket."""
    user_row = await users_db.get_by_id(pool, who.user_id)
    if user_row is None:
        raise unauthorized("Account no longer exists")
    return participant_view(user_row)


def database_unavailable_frame(ref: str | None = None) -> dict[str, Any]:
    err = database_unavailable()
    return events.error_frame(err.code, err.message, ref=ref, retry_after=DATABASE_RETRY_AFTER)


def _socket(settings: Settings) -> web.WebSocketResponse:
    # autoping=False: the reader loop sees pongs (liveness for the instance-wide heartbeat,
    # realtime/heartbeat.py) and answers pings itself; no per-socket aiohttp heartbeat timers.
    # compress=False: docs/performance.md explains why.
    return web.WebSocketResponse(autoping=False, max_msg_size=settings.ws_max_msg_size, compress=False)


async def _accept(ws: web.WebSocketResponse, request: web.Request) -> None:
    """Complete the handshake. The response's headers are on the wire by then, but the response
    object lives as long as the socket: dropping them saves ~0.45 KiB per idle socket."""
    await ws.prepare(request)
    ws.headers.clear()


async def _accept_within_limits(ws: web.WebSocketResponse, request: web.Request, who: Identity) -> str:
    """Take one of the user's and the address's socket slots (SOCKETS_PER_USER,
    SOCKETS_PER_ADDRESS), then complete the handshake. Over a limit, ApiError 429 before the
    upgrade, so the client gets a plain HTTP answer with the JSON error body. The caller releases
    the slot (by the returned address) in the finally that ends the socket; here, only when the
    handshake itself fails. Not a context manager: that object would live as long as the socket."""
    limits = request.app[SOCKET_LIMITS]
    address = request.remote or "unknown"
    limits.acquire(who.user_id, address)
    try:
        await _accept(ws, request)
    except BaseException:
        limits.release(who.user_id, address)
        raise
    return address


async def ticket_socket(request: web.Request) -> web.StreamResponse:
    app = request.app
    settings = app[SETTINGS]
    pool = app[DB_POOL]
    ticket_id = parse_uuid(request.match_info["ticket_id"], "Ticket")
    resume_after = _resume_seq(request)
    who = await socket_identity(request)
    await ticket_service.load_visible_ticket(pool, who, ticket_id)
    user = await _participant(pool, who)

    ws = _socket(settings)
    address = await _accept_within_limits(ws, request, who)
    hub = app[HUB]
    presence = app[PRESENCE]
    publisher = app[PUBLISHER]
    channel = events.ticket_channel(ticket_id)
    conn = Connection(ws, who, user, queue_limit=settings.ws_queue_limit, transport=request.transport)
    # Register before reading the snapshot, so nothing committed in between is missed; the
    # connection filters out message frames the snapshot already holds.
    first_here = hub.register(channel, conn, ticket_id)
    session = RoomSession(request, conn, ticket_id, channel)
    try:
        first_anywhere = await presence.add(ticket_id, user) if first_here else False
        try:
            await _send_snapshot(request, conn, ticket_id, resume_after)
        except Exception as exc:
            # The handshake is done: an HTTP 503 cannot be sent any more. Say why and close
            # with 1013 (try again later); the client reconnects and resumes.
            if not is_unavailable(exc):
                raise
            app[DB_HEALTH].unavailable(exc)
            with contextlib.suppress(ConnectionError):  # the client left meanwhile
                await ws.send_str(orjson.dumps(database_unavailable_frame()).decode())
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"database unavailable")
            return ws
        if first_anywhere:
            await publisher.publish(events.presence_joined(ticket_id, user, staff_only=who.is_staff))
        await session.run()
    finally:
        app[SOCKET_LIMITS].release(who.user_id, address)
        await session.stop_typing()
        await session.close_read_cursor()
        last_here = hub.unregister(channel, conn)
        await conn.stop()
        if last_here:
            try:
                # Customers heard of an agent only if they engaged: likewise of their leaving.
                hidden = who.is_staff and not await presence.is_engaged(ticket_id, who.user_id)
                if await presence.remove(ticket_id, who.user_id):
                    await publisher.publish(events.presence_left(ticket_id, user, staff_only=hidden))
                    if who.role == "customer" and MAILER in app:
                        # The visitor's away clock for reply emails starts now (services/mail.py).
                        app[MAILER].note_visitor_left(ticket_id, who.user_id)
            except Exception:
                log.exception("presence cleanup failed for %s", ticket_id)
    return ws


async def _send_snapshot(
    request: web.Request, conn: Connection, ticket_id: uuid.UUID, resume_after: int | None
) -> None:
    app = request.app
    pool = app[DB_POOL]
    who = conn.identity
    ticket = await ticket_service.load_visible_ticket(pool, who, ticket_id)
    visibility = None if who.is_staff else "public"
    last_seq = ticket["last_seq"]
    if resume_after is not None:
        rows = await messages_db.list_after(pool, ticket_id, resume_after, visibility, RESUME_LIMIT + 1)
        has_more = len(rows) > RESUME_LIMIT
        rows = rows[:RESUME_LIMIT]
        # Commits after the ticket read may be in `rows`; the snapshot covers up to what it holds.
        snapshot_seq = rows[-1]["seq"] if has_more else max([last_seq, *(r["seq"] for r in rows)])
    else:
        rows = await messages_db.list_before(pool, ticket_id, last_seq + 1, visibility, JOIN_HISTORY + 1)
        has_more = len(rows) > JOIN_HISTORY
        rows = rows[-JOIN_HISTORY:]
        snapshot_seq = last_seq
    present = await app[PRESENCE].list(ticket_id, for_customer=not who.is_staff)
    reads = await read_service.list_reads(pool, ticket_id)
    channel = events.ticket_channel(ticket_id)
    hub = app[HUB]
    hub.note_snapshot(channel, snapshot_seq)
    frame = events.joined_frame(
        ticket=ticket_for(ticket_view(ticket), who.is_staff),
        present=present,
        messages=[message_view(r) for r in rows],
        last_seq=snapshot_seq,
        resumed=resume_after is not None,
        has_more=has_more,
        you=conn.user,
        reads=reads,
    )
    # Taken in the same step as starting the writer: every later delta is queued behind it.
    frame["streams"] = hub.stream_snapshot(channel, who.is_staff)
    conn.start(frame, snapshot_seq)


class RoomSession:
    """Reads one client's frames in a ticket room and acts on them."""

    # One per open socket: slots keep an idle connection small (docs/performance.md).
    __slots__ = (
        "app",
        "bad_frames",
        "channel",
        "conn",
        "read_cursor",
        "request",
        "ticket_id",
        "typing_active",
        "typing_expiry",
        "typing_flush",
        "typing_sent_at",
        "typing_wanted",
        "who",
    )

    def __init__(self, request: web.Request, conn: Connection, ticket_id: uuid.UUID, channel: str) -> None:
        self.request = request
        self.app = request.app
        self.conn = conn
        self.who = conn.identity
        self.ticket_id = ticket_id
        # The room's channel, as the handler holds it anyway: formatting a UUID costs ~0.9 µs
        # per message.send otherwise.
        self.channel = channel
        self.bad_frames = 0
        # typing_active: what the room was last told; typing_wanted: what the client last said.
        self.typing_active = False
        self.typing_wanted = False
        self.typing_sent_at = -TYPING_MIN_GAP
        self.typing_expiry: asyncio.TimerHandle | None = None
        self.typing_flush: asyncio.TimerHandle | None = None
        # Made on the first `read` frame: sockets that never send one carry nothing for it.
        self.read_cursor: read_service.ReadCursor | None = None

    async def run(self) -> None:
        conn = self.conn
        ws = conn.ws
        async for msg in ws:
            conn.seen()
            if msg.type == WSMsgType.TEXT:
                await self.handle_text(msg.data)
            elif msg.type == WSMsgType.PING:
                await conn.pong(msg.data)
            elif msg.type == WSMsgType.BINARY:
                self.reject("unsupported_frame", "Binary frames are not supported; send JSON text")
            elif msg.type == WSMsgType.ERROR:
                log.info("websocket error on %s: %s", self.conn.id, ws.exception())
                break
            if self.bad_frames >= MAX_BAD_FRAMES:
                await ws.close(code=events.CLOSE_TOO_MANY_ERRORS, message=b"too many invalid frames")
                break

    def reject(self, code: str, message: str, ref: str | None = None, retry_after: float | None = None) -> None:
        self.bad_frames += 1
        self.conn.send_frame(events.error_frame(code, message, ref=ref, retry_after=retry_after))

    async def handle_text(self, data: str) -> None:
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.reject("malformed_frame", "Frames must be JSON objects")
            return
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            self.reject("malformed_frame", "Frames must be JSON objects with a string 'type'")
            return
        kind = frame["type"]
        ref = frame.get("client_id") if isinstance(frame.get("client_id"), str) else None
        handler = self.HANDLERS.get(kind)
        if handler is None:
            self.reject("unknown_type", f"Unknown frame type {kind[:50]!r}", ref=ref)
            return
        refused = check_frame(self.who, kind)  # an API key sends only what its scopes allow
        if refused is not None:
            self.reject(refused.code, refused.message, ref=ref)
            return
        try:
            await handler(self, frame)
        except FrameError as err:
            self.reject(err.code, err.message, ref=ref, retry_after=err.retry_after)
        except ApiError as err:
            self.reject(err.code, err.message, ref=ref)
        except Exception as exc:
            # Whatever escaped here would reach the middleware, which answers with an HTTP
            # response: raw HTTP bytes on an upgraded socket, which the client can only drop.
            # The frame failed, the socket stays; neither counts as the client's bad frame.
            if is_unavailable(exc):
                self.app[DB_HEALTH].unavailable(exc)
                self.conn.send_frame(database_unavailable_frame(ref))
            else:
                log.exception("unhandled error on a %r frame in %s", kind[:50], self.ticket_id)
                self.conn.send_frame(events.error_frame("internal_error", "Internal server error", ref=ref))

    async def on_send(self, frame: dict[str, Any]) -> None:
        raw_ids = frame.pop("attachment_ids", None)
        attachment_ids = (
            [] if raw_ids is None else parse_attachment_ids(raw_ids, self.app[SETTINGS].attachments_per_message)
        )
        body = validate(frame, SEND_WITH_FILES_SCHEMA if attachment_ids else SEND_SCHEMA)
        # One budget per user, shared with their other sockets and REST posts on this instance.
        wait = self.app[SEND_BUDGET].take(self.who.user_id)
        if wait > 0:
            raise FrameError("rate_limited", "Sending too fast; retry after retry_after seconds", wait)
        if self.who.is_staff and not body.get("internal", False):
            # Before the message, so the visitor reads "Alex joined" above Alex's first words.
            await self.engage()
        message, created = await message_service.post_message(
            self.app[DB_POOL],
            self.app[MESSAGE_WRITER],
            self.app[PUBLISHER],
            self.who,
            self.ticket_id,
            body=body.get("body", ""),
            client_id=body["client_id"],
            internal=body.get("internal", False),
            after_post=self.app[MESSAGE_HOOK],
            client_address=self.request.remote,
            attachment_ids=attachment_ids,
        )
        # The ack is a resume position: it must not overtake messages the room still holds back.
        ack = events.ack_frame(body["client_id"], message, duplicate=not created)
        self.app[HUB].send_ack(self.channel, self.conn, message["seq"], ack)
        if self.typing_active:
            await self.stop_typing()

    async def engage(self) -> None:
        """An agent wrote to the customer or took over: from now on the customer sees them."""
        if await self.app[PRESENCE].engage(self.ticket_id, self.who.user_id):
            await self.app[PUBLISHER].publish(events.presence_joined(self.ticket_id, self.conn.user))

    async def on_typing(self, frame: dict[str, Any]) -> None:
        active = validate(frame, TYPING_SCHEMA)["active"]
        if self.typing_expiry is not None:
            self.typing_expiry.cancel()
            self.typing_expiry = None
        self.typing_wanted = active
        if active:
            self.typing_expiry = asyncio.get_running_loop().call_later(TYPING_EXPIRE, self._expire_typing)
        await self._publish_typing()

    async def _publish_typing(self) -> None:
        """Tell the room the wanted typing state if it differs (or an unchanged "typing" is due for
        a refresh), at most once per TYPING_MIN_GAP; sooner, a flush is scheduled instead."""
        now = time.monotonic()
        wanted = self.typing_wanted
        if wanted == self.typing_active and not (wanted and now - self.typing_sent_at >= TYPING_THROTTLE):
            return
        wait = self.typing_sent_at + TYPING_MIN_GAP - now
        if wait > 0:
            if self.typing_flush is None:
                self.typing_flush = asyncio.get_running_loop().call_later(wait, self._flush_typing)
            return
        self.typing_active = wanted
        self.typing_sent_at = now
        await self.app[PUBLISHER].publish(events.typing(self.ticket_id, self.conn.user, wanted))

    def _flush_typing(self) -> None:
        self.typing_flush = None
        asyncio.get_running_loop().create_task(self._publish_typing())

    def _expire_typing(self) -> None:
        self.typing_expiry = None
        asyncio.get_running_loop().create_task(self.stop_typing())

    async def stop_typing(self) -> None:
        """The user stopped typing (sent a message, went quiet, left): tell the room now. Not
        throttled, as each cause is bounded on its own (the send budget, one expiry per start,
        one leave per socket)."""
        for timer in (self.typing_expiry, self.typing_flush):
            if timer is not None:
                timer.cancel()
        self.typing_expiry = self.typing_flush = None
        self.typing_wanted = False
        if not self.typing_active:
            return
        self.typing_active = False
        self.typing_sent_at = time.monotonic()
        await self.app[PUBLISHER].publish(events.typing(self.ticket_id, self.conn.user, False))

    async def on_read(self, frame: dict[str, Any]) -> None:
        """The client has read up to `seq` (docs/protocol.md, "Read cursors")."""
        seq = validate(frame, READ_SCHEMA)["seq"]
        if self.read_cursor is None:
            self.read_cursor = read_service.ReadCursor(
                self.app[DB_POOL], self.app[PUBLISHER], self.ticket_id, self.who.user_id, self.who.role
            )
        await self.read_cursor.report(seq)

    async def close_read_cursor(self) -> None:
        if self.read_cursor is not None:
            await self.read_cursor.close()

    async def on_ping(self, frame: dict[str, Any]) -> None:
        self.conn.send_frame(events.pong_frame(frame.get("ref")))

    async def on_ticket_update(self, frame: dict[str, Any]) -> None:
        changes = validate(frame, UPDATE_SCHEMA)
        changes.pop("type")
        if not changes:
            raise FrameError("validation_error", "Nothing to change")
        await ticket_service.update_ticket(self.app[DB_POOL], self.app[PUBLISHER], self.who, self.ticket_id, changes)

    async def on_takeover(self, frame: dict[str, Any]) -> None:
        if not self.who.is_staff:
            raise FrameError("forbidden", "Only agents can take over from the AI")
        await ticket_service.update_ticket(
            self.app[DB_POOL], self.app[PUBLISHER], self.who, self.ticket_id, {"ai_enabled": False}
        )
        await self.engage()

    async def on_handback(self, frame: dict[str, Any]) -> None:
        if not self.who.is_staff:
            raise FrameError("forbidden", "Only agents can hand a ticket back to the AI")
        await ticket_service.update_ticket(
            self.app[DB_POOL], self.app[PUBLISHER], self.who, self.ticket_id, {"ai_enabled": True}
        )

    async def on_ai_retry(self, frame: dict[str, Any]) -> None:
        ai = self._ai()
        ticket = await ticket_service.load_visible_ticket(self.app[DB_POOL], self.who, self.ticket_id)
        await ai.retry(ticket, self.who)

    async def on_copilot(self, frame: dict[str, Any]) -> None:
        if not self.who.is_staff:
            raise FrameError("forbidden", "Only agents can ask the copilot")
        ai = self._ai()
        ticket = await ticket_service.load_visible_ticket(self.app[DB_POOL], self.who, self.ticket_id)
        await ai.copilot(ticket, self.who)

    async def on_tool_call_decision(self, frame: dict[str, Any]) -> None:
        """ai.tool_call.approve / ai.tool_call.refuse {call_id}: the room hears the outcome as
        ai.tool_call (services in chatserver/ai/tools.py decide who may)."""
        fields = validate(frame, TOOL_CALL_DECISION_SCHEMA)
        service = self.app.get(AI_SERVICE)
        if service is None:
            raise FrameError("ai_unavailable", "AI replies are not configured on this server")
        ticket = await ticket_service.load_visible_ticket(self.app[DB_POOL], self.who, self.ticket_id)
        await service.tools.decide(ticket, self.who, fields["call_id"], fields["type"] == "ai.tool_call.approve")

    def _ai(self) -> AiControl:
        ai = self.app.get(AI)
        if ai is None:
            raise FrameError("ai_unavailable", "AI replies are not configured on this server")
        return ai

    HANDLERS: ClassVar[dict[str, Callable[[RoomSession, dict[str, Any]], Awaitable[None]]]] = {
        "message.send": on_send,
        "typing": on_typing,
        "read": on_read,
        "ping": on_ping,
        "ticket.update": on_ticket_update,
        "ai.takeover": on_takeover,
        "ai.handback": on_handback,
        "ai.retry": on_ai_retry,
        "copilot.request": on_copilot,
        "ai.tool_call.approve": on_tool_call_decision,
        "ai.tool_call.refuse": on_tool_call_decision,
    }


async def inbox_socket(request: web.Request) -> web.StreamResponse:
    """Agents' live inbox: new tickets, new messages and ticket changes across all tickets."""
    app = request.app
    settings = app[SETTINGS]
    who = await socket_identity(request)
    if not who.is_staff:
        raise forbidden("The inbox is for agents and admins")
    user = await _participant(app[DB_POOL], who)
    ws = _socket(settings)
    address = await _accept_within_limits(ws, request, who)
    hub = app[HUB]
    availability = app[AVAILABILITY]
    # An agent's open inbox is their console: it makes them online (services/availability.py).
    is_console = who.role in ("agent", "admin")
    conn = Connection(ws, who, user, queue_limit=settings.ws_queue_limit, transport=request.transport)
    hub.register(events.INBOX_CHANNEL, conn)
    conn.start(events.inbox_ready_frame(conn.user), 0)
    try:
        if is_console:
            availability.console_opened(who.user_id)
        async for msg in ws:
            conn.seen()
            if msg.type == WSMsgType.TEXT:
                try:
                    frame = orjson.loads(msg.data)
                except orjson.JSONDecodeError:
                    frame = None
                kind = frame.get("type") if isinstance(frame, dict) else None
                if kind == "ping":
                    conn.send_frame(events.pong_frame(frame.get("ref")))
                elif kind == "activity" and is_console:
                    await _availability_call(app, availability.activity(who.user_id))
                else:
                    conn.send_frame(
                        events.error_frame("unknown_type", "The inbox accepts only ping and activity frames")
                    )
            elif msg.type == WSMsgType.PING:
                await conn.pong(msg.data)
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        app[SOCKET_LIMITS].release(who.user_id, address)
        hub.unregister(events.INBOX_CHANNEL, conn)
        await conn.stop()
        if is_console:
            availability.console_closed(who.user_id)
    return ws


async def _availability_call(app: web.Application, call: Awaitable[Any]) -> None:
    """Availability bookkeeping never ends a console: a failed write is repaired by the
    instance's next heartbeat (services/availability.py)."""
    try:
        await call
    except Exception as exc:
        if is_unavailable(exc):
            app[DB_HEALTH].unavailable(exc)
            log.warning("availability: database unavailable (%s); the next heartbeat catches up", type(exc).__name__)
        else:
            log.exception("availability bookkeeping failed")
