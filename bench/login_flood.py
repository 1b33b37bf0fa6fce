"""Login during a sign-up flood: an agent's `POST /auth/login` latency alone, then while many
clients sign up as fast as they can (each sign-up is a bcrypt hash at cost 12, ~250 ms of CPU).

    python -m bench.login_flood [--signups 60] [--duration 15] [--logins-every 0.5]

Before the password lanes (chatserver/services/passwords.py) logins queued behind the sign-ups in
the loop's default executor: 60 concurrent sign-ups made a login take 17 s. The sign-up throttle is
lifted here (a flood from many addresses looks like this); BENCH_SERVER_ROOT=<older checkout>
measures an older server with the same load.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from typing import Any

import aiohttp
import asyncpg
import bcrypt

from .common import (
    CpuMeter,
    ServerProcess,
    base_parser,
    bench_database,
    emit,
    header,
    install_signal_handlers,
    latency_summary,
    print_rows,
)

AGENT_PASSWORD = "bench agent password"


async def _create_agent(url: str) -> str:
    email = f"agent-{secrets.token_hex(4)}@bench.example.com"
    # Cost 12, as the server hashes: a login must do the same work as a real one.
    hashed = bcrypt.hashpw(AGENT_PASSWORD.encode(), bcrypt.gensalt(12)).decode()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO users (email, password_hash, role, display_name) VALUES ($1, $2, 'agent', 'Agent')",
            email,
            hashed,
        )
    finally:
        await conn.close()
    return email


async def _login_ms(http: aiohttp.ClientSession, base: str, email: str) -> float:
    started = time.perf_counter()
    async with http.post(f"{base}/auth/login", json={"email": email, "password": AGENT_PASSWORD}) as resp:
        await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"agent login answered {resp.status}")
    return (time.perf_counter() - started) * 1000


async def _logins(http: aiohttp.ClientSession, base: str, email: str, every: float, until: float) -> list[float]:
    times = []
    while time.monotonic() < until:
        times.append(await _login_ms(http, base, email))
        await asyncio.sleep(every)
    return times


async def _signups(http: aiohttp.ClientSession, base: str, until: float, counts: dict[str, int]) -> None:
    while time.monotonic() < until:
        body = {"email": f"flood-{uuid.uuid4().hex}@bench.example.com", "password": "flood password 1"}
        async with http.post(f"{base}/auth/signup", json=body) as resp:
            await resp.read()
            counts[str(resp.status)] = counts.get(str(resp.status), 0) + 1


async def _measure(base: str, email: str, args: Any, server: ServerProcess) -> list[dict[str, Any]]:
    rows = []
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        await _login_ms(http, base, email)  # warm-up
        until = time.monotonic() + args.baseline
        quiet = await _logins(http, base, email, args.logins_every, until)
        rows.append({"phase": "no flood", "signups": 0, **latency_summary(quiet, "login_")})

        counts: dict[str, int] = {}
        assert server.ps is not None
        meter = CpuMeter({"server": [server.ps]}).start()
        started = time.monotonic()
        until = started + args.duration
        flood = [asyncio.ensure_future(_signups(http, base, until, counts)) for _ in range(args.signups)]
        # Let the flood fill the hashing lane first.
        await asyncio.sleep(1.0)
        during = await _logins(http, base, email, args.logins_every, until)
        await asyncio.gather(*flood)
        elapsed = time.monotonic() - started
        meter.stop()
        done = counts.get("201", 0)
        rows.append(
            {
                "phase": f"{args.signups} signing up",
                "signups": done,
                "signups_per_s": round(done / elapsed, 1),
                **latency_summary(during, "login_"),
                **meter.summary(),
            }
        )
        other = {k: v for k, v in counts.items() if k != "201"}
        if other:
            print(f"sign-up answers other than 201: {other}")
    return rows


def run(args: Any) -> dict[str, Any]:
    header(f"Login during a sign-up flood: {args.signups} concurrent sign-ups for {args.duration}s")
    with bench_database(args.database_url) as url:
        email = asyncio.run(_create_agent(url))
        with ServerProcess(url, "login-flood") as server:
            rows = asyncio.run(_measure(server.base_url, email, args, server))
    print_rows(rows)
    print("goal: login p99 during the flood stays near one bcrypt check (hundreds of ms), not seconds")
    result = {"signups": args.signups, "runs": rows}
    emit("login_flood", result, args.json)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--signups", type=int, default=60, help="concurrent sign-up loops")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of flood")
    parser.add_argument("--baseline", type=float, default=5.0, help="seconds of logins before the flood")
    parser.add_argument("--logins-every", type=float, default=0.5, help="seconds between the agent's logins")
    args = parser.parse_args(argv)
    install_signal_handlers()
    run(args)


if __name__ == "__main__":
    main()
