"""The short chaos run (chaos/; docs/architecture.md, "Chaos suite"): two instances, a private
PostgreSQL and Redis that it restarts, clients that follow docs/protocol.md, and a few of the
faults of issue #11. It runs as its own process, as `make chaos` does, so its processes and
signal handlers are its own; the machine's DATABASE_URL and REDIS_URL are never touched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chaos.procs import pg_bin_dir

from .services import require_redis_server

ROOT = Path(__file__).resolve().parent.parent
# The short run takes about two minutes on a 2-core machine; this only stops a hung run.
RUN_TIMEOUT = 600


@pytest.fixture(autouse=True)
def _services() -> None:
    """The chaos run starts its own redis-server and PostgreSQL (pgserver's binaries at least
    come with the requirements); without redis-server it skips, which CI turns into a failure."""
    require_redis_server()
    if pg_bin_dir() is None:
        pytest.skip("no PostgreSQL binaries: neither /usr/lib/postgresql/15/bin nor pgserver's")


def _chaos(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "chaos", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_short_chaos_run_keeps_every_delivery_invariant() -> None:
    proc = _chaos("--short", "--seed", "11")
    try:
        output, _ = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
        pytest.fail(f"the chaos run did not finish in {RUN_TIMEOUT} s:\n{output}")
    assert proc.returncode == 0, output
    assert "all invariants held" in output


def _processes_mentioning(text: str) -> list[int]:
    """Processes whose command line or environment names `text` (chaos/procs.py puts the run's
    folder in every child's environment)."""
    found = []
    needle = text.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        for part in ("cmdline", "environ"):
            try:
                if needle in (entry / part).read_bytes():
                    found.append(int(entry.name))
                    break
            except OSError:
                continue
    return found


def test_a_chaos_run_stopped_by_sigterm_leaves_no_process_or_folder_behind() -> None:
    proc = _chaos("--faults", "sigkill")
    assert proc.stdout is not None
    folder = None
    for line in proc.stdout:
        # "cluster up in 2.0 s (/tmp/chaos-xxxx); seed 11"
        if line.startswith("cluster up"):
            folder = line.split("(", 1)[1].split(")", 1)[0]
            break
    assert folder is not None, "the run never reported its cluster"
    assert _processes_mentioning(folder), "the cluster's processes should be running now"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 10
    while _processes_mentioning(folder) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_mentioning(folder) == []
    assert not Path(folder).exists()
