"""Scenario 2, AI token fan-out: rooms of a customer and two agents; each customer asks, the AI
(the fake Groq: 750 tokens/s, 100 ms to first token, 300-token replies) answers, and the customer
asks again as soon as the reply ends, so every room has a stream running nearly all the time.
Reports the lag from the fake writing a token to each participant receiving it, delta frames per
token, and server CPU per token; then steps up the number of rooms to find the most concurrent
streams one process holds with lag p99 <= 30 ms.

    python -m bench.ai_fanout [--streams 30] [--search 60 90 120] [--duration 15]
                              [--delta-window-ms N] [--tokens-per-second 750] [--workers 2]
"""

from __future__ import annotations

import time
from typing import Any

from .ai_rooms import AiRoomWorker, FakeGroqProcess, ai_server_env, analyse, room_plan
from .common import (
    CpuMeter,
    ServerProcess,
    backend_pids,
    base_parser,
    bench_database,
    emit,
    header,
    install_signal_handlers,
    latency_summary,
    print_rows,
    processes,
    seed,
)
from .workers import WorkerPool, split

LAG_P99_TARGET_MS = 30.0


def measure(
    layouts: list[list[str]],
    customers: list[Any],
    agents: list[Any],
    fake: FakeGroqProcess,
    groups: dict[str, list[Any]],
    *,
    streams: int,
    duration: float,
    warmup: float,
    workers: int,
) -> dict[str, Any]:
    """`streams` rooms asking continuously. layouts: the servers of each room's [customer, agent
    0, agent 1], cycled over the rooms."""
    plan = room_plan(customers[:streams], agents, layouts)
    configs = [{"rooms": part} for part in split(plan, min(workers, streams))]
    with WorkerPool(AiRoomWorker, configs) as pool:
        pool.call("setup", timeout=120)
        fake.timings()  # forget anything before this step
        meter = CpuMeter({**groups, "fake": [fake.ps], "clients": pool.handles}).start()
        window_start = time.monotonic_ns() + int(warmup * 1e9)
        results = pool.call("run", {"mode": "continuous", "duration": warmup + duration}, timeout=duration + 120)
        meter.stop()
    timings = fake.timings()
    emitted = sum(n for entry in timings.values() for _, n in entry["writes"])
    stats = analyse(results, timings, fake.tokens, window_start)
    lags = [x for values in stats["lags"].values() for x in values]
    server_cpu = sum(v for k, v in meter.seconds.items() if k.startswith("server"))
    errors = sum(sum(r["errors"].values()) for r in results)
    row = {
        "streams": streams,
        "replies_per_s": round(stats["replies_seen"] / (len(layouts[0]) * duration), 1),
        "tokens_per_s": round(emitted / meter.elapsed),
        **latency_summary(lags, "lag_"),
        "frames_per_token": round(stats["frames"] / max(1, stats["tokens_seen"]), 3),
        "server_us_per_token": round(1e6 * server_cpu / max(1, emitted), 1),
        **meter.summary(),
        "incomplete": stats["incomplete"],
        "errors": errors,
    }
    row.pop("lag_n", None)
    for role, values in sorted(stats["lags"].items()):
        summary = latency_summary(values)
        row[f"{role}_lag_p50_ms"] = summary["p50_ms"]
        row[f"{role}_lag_p99_ms"] = summary["p99_ms"]
    row["held"] = row["lag_p99_ms"] <= LAG_P99_TARGET_MS and not errors and stats["replies_seen"] > 0
    return row


def run(args: Any) -> dict[str, Any]:
    window = f"AI_DELTA_WINDOW_MS={args.delta_window_ms}" if args.delta_window_ms else "default delta window"
    header(
        f"AI token fan-out: rooms x (customer + 2 agents), fake at {args.tokens_per_second:g} tokens/s, "
        f"TTFT {args.ttft_ms:g} ms, {args.tokens} tokens, {window}"
    )
    counts = sorted({*args.streams, *args.search})
    rows = []
    with (
        bench_database(args.database_url) as url,
        FakeGroqProcess(args.tokens_per_second, args.ttft_ms, args.tokens) as fake,
    ):
        customers, agents = seed(url, customers=max(counts), tickets_each=1, agents=2, ai_enabled=True)
        env = {**ai_server_env(fake.url, args.delta_window_ms), "DB_POOL_MIN": args.pool, "DB_POOL_MAX": args.pool}
        with ServerProcess(url, **env) as server:
            assert server.ps is not None
            groups = {"server": [server.ps], "postgres": processes(backend_pids(url))}
            for streams in counts:
                row = measure(
                    [[server.ws_base] * 3],
                    customers,
                    agents,
                    fake,
                    groups,
                    streams=streams,
                    duration=args.duration,
                    warmup=args.warmup,
                    workers=args.workers,
                )
                rows.append(row)
                print_rows([row])
                if not row["held"] and streams > max(args.streams) and args.stop_early:
                    break
            warnings = server.warnings()
    held = [r["streams"] for r in rows if r["held"]]
    best = max(held) if held else 0
    print(f"most concurrent streams held (lag p99 <= {LAG_P99_TARGET_MS:.0f} ms) among those tried: {best}")
    print("targets at 30 streams: lag p99 <= 30 ms, <= 0.2 frames per token, <= 40 us server CPU per token")
    if warnings:
        print(f"server logged {len(warnings)} warning(s), e.g.: {warnings[0][:200]}")
    result = {"delta_window_ms": args.delta_window_ms, "best_streams_held": best, "steps": rows}
    emit("ai_fanout", result, args.json)
    return result


def add_ai_arguments(parser: Any) -> None:
    parser.add_argument("--tokens-per-second", type=float, default=750.0, help="the fake's token rate")
    parser.add_argument("--ttft-ms", type=float, default=100.0, help="the fake's time to first token")
    parser.add_argument("--tokens", type=int, default=300, help="tokens per reply")
    parser.add_argument(
        "--delta-window-ms", type=int, default=None, help="the server's AI_DELTA_WINDOW_MS (default: its own)"
    )
    parser.add_argument("--pool", type=int, default=10, help="the server's DB_POOL_MAX")
    parser.add_argument("--workers", type=int, default=2, help="client processes")


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[30], help="concurrent streams (rooms) to report")
    parser.add_argument("--search", type=int, nargs="*", default=[60, 90, 120], help="more stream counts to try")
    parser.add_argument("--duration", type=float, default=15, help="measured seconds per step")
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--stop-early", action="store_true", help="stop the search at the first count not held")
    add_ai_arguments(parser)
    install_signal_handlers()
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
