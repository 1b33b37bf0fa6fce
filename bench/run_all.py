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

from . import ai_fanout, connections, rest_read, throughput, ttft, two_instances
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


SCENARIOS: dict[str, Any] = {
    "rest_read": (rest_read, ["--pool", "10", "64"]),
    "connections": (connections, []),
    "throughput": (throughput, []),
    "two_instances": (two_instances, []),
    "ai_fanout": (ai_fanout, []),
    "ttft": (ttft, []),
}


def summary(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if r := results.get("rest_read"):
        for run in r["runs"]:
            rows.append(
                {
                    "scenario": f"1 REST read, pool {run['pool']}",
                    "measured": f"{run['req_per_s']:,} req/s, p50 {run['p50_ms']:.1f} ms, p99 {run['p99_ms']:.1f} ms",
                    "target": ">= 4,000 req/s, p99 <= 30 ms",
                    "met": run["req_per_s"] >= 4000 and run["p99_ms"] <= 30,
                }
            )
    if r := results.get("ai_fanout"):
        base = next((s for s in r["steps"] if s["streams"] == 30), r["steps"][0])
        rows.append(
            {
                "scenario": f"2 AI fan-out, {base['streams']} streams",
                "measured": f"lag p50 {base['lag_p50_ms']:.1f} / p99 {base['lag_p99_ms']:.1f} ms, "
                f"{base['frames_per_token']:.3f} frames/token, {base['server_us_per_token']:.0f} us/token",
                "target": "p99 <= 30 ms, <= 0.2 frames/token, <= 40 us/token",
                "met": base["lag_p99_ms"] <= 30
                and base["frames_per_token"] <= 0.2
                and base["server_us_per_token"] <= 40,
            }
        )
        rows.append(
            {
                "scenario": "2 AI fan-out, most streams held",
                "measured": f"{r['best_streams_held']} (of {', '.join(str(s['streams']) for s in r['steps'])} tried)",
                "target": "report",
                "met": "-",
            }
        )
    if r := results.get("ttft"):
        case = r["cases"][0]
        rows.append(
            {
                "scenario": "3 TTFT overhead, every 10 s",
                "measured": f"p50 {case['overhead_p50_ms']:.1f} ms, p99 {case['overhead_p99_ms']:.1f} ms",
                "target": "p50 <= 5 ms, p99 <= 25 ms",
                "met": case["overhead_p50_ms"] <= 5 and case["overhead_p99_ms"] <= 25,
            }
        )
        if len(r["cases"]) > 1:
            burst = r["cases"][1]
            rows.append(
                {
                    "scenario": "3 TTFT overhead, burst",
                    "measured": f"p50 {burst['overhead_p50_ms']:.1f} ms, p99 {burst['overhead_p99_ms']:.1f} ms",
                    "target": "report",
                    "met": "-",
                }
            )
    if r := results.get("connections"):
        rows.append(
            {
                "scenario": f"4 connections, {r['sockets']:,} sockets",
                "measured": f"{r['held_after_hold']:,} held, {r['kib_per_conn']:.1f} KiB/conn, "
                f"{r['connect_per_s']:,} connects/s",
                "target": "all held, <= 20 KiB/conn",
                "met": r["held_after_hold"] == r["sockets"] and r["kib_per_conn"] <= 20,
            }
        )
    if r := results.get("throughput"):
        closed = next((s for s in r["steps"] if s["mode"] == "closed"), None)
        rows.append(
            {
                "scenario": "5 message throughput (open loop)",
                "measured": f"{r['best_held_per_s']:,.0f} msg/s held with ack p99 <= 50 ms",
                "target": ">= 2,500 msg/s",
                "met": r["best_held_per_s"] >= 2500,
            }
        )
        if closed:
            rows.append(
                {
                    "scenario": "5 message throughput (closed loop)",
                    "measured": f"{closed['acked_per_s']:,} msg/s, ack p99 {closed['ack_p99_ms']:.1f} ms",
                    "target": "report",
                    "met": "-",
                }
            )
    if r := results.get("two_instances"):
        for e in r["extra"]:
            rows.append(
                {
                    "scenario": f"6 two instances, {e['load']}",
                    "measured": f"+{e['extra_p50_ms']:.2f} ms p50, +{e['extra_p99_ms']:.2f} ms p99",
                    "target": "+<= 1.5 ms p50, +<= 5 ms p99",
                    "met": e["extra_p50_ms"] <= 1.5 and e["extra_p99_ms"] <= 5,
                }
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(SCENARIOS), help="run only these scenarios")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    parser.add_argument("--json", metavar="PATH", help="append each scenario's results as a JSON line to PATH")
    args = parser.parse_args(argv)
    install_signal_handlers()
    started = time.monotonic()
    print(f"chatserver benchmarks: {psutil.cpu_count()} cores, load average {load_average()}", flush=True)
    results: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    for name, (module, extra) in SCENARIOS.items():
        if args.only and name not in args.only:
            continue
        scenario_args = _parsed(module, ["--database-url", args.database_url, *extra])
        scenario_args.json = args.json
        try:
            results[name] = module.run(scenario_args)
        except KeyboardInterrupt:
            raise
        except Exception:  # noqa: BLE001 - one failed scenario must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
    print(f"\n=== Summary ({(time.monotonic() - started) / 60:.1f} min, load average now {load_average()}) ===")
    print_rows(summary(results), ["scenario", "measured", "target", "met"])
    if failed:
        print(f"failed: {', '.join(failed)}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
