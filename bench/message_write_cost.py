"""What the message path's newer database work costs: the group-commit statement (db/messages.py
INSERT_MESSAGES) on a database with every migration, against the same statement on a database
without the migrations after 0014: the search columns (0015, a stored tsvector computed from each
message's body) and the report trigger (0017, which keeps each ticket's first reply, first human
reply and first handoff). Batches alternate between the two databases so a busy machine affects
both alike.

    python -m bench.message_write_cost [--batches 200] [--batch-size 32] [--tickets 256] [--before 0014]

Prints the wall time per statement and per message for each database and author kind (agent
replies fire the trigger's update; customer messages only its test), commit and WAL flush
included: each statement is its own transaction, as in the server.
"""

from __future__ import annotations

import asyncio
import random
import time
from contextlib import ExitStack
from typing import Any

from chatserver.db.messages import INSERT_MESSAGES
from chatserver.db.migrate import MIGRATIONS_DIR, rollback_migrations
from chatserver.db.pool import create_pool

from .common import base_parser, bench_database, emit, header, seed, statement_figures

# The last migration of the "before" database (--before).
BEFORE_LAST = "0014"


def migrations_after(last: str) -> int:
    return sum(1 for p in MIGRATIONS_DIR.glob("*.sql") if not p.name.endswith(".rollback.sql") and p.name[:4] > last)


async def measure(
    urls: dict[str, str], batches: int, batch_size: int, data: dict[str, tuple[list[Any], Any, list[Any]]]
) -> dict[str, Any]:
    pools = {name: await create_pool(url, 1, 1) for name, url in urls.items()}
    times: dict[str, list[float]] = {f"{db} {kind}": [] for db in urls for kind in ("agent", "customer")}
    try:
        for i in range(batches * 4):
            db = "before" if i % 2 == 0 else "after"
            kind = "agent" if (i // 2) % 2 == 0 else "customer"
            tickets, agent, customers = data[db]
            chosen = random.sample(range(len(tickets)), batch_size)
            authors = [agent] * batch_size if kind == "agent" else [customers[j] for j in chosen]
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
            await pools[db].fetch(INSERT_MESSAGES, *columns)
            times[f"{db} {kind}"].append(time.perf_counter() - start)
    finally:
        for pool in pools.values():
            await pool.close()
    return {form: statement_figures(samples, batch_size) for form, samples in times.items()}


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
        result = asyncio.run(measure(urls, args.batches, args.batch_size, data))
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
