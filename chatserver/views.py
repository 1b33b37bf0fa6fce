"""The JSON shapes of users, tickets and messages, shared by REST responses and realtime events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def user_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """The caller's own account (or any account, to staff)."""
    return {
        "id": row["id"],
        "email": row["email"],
        "role": row["role"],
        "name": row["display_name"],
        "created_at": row["created_at"],
    }


def participant_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """What other participants of a room may know about a user: no email."""
    return {"id": row["id"], "name": row["display_name"], "role": row["role"]}


def ticket_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "customer_id": row["customer_id"],
        "subject": row["subject"],
        "description": row["description"],
        "status": row["status"],
        "priority": row["priority"],
        "assignee_id": row["assignee_id"],
        "ai_enabled": row["ai_enabled"],
        "waiting_for_agent": row["waiting_for_agent"],
        "last_seq": row["last_seq"],
        "last_activity_at": row["last_activity_at"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        # The customer's rating once given (1-5, services/ratings.py), else null.
        "rating": row["rating"],
        "rating_comment": row["rating_comment"],
        "rated_at": row["rated_at"],
        # [{"id", "name", "color"}] sorted by name; agents only (public_ticket).
        "labels": row["labels"],
        # The address the visitor gave in the widget for replies and transcripts (or null).
        "contact_email": row["contact_email"],
    }


# What only agents see of a ticket: customers get it without these (REST, room frames, snapshot).
STAFF_TICKET_FIELDS = ("labels",)


def public_ticket(ticket: dict[str, Any]) -> dict[str, Any]:
    """A ticket as its customer sees it."""
    return {k: v for k, v in ticket.items() if k not in STAFF_TICKET_FIELDS}


def ticket_for(ticket: dict[str, Any], staff: bool) -> dict[str, Any]:
    return ticket if staff else public_ticket(ticket)


def label_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "color": row["color"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def canned_response_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "shortcut": row["shortcut"],
        "body": row["body"],
        # Shared responses have no owner: every agent sees them, admins manage them.
        "shared": row["owner_id"] is None,
        "owner_id": row["owner_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def rating_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ticket's rating as POST /tickets/{id}/rating and the rating.created event show it."""
    return {
        "ticket_id": row["id"],
        "score": row["rating"],
        "comment": row["rating_comment"],
        "created_at": row["rated_at"],
    }


def message_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "ticket_id": row["ticket_id"],
        "seq": row["seq"],
        "author_id": row["author_id"],
        "author_kind": row["author_kind"],
        "body": row["body"],
        "client_id": row["client_id"],
        "visibility": row["visibility"],
        "metadata": row["metadata"],
        # Summaries written with the message (attachment_summary), oldest-first as referenced.
        "attachments": row["attachments"],
        "created_at": row["created_at"],
    }


def attachment_summary(row: Mapping[str, Any]) -> dict[str, Any]:
    """An attachment as messages carry it; `url` serves the bytes (GET /attachments/{id})."""
    return {
        "id": str(row["id"]),
        "filename": row["filename"],
        "content_type": row["content_type"],
        "size": row["size_bytes"],
        "url": f"/attachments/{row['id']}",
    }


def attachment_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """An upload, as POST /tickets/{id}/attachments returns it."""
    return {
        **attachment_summary(row),
        "ticket_id": row["ticket_id"],
        "message_id": row["message_id"],
        "created_at": row["created_at"],
    }
