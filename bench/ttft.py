"""Scenario 3, time-to-first-token overhead: 100 rooms (customer + 2 agents) whose customers each
ask every 10 s; the time from the customer's send to the first `ai.delta` at every participant,
minus the fake Groq's own time to first token (as the fake measured it: request arrival to first
token written), is what the server adds. Then the burst case: every customer asks at once.

    python -m bench.ttft [--rooms 100] [--interval 10] [--duration 30] [--burst-rounds 2]
                         [--delta-window-ms N] [--kb-articles N]

`--kb-articles 0` turns the knowledge-base search off (AI_KB_ARTICLES=0: no embedding, no
retrieval), for the before/after comparison of the retrieval step's cost (docs/performance.md).
The server loads the sample knowledge base (kb/) either way.
"""

from __future__ import annotations

import time
from typing import Any

from .ai_fanout import add_ai_arguments
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


def summarise(case: str, results: list[dict[str, Any]], fake: FakeGroqProcess, meter: CpuMeter) -> dict[str, Any]:
    stats = analyse(results, fake.timings(), fake.tokens)
    overhead = [x for values in stats["overhead"].values() for x in values]
    first = [x for values in stats["first"].values() for x in values]
    row = {
        "case": case,
        "first_deltas": len(overhead),
        **{k: v for k, v in latency_summary(overhead, "overhead_").items() if k != "overhead_n"},
        "send_to_first_delta_p50_ms": latency_summary(first)["p50_ms"],
        "send_to_first_delta_p99_ms": latency_summary(first)["p99_ms"],
        "send_to_groq_p50_ms": latency_summary(stats["send_to_groq"])["p50_ms"],
        "send_to_groq_p99_ms": latency_summary(stats["send_to_groq"])["p99_ms"],
        "token_to_delta_p50_ms": latency_summary(stats["first_token_to_delta"])["p50_ms"],
        "token_to_delta_p99_ms": latency_summary(stats["first_token_to_delta"])["p99_ms"],
        **meter.summary(),
        "incomplete": stats["incomplete"],
        "errors": sum(sum(r["errors"].values()) for r in results),
    }
    return row


def run(args: Any) -> dict[str, Any]:
    window = f"AI_DELTA_WINDOW_MS={args.delta_window_ms}" if args.delta_window_ms else "default delta window"
    if args.kb_articles is not None:
        window += f", AI_KB_ARTICLES={args.kb_articles}"
    header(
        f"TTFT overhead: {args.rooms} rooms x (customer + 2 agents), one question per room every "
        f"{args.interval:g}s, fake TTFT {args.ttft_ms:g} ms, {window}"
    )
    rows = []
    with (
        bench_database(args.database_url) as url,
        FakeGroqProcess(args.tokens_per_second, args.ttft_ms, args.tokens) as fake,
    ):
        customers, agents = seed(url, customers=args.rooms, tickets_each=1, agents=2, ai_enabled=True)
        env = {
            **ai_server_env(fake.url, args.delta_window_ms),
            "DB_POOL_MIN": args.pool,
            "DB_POOL_MAX": args.pool,
            "AI_KB_ARTICLES": args.kb_articles,
        }
        with ServerProcess(url, **env) as server:
            assert server.ps is not None
            plan = room_plan(customers, agents, [[server.ws_base] * 3])
            configs = [{"rooms": part} for part in split(plan, args.workers)]
            groups = {"server": [server.ps], "postgres": processes(backend_pids(url))}
            with WorkerPool(AiRoomWorker, configs) as pool:
                pool.call("setup", timeout=120)
                fake.timings()
                groups = {**groups, "fake": [fake.ps] if fake.ps else [], "clients": pool.handles}
                meter = CpuMeter(groups).start()
                results = pool.call(
                    "run", {"mode": "periodic", "interval": args.interval, "duration": args.duration}, timeout=300
                )
                meter.stop()
                row = summarise(f"every {args.interval:g}s", results, fake, meter)
                rows.append(row)
                print_rows([row])
                if args.burst_rounds:
                    time.sleep(1)
                    meter = CpuMeter(groups).start()
                    results = pool.call(
                        "run", {"mode": "burst", "rounds": args.burst_rounds, "duration": 0}, timeout=300
                    )
                    meter.stop()
                    row = summarise(f"burst of {args.rooms}", results, fake, meter)
                    rows.append(row)
                    print_rows([row])
            warnings = server.warnings()
    print("target (every 10 s): overhead p50 <= 5 ms, p99 <= 25 ms; the burst has no target")
    if warnings:
        print(f"server logged {len(warnings)} warning(s), e.g.: {warnings[0][:200]}")
    result = {"delta_window_ms": args.delta_window_ms, "kb_articles": args.kb_articles, "cases": rows}
    emit("ttft", result, args.json)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--interval", type=float, default=10, help="seconds between a room's questions")
    parser.add_argument("--duration", type=float, default=30, help="seconds of periodic questions")
    parser.add_argument("--burst-rounds", type=int, default=2, help="bursts of every room asking at once (0: none)")
    parser.add_argument(
        "--kb-articles", type=int, default=None, help="AI_KB_ARTICLES for the server (0: no knowledge-base search)"
    )
    add_ai_arguments(parser)
    install_signal_handlers()
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
