"""Schemathesis against a real server: the harness behind `make fuzz` and tests/test_fuzz.py.

It starts `python -m chatserver serve` (tests/services.py ServerProcess) on a fresh database of
DATABASE_URL's server, or of an embedded PostgreSQL when DATABASE_URL is unset, signs in an agent
and a customer so the authenticated routes are exercised too, runs schemathesis with its default
checks against /openapi.json, and then reads the server's log: a fuzz run passes only when
schemathesis found nothing *and* the server logged no traceback and answered no 5xx.

Run the long version with `make fuzz` (FUZZ_SECONDS, default 300) or
`python -m tests.fuzzing --seconds 300`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from .services import ROOT, ServerProcess

PASSWORD = "fuzzing password 1"
# Which refusals the schema cannot express (each entry says why).
CONFIG = Path(__file__).resolve().parent / "schemathesis.toml"
# What the server log must never hold after a fuzz run: a stack trace, an ERROR line, or a 5xx in
# the access log ("POST /tickets 500 1.2ms").
_SERVER_ERROR = re.compile(
    r"Traceback \(most recent call last\)| ERROR |^\S+ \S+ INFO aiohttp\.access .* 5\d\d [0-9.]+ms$"
)


@dataclass(frozen=True)
class Target:
    base_url: str
    agent_token: str
    customer_token: str
    log_path: Path

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def server_errors(self, since: int = 0) -> list[str]:
        """Log lines (with what follows them) that show a traceback, an ERROR or a 5xx answer,
        written after byte offset `since`."""
        with self.log_path.open("rb") as log:
            log.seek(since)
            lines = log.read().decode(errors="replace").splitlines()
        found: list[str] = []
        shown_until = -1
        for i, line in enumerate(lines):
            if i > shown_until and _SERVER_ERROR.search(line):
                found.append("\n".join(lines[i : i + 25]))
                shown_until = i + 25
        return found


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def _post_json(url: str, body: dict[str, str]) -> dict[str, object]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        data: dict[str, object] = json.loads(response.read())
        return data


def _sign_in(base_url: str, email: str) -> str:
    token = _post_json(f"{base_url}/auth/login", {"email": email, "password": PASSWORD})["access_token"]
    assert isinstance(token, str)
    return token


def _create_user(env: dict[str, str], email: str, role: str) -> None:
    command = [sys.executable, "-m", "chatserver", "create-user", "--email", email, "--role", role]
    subprocess.run([*command, "--password", PASSWORD], cwd=ROOT, env=env, check=True, capture_output=True)


@contextmanager
def fuzz_target(workdir: Path, server_url: str | None = None) -> Iterator[Target]:
    """A running server on a fresh, migrated database of `server_url` (else DATABASE_URL's server,
    else an embedded PostgreSQL), with an agent and a customer signed in."""
    with ExitStack() as stack:
        server_url = server_url or os.environ.get("DATABASE_URL")
        if not server_url:
            from chatserver.db.embedded import embedded_postgres

            server_url = stack.enter_context(embedded_postgres(workdir / "pg", delete_on_exit=True))
        name = f"chatserver_fuzz_{secrets.token_hex(4)}"
        admin_url = _with_database(server_url, "postgres")
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

        def drop_database() -> None:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        stack.callback(drop_database)
        env = {
            **os.environ,
            "DATABASE_URL": _with_database(server_url, name),
            "SECRET_KEY": secrets.token_urlsafe(48),
            "CHATSERVER_DATA_DIR": str(workdir / "data"),
            "CHATSERVER_ENV": "test",
            # A test: no outgoing calls to Groq (the offline responder answers).
            "GROQ_API_KEY": "",
            # With REDIS_URL set, channels of its own: other servers may share that Redis.
            "REDIS_PREFIX": name,
        }
        _create_user(env, "fuzz-agent@example.com", "agent")
        _create_user(env, "fuzz-customer@example.com", "customer")
        server = ServerProcess(env, workdir / "server.log")
        server.start()
        stack.callback(server.stop)
        yield Target(
            server.base_url,
            _sign_in(server.base_url, "fuzz-agent@example.com"),
            _sign_in(server.base_url, "fuzz-customer@example.com"),
            server.log_path,
        )


def run_schemathesis(
    target: Target, token: str, *, max_examples: int | None = None, seconds: int | None = None, seed: int | None = None
) -> subprocess.CompletedProcess[str]:
    """`schemathesis run` with its default checks against the target's /openapi.json."""
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--no-color",
        "--config-file",
        str(CONFIG),
        "run",
        f"{target.base_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--workers",
        "1",
        "--request-timeout",
        "30",
    ]
    if max_examples is not None:
        command += ["--max-examples", str(max_examples)]
    if seconds is not None:
        command += ["--max-time", str(seconds)]
    if seed is not None:
        command += ["--seed", str(seed)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=300, help="time budget per signed-in role")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    failed = False
    with tempfile.TemporaryDirectory(prefix="chatserver-fuzz-") as tmp, fuzz_target(Path(tmp)) as target:
        # The customer first: the tickets it opens give the agent's run real ids to work on.
        for role, token in (("customer", target.customer_token), ("agent", target.agent_token)):
            print(f"== schemathesis as the {role}, {args.seconds}s", flush=True)
            result = run_schemathesis(target, token, seconds=args.seconds, seed=args.seed)
            print(result.stdout[-20000:], flush=True)
            print(result.stderr[-5000:], file=sys.stderr, flush=True)
            failed |= result.returncode != 0
        errors = target.server_errors()
        if errors:
            print(f"== the server logged {len(errors)} traceback(s) or 5xx answer(s):")
            print("\n----\n".join(errors[:20]))
            failed = True
        else:
            print("== the server log holds no traceback and no 5xx")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
