"""Interrupting the tests stops them, and stops everything they started: pytest is run on a probe
that holds an embedded PostgreSQL and a private redis-server (no DATABASE_URL, no REDIS_URL, as
`make test` on a fresh machine), then interrupted as Ctrl-C or a CI timeout would."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import psycopg
import pytest
import redis

from .services import require_redis_server

ROOT = Path(__file__).resolve().parent.parent
PROBE_ENV = "CHATSERVER_INTERRUPT_PROBE"


@pytest.mark.skipif(not os.environ.get(PROBE_ENV), reason="run by the interrupt tests only")
async def test_probe_holds_the_services_until_interrupted(database_url: str, redis_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        # While the connection is open: its backend process exits with it.
        postmaster = psutil.Process(row[0]).ppid()
    redis_pid = redis.Redis.from_url(redis_url).info("server")["process_id"]
    report = json.dumps({"postgres": postmaster, "redis": redis_pid})
    await asyncio.to_thread(Path(os.environ[PROBE_ENV]).write_text, report)
    await asyncio.sleep(3600)


@pytest.mark.skipif(not os.environ.get(PROBE_ENV), reason="run by the interrupt tests only")
def test_probe_after_the_interrupt_never_runs() -> None:
    Path(os.environ[PROBE_ENV] + ".after").write_text("ran")


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def ignore_sigint() -> None:
    # What a non-interactive shell does to a command it starts in the background (`make test &`
    # in a script, or a tool's shell): SIGINT ignored, inherited through exec. Ctrl-C (SIGINT to
    # the whole process group) then used to kill the servers the tests started, not the tests.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(
    ("how", "stop_signal"),
    [("ctrl-c", signal.SIGINT), ("sigterm", signal.SIGTERM)],
    ids=["ctrl-c-to-the-process-group", "sigterm-to-pytest"],
)
def test_an_interrupted_run_stops_and_leaves_no_database_or_redis_running(
    tmp_path: Path, how: str, stop_signal: int
) -> None:
    redis_server = require_redis_server()
    probe = tmp_path / "probe.json"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "PYTEST_ADDOPTS")}
    # The embedded server's socket lives under TMPDIR when its data folder's path is too long
    # for one; pytest's tmp_path is: a short folder of its own, removed by the run's teardown.
    short_tmp = tempfile.mkdtemp(prefix="chatserver-int-")
    env.update({PROBE_ENV: str(probe), "TMPDIR": short_tmp, "PATH": f"{Path(redis_server).parent}:{env['PATH']}"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-x", "-k", "test_probe_", __file__],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=ignore_sigint if how == "ctrl-c" else None,
    )
    try:
        for _ in range(1200):  # up to ~120 s for initdb on a slow machine
            if (probe.exists() and probe.read_text()) or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[0]
        pids = json.loads(probe.read_text())
        assert alive(pids["postgres"]) and alive(pids["redis"])
        if how == "ctrl-c":
            os.killpg(proc.pid, stop_signal)
        else:
            proc.send_signal(stop_signal)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(short_tmp, ignore_errors=True)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, output
    assert not Path(f"{probe}.after").exists(), "the run went on after the interrupt"
    left = {name: pid for name, pid in pids.items() if alive(pid)}
    assert not left, f"still running after the interrupted run: {left}\n{output}"
