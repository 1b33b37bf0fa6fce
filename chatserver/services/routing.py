"""Automatic assignment: new and handed-off tickets go to an online agent, round robin, up to
AGENT_MAX_OPEN_CONVERSATIONS open (open or pending) conversations each; a ticket awaiting a
person whose assignee went offline goes to another online agent. docs/web.md, "Routing".

Every assignment runs in one transaction under one advisory lock (db/availability.py
ROUTING_LOCK), taken before anything is read: the open-conversation counts and the round-robin
position it reads are those every earlier assignment, on any instance, left behind, so two
instances routing at once can never give an agent more than the limit. The ticket's row is
locked too, and the reason to route re-checked under it (a person may have assigned it
meanwhile). The change is recorded as the usual ticket.updated event (by: null) and published
after the commit, as every ticket update is.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Literal

import asyncpg

from ..db import availability as availability_db
from ..db import tickets as tickets_db
from ..realtime.publisher import Publisher
from ..settings import Settings
from .activity import publish_ticket_change

log = logging.getLogger(__name__)

# Why a ticket is routed: a new ticket (unassigned), a handoff (its assignee is not online), or
# the sweep (it awaits a person and its assignee is offline or nobody).
Reason = Literal["new", "handoff", "sweep"]
# Tickets the sweep routes per pass; a larger backlog is worked off over the next passes.
SWEEP_BATCH = 50


def timing(settings: Settings) -> availability_db.Timing:
    return (
        settings.agent_presence_ttl_seconds,
        settings.agent_offline_after_seconds,
        settings.agent_away_after_seconds,
    )


async def _needs_routing(conn: asyncpg.Connection, settings: Settings, ticket: asyncpg.Record, reason: Reason) -> bool:
    if ticket["status"] != "open":
        return False
    assignee = ticket["assignee_id"]
    if reason == "new":
        return assignee is None
    if reason == "handoff" and not ticket["waiting_for_agent"]:
        return False  # a person answered or took over meanwhile
    if reason == "sweep" and not await availability_db.is_awaiting(conn, ticket["id"]):
        return False
    if assignee is None:
        return True
    row = await availability_db.status_of(conn, timing(settings), assignee)
    status = row["status"] if row is not None else "offline"
    # A handoff wants someone at the keyboard now; the sweep moves tickets only off agents who left.
    return status != "online" if reason == "handoff" else status == "offline"


async def _assign(
    pool: asyncpg.Pool, settings: Settings, ticket_id: uuid.UUID, reason: Reason
) -> tuple[Literal["assigned", "skipped", "no_agent"], asyncpg.Record | None]:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(availability_db.ROUTING_LOCK)
        ticket = await availability_db.lock_ticket(conn, ticket_id)
        if ticket is None or not await _needs_routing(conn, settings, ticket, reason):
            return "skipped", None
        agent = await availability_db.choose_agent(
            conn, timing(settings), ticket["assignee_id"], settings.agent_max_open_conversations
        )
        if agent is None:
            return "no_agent", None
        row = await tickets_db.update_ticket(conn, ticket_id, {"assignee_id": agent}, by=None)
        await availability_db.mark_assigned(conn, agent)
        return "assigned", row


async def assign(
    pool: asyncpg.Pool, publisher: Publisher, settings: Settings, ticket_id: uuid.UUID, reason: Reason
) -> dict[str, Any] | None:
    """Route one ticket; the ticket as assigned, or None when it stays as it is (routing is off,
    it needs no routing any more, or no online agent has room)."""
    if not settings.auto_assign:
        return None
    outcome, row = await _assign(pool, settings, ticket_id, reason)
    if row is None:
        if outcome == "no_agent":
            log.info("ticket %s (%s) stays unrouted: no online agent has room", ticket_id, reason)
        return None
    # As every ticket change: ticket.updated, the inbox's frame, and the activity line it wrote.
    ticket = await publish_ticket_change(publisher, row, ["assignee_id"], None)
    log.info("ticket %s (%s) assigned to %s", ticket_id, reason, ticket["assignee_id"])
    return ticket


async def route_waiting(pool: asyncpg.Pool, publisher: Publisher, settings: Settings) -> int:
    """The sweep: tickets awaiting a person with no assignee or an offline one go to online agents
    with room, oldest activity first. Returns how many were assigned."""
    if not settings.auto_assign:
        return 0
    if not await availability_db.online_with_capacity(pool, timing(settings), settings.agent_max_open_conversations):
        return 0
    assigned = 0
    for ticket_id in await availability_db.orphaned_waiting(pool, SWEEP_BATCH):
        outcome, row = await _assign(pool, settings, ticket_id, "sweep")
        if outcome == "no_agent":
            break
        if row is not None:
            assigned += 1
            await publish_ticket_change(publisher, row, ["assignee_id"], None)
    if assigned:
        log.info("routing sweep assigned %d waiting tickets", assigned)
    return assigned
