"""The command line, run as a real subprocess against a throwaway database: migrate, create-user,
configuration errors, and serve (with the production access log)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import psycopg
import pytest

from .dbutil import throwaway_database, user_tables

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def empty_db(server_url: str) -> Iterator[str]:
    with throwaway_database(server_url) as url:
        yield url


@pytest.fixture
def cli_env(tmp_path: Path, empty_db: str) -> dict[str, str]:
    """A clean environment: nothing from the developer's shell or ./.env leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.isupper() or k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(
        PYTHONPATH=str(REPO),
        DATABASE_URL=empty_db,
        CHATSERVER_DATA_DIR=str(tmp_path / "data"),
        LOG_LEVEL="INFO",
    )
    return env


def run(
    env: dict[str, str], *args: str, cwd: Path, stdin: int | None = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    # cwd is a temporary folder, so no .env file of the checkout is read.
    return subprocess.run(
        [sys.executable, "-m", "chatserver", *args],
        env=env,
        cwd=cwd,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def users(url: str) -> list[tuple[str, str, str, str]]:
    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute("SELECT email, role, display_name, password_hash FROM users").fetchall()]


# ---- migrate ----------------------------------------------------------------------------------


def test_migrate_applies_then_does_nothing_then_rolls_back(
    cli_env: dict[str, str], tmp_path: Path, empty_db: str
) -> None:
    first = run(cli_env, "migrate", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    applied = int(first.stdout.split()[1])
    assert first.stdout.strip() == f"applied {applied} migration(s)" and applied >= 1
    assert {"users", "tickets", "messages"} <= user_tables(empty_db)

    again = run(cli_env, "migrate", cwd=tmp_path)
    assert again.stdout.strip() == "applied 0 migration(s)"

    back = run(cli_env, "migrate", "--rollback", str(applied), cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    assert back.stdout.strip() == f"rolled back {applied} migration(s)"
    assert user_tables(empty_db) == set()


def test_configuration_errors_exit_2_naming_the_variable(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = run({**cli_env, "LOG_FORMAT": "xml"}, "migrate", cwd=tmp_path)
    assert result.returncode == 2
    assert "LOG_FORMAT" in result.stderr
    assert "Traceback" not in result.stderr
    prod = run({**cli_env, "CHATSERVER_ENV": "production"}, "migrate", cwd=tmp_path)
    assert prod.returncode == 2
    assert "SECRET_KEY" in prod.stderr


def test_json_logs_are_one_object_per_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = run({**cli_env, "LOG_FORMAT": "json"}, "migrate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert lines, "migrate logs what it applies"
    assert all({"ts", "level", "logger", "request_id", "msg"} <= set(line) for line in lines)
    assert any("applying" in line["msg"] for line in lines)


# ---- create-user --------------------------------------------------------------------------------


def test_create_user_makes_an_agent_with_a_real_bcrypt_hash(
    cli_env: dict[str, str], tmp_path: Path, empty_db: str
) -> None:
    result = run(
        cli_env,
        "create-user",
        "--role",
        "agent",
        "--email",
        "Agent@Example.com",
        "--password",
        "s3cret-pass",
        "--name",
        "Ada",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("created agent Agent@Example.com (")
    assert "s3cret-pass" not in result.stdout + result.stderr
    ((email, role, name, password_hash),) = users(empty_db)
    assert (email, role, name) == ("Agent@Example.com", "agent", "Ada")
    assert password_hash.startswith("$2b$12$"), "production cost, not the tests' 4"
    assert bcrypt.checkpw(b"s3cret-pass", password_hash.encode())


def test_create_user_refuses_a_missing_password_when_not_on_a_terminal(
    cli_env: dict[str, str], tmp_path: Path, empty_db: str
) -> None:
    result = run(cli_env, "create-user", "--role", "admin", "--email", "root@example.com", cwd=tmp_path)
    assert result.returncode == 2
    assert "--password is required" in result.stderr
    assert "Traceback" not in result.stderr
    assert "users" not in user_tables(empty_db) or users(empty_db) == []


def test_create_user_refuses_a_duplicate_email(cli_env: dict[str, str], tmp_path: Path, empty_db: str) -> None:
    args = ("create-user", "--role", "agent", "--email", "dup@example.com", "--password", "password1")
    assert run(cli_env, *args, cwd=tmp_path).returncode == 0
    again = run(cli_env, *args[:4], "DUP@example.com", *args[5:], cwd=tmp_path)
    assert again.returncode == 1
    assert "already exists" in again.stderr
    assert len(users(empty_db)) == 1


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--role", "agent", "--email", "not-an-email", "--password", "password1"), 1, "Email address is not valid"),
        (("--role", "agent", "--email", "a@example.com", "--password", "short"), 1, "at least 8"),
        (("--role", "root", "--email", "a@example.com", "--password", "password1"), 2, "invalid choice"),
        (("--email", "a@example.com", "--password", "password1"), 2, "--role"),
    ],
)
def test_create_user_refuses_bad_input_clearly(
    cli_env: dict[str, str], tmp_path: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    result = run(cli_env, "create-user", *args, cwd=tmp_path)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr


# ---- serve ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_serve_answers_and_its_access_log_has_no_query_strings(cli_env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    env = {**cli_env, "HOST": "127.0.0.1", "PORT": str(port), "LOG_FORMAT": "json"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatserver", "serve"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):  # up to ~30 s for imports and migrations on a slow machine
            if proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        assert proc.poll() is None, "the server exited early"
        request = urllib.request.Request(f"{base}/healthz?token=leaky-secret", headers={"X-Request-ID": "cli-serve-1"})
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert resp.status == 200
            assert resp.headers["X-Request-ID"] == "cli-serve-1"
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    access = [line for line in lines if line["logger"] == "aiohttp.access" and line.get("path") == "/healthz"]
    assert len(access) == 1
    assert access[0]["request_id"] == "cli-serve-1"
    assert access[0]["status"] == 200
    assert "leaky-secret" not in stderr
