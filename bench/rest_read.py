"""Scenario 1, REST read: authenticated `GET /tickets` (a customer with 10 tickets) driven by wrk
at a fixed number of connections; requests/s, latency percentiles, server CPU per request.

    python -m bench.rest_read [--connections 64] [--duration 15] [--pool N]

wrk (C, one thread) drives the load so that the client does not take the server's CPU.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from .common import (
    CpuMeter,
    ServerProcess,
    backend_pids,
    base_parser,
    bench_database,
    emit,
    header,
    install_signal_handlers,
    print_rows,
    processes,
    seed,
)

# wrk's done() hook prints exact percentiles as one JSON line (microseconds).
WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


def run_wrk(url: str, token: str, connections: int, duration: int, threads: int, script: Path) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        "-H",
        f"Authorization: Bearer {token}",
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(x for x in out.splitlines() if x.startswith("BENCH_JSON "))
    data: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    data["wrk_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return data


def run(args: Any) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk; `make bench` does it)")
    header(f"REST read: GET /tickets, {args.connections} connections, {args.duration}s")
    rows = []
    with bench_database(args.database_url) as url, tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "report.lua"
        script.write_text(WRK_REPORT)
        customers, _ = seed(url, customers=1, tickets_each=args.tickets)
        token = customers[0].token
        for pool in args.pool:
            env = {"DB_POOL_MIN": pool, "DB_POOL_MAX": pool}
            with ServerProcess(url, **env) as server:
                endpoint = f"{server.base_url}/tickets"
                run_wrk(endpoint, token, args.connections, args.warmup, args.threads, script)
                assert server.ps is not None
                meter = CpuMeter({"server": [server.ps], "postgres": processes(backend_pids(url))}).start()
                data = run_wrk(endpoint, token, args.connections, args.duration, args.threads, script)
                meter.stop()
                seconds = data["duration_us"] / 1e6
                rps = data["requests"] / seconds
                row = {
                    "pool": pool,
                    "conns": args.connections,
                    "req_per_s": round(rps),
                    "p50_ms": data["p50_us"] / 1000,
                    "p90_ms": data["p90_us"] / 1000,
                    "p99_ms": data["p99_us"] / 1000,
                    "max_ms": data["max_us"] / 1000,
                    "errors": data["status_errors"] + data["socket_errors"],
                    "server_us_per_req": round(1e6 * meter.seconds["server"] / max(1, data["requests"]), 1),
                    **meter.summary(),
                    "cpu_wrk_cores": round(data["wrk_cpu_s"] / seconds, 3),
                }
                rows.append(row)
                print_rows([row])
    print("target: >= 4,000 req/s and p99 <= 30 ms at 64 connections")
    result = {"runs": rows}
    emit("rest_read", result, args.json)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=int, default=15, help="seconds measured (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of load before measuring")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--tickets", type=int, default=10, help="tickets the customer has")
    parser.add_argument(
        "--pool",
        type=int,
        nargs="+",
        default=[10],
        help="DB_POOL_MAX values to run, one server each (10 is the server's default)",
    )
    install_signal_handlers()
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
