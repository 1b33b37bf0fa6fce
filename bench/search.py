"""Search latency on a million messages: `GET /tickets?q=` through the real HTTP endpoint (one
server process, one agent asking one query at a time), per kind of query, p50/p90/p99.

    python -m bench.search [--requests 200] [--tickets 100000] [--messages 1000000] [--fresh]

The dataset (bench/dataset.py) is built on first use (about four minutes on two cores) and kept
for the next run; `python -m bench.dataset --drop` removes it. Target: p99 <= 50 ms for the
typical queries (every kind but "common word", which matches nine messages in ten).
Not part of `make bench` (the first run takes too long): see docs/performance.md "Search".
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
import psycopg

from chatserver.security import issue_token

from .common import (
    SECRET_KEY,
    TOKEN_TTL,
    ServerProcess,
    base_parser,
    emit,
    header,
    install_signal_handlers,
    latency_summary,
    print_rows,
)
from .dataset import PRODUCTS, DatasetSpec, dataset_database

TARGET_P99_MS = 50.0
# Kinds of query, each a function of the dataset giving (q, extra query string). "common word" is
# measured but not typical (almost every message has "hello"); the plain list is the baseline.
ATYPICAL = {"common word", "no search (plain list)"}


def query_kinds(url: str, rng: random.Random) -> dict[str, list[tuple[str, str]]]:
    """Queries an agent would type, drawn from the dataset itself (real emails, names, orders)."""
    with psycopg.connect(url) as conn:
        emails = [r[0] for r in conn.execute("SELECT email FROM widget_identities ORDER BY external_id LIMIT 500")]
        emails += [
            r[0]
            for r in conn.execute(
                "SELECT email FROM users WHERE role = 'customer' AND email NOT LIKE '%@visitors.invalid' "
                "ORDER BY email LIMIT 500"
            )
        ]
        names = [r[0] for r in conn.execute("SELECT DISTINCT display_name FROM users WHERE role = 'customer'")]
        tickets = int(conn.execute("SELECT count(*) FROM tickets").fetchone()[0])  # type: ignore[index]
    topics = ["refund", "warranty", "delivery", "invoice", "rechnung", "livraison", "reembolso", "password"]
    orders = [f"A-{rng.randint(1, tickets):06d}" for _ in range(50)]
    return {
        # Not a search: GET /tickets?limit=20, the floor every row below stands on.
        "no search (plain list)": [("", "")],
        "product word": [(w, "") for w in PRODUCTS],
        "topic word": [(w, "") for w in topics],
        "two words": [(f"{a} {b}", "") for a in topics for b in topics if a != b],
        "word + status=open": [(w, "status=open") for w in topics],
        "order number": [(o, "") for o in orders],
        "customer email": [(e, "") for e in rng.sample(emails, min(50, len(emails)))],
        "customer name": [(n, "") for n in rng.sample(names, min(50, len(names)))],
        "name prefix": [(n.split()[0][:4], "") for n in rng.sample(names, min(50, len(names)))],
        "common word": [("hello", "")],
    }


async def measure(base_url: str, token: str, kinds: dict[str, list[tuple[str, str]]], n: int) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"}
    rows = []
    async with aiohttp.ClientSession(headers=headers) as http:

        async def one(q: str, extra: str) -> tuple[float, int]:
            url = f"{base_url}/tickets?{urlencode({'q': q, 'limit': 20})}{'&' + extra if extra else ''}"
            began = time.perf_counter()
            async with http.get(url) as resp:
                body = await resp.json()
                elapsed = (time.perf_counter() - began) * 1000
                if resp.status != 200:
                    raise RuntimeError(f"{url}: {resp.status} {body}")
            return elapsed, len(body["tickets"])

        for kind, queries in kinds.items():
            for q, extra in queries[:3]:  # warm the plans and the caches a little
                await one(q, extra)
            times, found = [], []
            for i in range(n):
                q, extra = queries[i % len(queries)]
                elapsed, count = await one(q, extra)
                times.append(elapsed)
                found.append(count)
            rows.append({"query": kind, **latency_summary(times), "avg_found": round(sum(found) / len(found), 1)})
            print_rows([rows[-1]])
    return rows


def run(args: Any) -> dict[str, Any]:
    spec = DatasetSpec(tickets=args.tickets, messages=args.messages, customers=args.customers)
    header(f"search: GET /tickets?q= on {spec.tickets:,} tickets / ~{spec.messages:,} messages")
    with dataset_database(args.database_url, spec, fresh=args.fresh) as info:
        how = "reused" if info.built_seconds is None else f"built in {info.built_seconds:.0f} s"
        print(f"dataset {info.counts} ({how})")
        kinds = query_kinds(info.url, random.Random(7))
        token = issue_token(SECRET_KEY, info.agent_ids[0], "agent", TOKEN_TTL)
        with ServerProcess(info.url, "search") as server:
            rows = asyncio.run(measure(server.base_url, token, kinds, args.requests))
    typical = [r for r in rows if r["query"] not in ATYPICAL]
    worst = max(r["p99_ms"] for r in typical)
    print(f"\ntypical queries: worst p99 {worst:.1f} ms (target <= {TARGET_P99_MS:.0f} ms)")
    return {"dataset": info.counts, "rows": rows, "typical_worst_p99_ms": worst, "target_met": worst <= TARGET_P99_MS}


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n\n")[0] if __doc__ else "search")
    parser.add_argument("--requests", type=int, default=200, help="requests per kind of query")
    parser.add_argument("--tickets", type=int, default=DatasetSpec.tickets)
    parser.add_argument("--messages", type=int, default=DatasetSpec.messages)
    parser.add_argument("--customers", type=int, default=DatasetSpec.customers)
    parser.add_argument("--fresh", action="store_true", help="rebuild the dataset")
    args = parser.parse_args(argv)
    install_signal_handlers()
    emit("search", run(args), args.json)


if __name__ == "__main__":
    main()
