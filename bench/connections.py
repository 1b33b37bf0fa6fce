"""Scenario 4, connection capacity: ramp to 19,000 authenticated, idle room sockets on one server
process (each customer in their own ticket room, heartbeats on), hold them past a heartbeat, and
report the connect rate, the server's RSS per connection, and how many were still held.

    python -m bench.connections [--sockets 19000] [--workers 2] [--hold 35] [--heartbeat 30]

The file limit here is 20,000 per process, so 19,000 sockets leave the server room for its pool
and log; the client side is split over several processes (and loopback source addresses).
"""

from __future__ import annotations

import asyncio
import resource
import time
from typing import Any

import aiohttp

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
from .workers import Participant, Worker, WorkerPool, close_all, connect_all, raise_fd_limit, split

KIB = 1024


class IdleWorker(Worker):
    """Connects its share of sockets, then only answers the server's pings (aiohttp autoping)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.participants: list[Participant] = []
        self.session: aiohttp.ClientSession | None = None

    async def setup(self, params: dict[str, Any]) -> dict[str, Any]:
        raise_fd_limit()
        # Each worker connects from its own loopback address: 19,000 sockets from one address
        # would share one ephemeral port range with the TIME_WAIT sockets of earlier runs.
        connector = aiohttp.TCPConnector(limit=0, local_addr=(self.config["source"], 0))
        self.session = aiohttp.ClientSession(connector=connector)
        self.participants = [
            Participant(i, t, token, "customer", url) for i, (t, token, url) in enumerate(self.config["sockets"])
        ]
        return await connect_all(
            self.session,
            self.participants,
            lambda p, f, n: None,
            concurrency=params["concurrency"],
            timeout=600,
            compress=params.get("compress", 0),
        )

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("hold"):
            await asyncio.sleep(params["hold"])
        return {
            "open": sum(1 for p in self.participants if p.ws is not None and not p.ws.closed),
            "closed_codes": sorted({p.closed_code for p in self.participants if p.closed_code is not None}),
        }

    async def stop(self) -> None:
        await close_all(self.participants)
        if self.session is not None:
            await self.session.close()


def run(args: Any) -> dict[str, Any]:
    # The server inherits our file limit: one descriptor per socket, plus its pool and log.
    raise_fd_limit()
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if args.sockets + args.warmup + 500 > limit:
        args.sockets = max(100, limit - args.warmup - 500)
        print(f"file limit {limit}: measuring {args.sockets:,} sockets instead")
    header(f"Connection capacity: {args.sockets:,} idle room sockets, heartbeat {args.heartbeat}s, hold {args.hold}s")
    with bench_database(args.database_url) as url:
        customers, _ = seed(url, customers=args.sockets + args.warmup, tickets_each=1)
        env = {"WS_HEARTBEAT_SECONDS": args.heartbeat, "DB_POOL_MIN": args.pool, "DB_POOL_MAX": args.pool}
        with ServerProcess(url, **env) as server:
            assert server.ps is not None
            sockets = [(str(c.tickets[0]), c.token, f"{server.ws_base}/tickets/{c.tickets[0]}/ws") for c in customers]
            warm, main_set = sockets[: args.warmup], sockets[args.warmup :]
            # Warm-up: a few hundred connects and closes, so that lazily built code paths and
            # the pool's connections are counted in the baseline, not per connection.
            with WorkerPool(IdleWorker, [{"sockets": warm, "source": "127.0.0.9"}]) as pool:
                pool.call("setup", {"concurrency": args.concurrency}, timeout=120)
            time.sleep(1)
            rss0 = server.rss()
            fds0 = server.ps.num_fds()
            configs = [
                {"sockets": part, "source": f"127.0.0.{10 + i}"} for i, part in enumerate(split(main_set, args.workers))
            ]
            with WorkerPool(IdleWorker, configs) as pool:
                groups = {"server": [server.ps], "postgres": processes(backend_pids(url)), "clients": pool.handles}
                ramp = CpuMeter(groups).start()
                setups = pool.call("setup", {"concurrency": args.concurrency}, timeout=900)
                ramp.stop()
                rss1 = server.rss()
                hold = CpuMeter(groups).start()
                held = pool.call("run", {"hold": args.hold}, timeout=args.hold + 120)
                hold.stop()
                rss2 = server.rss()
                fds2 = server.ps.num_fds()
            warnings = server.warnings()
    connected = sum(r["connected"] for r in setups)
    still_open = sum(r["open"] for r in held)
    ramp_s = max(r["connect_s"] for r in setups)
    row = {
        "sockets": args.sockets,
        "connected": connected,
        "failed": sum(r["failed"] for r in setups),
        "held_after_hold": still_open,
        "server_fds": fds2 - fds0,
        "connect_per_s": round(connected / ramp_s) if ramp_s else 0,
        "server_us_per_connect": round(1e6 * ramp.seconds["server"] / max(1, connected)),
        "rss_base_mib": round(rss0 / KIB / KIB, 1),
        "rss_after_ramp_mib": round(rss1 / KIB / KIB, 1),
        "rss_after_hold_mib": round(rss2 / KIB / KIB, 1),
        "kib_per_conn": round((rss2 - rss0) / KIB / max(1, still_open), 1),
        "hold_server_cores": round(hold.share("server"), 3),
        "ramp_client_cores": round(ramp.share("clients"), 2),
        "machine_busy_pct_ramp": round(100 * ramp.machine_busy, 1),
    }
    print_rows([row])
    failure = next((r["first_failure"] for r in setups if r["first_failure"]), "")
    if failure:
        print(f"first connect failure: {failure}")
    if warnings:
        print(f"server logged {len(warnings)} warning(s), e.g.: {warnings[0][:200]}")
    print("target: all held, <= 20 KiB per connection")
    result = {**row, "closed_codes": sorted({c for r in held for c in r["closed_codes"]})}
    emit("connections", result, args.json)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--sockets", type=int, default=19_000)
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    parser.add_argument("--concurrency", type=int, default=64, help="handshakes in flight per client process")
    parser.add_argument("--hold", type=float, default=35, help="seconds to hold every socket after the ramp")
    parser.add_argument("--heartbeat", type=float, default=30, help="the server's WS_HEARTBEAT_SECONDS")
    parser.add_argument("--pool", type=int, default=10, help="the server's DB_POOL_MAX")
    parser.add_argument("--warmup", type=int, default=200, help="sockets opened and closed before the baseline")
    install_signal_handlers()
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
