"""The invariants a chaos phase must end with, read from the database, the clients and the logs.

- every acked message is in the database exactly once, at the seq its ack named;
- every client's view (snapshot plus frames, in arrival order) equals the database's messages in
  seq order for its visibility (customers: public only; agents: all);
- nothing stays unacked once the faults are over (the server is serving again);
- every customer question in an AI ticket is answered (an `ai` or `system` message after it) or
  the ticket waits for a person, and no room still lists a reply in `joined.streams`;
- no 5xx but 503 (the outage answer) in the instances' access logs and no traceback in their logs.
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from .clients import Participant

_MESSAGES = """
SELECT ticket_id, seq, author_id, author_kind, client_id, visibility
FROM messages WHERE ticket_id = ANY($1::uuid[]) ORDER BY ticket_id, seq
"""
_TICKETS = "SELECT id, waiting_for_agent, ai_enabled FROM tickets WHERE id = ANY($1::uuid[])"


@dataclass
class Room:
    ticket_id: uuid.UUID
    ai: bool
    participants: list[Participant] = field(default_factory=list)


@dataclass
class Findings:
    sent: int = 0
    acked: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    divergent: int = 0
    unacked: int = 0
    unanswered: int = 0
    ghosts: int = 0
    details: list[str] = field(default_factory=list)

    @property
    def delivery_ok(self) -> bool:
        return not (self.lost or self.duplicated or self.divergent or self.unacked or self.unanswered)


async def check_rooms(database_url: str, rooms: list[Room], *, with_details: bool = False) -> Findings:
    """Compare what the clients of `rooms` hold with the database (ghost streams aside)."""
    ids = [room.ticket_id for room in rooms]
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        rows = await conn.fetch(_MESSAGES, ids, timeout=10)
        tickets = {r["id"]: r for r in await conn.fetch(_TICKETS, ids, timeout=10)}
    finally:
        await conn.close(timeout=2)
    by_ticket: dict[uuid.UUID, list[asyncpg.Record]] = {}
    for row in rows:
        by_ticket.setdefault(row["ticket_id"], []).append(row)

    found = Findings()
    for room in rooms:
        stored = by_ticket.get(room.ticket_id, [])
        found.stored += sum(1 for r in stored if r["author_kind"] in ("customer", "agent"))
        keys = Counter((r["author_id"], r["client_id"]) for r in stored if r["client_id"] is not None)
        found.duplicated += sum(n - 1 for n in keys.values() if n > 1)
        seq_of = {(str(r["author_id"]), r["client_id"]): r["seq"] for r in stored if r["client_id"] is not None}
        everything = [r["seq"] for r in stored]
        public = [r["seq"] for r in stored if r["visibility"] == "public"]
        for p in room.participants:
            found.sent += len(p.sent_ids)
            found.acked += len(p.acked)
            found.unacked += len(p.pending)
            for client_id, seq in p.acked.items():
                if seq_of.get((p.user_id, client_id)) != seq:
                    found.lost += 1
                    if with_details:
                        found.details.append(f"{p.name}: acked {client_id} at seq {seq}, not stored there")
            expected = everything if p.role == "agent" else public
            if p.view != expected:
                found.divergent += 1
                if with_details:
                    found.details.append(
                        f"{p.name}: {describe_divergence(p.view, expected)}; {p.describe_connection()}"
                    )
        if room.ai and not _answered(stored, tickets.get(room.ticket_id)):
            found.unanswered += 1
            if with_details:
                found.details.append(f"ticket {room.ticket_id}: the last question has no answer and no handoff")
    return found


def _answered(stored: list[asyncpg.Record], ticket: asyncpg.Record | None) -> bool:
    if ticket is not None and ticket["waiting_for_agent"]:
        return True
    questions = [r["seq"] for r in stored if r["author_kind"] == "customer" and r["visibility"] == "public"]
    if not questions:
        return True
    return any(r["seq"] > questions[-1] and r["author_kind"] in ("ai", "system") for r in stored)


def describe_divergence(view: list[int], expected: list[int]) -> str:
    have = set(view)
    missing = [s for s in expected if s not in have]
    extra = sorted(s for s in have if s not in set(expected))
    repeated = sorted(s for s, n in Counter(view).items() if n > 1)
    disorder = sum(1 for a, b in itertools.pairwise(view) if b <= a)
    parts = [f"{len(view)} shown, {len(expected)} expected"]
    if missing:
        parts.append(f"missing {len(missing)} (first {missing[:5]})")
    if extra:
        parts.append(f"not visible to it {extra[:5]}")
    if repeated:
        parts.append(f"repeated {repeated[:5]}")
    if disorder:
        parts.append(f"{disorder} out of order")
    return ", ".join(parts)


@dataclass
class LogFindings:
    errors_500: int = 0
    tracebacks: int = 0
    samples: list[str] = field(default_factory=list)


def scan_log(path: Path, start: int, end: int | None = None) -> LogFindings:
    """500s (access log lines) and tracebacks (`exc` in a JSON line, or a raw Python traceback)
    written to an instance's log between byte offsets `start` and `end`."""
    found = LogFindings()
    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read() if end is None else fh.read(max(0, end - start))
    except FileNotFoundError:
        return found
    for raw in data.splitlines():
        line = raw.strip()
        if not line:
            continue
        entry: Any = None
        if line.startswith(b"{"):
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                entry = None
        if isinstance(entry, dict):
            status = entry.get("status")
            # 503 is the designed answer during an outage (database_unavailable, Retry-After);
            # every other 5xx is a server error.
            if isinstance(status, int) and status >= 500 and status != 503:
                found.errors_500 += 1
                _sample(found, f"{path.name}: {entry.get('method')} {entry.get('path')} {status}")
            if entry.get("exc"):
                found.tracebacks += 1
                last = str(entry["exc"]).strip().splitlines()[-1]
                _sample(found, f"{path.name}: {entry.get('msg')} -- {last}")
        elif b"Traceback (most recent call last)" in line:
            found.tracebacks += 1
            _sample(found, f"{path.name}: raw traceback")
    return found


def _sample(found: LogFindings, text: str) -> None:
    if len(found.samples) < 5 and text not in found.samples:
        found.samples.append(text)
