"""Every scenario in turn with its default knobs (about 8-10 minutes on 2 cores), then a summary
against the targets. `make bench` runs this.

    python -m bench.run_all [--only rest_read throughput ...] [--json results.jsonl]

Each scenario is also runnable alone with its own flags: python -m bench.<scenario> --help.
"""

from __future__ import annotations

import argparse
import os
import time
import traceback
from collections.abc import Callable
from typing import Any

import psutil

from . import (
    ai_fanout,
    connections,
    login_flood,
    rest_read,
    round_trips,
    throughput,
    ttft,
    two_instances,
    ws_compression,
)
from .common import DEFAULT_DATABASE_URL, install_signal_handlers, load_average, print_rows

Scenario = tuple[Callable[[list[str] | None], Any], Callable[[Any], dict[str, Any]]]


def _parsed(module: Any, argv: list[str]) -> Any:
    """The scenario's own argument parser, so run_all uses exactly its defaults."""
    captured: dict[str, Any] = {}
    original = module.run

    def capture(args: Any) -> dict[str, Any]:
        captured["args"] = args
        return {}

    module.run = capture
    try:
        module.main(argv)
    finally:
        module.run = original
    return captured["args"]


# (name, module, flags): the defaults of each scenario, plus the tuned variants the docs discuss.
SCENARIOS: list[tuple[str, Any, list[str]]] = [
    ("rest_read", rest_read, ["--pool", "10", "20", "64", "--duration", "10"]),
    ("connections", connections, ["--hold", "32"]),
    ("ws_compression", ws_compression, []),
    ("throughput", throughput, ["--duration", "8", "--closed-duration", "8", "--stop-early"]),
    # The pool-size comparison only needs the steps near the limit.
    (
        "throughput_pool20",
        throughput,
        ["--pool", "20", "--rates", "2500", "3000", "4000", "--duration", "8", "--closed-duration", "8"],
    ),
    ("two_instances", two_instances, []),
    ("two_instances_one_sided", two_instances, ["--layout", "one-sided"]),
    # The search for the most streams held uses the default window (20 ms); the 10 ms window is
    # there to show what a shorter window costs.
    ("ai_fanout", ai_fanout, ["--search", "40", "50", "--duration", "10"]),
    ("ai_fanout_window10", ai_fanout, ["--delta-window-ms", "10", "--search", "15", "--duration", "10"]),
    ("ttft", ttft, ["--burst-rounds", "2"]),
    ("round_trips", round_trips, ["--count", "100"]),
    ("ttft_window10", ttft, ["--delta-window-ms", "10", "--burst-rounds", "1"]),
    ("login_flood", login_flood, []),
]
NAMES = [name for name, _, _ in SCENARIOS]


def _row(scenario: str, measured: str, target: str, met: Any) -> dict[str, Any]:
    return {"scenario": scenario, "measured": measured, "target": target, "met": met}


def summary(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if r := results.get("rest_read"):
        for run in r["runs"]:
            rows.append(
                _row(
                    f"1 REST read, DB_POOL_MAX {run['pool']}",
                    f"{run['req_per_s']:,} req/s, p50 {run['p50_ms']:.1f} ms, p99 {run['p99_ms']:.1f} ms",
                    ">= 4,000 req/s, p99 <= 30 ms",
                    run["req_per_s"] >= 4000 and run["p99_ms"] <= 30,
                )
            )
    for name in ("ai_fanout", "ai_fanout_window10"):
        if r := results.get(name):
            window = f"window {r['delta_window_ms']} ms" if r["delta_window_ms"] else "default window"
            base = next((s for s in r["steps"] if s["streams"] == 30), r["steps"][0])
            rows.append(
                _row(
                    f"2 AI fan-out, {base['streams']} streams, {window}",
                    f"lag p50 {base['lag_p50_ms']:.1f} / p99 {base['lag_p99_ms']:.1f} ms, "
                    f"{base['frames_per_token']:.3f} frames/token, {base['server_us_per_token']:.0f} us/token",
                    "p99 <= 30 ms, <= 0.2 frames/token, <= 40 us/token",
                    base["lag_p99_ms"] <= 30 and base["frames_per_token"] <= 0.2 and base["server_us_per_token"] <= 40,
                )
            )
            if len(r["steps"]) > 1:
                tried = ", ".join(str(s["streams"]) for s in r["steps"])
                rows.append(
                    _row(
                        f"2 AI fan-out, most streams held, {window}",
                        f"{r['best_streams_held']} (tried {tried})",
                        "-",
                        "-",
                    )
                )
    for name in ("ttft", "ttft_window10"):
        if r := results.get(name):
            window = f"window {r['delta_window_ms']} ms" if r["delta_window_ms"] else "default window"
            case = r["cases"][0]
            rows.append(
                _row(
                    f"3 TTFT overhead, every 10 s, {window}",
                    f"p50 {case['overhead_p50_ms']:.1f} ms, p99 {case['overhead_p99_ms']:.1f} ms",
                    "p50 <= 5 ms, p99 <= 25 ms",
                    case["overhead_p50_ms"] <= 5 and case["overhead_p99_ms"] <= 25,
                )
            )
            for burst in r["cases"][1:]:
                rows.append(
                    _row(
                        f"3 TTFT overhead, {burst['case']}, {window}",
                        f"p50 {burst['overhead_p50_ms']:.1f} ms, p99 {burst['overhead_p99_ms']:.1f} ms",
                        "-",
                        "-",
                    )
                )
    if r := results.get("connections"):
        rows.append(
            _row(
                f"4 connections, {r['sockets']:,} sockets",
                f"{r['held_after_hold']:,} held, {r['kib_per_conn']:.1f} KiB/conn, {r['connect_per_s']:,} connects/s",
                "all held, <= 20 KiB/conn",
                r["held_after_hold"] == r["sockets"] and r["kib_per_conn"] <= 20,
            )
        )
    if r := results.get("ws_compression"):
        off, on = r["runs"]
        rows.append(
            _row(
                "4 per-message deflate (bare aiohttp)",
                f"off {off['kib_per_conn_after_1_frame']:.1f} / on {on['kib_per_conn_after_1_frame']:.1f} KiB per "
                f"conn; {off['server_us_per_frame']:.1f} / {on['server_us_per_frame']:.1f} us per frame",
                "decide",
                "off",
            )
        )
    for name in ("throughput", "throughput_pool20"):
        if r := results.get(name):
            rows.append(
                _row(
                    f"5 message throughput, open loop, DB_POOL_MAX {r['pool']}",
                    f"{r['best_held_per_s']:,.0f} msg/s held with ack p99 <= 50 ms",
                    ">= 2,500 msg/s",
                    r["best_held_per_s"] >= 2500,
                )
            )
            closed = next((s for s in r["steps"] if s["mode"] == "closed"), None)
            if closed:
                rows.append(
                    _row(
                        f"5 message throughput, closed loop, DB_POOL_MAX {r['pool']}",
                        f"{closed['acked_per_s']:,} msg/s, ack p50 {closed['ack_p50_ms']:.0f} ms",
                        "-",
                        "-",
                    )
                )
    for name, layout in (("two_instances", "customers alternate"), ("two_instances_one_sided", "customers on A")):
        r = results.get(name)
        if r is None:
            continue
        for e in r["extra"]:
            rows.append(
                _row(
                    f"6 two instances ({layout}), {e['load']}",
                    f"{e['extra_p50_ms']:+.2f} ms p50, {e['extra_p99_ms']:+.2f} ms p99",
                    "+<= 1.5 ms p50, +<= 5 ms p99",
                    e["extra_p50_ms"] <= 1.5 and e["extra_p99_ms"] <= 5,
                )
            )
    if r := results.get("login_flood"):
        quiet, flood = r["runs"]
        rows.append(
            _row(
                f"7 agent login during {r['signups']} concurrent sign-ups",
                f"p50 {flood['login_p50_ms']:.0f} ms, p99 {flood['login_p99_ms']:.0f} ms "
                f"(alone: p99 {quiet['login_p99_ms']:.0f} ms)",
                "-",
                "-",
            )
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=NAMES, help="run only these scenarios")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    parser.add_argument("--json", metavar="PATH", help="append each scenario's results as a JSON line to PATH")
    args = parser.parse_args(argv)
    install_signal_handlers()
    started = time.monotonic()
    print(f"chatserver benchmarks: {psutil.cpu_count()} cores, load average {load_average()}", flush=True)
    results: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    for name, module, extra in SCENARIOS:
        if args.only and name not in args.only:
            continue
        scenario_args = _parsed(module, ["--database-url", args.database_url, *extra])
        scenario_args.json = args.json
        try:
            results[name] = module.run(scenario_args)
        except KeyboardInterrupt:
            raise
        except (Exception, SystemExit):  # noqa: BLE001 - one failed scenario must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
    print(f"\n=== Summary ({(time.monotonic() - started) / 60:.1f} min, load average now {load_average()}) ===")
    print_rows(summary(results), ["scenario", "measured", "target", "met"])
    if failed:
        print(f"failed: {', '.join(failed)}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
