"""Every realtime event's shape, defined once. docs/protocol.md describes each of them.

An Event is what services publish: a channel (a ticket room or the agents' inbox), the frame
sent to clients, and who may receive it. Frames sent only to one socket (acks, errors, the join
snapshot) are built here too so that the whole protocol lives in one module.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from ..views import STAFF_TICKET_FIELDS, public_ticket

# Close codes (4000-4999 are free for applications). Clients reconnect and resume on 4000-4099.
CLOSE_RESUME = 4000  # the server asks the client to reconnect and resume from its last seq
CLOSE_SLOW_CONSUMER = 4008  # outgoing queue overflowed: reconnect and resume
# Access revoked: the account was disabled, its role changed, its password was reset or it
# logged out (services/access.py). Do not reconnect with the same credentials: sign in again.
CLOSE_POLICY = 4003
CLOSE_TOO_MANY_ERRORS = 4009  # the client kept sending invalid frames

INBOX_CHANNEL = "inbox"
# Control events about accounts: no client subscribes to it; each instance's access cache
# watches it (services/access.py).
ACCOUNTS_CHANNEL = "accounts"
# Control events about server-wide settings (the admin's widget settings): no client subscribes;
# each instance's settings cache watches it (services/widget_settings.py).
SETTINGS_CHANNEL = "settings"


def ticket_channel(ticket_id: uuid.UUID | str) -> str:
    return f"ticket:{ticket_id}"


@dataclass(frozen=True)
class Event:
    channel: str
    frame: dict[str, Any]
    # Internal notes, copilot suggestions and the inbox go to agents and admins only.
    staff_only: bool = False
    # For message events: the seq the room orders and de-duplicates by.
    seq: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # What connections that are not staff get instead of `frame` (when not staff_only): the same
    # frame without what only agents may know (a ticket's labels).
    public_frame: dict[str, Any] | None = None


# ---- room events -------------------------------------------------------------------------


def message_created(message: dict[str, Any]) -> Event:
    return Event(
        ticket_channel(message["ticket_id"]),
        {"type": "message.created", "message": message},
        staff_only=message["visibility"] == "internal",
        seq=message["seq"],
    )


def ticket_updated(ticket: dict[str, Any], changes: list[str], by: uuid.UUID | None) -> Event:
    """Agents get the whole ticket; customers the ticket without its labels (views.public_ticket),
    and nothing at all for a change of labels alone."""
    frame = {"type": "ticket.updated", "ticket": ticket, "changes": changes, "by": by}
    public_changes = [name for name in changes if name not in STAFF_TICKET_FIELDS]
    if not public_changes:
        return Event(ticket_channel(ticket["id"]), frame, staff_only=True)
    public = {**frame, "ticket": public_ticket(ticket), "changes": public_changes}
    return Event(ticket_channel(ticket["id"]), frame, public_frame=public)


def activity_created(entry: dict[str, Any]) -> Event:
    """A line of the ticket's activity log (db/activity.py ACTIVITY_VIEW): agents only."""
    return Event(ticket_channel(entry["ticket_id"]), {"type": "activity.created", "activity": entry}, staff_only=True)


def presence_joined(ticket_id: uuid.UUID, user: dict[str, Any], staff_only: bool = False) -> Event:
    """staff_only for an agent who only opened the ticket: customers hear of them once they
    engage (write publicly or take over), realtime/presence.py. Agents may so get a second
    presence.joined for someone already present: the frame is idempotent."""
    return Event(ticket_channel(ticket_id), {"type": "presence.joined", "user": user}, staff_only=staff_only)


def presence_left(ticket_id: uuid.UUID, user: dict[str, Any], staff_only: bool = False) -> Event:
    return Event(ticket_channel(ticket_id), {"type": "presence.left", "user": user}, staff_only=staff_only)


def typing(ticket_id: uuid.UUID, user: dict[str, Any], active: bool) -> Event:
    return Event(ticket_channel(ticket_id), {"type": "typing", "user": user, "active": active})


def read_updated(ticket_id: uuid.UUID, user_id: uuid.UUID, role: str, seq: int) -> Event:
    """A participant's read cursor moved (services/reads.py). `seq` is a public message's seq, so
    the same frame goes to customers and agents. Not a message frame: no `seq` ordering."""
    return Event(
        ticket_channel(ticket_id),
        {"type": "read.updated", "user": {"id": user_id, "role": role}, "seq": seq},
    )


# ---- AI reply streams --------------------------------------------------------------------
# kind is "reply" (customer-facing, to the whole room) or "copilot" (a suggestion, agents only).


def ai_started(ticket_id: uuid.UUID, reply_id: str, kind: str, in_reply_to: int | None) -> Event:
    return Event(
        ticket_channel(ticket_id),
        {"type": "ai.started", "reply_id": reply_id, "kind": kind, "in_reply_to": in_reply_to},
        staff_only=kind == "copilot",
    )


def ai_delta(ticket_id: uuid.UUID, reply_id: str, kind: str, offset: int, text: str) -> Event:
    """`offset` is the character offset of `text` in the whole reply: re-assembly is idempotent."""
    return Event(
        ticket_channel(ticket_id),
        {"type": "ai.delta", "reply_id": reply_id, "offset": offset, "text": text},
        staff_only=kind == "copilot",
    )


def ai_completed(ticket_id: uuid.UUID, reply_id: str, kind: str, message: dict[str, Any] | None, text: str) -> Event:
    """For replies, `message` is the stored message (with its seq); copilot text is not stored."""
    return Event(
        ticket_channel(ticket_id),
        {"type": "ai.completed", "reply_id": reply_id, "kind": kind, "message": message, "text": text},
        staff_only=kind == "copilot",
        seq=message["seq"] if message else None,
    )


def ai_failed(
    ticket_id: uuid.UUID,
    reply_id: str,
    kind: str,
    code: str,
    message: str,
    retryable: bool,
    partial: dict[str, Any] | None,
    retry_after: float | None = None,
) -> Event:
    """`partial` is the stored incomplete message when some text had arrived, else None.
    `retry_after` (seconds) is set when the AI service said how long to wait (HTTP 429)."""
    return Event(
        ticket_channel(ticket_id),
        {
            "type": "ai.failed",
            "reply_id": reply_id,
            "kind": kind,
            "code": code,
            "message": message,
            "retryable": retryable,
            "retry_after": retry_after,
            "partial": partial,
        },
        staff_only=kind == "copilot",
        seq=partial["seq"] if partial else None,
    )


def ai_failure_detail(ticket_id: uuid.UUID, reply_id: str, kind: str, code: str, detail: str) -> Event:
    """What the AI service said about a failure (its error text can name the organisation, the
    model and its limits): agents and admins only, right after the reply's ai.failed, whose
    `message` is a generic sentence for everyone."""
    return Event(
        ticket_channel(ticket_id),
        {"type": "ai.failure_detail", "reply_id": reply_id, "kind": kind, "code": code, "detail": detail},
        staff_only=True,
    )


# "ai." events about a reply that are not part of its stream (its start, deltas and end): the
# hub's and the reply tracker's stream bookkeeping passes them by.
SIDE_EVENTS = frozenset({"ai.tool_call", "ai.tool_call_detail"})

# A stored tool call's status (db/actions.py) as the room reads it.
_ROOM_STATUS = {"running": "started", "succeeded": "finished"}


def ai_tool_call(call: dict[str, Any]) -> Event:
    """An action the AI calls during a reply, as the whole room sees it: a short human label
    ("Looking up order 1042"), never its arguments' raw form, its headers or its answer.
    status: awaiting_approval (confirm_by says who may approve: "agent", or "customer" for the
    ticket's customer or an agent), approved, refused, started, finished, failed, cancelled."""
    return Event(
        ticket_channel(call["ticket_id"]),
        {
            "type": "ai.tool_call",
            "reply_id": call["reply_id"],
            "call_id": call["id"],
            "name": call["name"],
            "label": call["label"],
            "status": _ROOM_STATUS.get(call["status"], call["status"]),
            "confirm_by": call["confirm_by"] if call["status"] == "awaiting_approval" else None,
        },
    )


def ai_tool_call_detail(call: dict[str, Any]) -> Event:
    """The same call for agents and admins: its arguments, outcome and an excerpt of the answer
    (header values are never in it). Sent with every change, and for calls the room does not
    hear of (an unknown tool, arguments that fail the schema)."""
    return Event(ticket_channel(call["ticket_id"]), {"type": "ai.tool_call_detail", "call": call}, staff_only=True)


def ai_cancelled(ticket_id: uuid.UUID, reply_id: str, kind: str, reason: str) -> Event:
    return Event(
        ticket_channel(ticket_id),
        {"type": "ai.cancelled", "reply_id": reply_id, "kind": kind, "reason": reason},
        staff_only=kind == "copilot",
    )


# ---- inbox events (agents and admins) ----------------------------------------------------


def inbox_labels_changed(labels: list[dict[str, Any]]) -> Event:
    """The label catalogue after an admin created, renamed, recoloured or deleted a label (the
    tickets that carry it changed with it, without ticket frames of their own)."""
    return Event(INBOX_CHANNEL, {"type": "inbox.labels_changed", "labels": labels}, staff_only=True)


def inbox_ticket_created(ticket: dict[str, Any]) -> Event:
    return Event(INBOX_CHANNEL, {"type": "inbox.ticket_created", "ticket": ticket}, staff_only=True)


def inbox_ticket_updated(ticket: dict[str, Any], changes: list[str]) -> Event:
    return Event(INBOX_CHANNEL, {"type": "inbox.ticket_updated", "ticket": ticket, "changes": changes}, staff_only=True)


def inbox_message_created(message: dict[str, Any]) -> Event:
    return Event(INBOX_CHANNEL, {"type": "inbox.message_created", "message": message}, staff_only=True)


def agent_availability(agent: dict[str, Any]) -> Event:
    """An agent's status changed (online, away, offline): services/availability.py."""
    return Event(INBOX_CHANNEL, {"type": "agent.availability", "agent": agent}, staff_only=True)


# ---- control events (between instances, never sent to a client) --------------------------


def account_changed(user_id: uuid.UUID) -> Event:
    """An account's access changed (role, disabled, session generation): every instance forgets
    what it cached about it and closes its sockets with CLOSE_POLICY."""
    return Event(ACCOUNTS_CHANNEL, {"type": "account.changed", "user_id": str(user_id)}, staff_only=True)


def widget_settings_changed(version: int) -> Event:
    """An admin saved the widget settings: every instance drops its cached copy."""
    return Event(SETTINGS_CHANNEL, {"type": "widget_settings.changed", "version": version}, staff_only=True)


# ---- frames for one socket ---------------------------------------------------------------


def joined_frame(
    ticket: dict[str, Any],
    present: list[dict[str, Any]],
    messages: list[dict[str, Any]],
    last_seq: int,
    resumed: bool,
    has_more: bool,
    you: dict[str, Any],
    reads: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """`reads`: every participant's read cursor (services/reads.py `read_view`)."""
    return {
        "type": "joined",
        "ticket": ticket,
        "present": present,
        "messages": messages,
        "last_seq": last_seq,
        "resumed": resumed,
        "has_more": has_more,
        "you": you,
        "reads": reads if reads is not None else [],
    }


def ack_frame(client_id: str | None, message: dict[str, Any], duplicate: bool) -> dict[str, Any]:
    return {"type": "ack", "client_id": client_id, "message": message, "duplicate": duplicate}


def error_frame(code: str, message: str, *, ref: str | None = None, retry_after: float | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if ref is not None:
        frame["ref"] = ref
    if retry_after is not None:
        frame["retry_after"] = round(retry_after, 3)
    return frame


def resync_frame(reason: str) -> dict[str, Any]:
    return {"type": "resync", "reason": reason}


def inbox_ready_frame(you: dict[str, Any]) -> dict[str, Any]:
    return {"type": "inbox.ready", "you": you}


def pong_frame(ref: Any) -> dict[str, Any]:
    return {"type": "pong", "ref": ref}
