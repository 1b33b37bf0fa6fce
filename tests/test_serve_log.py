"""The log of a real `python -m chatserver serve`, started with the embedded PostgreSQL and
stopped as `docker stop` or Ctrl-C would: its lines tell what happened in the order it happened,
with no warnings; and a bad SECRET_KEY stops it with a clear message instead of a crash loop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .services import free_port

REPO = Path(__file__).resolve().parent.parent


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Nothing from the developer's shell or ./.env: no DATABASE_URL, so the embedded server runs."""
    env = {k: v for k, v in os.environ.items() if not k.isupper() or k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(PYTHONPATH=str(REPO), CHATSERVER_DATA_DIR=str(tmp_path / "data"), LOG_FORMAT="json", **extra)
    return env


def first(messages: list[str], prefix: str) -> int:
    matches = [i for i, message in enumerate(messages) if message.startswith(prefix)]
    assert matches, f"no log line starts with {prefix!r}: {messages}"
    return matches[0]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_serve_log_tells_start_and_stop_in_order_without_warnings(tmp_path: Path, stop_signal: int) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatserver", "serve"],
        env=clean_env(tmp_path, HOST="127.0.0.1", PORT=str(port)),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(600):  # up to ~60 s: initdb and migrations on a slow machine
            if proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        if proc.poll() is not None:
            pytest.fail(f"the server exited early:\n{proc.communicate()[1]}")
    finally:
        proc.send_signal(stop_signal)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert stdout == ""
    # Every line is a JSON log line: no warning or traceback printed beside the logs.
    lines = [json.loads(line) for line in stderr.splitlines()]
    assert [line for line in lines if line["level"] not in ("INFO", "DEBUG")] == [
        line for line in lines if "development key" in line["msg"]
    ]
    messages = [line["msg"] for line in lines]

    # Start: the database is up and migrated, then the server says where it listens.
    assert first(messages, "starting chatserver") < first(messages, "starting embedded PostgreSQL")
    assert first(messages, "starting embedded PostgreSQL") < first(messages, "applying ")
    assert first(messages, "applying ") < first(messages, "listening on http://127.0.0.1:")
    assert first(messages, "realtime:") < first(messages, "listening on")
    # Stop: said first, then the database stops, then the process is done.
    assert first(messages, "listening on") < first(messages, "stopping chatserver")
    assert first(messages, "stopping chatserver") < first(messages, "stopping embedded PostgreSQL")
    assert first(messages, "stopping embedded PostgreSQL") < first(messages, "embedded PostgreSQL stopped")
    assert messages[-1] == "chatserver stopped"


def test_a_short_secret_key_stops_it_with_a_clear_message(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chatserver", "serve"],
        env=clean_env(tmp_path, SECRET_KEY="too-short", CHATSERVER_ENV="production"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = [json.loads(line) for line in result.stderr.splitlines()]
    assert line["level"] == "ERROR"
    assert "SECRET_KEY must be at least 32 characters long (it has 9)" in line["msg"]
    # What to do about it, since restarting will not help.
    assert "secrets.token_urlsafe" in line["msg"]


def test_check_config_validates_the_settings_without_starting_anything(tmp_path: Path) -> None:
    """What docker-compose.yml runs before the app: a config error ends there, once."""
    good = subprocess.run(
        [sys.executable, "-m", "chatserver", "check-config"],
        env=clean_env(tmp_path, SECRET_KEY="k" * 40, CHATSERVER_ENV="production"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert good.returncode == 0, good.stderr
    assert "configuration ok" in good.stderr
    assert not (tmp_path / "data").exists(), "check-config must not create a key or a database"
    bad = subprocess.run(
        [sys.executable, "-m", "chatserver", "check-config"],
        env=clean_env(tmp_path, SECRET_KEY="k" * 40, TRUSTED_PROXIES="proxy"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "TRUSTED_PROXIES" in bad.stderr
