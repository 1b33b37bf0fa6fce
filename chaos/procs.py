"""The processes a chaos run starts and hurts: a private PostgreSQL cluster, a private redis-server,
a fake Groq and two chatserver instances, all on 127.0.0.1.

Every process is started in its own session (so it and its children form one process group we can
signal by id) and registered with a `Supervisor`, which kills every group it started when the run
ends, also on Ctrl-C, SIGTERM, an exception or interpreter exit (atexit). Nothing here ever
signals a process it did not start.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# PostgreSQL refuses to run as root; as root we run it as this user (pgserver, which
# chatserver/db/embedded.py relies on, uses the same name and creates it the same way).
PG_SYSTEM_USER = "pgserver"
PG_BIN_DIRS = (Path("/usr/lib/postgresql/15/bin"),)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


def pg_bin_dir() -> Path | None:
    """The system's PostgreSQL 15 binaries, else the ones the pgserver wheel bundles."""
    for folder in PG_BIN_DIRS:
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder
    try:
        import pgserver  # noqa: F401 - only to locate its bundled binaries
    except ImportError:
        return None
    from pgserver._commands import POSTGRES_BIN_PATH

    folder = Path(POSTGRES_BIN_PATH)
    return folder if (folder / "postgres").exists() else None


class Supervisor:
    """Owns a temporary folder and every process group started under it; `close()` (also run by
    atexit and on SIGTERM) stops them all and removes the folder."""

    def __init__(self, keep: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="chaos-"))
        # Other users (the PostgreSQL user) must be able to traverse it.
        self.dir.chmod(0o755)
        self.keep = keep
        self._procs: list[subprocess.Popen[bytes]] = []
        self._closed = False
        atexit.register(self.close)
        self._old_term = signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    def spawn(self, args: list[str], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
        # Every child carries the run's folder in its environment: what is left of a run can
        # always be found (tests/test_chaos.py checks that nothing is).
        kwargs["env"] = {**kwargs.get("env", os.environ), "CHAOS_RUN_DIR": str(self.dir)}
        if self._closed:
            # A start-up thread still running after Ctrl-C: start nothing more.
            raise RuntimeError("the chaos run is shutting down")
        out: IO[bytes] = open(log, "ab")  # noqa: SIM115 - the child keeps it; closed below
        try:
            proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, **kwargs
            )
        finally:
            out.close()
        self._procs.append(proc)
        if self._closed:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise RuntimeError("the chaos run is shutting down")
        return proc

    def signal_group(self, proc: subprocess.Popen[bytes], sig: int) -> None:
        """Signal the process group of one of our children (it leads its own session)."""
        if proc not in self._procs:
            raise ValueError("not a process this supervisor started")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        if proc not in self._procs:
            return
        if proc.poll() is None:
            self.signal_group(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        self._procs.remove(proc)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for proc in reversed(self._procs):
            # A stopped (SIGSTOP) group would ignore SIGTERM; SIGKILL needs no cooperation. A child
            # that already exited and was reaped is skipped: its id may belong to someone else now.
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        self._procs.clear()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signal.SIGTERM, self._old_term)


def _pg_user() -> dict[str, Any]:
    """Popen arguments that run PostgreSQL as a non-root user when we are root."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "-s", "/bin/bash", PG_SYSTEM_USER], check=True, capture_output=True)
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


class Postgres:
    """A private cluster run as `postgres -D` directly (not through pg_ctl), so that it is our
    child and its shutdown modes are just signals: SIGINT is a fast shutdown, SIGQUIT an immediate
    one (no checkpoint; crash recovery on the next start)."""

    def __init__(self, sup: Supervisor, bin_dir: Path) -> None:
        self.sup = sup
        self.bin = bin_dir
        self.port = free_port()
        self.data = sup.dir / "pgdata"
        self.log = sup.dir / "postgres.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.as_user = _pg_user()
        self.url = f"postgresql://postgres@{HOST}:{self.port}/postgres"

    def init(self) -> None:
        self.data.mkdir(mode=0o700)
        if self.as_user:
            os.chown(self.data, self.as_user["user"], self.as_user["group"])
            os.chown(self.sup.dir, self.as_user["user"], self.as_user["group"])
        subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8"],
            check=True,
            capture_output=True,
            cwd=self.sup.dir,
            **self.as_user,
        )

    def start(self) -> None:
        # fsync off: only processes die here, never the machine, and the 2-core box is shared.
        args = [
            str(self.bin / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-k",
            str(self.sup.dir),
            "-c",
            f"listen_addresses={HOST}",
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
        ]
        self.proc = self.sup.spawn(args, self.log, cwd=self.sup.dir, **self.as_user)
        self.wait_ready()

    def wait_ready(self, timeout: float = 60.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}; see {self.log}")
            try:
                with psycopg.connect(self.url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> None:
        """SIGINT: fast shutdown (rolls back open transactions, disconnects clients, checkpoint);
        SIGQUIT: immediate shutdown (backends quit at once, crash recovery on restart)."""
        proc = self.proc
        if proc is None:
            return
        proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
        self.sup.kill(proc)
        self.proc = None


class Redis:
    def __init__(self, sup: Supervisor) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed")
        self.exe = exe
        self.sup = sup
        self.port = free_port()
        self.log = sup.dir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        args = [self.exe, "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no"]
        self.proc = self.sup.spawn(args, self.log, cwd=self.sup.dir)
        _wait_port(self.port, self.proc, 20)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
            self.sup.kill(self.proc)
            self.proc = None


class FakeGroq:
    """`python -m chatserver.ai.fake_groq`, slow enough that a reply is still streaming when an
    instance is killed (about 2.5 s per reply)."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [
            PYTHON,
            "-m",
            "chatserver.ai.fake_groq",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--tokens-per-second",
            "30",
            "--ttft-ms",
            "150",
            "--tokens",
            "70",
        ]
        self.proc = self.sup.spawn(args, self.sup.dir / "fake_groq.log", cwd=ROOT)
        _wait_port(self.port, self.proc, 30)


SECRET_KEY = "chaos-secret-" + "k" * 40


class Instance:
    """One `python -m chatserver serve`; its JSON log lines go to `log` (appended across restarts)."""

    def __init__(self, sup: Supervisor, name: str, env: dict[str, str]) -> None:
        self.sup = sup
        self.name = name
        self.port = free_port()
        self.log = sup.dir / f"instance-{name}.log"
        self.env = {**env, "PORT": str(self.port), "CHATSERVER_DATA_DIR": str(sup.dir / f"data-{name}")}
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopped = False
        self.base = f"http://{HOST}:{self.port}"
        self.ws_base = f"ws://{HOST}:{self.port}"

    def start(self, wait: bool = True) -> None:
        self.proc = self.sup.spawn([PYTHON, "-m", "chatserver", "serve"], self.log, cwd=ROOT, env=self.env)
        self.stopped = False
        if wait:
            _wait_port(self.port, self.proc, 60)

    def start_wait(self) -> None:
        if self.proc is None:
            raise RuntimeError(f"instance {self.name} was not started")
        _wait_port(self.port, self.proc, 60)

    def sigkill(self) -> None:
        if self.proc is not None:
            self.sup.kill(self.proc)
            self.proc = None

    def sigstop(self) -> None:
        if self.proc is not None:
            self.sup.signal_group(self.proc, signal.SIGSTOP)
            self.stopped = True

    def sigcont(self) -> None:
        if self.proc is not None:
            self.sup.signal_group(self.proc, signal.SIGCONT)
            self.stopped = False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_size(self) -> int:
        try:
            return self.log.stat().st_size
        except FileNotFoundError:
            return 0


def server_env(pg_url: str, redis_url: str, groq_url: str) -> dict[str, str]:
    """The instances' environment: ours replaces whatever DATABASE_URL/REDIS_URL the caller has (CI
    sets them to the machine's services, which a chaos run must never restart)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "GROQ_", "AI_", "WS_"))}
    env.update(
        {
            "DATABASE_URL": pg_url,
            "REDIS_URL": redis_url,
            "REDIS_PREFIX": "chaos",
            "HOST": HOST,
            "SECRET_KEY": SECRET_KEY,
            "CHATSERVER_ENV": "test",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            # A small pool, as a small deployment would have: connections lost while checked out
            # show up after a handful of deaths, not after ten.
            "DB_POOL_MIN": "2",
            "DB_POOL_MAX": "6",
            "GROQ_API_KEY": "gsk_chaos_fake",
            "GROQ_BASE_URL": groq_url,
            "GROQ_MAX_RETRIES": "0",
            "GROQ_TIMEOUT_SECONDS": "5",
            # A short lease, so a killed instance's reply must be taken over within the run.
            "AI_CLAIM_LEASE_SECONDS": "4",
            "AI_CLAIM_HEARTBEAT_SECONDS": "1",
            "AI_USER_RATE_LIMIT": "100000",
            "AI_MAX_REPLIES_PER_TICKET": "100000",
            "AI_MAX_TOKENS_PER_TICKET": "100000000",
            # Every simulated client comes from 127.0.0.1: the per-address abuse limits
            # (docs/operations.md, "Limits") are not what is tested here.
            "AI_ADDRESS_RATE_LIMIT": "1000000",
            "AI_INSTANCE_RATE_LIMIT": "100000000",
            "SOCKETS_PER_USER": "1000",
            "SOCKETS_PER_ADDRESS": "100000",
            "SIGNUP_LIMIT_PER_ADDRESS": "1000000",
            "TICKETS_PER_CUSTOMER_PER_HOUR": "100000",
            "OPEN_TICKETS_PER_CUSTOMER": "100000",
            # Orphaned replies are noticed within a second of their lease running out.
            "AI_SWEEP_INTERVAL_SECONDS": "1",
            # Resends after a reconnect come in bursts; the rate limit is not what is tested.
            "WS_SEND_RATE": "200",
            "WS_SEND_BURST": "400",
            # A small queue, so the slow consumer overflows it within seconds.
            "WS_QUEUE_LIMIT": "64",
            "WS_HEARTBEAT_SECONDS": "6",
        }
    )
    return env


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode} before listening on {port}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listening on {port} after {timeout}s")
        time.sleep(0.05)
