"""Email to visitors (docs/operations.md, "Email"): agent replies for a visitor who left, and
transcripts on request. Off when SMTP_URL is unset.

Sending never happens on a request's path. A reply or a transcript request only inserts a row
into `mail_jobs`; a worker on every instance claims due rows (FOR UPDATE SKIP LOCKED, with a
lease), sends them over SMTP (aiosmtplib) and retries failures with a doubling backoff. So a mail
server that is down costs nothing but a later email: the message itself is stored and delivered
as always.

Replies are coalesced: a ticket has at most one pending reply job, and when it runs it sends
every agent message the visitor has not seen (public, written after they left, not mailed yet),
in one email. The job runs only once the visitor has had no socket open on any instance
(presence, realtime/presence.py) for VISITOR_AWAY_MINUTES, counted from `tickets.visitor_left_at`
(written when their last socket in the room closes, on whichever instance).

The email carries a link that signs the visitor back into that conversation: a JWT of its own
type ("reopen"), signed with SECRET_KEY, naming the visitor, the ticket and the account's session
generation, and expiring after MAIL_LINK_TTL_SECONDS. The widget frame exchanges it at
POST /widget/reopen for an ordinary visitor token (the renewal rules of services/widget.py apply
from there).

Invitations to the team (services/invitations.py) are mail jobs too: the job names the account and
the session generation the invitation was made for, and the link in the email is a JWT of type
"invite" carrying that generation. A job whose generation is gone by the time it runs (a newer
invitation, the account disabled or its password set) is skipped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiosmtplib
import asyncpg
import jinja2
import jwt

from ..db import mail as mail_db
from ..db import tickets as tickets_db
from ..errors import ApiError, not_found, too_many_requests, validation_error
from ..realtime import events
from ..realtime.publisher import Publisher
from ..security import JWT_ALGORITHM, Identity
from ..settings import Settings
from ..views import ticket_view
from .access import account_disabled
from .auth import TokenConfig, check_email, current_user, token_response
from .tickets import load_visible_ticket
from .widget import VISITOR_EMAIL_DOMAIN, is_widget_visitor

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parent.parent.parent / "web" / "templates" / "email"
LINK_TYPE = "reopen"
INVITE_TYPE = "invite"
# Jobs claimed per query, and the longest one email may take before its claim lapses (then
# another instance may send it again: delivery is at least once).
CLAIM_BATCH = 10
LEASE_MARGIN_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 3600.0
# Agent messages in one reply email, and messages in one transcript.
MAX_REPLIES_PER_EMAIL = 50
MAX_TRANSCRIPT_MESSAGES = 2000
# Transcripts per ticket per hour: the address is the visitor's to choose, so this bounds how
# much mail one conversation can make us send to anyone.
TRANSCRIPTS_PER_HOUR = 3
LAST_ERROR_CHARS = 300


def email_disabled() -> ApiError:
    return ApiError(409, "email_disabled", "Email is not configured on this server (SMTP_URL)")


# ---- addresses and reopen links ----------------------------------------------------------------


def check_contact_email(email: str) -> str:
    """A visitor's address: the loose check of services/auth.py, no header-breaking characters,
    and not one of the widget's own placeholder addresses."""
    email = check_email(email)
    if len(email) > 254 or any(c in email for c in '\r\n<>,;"') or email.lower().endswith("." + "invalid"):
        raise validation_error("Email address is not valid", details={"fields": {"email": "is not a valid email"}})
    return email


def reopen_token(secret: str, user_id: uuid.UUID, ticket_id: uuid.UUID, generation: int, ttl: int) -> str:
    now = int(time.time())
    claims = {"typ": LINK_TYPE, "sub": str(user_id), "tid": str(ticket_id), "gen": generation}
    return jwt.encode({**claims, "iat": now, "exp": now + ttl}, secret, algorithm=JWT_ALGORITHM)


def link_refused(expired: bool = False) -> ApiError:
    if expired:
        return ApiError(401, "link_expired", "This link has expired; write to us again from the chat")
    return ApiError(401, "link_invalid", "This link is not valid")


def read_reopen_token(secret: str, token: str) -> tuple[uuid.UUID, uuid.UUID, int]:
    """(user id, ticket id, session generation) of a genuine, unexpired link; else raises 401."""
    try:
        claims = jwt.decode(token, secret, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "sub", "tid"]})
    except jwt.ExpiredSignatureError:
        raise link_refused(expired=True) from None
    except jwt.PyJWTError:
        raise link_refused() from None
    generation = claims.get("gen")
    if claims.get("typ") != LINK_TYPE or type(generation) is not int:
        raise link_refused()
    try:
        return uuid.UUID(str(claims["sub"])), uuid.UUID(str(claims["tid"])), generation
    except ValueError:
        raise link_refused() from None


def reopen_url(settings: Settings, token: str) -> str:
    # In the fragment: browsers never send it to a server, so it stays out of every access log.
    return f"{settings.public_base_url}/widget/frame#reopen={token}"


async def reopen_visitor(pool: asyncpg.Pool, tokens: TokenConfig, link: str) -> dict[str, Any]:
    """Exchange a reopen link for a visitor token and the ticket it opens."""
    user_id, ticket_id, generation = read_reopen_token(tokens.secret, link)
    try:
        user = await current_user(pool, user_id)
    except ApiError:
        raise link_refused() from None
    if not is_widget_visitor(user) or user["session_generation"] != generation:
        # Only the widget's own visitors sign in by link; an account that changed since (signed
        # out everywhere, say) is not reopened by an older link.
        raise link_refused()
    if user["disabled_at"] is not None:
        raise account_disabled()
    ticket = await tickets_db.get_ticket(pool, ticket_id)
    if ticket is None or ticket["customer_id"] != user_id:
        raise not_found("Ticket")
    return {**token_response(user, tokens), "ticket_id": ticket_id}


# ---- invitation links ------------------------------------------------------------------------------


def invitation_token(secret: str, user_id: uuid.UUID, generation: int, ttl: int) -> str:
    now = int(time.time())
    claims = {"typ": INVITE_TYPE, "sub": str(user_id), "gen": generation, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


def invitation_refused(code: str = "invitation_invalid") -> ApiError:
    if code == "invitation_expired":
        return ApiError(410, code, "This invitation has expired: ask an admin to send a new one")
    if code == "invitation_used":
        return ApiError(410, code, "This invitation has already been used: sign in with your password")
    if code == "invitation_revoked":
        return ApiError(
            410, code, "This invitation is no longer valid: use the latest one, or ask an admin for a new one"
        )
    return ApiError(400, "invitation_invalid", "This invitation link is not valid")


def read_invitation_token(secret: str, token: str) -> tuple[uuid.UUID, int]:
    """(user id, session generation) of a genuine, unexpired invitation link; else raises."""
    try:
        claims = jwt.decode(token, secret, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError:
        raise invitation_refused("invitation_expired") from None
    except jwt.PyJWTError:
        raise invitation_refused() from None
    generation = claims.get("gen")
    if claims.get("typ") != INVITE_TYPE or type(generation) is not int:
        raise invitation_refused()
    try:
        return uuid.UUID(str(claims["sub"])), generation
    except ValueError:
        raise invitation_refused() from None


def invitation_url(settings: Settings, token: str) -> str:
    # In the fragment, as the reopen link: it never reaches a server's access log.
    return f"{settings.public_base_url}/console/invite#token={token}"


# ---- REST: the visitor's address and transcripts -------------------------------------------------


async def set_contact_email(
    pool: asyncpg.Pool, publisher: Publisher, who: Identity, ticket_id: uuid.UUID, email: str | None
) -> dict[str, Any]:
    """The ticket's owner (or staff) sets or clears the address replies and transcripts go to."""
    current = await load_visible_ticket(pool, who, ticket_id)
    value = check_contact_email(email) if email else None
    if current["contact_email"] == value:
        return ticket_view(current)
    row = await tickets_db.update_ticket(pool, ticket_id, {"contact_email": value}, by=who.user_id)
    if row is None:
        raise not_found("Ticket")
    ticket = ticket_view(row)
    await publisher.publish(events.ticket_updated(ticket, ["contact_email"], who.user_id))
    await publisher.publish(events.inbox_ticket_updated(ticket, ["contact_email"]))
    return ticket


async def request_transcript(
    pool: asyncpg.Pool,
    settings: Settings,
    who: Identity,
    ticket_id: uuid.UUID,
    email: str | None,
    nudge: Callable[[], None],
) -> dict[str, Any]:
    """Queue the conversation's transcript for the owner's address (the one given, else the
    ticket's contact address)."""
    ticket = await load_visible_ticket(pool, who, ticket_id)
    if who.role != "customer":
        # The transcript is the visitor's copy; agents have the console.
        raise ApiError(403, "forbidden", "Only the customer of a ticket can ask for its transcript")
    if not settings.email_enabled:
        raise email_disabled()
    recipient = check_contact_email(email) if email else ticket["contact_email"]
    if not recipient:
        raise validation_error("Give an email address for the transcript", details={"fields": {"email": "is required"}})
    if await mail_db.recent_transcripts(pool, ticket_id, 3600) >= TRANSCRIPTS_PER_HOUR:
        raise too_many_requests("Too many transcripts for this conversation; try again later", 3600)
    job = await mail_db.enqueue_transcript(pool, ticket_id, recipient)
    nudge()
    return {"transcript": {"status": "queued", "email": recipient, "requested_at": job["created_at"]}}


# ---- sending ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpTarget:
    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        tls = parts.scheme.lower() == "smtps"
        return cls(
            hostname=parts.hostname or "localhost",
            port=parts.port or (465 if tls else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=tls,
        )


class SmtpSender:
    """One email per SMTP connection: mail is rare enough that a kept-open connection would
    mostly be a connection to keep alive."""

    def __init__(self, target: SmtpTarget, timeout: float) -> None:
        self.target = target
        self.timeout = timeout

    async def send(self, message: EmailMessage) -> None:
        t = self.target
        await aiosmtplib.send(
            message,
            hostname=t.hostname,
            port=t.port,
            username=t.username,
            password=t.password,
            use_tls=t.use_tls,
            # smtp://: STARTTLS when the server offers it (aiosmtplib's default); smtps://: TLS from the start.
            start_tls=None if not t.use_tls else False,
            timeout=self.timeout,
        )


def _templates() -> jinja2.Environment:
    # Autoescape for the HTML bodies only; the text bodies are plain text.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _author(row: asyncpg.Record) -> str:
    if row["author_kind"] == "customer":
        return "You"
    if row["author_kind"] == "ai":
        return "Assistant"
    if row["author_kind"] == "system":
        return "Support"
    return row["author_name"] or "Support"


def _lines(rows: Sequence[asyncpg.Record]) -> list[dict[str, Any]]:
    return [
        {"author": _author(r), "body": r["body"], "at": r["created_at"].strftime("%Y-%m-%d %H:%M UTC")} for r in rows
    ]


class MailWorker:
    """Claims and sends due mail jobs; one per instance, all sharing the table."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        customer_present: Callable[[uuid.UUID, uuid.UUID], Awaitable[bool]],
        sender: SmtpSender | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.customer_present = customer_present
        self.sender = sender or (
            SmtpSender(SmtpTarget.from_url(settings.smtp_url), settings.smtp_timeout_seconds)
            if settings.smtp_url
            else None
        )
        self.templates = _templates()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return self.sender is not None

    # ---- enqueueing (on the request path: one INSERT, never a send) -----------------------------

    async def on_message(self, message: dict[str, Any], ticket: asyncpg.Record | dict[str, Any]) -> None:
        """After an agent's public message: queue a reply email for the ticket, if its visitor gave
        an address. Never raises: a mail problem must not fail the message."""
        if not self.enabled or message["visibility"] != "public":
            return
        if message["author_kind"] not in ("agent", "integration") or not ticket.get("contact_email"):
            return
        try:
            if await mail_db.enqueue_reply(self.pool, message["ticket_id"]):
                self.nudge()
        except (TimeoutError, asyncpg.PostgresError, OSError) as exc:
            log.warning(
                "mail: could not queue a reply email for ticket %s (%s)", message["ticket_id"], type(exc).__name__
            )

    def note_visitor_left(self, ticket_id: uuid.UUID, customer_id: uuid.UUID) -> None:
        """The customer's last socket in the room closed (on every instance): start their away
        clock. In a task of the worker's own: the closing socket's handler may be cancelled."""
        if not self.enabled:
            return
        task = asyncio.get_running_loop().create_task(self._note_visitor_left(ticket_id, customer_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _note_visitor_left(self, ticket_id: uuid.UUID, customer_id: uuid.UUID) -> None:
        try:
            await mail_db.note_visitor_left(self.pool, ticket_id, customer_id)
        except (TimeoutError, asyncpg.PostgresError, OSError) as exc:
            log.warning("mail: could not note that the visitor left ticket %s (%s)", ticket_id, type(exc).__name__)

    def nudge(self) -> None:
        self._wake.set()

    # ---- the worker --------------------------------------------------------------------------

    def start(self) -> None:
        if self.enabled:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="mail-worker")

    async def close(self) -> None:
        if self._background:
            # Let the last "visitor left" notes land before the pool closes.
            await asyncio.wait(self._background, timeout=5)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                worked = await self.run_once()
            except (TimeoutError, asyncpg.PostgresError, OSError) as exc:
                log.warning("mail: could not read the mail jobs (%s)", type(exc).__name__)
                worked = 0
            except Exception:
                # A bug must not stop email for good: log it, and the job's lease lets it be
                # tried again later.
                log.exception("mail: the worker failed on a batch")
                worked = 0
            if worked:
                continue
            self._wake.clear()
            try:
                async with asyncio.timeout(self.settings.mail_poll_seconds):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def run_once(self) -> int:
        """Claim and process one batch of due jobs; returns how many."""
        lease = self.settings.smtp_timeout_seconds * 3 + LEASE_MARGIN_SECONDS
        jobs = await mail_db.claim_due(self.pool, CLAIM_BATCH, lease)
        for job in jobs:
            await self._process(job)
        return len(jobs)

    async def _process(self, job: asyncpg.Record) -> None:
        try:
            if job["kind"] == "invitation":
                outcome: str | dt.datetime = await self._invitation(job)
            elif job["kind"] == "reply":
                outcome = await self._reply(job)
            else:
                outcome = await self._transcript(job)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            # The error's class and SMTP reply, never the message, addresses or credentials.
            error = f"{type(exc).__name__}: {getattr(exc, 'message', '') or ''}"[:LAST_ERROR_CHARS]
            retry_in = min(MAX_BACKOFF_SECONDS, self.settings.mail_retry_base_seconds * 2 ** (job["attempts"] - 1))
            retry_in *= random.uniform(0.8, 1.2)
            final = job["attempts"] >= self.settings.mail_max_attempts
            log.warning(
                "mail: job %d (%s) failed on attempt %d (%s)%s",
                job["id"],
                job["kind"],
                job["attempts"],
                type(exc).__name__,
                ", giving up" if final else f", retrying in {retry_in:.1f}s",
            )
            await mail_db.fail(self.pool, job["id"], retry_in, self.settings.mail_max_attempts, error)
            return
        if isinstance(outcome, dt.datetime):
            await mail_db.postpone(self.pool, job["id"], outcome)
        else:
            await mail_db.finish(self.pool, job["id"], outcome)

    async def _reply(self, job: asyncpg.Record) -> str | dt.datetime:
        """'sent', 'skipped', or the time to look again (the visitor left too recently)."""
        ticket = await mail_db.ticket_for_mail(self.pool, job["ticket_id"])
        if ticket is None or not ticket["contact_email"]:
            return "skipped"
        if await self.customer_present(ticket["id"], ticket["customer_id"]):
            return "skipped"  # connected: they read replies as they come
        left = ticket["visitor_left_at"]
        if left is not None:
            away_from = left + dt.timedelta(minutes=self.settings.visitor_away_minutes)
            now = await self.pool.fetchval("SELECT now()")
            if away_from > now:
                return away_from
        rows = await mail_db.unseen_replies(
            self.pool, ticket["id"], ticket["reply_mailed_seq"], left, MAX_REPLIES_PER_EMAIL
        )
        if not rows:
            return "skipped"
        link = None
        if ticket["customer_role"] == "customer" and str(ticket["customer_email"]).endswith("@" + VISITOR_EMAIL_DOMAIN):
            token = reopen_token(
                self.settings.secret_key,
                ticket["customer_id"],
                ticket["id"],
                ticket["session_generation"],
                self.settings.mail_link_ttl_seconds,
            )
            link = reopen_url(self.settings, token)
        context = {
            "subject": ticket["subject"],
            "replies": _lines(rows),
            "link": link,
            "link_days": max(1, round(self.settings.mail_link_ttl_seconds / 86400)),
        }
        names = sorted({line["author"] for line in context["replies"]})
        subject = (
            f"New reply: {ticket['subject']}" if len(rows) == 1 else f"{len(rows)} new replies: {ticket['subject']}"
        )
        await self._send(ticket["contact_email"], subject, "reply", context, ticket["id"])
        await mail_db.mark_mailed(self.pool, ticket["id"], rows[-1]["seq"])
        log.info("mail: sent %d reply(ies) from %s for ticket %s", len(rows), ", ".join(names), ticket["id"])
        return "sent"

    async def _transcript(self, job: asyncpg.Record) -> str:
        ticket = await mail_db.ticket_for_mail(self.pool, job["ticket_id"])
        if ticket is None or not job["recipient"]:
            return "skipped"
        rows = await mail_db.transcript(self.pool, ticket["id"], MAX_TRANSCRIPT_MESSAGES)
        context = {"subject": ticket["subject"], "messages": _lines(rows), "status": ticket["status"]}
        await self._send(job["recipient"], f"Transcript: {ticket['subject']}", "transcript", context, ticket["id"])
        log.info("mail: sent the transcript of ticket %s (%d messages)", ticket["id"], len(rows))
        return "sent"

    async def _invitation(self, job: asyncpg.Record) -> str:
        """The invitation email, unless the invitation it was queued for no longer stands."""
        user = await mail_db.invitation_for_mail(self.pool, job["user_id"])
        if (
            user is None
            or user["invited_at"] is None
            or user["disabled_at"] is not None
            or user["session_generation"] != job["user_generation"]
        ):
            return "skipped"
        ttl = self.settings.mail_link_ttl_seconds
        token = invitation_token(self.settings.secret_key, user["id"], user["session_generation"], ttl)
        context = {
            "name": user["display_name"],
            "email": user["email"],
            "role": "an admin" if user["role"] == "admin" else "an agent",
            "link": invitation_url(self.settings, token),
            "link_days": max(1, round(ttl / 86400)),
            "console": f"{self.settings.public_base_url}/console",
        }
        await self._send(job["recipient"], "You are invited to the support team", "invitation", context, None)
        log.info("mail: sent an invitation to account %s", user["id"])
        return "sent"

    async def _send(
        self, recipient: str, subject: str, template: str, context: dict[str, Any], ticket_id: uuid.UUID | None
    ) -> None:
        assert self.sender is not None  # the worker runs only when email is on
        message = EmailMessage()
        message["From"] = self.settings.mail_from
        message["To"] = recipient
        # Subjects come from visitors: one line, bounded.
        message["Subject"] = " ".join(subject.split())[:200]
        message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
        domain = parseaddr(self.settings.mail_from)[1].rpartition("@")[2] or None
        message["Message-ID"] = make_msgid(domain=domain)
        message["Auto-Submitted"] = "auto-generated"
        if ticket_id is not None:
            message["X-Chatserver-Ticket"] = str(ticket_id)
        message.set_content(self.templates.get_template(f"{template}.txt").render(context))
        message.add_alternative(self.templates.get_template(f"{template}.html").render(context), subtype="html")
        await self.sender.send(message)
