"""SQL for agent availability (instances, open consoles, statuses) and automatic assignment.

An agent's status is computed, never stored as truth: offline when no console of theirs is open
on a live instance (a heartbeat younger than the presence TTL; a console closed less than the
offline grace ago still counts), else away when they chose away or did nothing in the console
for the away delay, else online. `agent_availability.status` is only what was last announced.
Every statement below that computes it takes the same three parameters first: $1 the presence
TTL, $2 the offline grace, $3 the away delay (seconds).
"""

from __future__ import annotations

import uuid

import asyncpg

from . import Executor

# Serialises status announcements (so a later computation never loses to an earlier one) and
# automatic assignments (so the per-agent limit is counted under the lock, on every instance).
SYNC_LOCK = "SELECT pg_advisory_xact_lock(hashtext('chatserver.availability.sync'))"
ROUTING_LOCK = "SELECT pg_advisory_xact_lock(hashtext('chatserver.routing'))"

_STATUS = """
CASE
  WHEN u.disabled_at IS NOT NULL OR u.role NOT IN ('agent', 'admin') THEN 'offline'
  WHEN NOT EXISTS (
      SELECT 1 FROM agent_consoles c JOIN server_instances i ON i.instance_id = c.instance_id
      WHERE c.user_id = u.id
        AND i.heartbeat_at > now() - make_interval(secs => $1::float8)
        AND (c.sockets > 0 OR c.closed_at > now() - make_interval(secs => $2::float8)))
    THEN 'offline'
  WHEN a.away OR a.last_active_at < now() - make_interval(secs => $3::float8) THEN 'away'
  ELSE 'online'
END"""

# Staff (and former staff with an announced status) with their computed status.
STAFF_STATUS = f"""
SELECT u.id, u.display_name, u.email, u.role, u.disabled_at,
       coalesce(a.away, false) AS away,
       coalesce(a.status, 'offline') AS announced,
       a.status_changed_at, a.last_assigned_at,
       {_STATUS} AS status
FROM users u LEFT JOIN agent_availability a ON a.user_id = u.id
WHERE u.role IN ('agent', 'admin') OR a.user_id IS NOT NULL
"""

LIST_STAFF = f"""
WITH s AS ({STAFF_STATUS})
SELECT * FROM s WHERE role IN ('agent', 'admin') AND disabled_at IS NULL
ORDER BY lower(display_name), id
"""

ONLINE_WITH_CAPACITY = f"""
WITH s AS ({STAFF_STATUS})
SELECT s.id, s.display_name, s.role FROM s
WHERE s.status = 'online'
  AND (SELECT count(*) FROM tickets t WHERE t.assignee_id = s.id AND t.status IN ('open', 'pending')) < $4
"""

# Record each status that differs from the one last announced; returns the changes. ON CONFLICT
# re-checks the latest row, so two instances announcing the same change announce it once.
SYNC_STATUSES = f"""
WITH computed AS ({STAFF_STATUS}),
changed AS (
    INSERT INTO agent_availability AS a (user_id, status, status_changed_at)
    SELECT id, status, now() FROM computed
    WHERE status <> announced AND ($4::uuid IS NULL OR id = $4)
    ON CONFLICT (user_id) DO UPDATE SET status = EXCLUDED.status, status_changed_at = EXCLUDED.status_changed_at
    WHERE a.status <> EXCLUDED.status
    RETURNING a.user_id, a.status, a.status_changed_at, a.away
)
SELECT changed.user_id AS id, changed.status, changed.status_changed_at, changed.away,
       computed.display_name, computed.role
FROM changed JOIN computed ON computed.id = changed.user_id
"""

STATUS_OF = f"WITH s AS ({STAFF_STATUS}) SELECT * FROM s WHERE id = $4"

# The instance's heartbeat (re-creating its row if a survivor removed it as dead).
HEARTBEAT = """
INSERT INTO server_instances (instance_id) VALUES ($1)
ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = now()
"""
LEAVE = "DELETE FROM server_instances WHERE instance_id = $1"
# Instances silent for this many TTLs are gone for good: their rows (and consoles) are deleted.
FORGET_DEAD = "DELETE FROM server_instances WHERE heartbeat_at < now() - make_interval(secs => $1::float8)"

# This instance's console count for an agent (absolute: the instance's own count is the truth).
SET_CONSOLES = """
WITH instance AS (
    INSERT INTO server_instances (instance_id) VALUES ($2)
    ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = now()
)
INSERT INTO agent_consoles (user_id, instance_id, sockets, closed_at)
VALUES ($1, $2, $3, CASE WHEN $3 = 0 THEN now() END)
ON CONFLICT (user_id, instance_id) DO UPDATE
SET sockets = EXCLUDED.sockets,
    closed_at = CASE WHEN EXCLUDED.sockets = 0 THEN coalesce(agent_consoles.closed_at, now()) END
"""
# Consoles closed longer ago than the offline grace no longer matter.
FORGET_CLOSED = """
DELETE FROM agent_consoles
WHERE instance_id = $1 AND sockets = 0 AND closed_at < now() - make_interval(secs => $2::float8)
"""

TOUCH = """
INSERT INTO agent_availability (user_id, last_active_at) VALUES ($1, now())
ON CONFLICT (user_id) DO UPDATE SET last_active_at = now()
"""
SET_AWAY = """
INSERT INTO agent_availability (user_id, away, last_active_at) VALUES ($1, $2, now())
ON CONFLICT (user_id) DO UPDATE SET away = EXCLUDED.away, last_active_at = now()
"""

# A ticket needs a person's reply: handed off by the AI, or with the AI off and the customer
# having written last.
_AWAITING = """(t.waiting_for_agent OR (NOT t.ai_enabled AND (
    SELECT m.author_kind FROM messages m
    WHERE m.ticket_id = t.id AND m.visibility = 'public' ORDER BY m.seq DESC LIMIT 1) = 'customer'))"""

# Open tickets awaiting a person whose assignee is nobody or an agent announced offline.
ORPHANED_WAITING = f"""
SELECT t.id FROM tickets t
WHERE t.status = 'open' AND (t.waiting_for_agent OR NOT t.ai_enabled)
  AND (t.assignee_id IS NULL OR NOT EXISTS (
      SELECT 1 FROM agent_availability a WHERE a.user_id = t.assignee_id AND a.status <> 'offline'))
  AND {_AWAITING}
ORDER BY t.last_activity_at, t.id
LIMIT $1
"""

QUEUE = f"""
SELECT t.id, t.status = 'open' AND {_AWAITING} AS waiting
FROM tickets t
WHERE t.assignee_id = $1 AND t.status IN ('open', 'pending')
ORDER BY t.last_activity_at DESC
LIMIT $2
"""

LOCK_TICKET = "SELECT id, status, assignee_id, waiting_for_agent FROM tickets WHERE id = $1 FOR UPDATE"
IS_AWAITING = f"SELECT {_AWAITING} FROM tickets t WHERE t.id = $1"

# The online agent with room for one more open conversation who was assigned longest ago.
CHOOSE_AGENT = f"""
WITH s AS ({STAFF_STATUS})
SELECT s.id FROM s
WHERE s.status = 'online' AND s.id IS DISTINCT FROM $4
  AND (SELECT count(*) FROM tickets t WHERE t.assignee_id = s.id AND t.status IN ('open', 'pending')) < $5
ORDER BY s.last_assigned_at NULLS FIRST, s.id
LIMIT 1
"""
MARK_ASSIGNED = "UPDATE agent_availability SET last_assigned_at = clock_timestamp() WHERE user_id = $1"


Timing = tuple[float, float, float]  # presence TTL, offline grace, away delay (seconds)


async def list_staff(conn: Executor, timing: Timing) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_STAFF, *timing)


async def status_of(conn: Executor, timing: Timing, user_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(STATUS_OF, *timing, user_id)


async def online_with_capacity(conn: Executor, timing: Timing, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(ONLINE_WITH_CAPACITY, *timing, limit)


async def sync_statuses(pool: asyncpg.Pool, timing: Timing, user_id: uuid.UUID | None = None) -> list[asyncpg.Record]:
    """Announce-once: the status changes since the last announcement (one agent's, or everyone's)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(SYNC_LOCK)
        return await conn.fetch(SYNC_STATUSES, *timing, user_id)


async def heartbeat(conn: Executor, instance_id: str) -> None:
    await conn.execute(HEARTBEAT, instance_id)


async def leave(conn: Executor, instance_id: str) -> None:
    await conn.execute(LEAVE, instance_id)


async def forget_dead(conn: Executor, older_than: float) -> None:
    await conn.execute(FORGET_DEAD, older_than)


async def set_consoles(conn: Executor, user_id: uuid.UUID, instance_id: str, sockets: int) -> None:
    await conn.execute(SET_CONSOLES, user_id, instance_id, sockets)


async def forget_closed(conn: Executor, instance_id: str, grace: float) -> None:
    await conn.execute(FORGET_CLOSED, instance_id, grace)


async def touch(conn: Executor, user_id: uuid.UUID) -> None:
    await conn.execute(TOUCH, user_id)


async def set_away(conn: Executor, user_id: uuid.UUID, away: bool) -> None:
    await conn.execute(SET_AWAY, user_id, away)


async def orphaned_waiting(conn: Executor, limit: int) -> list[uuid.UUID]:
    return [row["id"] for row in await conn.fetch(ORPHANED_WAITING, limit)]


async def queue(conn: Executor, user_id: uuid.UUID, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(QUEUE, user_id, limit)


async def lock_ticket(conn: asyncpg.Connection, ticket_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(LOCK_TICKET, ticket_id)


async def is_awaiting(conn: Executor, ticket_id: uuid.UUID) -> bool:
    return bool(await conn.fetchval(IS_AWAITING, ticket_id))


async def choose_agent(conn: Executor, timing: Timing, exclude: uuid.UUID | None, max_open: int) -> uuid.UUID | None:
    result: uuid.UUID | None = await conn.fetchval(CHOOSE_AGENT, *timing, exclude, max_open)
    return result


async def mark_assigned(conn: Executor, user_id: uuid.UUID) -> None:
    await conn.execute(MARK_ASSIGNED, user_id)
