"""What the message path's newer database work costs: the group-commit statement (db/messages.py
INSERT_MESSAGES) on a database with every migration, against the same statement on a database
rolled back to the migration named by --before (0014: without the search columns of 0015, the
report bookkeeping and indexes of 0017 and the statement's own bookkeeping of 0018; 0017: the
row trigger of 0017 instead of 0018's bookkeeping inside the statement). On a database from
before 0018 the statement runs as it was then, without the bookkeeping. Batches alternate between
the two databases so a busy machine affects both alike.

    python -m bench.message_write_cost [--batches 200] [--batch-size 32] [--tickets 256] [--before 0014]

Prints, for each database and author kind (agent and AI replies, customer messages), the wall
time per statement and per message, commit and WAL flush included (each statement is its own
transaction, as in the server), and the CPU time the statement's PostgreSQL backend used per
statement (from /proc; less disturbed by other work on the machine than wall time, as long as
the cores are not oversubscribed).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from chatserver.db.messages import INSERT_MESSAGES, insert_messages_sql
from chatserver.db.migrate import MIGRATIONS_DIR, rollback_migrations
from chatserver.db.pool import create_pool

from .common import base_parser, bench_database, emit, header, seed, statement_figures

# The last migration of the "before" database (--before).
BEFORE_LAST = "0014"
# From this migration on, INSERT_MESSAGES keeps the reports' reply bookkeeping itself.
TRACKED_FROM = "0018"
KINDS = ("agent", "ai", "customer")


def migrations_after(last: str) -> int:
    return sum(1 for p in MIGRATIONS_DIR.glob("*.sql") if not p.name.endswith(".rollback.sql") and p.name[:4] > last)


def backend_cpu_seconds(pid: int) -> float:
    """utime + stime of a PostgreSQL backend on this machine (the benchmark runs on loopback)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    urls: dict[str, str],
    statements: dict[str, str],
    batches: int,
    batch_size: int,
    data: dict[str, tuple[list[Any], Any, list[Any]]],
) -> dict[str, Any]:
    # One connection (one backend) per database and kind, so each one's CPU time is its own.
    pools = {(db, kind): await create_pool(url, 1, 1) for db, url in urls.items() for kind in KINDS}
    pids = {}
    for key, pool in pools.items():
        async with pool.acquire() as conn:
            pids[key] = conn.get_server_pid()
    times: dict[tuple[str, str], list[float]] = {key: [] for key in pools}
    try:
        cpu_before = {key: backend_cpu_seconds(pid) for key, pid in pids.items()}
        for i in range(batches):
            for kind in KINDS:
                # before, after; then after, before: neither always runs right after the other.
                for db in ("before", "after") if i % 2 == 0 else ("after", "before"):
                    tickets, agent, customers = data[db]
                    chosen = random.sample(range(len(tickets)), batch_size)
                    authors = {
                        "agent": [agent] * batch_size,
                        "ai": [None] * batch_size,
                        "customer": [customers[j] for j in chosen],
                    }[kind]
                    columns = [
                        [tickets[j] for j in chosen],
                        [None] * batch_size,
                        authors,
                        [kind] * batch_size,
                        ["benchmark message body about an order that has not arrived yet"] * batch_size,
                        [None] * batch_size,
                        ["public"] * batch_size,
                    ]
                    start = time.perf_counter()
                    await pools[db, kind].fetch(statements[db], *columns)
                    times[db, kind].append(time.perf_counter() - start)
        cpu = {key: backend_cpu_seconds(pid) - cpu_before[key] for key, pid in pids.items()}
    finally:
        for pool in pools.values():
            await pool.close()
    return {
        f"{db} {kind}": {
            **statement_figures(samples, batch_size),
            "backend_cpu_ms": round(cpu[db, kind] / len(samples) * 1000, 3),
        }
        for (db, kind), samples in times.items()
    }


def run(args: Any) -> dict[str, Any]:
    newer = migrations_after(args.before)
    header(f"Message write cost: INSERT_MESSAGES with and without the {newer} migrations after {args.before}")
    with ExitStack() as stack:
        urls = {"before": stack.enter_context(bench_database(args.database_url))}
        urls["after"] = stack.enter_context(bench_database(args.database_url))
        rollback_migrations(urls["before"], newer)
        data = {}
        for db, url in urls.items():
            customers, agents = seed(url, customers=args.tickets, tickets_each=1, agents=1)
            data[db] = ([c.tickets[0] for c in customers], agents[0].id, [c.id for c in customers])
        statements = {
            "before": INSERT_MESSAGES if args.before >= TRACKED_FROM else insert_messages_sql(track_replies=False),
            "after": INSERT_MESSAGES,
        }
        result = asyncio.run(measure(urls, statements, args.batches, args.batch_size, data))
    for form, row in result.items():
        print(f"{form:16s} " + "  ".join(f"{k} {v}" for k, v in row.items()))
    emit("message_write_cost", result, args.json)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--tickets", type=int, default=256)
    parser.add_argument("--before", default=BEFORE_LAST, help="the last migration (4 digits) of the 'before' database")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
