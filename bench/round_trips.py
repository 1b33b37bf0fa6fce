"""What one PostgreSQL round trip costs on this machine, with the backend busy and with it idle:
the floor under the TTFT overhead (scenario 3), whose path waits for two dependent statements.

A round trip to a backend that has just answered another is far cheaper than one to a backend
that has slept: waking a sleeping process (and, on a VM, the virtual CPU it runs on) is most of
the cost. The same statements are timed back to back and with a pause before each.

    python -m bench.round_trips [--count 200] [--pause-ms 50]
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from .common import base_parser, bench_database, emit, header, install_signal_handlers, latency_summary, print_rows

STATEMENTS = {
    "SELECT 1": "SELECT 1",
    # One row and its commit, which waits for the WAL flush (synchronous_commit on).
    "insert + commit": "INSERT INTO round_trip_probe (at) VALUES (now())",
    # The same with the flush not waited for, as the statement that starts an AI reply does.
    "insert + commit, no flush wait": (
        "WITH no_flush_wait AS (SELECT set_config('synchronous_commit', 'off', true)) "
        "INSERT INTO round_trip_probe (at) SELECT now() FROM no_flush_wait"
    ),
}


async def _time(conn: asyncpg.Connection, sql: str, count: int, pause: float) -> list[float]:
    timings = []
    for _ in range(count):
        if pause:
            await asyncio.sleep(pause)
        started = time.perf_counter_ns()
        await conn.execute(sql)
        timings.append((time.perf_counter_ns() - started) / 1e6)
    return timings


async def _measure(url: str, count: int, pause: float) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE round_trip_probe (at timestamptz NOT NULL)")
        rows = []
        for name, sql in STATEMENTS.items():
            await _time(conn, sql, 20, 0)  # warm up: the statement prepared, the caches filled
            for backend, gap in (("busy", 0.0), ("idle", pause)):
                timings = await _time(conn, sql, count, gap)
                rows.append({"statement": name, "backend": backend, **latency_summary(timings)})
        return rows
    finally:
        await conn.close()


def run(args: Any) -> dict[str, Any]:
    header(f"PostgreSQL round trips, back to back and after {args.pause_ms:g} ms idle")
    with bench_database(args.database_url) as url:
        rows = asyncio.run(_measure(url, args.count, args.pause_ms / 1000))
    print_rows(rows, ["statement", "backend", "p50_ms", "p90_ms", "p99_ms"])
    result = {"rows": rows}
    emit("round_trips", result, args.json)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200, help="round trips per statement and state")
    parser.add_argument("--pause-ms", type=float, default=50, help="idle time before each 'idle' round trip")
    install_signal_handlers()
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
