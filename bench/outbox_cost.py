"""What the outbox costs the message path: the group-commit statement (db/messages.py
INSERT_MESSAGES) with its message.created event insert, against the same statement without it,
alternating batch by batch so a busy machine affects both alike.

    python -m bench.outbox_cost [--batches 300] [--batch-size 32] [--tickets 256]

Prints the wall time per statement and per message for each form (the commit and its WAL flush
included: each statement is its own transaction, as in the server).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from typing import Any

from chatserver.db.messages import INSERT_MESSAGES
from chatserver.db.pool import create_pool

from .common import base_parser, bench_database, emit, header, seed, statement_figures

# The statement as it was before the outbox: the message_event CTE removed.
WITHOUT_OUTBOX = re.sub(
    r",\s*message_event AS \(.*?FROM inserted ORDER BY inserted\.ticket_id, inserted\.seq\s*\)",
    "",
    INSERT_MESSAGES,
    flags=re.S,
)


async def measure(url: str, batches: int, batch_size: int, tickets: list[Any], author: Any) -> dict[str, Any]:
    if WITHOUT_OUTBOX == INSERT_MESSAGES:
        raise SystemExit("could not strip the outbox CTE from INSERT_MESSAGES")
    pool = await create_pool(url, 1, 1)
    times: dict[str, list[float]] = {"with_outbox": [], "without_outbox": []}
    try:
        for i in range(batches * 2):
            form = "with_outbox" if i % 2 == 0 else "without_outbox"
            sql = INSERT_MESSAGES if form == "with_outbox" else WITHOUT_OUTBOX
            chosen = random.sample(tickets, batch_size)
            columns = [
                chosen,
                [None] * batch_size,
                [author] * batch_size,
                ["agent"] * batch_size,
                ["benchmark message body"] * batch_size,
                [None] * batch_size,
                ["public"] * batch_size,
            ]
            start = time.perf_counter()
            await pool.fetch(sql, *columns)
            times[form].append(time.perf_counter() - start)
    finally:
        await pool.close()
    return {form: statement_figures(samples, batch_size) for form, samples in times.items()}


def run(args: Any) -> dict[str, Any]:
    header(f"Outbox cost: INSERT_MESSAGES with and without the event insert, batches of {args.batch_size}")
    with bench_database(args.database_url) as url:
        customers, agents = seed(url, customers=args.tickets, tickets_each=1, agents=1)
        tickets = [t for c in customers for t in c.tickets]
        result = asyncio.run(measure(url, args.batches, args.batch_size, tickets, agents[0].id))
    for form, row in result.items():
        print(f"{form:15s} " + "  ".join(f"{k} {v}" for k, v in row.items()))
    emit("outbox_cost", result, args.json)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--tickets", type=int, default=256)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
