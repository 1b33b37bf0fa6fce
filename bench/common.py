"""What every scenario shares: a throwaway database, a private redis-server, chatserver server
processes, CPU and memory meters, seeding, latency statistics and the printed report.

Everything here runs on loopback only, and every process and database a scenario starts is
stopped or dropped when it ends (also on Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import bcrypt
import psutil
import psycopg

from chatserver.db.migrate import apply_migrations
from chatserver.security import issue_token

ROOT = Path(__file__).resolve().parent.parent
# The checkout whose server is measured (default: this one). Pointing it at another checkout
# (an older commit unpacked elsewhere) gives before/after figures with the same load generators.
SERVER_ROOT = Path(os.environ.get("BENCH_SERVER_ROOT") or ROOT).resolve()
PYTHON = sys.executable
SECRET_KEY = "bench-secret-" + "k" * 40
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# Benchmarks target loopback only (see docs/performance.md).
HOST = "127.0.0.1"
TOKEN_TTL = 24 * 3600
# Every load generator connects from one loopback address with few users, which the abuse limits
# (docs/operations.md, "Limits") exist to stop: the scenarios measure capacity, so they lift them.
# A scenario that measures a limit sets it back in its own environment.
UNLIMITED = {
    "SOCKETS_PER_USER": 1_000_000,
    "SOCKETS_PER_ADDRESS": 10_000_000,
    "SIGNUP_LIMIT_PER_ADDRESS": 1_000_000,
    "TICKETS_PER_CUSTOMER_PER_HOUR": 1_000_000,
    "OPEN_TICKETS_PER_CUSTOMER": 1_000_000,
    "LOGIN_ADDRESS_MAX_FAILURES": 1_000_000,
}


# ---- process hygiene ---------------------------------------------------------------------


def install_signal_handlers() -> None:
    """SIGTERM unwinds like Ctrl-C, so every `finally` stops its processes and drops its database."""

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port} after {timeout}s")


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if it lingers. Only ever our own child, by its pid."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# ---- database ----------------------------------------------------------------------------


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@contextlib.contextmanager
def bench_database(base_url: str) -> Iterator[str]:
    """A fresh, migrated database on the PostgreSQL server of `base_url`; dropped afterwards."""
    host = urlsplit(base_url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
        raise SystemExit(f"benchmarks only run against a loopback PostgreSQL, not {host!r}")
    name = f"chatserver_bench_{secrets.token_hex(4)}"
    admin_url = _with_database(base_url, "postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(base_url, name)
    try:
        apply_migrations(url)
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Customer:
    id: uuid.UUID
    token: str
    tickets: list[uuid.UUID]


@dataclass
class Agent:
    id: uuid.UUID
    token: str


# Seeding writes rows directly (one statement each) and signs tokens with the benchmark's
# SECRET_KEY: the same tokens /auth/login hands out, without 19,000 bcrypt hashes.
_SEED_USERS = """
INSERT INTO users (email, password_hash, role, display_name)
SELECT $1 || g || '@bench.example.com', $2, $3, $4 || g FROM generate_series(1, $5) AS g
RETURNING id
"""
_SEED_TICKETS = """
INSERT INTO tickets (customer_id, subject, ai_enabled)
SELECT c, 'Benchmark ticket ' || n, $2 FROM unnest($1::uuid[]) AS c, generate_series(1, $3) AS n
RETURNING id, customer_id
"""


async def _seed(url: str, customers: int, tickets_each: int, agents: int, ai_enabled: bool) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        tag = secrets.token_hex(3)
        # A real (cheap) hash of a password nobody knows: the benchmarks never log in.
        unused_hash = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(4)).decode()
        cust_rows = await conn.fetch(_SEED_USERS, f"c{tag}-", unused_hash, "customer", "Customer ", customers)
        agent_rows = await conn.fetch(_SEED_USERS, f"a{tag}-", unused_hash, "agent", "Agent ", agents)
        cust_ids = [r["id"] for r in cust_rows]
        by_customer: dict[uuid.UUID, list[uuid.UUID]] = {c: [] for c in cust_ids}
        if tickets_each:
            for row in await conn.fetch(_SEED_TICKETS, cust_ids, ai_enabled, tickets_each):
                by_customer[row["customer_id"]].append(row["id"])
        return {"customers": by_customer, "agents": [r["id"] for r in agent_rows]}
    finally:
        await conn.close()


def seed(
    url: str, *, customers: int, tickets_each: int = 1, agents: int = 0, ai_enabled: bool = False
) -> tuple[list[Customer], list[Agent]]:
    data = asyncio.run(_seed(url, customers, tickets_each, agents, ai_enabled))
    custs = [
        Customer(cid, issue_token(SECRET_KEY, cid, "customer", TOKEN_TTL), tickets)
        for cid, tickets in data["customers"].items()
    ]
    agts = [Agent(aid, issue_token(SECRET_KEY, aid, "agent", TOKEN_TTL)) for aid in data["agents"]]
    return custs, agts


def backend_pids(url: str) -> list[int]:
    """The PostgreSQL backends connected to the benchmark's database (the servers' pools)."""
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(_with_database(url, "postgres"), autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,)).fetchall()
    return [int(r[0]) for r in rows]


# ---- redis -------------------------------------------------------------------------------


@contextlib.contextmanager
def redis_server() -> Iterator[tuple[str, psutil.Process | None]]:
    """A private redis-server (so its CPU can be measured and nobody else's traffic shares it);
    REDIS_URL on loopback when redis-server is not installed."""
    exe = shutil.which("redis-server")
    if exe is None:
        url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        yield url, None
        return
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no", "--maxclients", "1000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc=proc)
        yield f"redis://{HOST}:{port}/0", psutil.Process(proc.pid)
    finally:
        stop_process(proc, 5)


# ---- chatserver --------------------------------------------------------------------------


class ServerProcess:
    """`python -m chatserver serve` on a free loopback port, with the environment we choose."""

    def __init__(self, database_url: str, name: str = "server", **env: str | int | float | None) -> None:
        self.name = name
        self.port = free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"chatserver-bench-{name}-"))
        self.log_path = self.tmp / "server.log"
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATABASE_", "REDIS_", "GROQ_", "AI_", "WS_", "DB_POOL", "LOG_"))
        }
        self.env = {
            **base,
            "DATABASE_URL": database_url,
            "SECRET_KEY": SECRET_KEY,
            "HOST": HOST,
            "PORT": str(self.port),
            "CHATSERVER_DATA_DIR": str(self.tmp),
            "CHATSERVER_ENV": "development",
            **{k: str(v) for k, v in UNLIMITED.items()},
        }
        self.env.update({k: str(v) for k, v in env.items() if v is not None})
        self.proc: subprocess.Popen[bytes] | None = None
        self.profiler: subprocess.Popen[bytes] | None = None
        self.ps: psutil.Process | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://{HOST}:{self.port}"

    def start(self) -> ServerProcess:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "chatserver", "serve"], cwd=SERVER_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        profile_dir = os.environ.get("BENCH_PROFILE")
        py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(PYTHON).parent))
        if profile_dir and py_spy:
            # Samples only while the GIL is held (~ CPU), in collapsed-stack form, until the server exits.
            out = Path(profile_dir) / f"{self.name}-{self.proc.pid}.txt"
            record = ["record", "--pid", str(self.proc.pid), "--gil", "--nonblocking", "-r", "250", "-f", "raw"]
            self.profiler = subprocess.Popen(
                [py_spy, *record, "-o", str(out)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        try:
            wait_for_port(self.port, timeout=60, proc=self.proc)
            self._wait_ready()
        except RuntimeError as err:
            tail = self.log_tail()
            self.stop()
            raise RuntimeError(f"{self.name} did not start ({err}):\n{tail}") from None
        self.ps = psutil.Process(self.proc.pid)
        return self

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.base_url}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("not ready")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def warnings(self) -> list[str]:
        """WARNING/ERROR lines the server logged (slow consumers, failures): shown with the figures."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if " WARNING " in line or " ERROR " in line]

    def rss(self) -> int:
        assert self.ps is not None
        return int(self.ps.memory_info().rss)

    def stop(self) -> None:
        stop_process(self.proc, 30)
        self.proc = None
        if self.profiler is not None:
            try:
                self.profiler.wait(30)  # py-spy writes its file once the server has exited
            except subprocess.TimeoutExpired:
                stop_process(self.profiler, 5)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---- meters ------------------------------------------------------------------------------


def _cpu_seconds(proc: psutil.Process) -> float:
    try:
        times = proc.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


@dataclass
class CpuMeter:
    """User+system CPU seconds of named process groups over a window, and the machine's busy share."""

    groups: dict[str, list[psutil.Process]]
    _start: dict[str, float] = field(default_factory=dict)
    _machine: Any = None
    _t0: float = 0.0
    elapsed: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)
    machine_busy: float = 0.0

    def start(self) -> CpuMeter:
        self._start = {name: sum(_cpu_seconds(p) for p in procs) for name, procs in self.groups.items()}
        self._machine = psutil.cpu_times()
        self._t0 = time.monotonic()
        return self

    def stop(self) -> CpuMeter:
        self.elapsed = time.monotonic() - self._t0
        self.seconds = {
            name: sum(_cpu_seconds(p) for p in procs) - self._start[name] for name, procs in self.groups.items()
        }
        now = psutil.cpu_times()
        busy = sum(getattr(now, f) - getattr(self._machine, f) for f in ("user", "system", "nice", "irq", "softirq"))
        total = (
            busy + (now.idle - self._machine.idle) + (getattr(now, "iowait", 0) - getattr(self._machine, "iowait", 0))
        )
        self.machine_busy = busy / total if total > 0 else 0.0
        return self

    def share(self, name: str) -> float:
        """CPU used by a group as a fraction of one core."""
        return self.seconds.get(name, 0.0) / self.elapsed if self.elapsed else 0.0

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {f"cpu_{name}_cores": round(self.share(name), 3) for name in self.groups}
        out["machine_busy_pct"] = round(100 * self.machine_busy, 1)
        return out


def processes(pids: Iterable[int]) -> list[psutil.Process]:
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            procs.append(psutil.Process(pid))
    return procs


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


# ---- statistics --------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    if not sorted_values:
        return math.nan
    rank = max(0, min(len(sorted_values) - 1, math.ceil(pct / 100 * len(sorted_values)) - 1))
    return float(sorted_values[rank])


def latency_summary(values_ms: Iterable[float], prefix: str = "") -> dict[str, Any]:
    data = sorted(values_ms)
    return {
        f"{prefix}n": len(data),
        f"{prefix}p50_ms": round(percentile(data, 50), 2),
        f"{prefix}p90_ms": round(percentile(data, 90), 2),
        f"{prefix}p99_ms": round(percentile(data, 99), 2),
        f"{prefix}max_ms": round(data[-1], 2) if data else math.nan,
    }


# ---- output ------------------------------------------------------------------------------


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
        help="PostgreSQL server (loopback) on which a throwaway database is created and dropped",
    )
    parser.add_argument("--json", metavar="PATH", help="also append the results as one JSON line to PATH")
    return parser


def header(title: str) -> None:
    print(f"\n=== {title} ===  (load average {load_average()}, {psutil.cpu_count()} cores)", flush=True)


def print_rows(rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    if not rows:
        return
    cols = columns or list(dict.fromkeys(k for row in rows for k in row))
    cells = [[_fmt(row.get(c, "")) for c in cols] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True)))
    for r in cells:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)))
    sys.stdout.flush()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def emit(scenario: str, result: dict[str, Any], json_path: str | None) -> None:
    record = {"scenario": scenario, "at": time.strftime("%Y-%m-%dT%H:%M:%S"), "load": load_average(), **result}
    if json_path:
        with open(json_path, "a") as fh:
            fh.write(json.dumps(record, default=str) + "\n")


def statement_figures(samples: list[float], batch_size: int) -> dict[str, float]:
    """Median and p90 of one statement's wall times (seconds), and the median per message."""
    median = statistics.median(samples)
    return {
        "statement_median_ms": round(median * 1000, 3),
        "statement_p90_ms": round(sorted(samples)[int(len(samples) * 0.9)] * 1000, 3),
        "per_message_us": round(median / batch_size * 1e6, 1),
    }
