"""Scenario 6, two instances over Redis: the same loads on one server process, then on two
processes sharing PostgreSQL and a Redis backplane with each room's participants split between
them; the extra delivery latency is the difference.

- messaging: scenario 5 at 1,000 msg/s (256 rooms, AI off); the customer on one instance, the
  agent on the other; delivery = send -> message.created at the agent.
- AI: scenario 2 (30 streams); the customer and agent 0 on one instance (where the reply is
  generated), agent 1 on the other; lag = fake writes a token -> agent 1 receives it.

Which instance a room's customer is on: `--layout alternate` (the default) every other room on
A and on B, as a load balancer spreads customers, so each instance stores and generates for half
the rooms; `--layout one-sided` every customer on A, so A does all of that and B only delivers.

    python -m bench.two_instances [--rate 1000] [--rooms 256] [--streams 30] [--duration 10]
                                  [--layout alternate|one-sided]
"""

from __future__ import annotations

import secrets
from contextlib import ExitStack
from typing import Any

from .ai_fanout import add_ai_arguments
from .ai_fanout import measure as measure_ai
from .ai_rooms import FakeGroqProcess, ai_server_env
from .common import (
    ServerProcess,
    backend_pids,
    base_parser,
    bench_database,
    emit,
    header,
    install_signal_handlers,
    print_rows,
    processes,
    redis_server,
    seed,
)
from .throughput import SERVER_ENV, MessagingWorker, measure_step
from .throughput import room_plan as messaging_plan
from .workers import WorkerPool, split


def run(args: Any) -> dict[str, Any]:
    header(
        f"Two instances over Redis: messaging at {args.rate:g} msg/s in {args.rooms} rooms, "
        f"AI fan-out with {args.streams} streams, customers {args.layout}"
    )
    rows: list[dict[str, Any]] = []
    with (
        bench_database(args.database_url) as url,
        redis_server() as (redis_url, redis_ps),
        FakeGroqProcess(args.tokens_per_second, args.ttft_ms, args.tokens) as fake,
    ):
        msg_customers, msg_agents = seed(url, customers=args.rooms, tickets_each=1, agents=1)
        ai_customers, ai_agents = seed(url, customers=args.streams, tickets_each=1, agents=2, ai_enabled=True)
        env = {
            **ai_server_env(fake.url, args.delta_window_ms),
            **SERVER_ENV,
            "DB_POOL_MIN": args.pool,
            "DB_POOL_MAX": args.pool,
        }
        prefix = f"bench-{secrets.token_hex(4)}"
        for layout in ("one instance", "two instances"):
            with ExitStack() as stack:
                if layout == "one instance":
                    a = stack.enter_context(ServerProcess(url, "a", **env))
                    b = a
                    groups: dict[str, list[Any]] = {"server": [a.ps]}
                else:
                    shared = {**env, "REDIS_URL": redis_url, "REDIS_PREFIX": prefix}
                    a = stack.enter_context(ServerProcess(url, "a", **shared))
                    b = stack.enter_context(ServerProcess(url, "b", **shared))
                    groups = {"server_a": [a.ps], "server_b": [b.ps], "redis": [redis_ps] if redis_ps else []}
                groups["postgres"] = processes(backend_pids(url))

                alternate = args.layout == "alternate"
                plan = messaging_plan(msg_customers, msg_agents, (a.ws_base, b.ws_base), 1, alternate)
                with WorkerPool(MessagingWorker, [{"rooms": part} for part in split(plan, args.workers)]) as pool:
                    pool.call("setup", timeout=120)
                    row = measure_step(
                        pool, groups, mode="open", rate=args.rate, duration=args.duration, warmup=args.warmup
                    )
                rows.append({"load": "messaging", "layout": layout, **row})
                print_rows([rows[-1]])

                ai_layouts = [[a.ws_base, a.ws_base, b.ws_base]]
                if alternate:
                    ai_layouts.append([b.ws_base, b.ws_base, a.ws_base])
                row = measure_ai(
                    ai_layouts,
                    ai_customers,
                    ai_agents,
                    fake,
                    groups,
                    streams=args.streams,
                    duration=args.duration,
                    warmup=args.warmup,
                    workers=args.workers,
                )
                rows.append({"load": "ai", "layout": layout, **row})
                print_rows([rows[-1]])

    single_msg, single_ai, double_msg, double_ai = rows
    extra = [
        {
            "load": "messaging: delivery to the agent",
            "one_p50_ms": single_msg["delivery_p50_ms"],
            "two_p50_ms": double_msg["delivery_p50_ms"],
            "extra_p50_ms": round(double_msg["delivery_p50_ms"] - single_msg["delivery_p50_ms"], 2),
            "one_p99_ms": single_msg["delivery_p99_ms"],
            "two_p99_ms": double_msg["delivery_p99_ms"],
            "extra_p99_ms": round(double_msg["delivery_p99_ms"] - single_msg["delivery_p99_ms"], 2),
        },
        {
            "load": "AI: token lag at agent 1",
            "one_p50_ms": single_ai["agent1_lag_p50_ms"],
            "two_p50_ms": double_ai["agent1_lag_p50_ms"],
            "one_p99_ms": single_ai["agent1_lag_p99_ms"],
            "two_p99_ms": double_ai["agent1_lag_p99_ms"],
        },
    ]
    ai_extra = extra[1]
    ai_extra["extra_p50_ms"] = round(ai_extra["two_p50_ms"] - ai_extra["one_p50_ms"], 2)
    ai_extra["extra_p99_ms"] = round(ai_extra["two_p99_ms"] - ai_extra["one_p99_ms"], 2)
    print()
    print_rows(extra, ["load", "one_p50_ms", "two_p50_ms", "extra_p50_ms", "one_p99_ms", "two_p99_ms", "extra_p99_ms"])
    print("target: extra <= 1.5 ms at p50 and <= 5 ms at p99")
    result = {"layout": args.layout, "runs": rows, "extra": extra}
    emit("two_instances", result, args.json)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=1000, help="messaging load, msg/s")
    parser.add_argument("--rooms", type=int, default=256, help="messaging rooms")
    parser.add_argument("--streams", type=int, default=30, help="AI rooms streaming at once")
    parser.add_argument("--duration", type=float, default=10, help="measured seconds per load")
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument(
        "--layout",
        choices=["alternate", "one-sided"],
        default="alternate",
        help="customers on both instances in turn, or all on instance A (see above)",
    )
    add_ai_arguments(parser)
    install_signal_handlers()
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
