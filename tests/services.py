"""Real service processes for tests: a private redis-server, and chatserver itself."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_redis_server() -> str:
    """Path of redis-server, or skip — which CI turns into a failure."""
    exe = shutil.which("redis-server")
    if exe is None:
        reason = "redis-server is not on PATH"
        if os.environ.get("CHATSERVER_REQUIRE_REDIS"):
            pytest.fail(f"{reason} and CHATSERVER_REQUIRE_REDIS is set")
        pytest.skip(reason)
    return exe


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port} after {timeout}s")


class RedisProcess:
    """A private redis-server that tests may stop and start again on the same port."""

    def __init__(self, exe: str, port: int | None = None) -> None:
        self.exe = exe
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


class ServerProcess:
    """`python -m chatserver serve` as a child process."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "PORT": str(self.port), "HOST": "127.0.0.1"}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chatserver", "serve"], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_for_port(self.port, timeout=30)
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"server did not start:\n{self.log_path.read_text()}") from None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def find_postgres_bin() -> Path | None:
    """A folder holding initdb and pg_ctl: the system's PostgreSQL, else pgserver's bundled one."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    candidates.append(Path("/usr/local/bin"))
    try:
        import pgserver._commands

        candidates.append(Path(pgserver._commands.POSTGRES_BIN_PATH))
    except (ImportError, AttributeError):
        pass
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


class PostgresProcess:
    """A private PostgreSQL cluster in a temporary folder, which tests may stop (fast or
    immediate) and start again on the same port, without touching the machine's server.

    PostgreSQL refuses to run as root: then initdb and pg_ctl run as an unprivileged user
    (`pgserver`, the user the pgserver wheel creates for the same reason, else `postgres`)."""

    def __init__(self, bin_dir: Path, base_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.base_dir = base_dir
        self.data_dir = base_dir / "pgdata"
        self.port = free_port()
        self.user: str | None = None
        if os.geteuid() == 0:
            import pwd

            for name in ("pgserver", "postgres"):
                try:
                    pwd.getpwnam(name)
                except KeyError:
                    continue
                self.user = name
                break
            else:
                pytest.skip("running as root and no unprivileged user to run PostgreSQL as")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, user=self.user, timeout=60)

    def init(self) -> None:
        self.base_dir.chmod(0o755)
        if self.user is not None:
            shutil.chown(self.base_dir, self.user)
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.base_dir} -c fsync=off -c max_connections=50"
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.base_dir / "log"),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def ensure_stopped(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            subprocess.run(
                [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                user=self.user,
                timeout=60,
            )


@contextmanager
def running_servers(env: dict[str, str], log_dir: Path, count: int = 2) -> Iterator[list[ServerProcess]]:
    """`count` server processes sharing `env` (one database and one Redis: several instances),
    each logging to log_dir/server-N.log; all stopped on exit, whatever a test did to them."""
    servers = [ServerProcess(env, log_dir / f"server-{i}.log") for i in range(count)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()
