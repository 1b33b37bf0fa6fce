"""Against a real server (`python -m chatserver serve`, its real logging): a short schemathesis run
with its default checks finds nothing, as the customer and as an agent; requests broken below HTTP
get a 4xx or a closed connection; and none of it leaves a traceback, an ERROR line or a 5xx in the
server's log (the `target` fixture checks each test's share of it). `make fuzz` is the long
version (tests/fuzzing.py)."""

from __future__ import annotations

import gzip
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .fuzzing import Target, fuzz_target, run_schemathesis

# Small and seeded, so CI stays well under a minute and a failure reproduces; `make fuzz` explores.
MAX_EXAMPLES = 3
SEED = 20261203


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, server_url: str) -> Iterator[Target]:
    """The test session's PostgreSQL server (tests/conftest.py), a database of its own."""
    with fuzz_target(Path(tmp_path_factory.mktemp("fuzz")), server_url) as running:
        yield running


@pytest.fixture
def target(server: Target) -> Iterator[Target]:
    """The server; each test checks the log lines written while it ran."""
    start = server.log_size()
    yield server
    time.sleep(0.2)  # the access log line follows the answer
    errors = server.server_errors(since=start)
    assert not errors, "\n----\n".join(errors)


def send_raw(target: Target, data: bytes, *, hang_up: bool = False) -> bytes:
    """Write raw bytes to the server and read what it answers until it closes (or goes quiet)."""
    port = int(target.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        if hang_up:
            sock.shutdown(socket.SHUT_WR)
        sock.settimeout(1.0)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except TimeoutError:
            pass
    return answer


def statuses(answer: bytes) -> list[int]:
    return [int(line.split()[1]) for line in answer.split(b"\r\n") if line.startswith(b"HTTP/1.")]


def post(target: Target, headers: str, body: bytes, path: str = "/tickets") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: fuzz\r\nAuthorization: Bearer {target.customer_token}\r\n{headers}\r\n"
    return head.encode() + body


def test_a_content_length_shorter_than_the_body_is_a_400_for_the_rest(target: Target) -> None:
    body = b'{"subject": "hello"}'
    answer = send_raw(target, post(target, "Content-Type: application/json\r\nContent-Length: 5\r\n", body))
    # The first five bytes are a (malformed) JSON body and the rest is not an HTTP request: 400s
    # for whichever of the two aiohttp reads first, and the connection is closed.
    assert statuses(answer) and set(statuses(answer)) == {400}


def test_a_content_length_longer_than_the_body_then_a_hang_up_leaves_no_trace(target: Target) -> None:
    body = b'{"subject": "hello"}'
    send_raw(target, post(target, "Content-Type: application/json\r\nContent-Length: 500\r\n", body), hang_up=True)


def test_a_broken_chunked_body_is_a_400(target: Target) -> None:
    headers = "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
    answer = send_raw(target, post(target, headers, b"zz\r\n{}\r\n0\r\n\r\n"))
    assert statuses(answer) == [400]


@pytest.mark.parametrize("path", ["/tickets", "/console/login"])
def test_a_broken_gzip_body_is_a_400(target: Target, path: str) -> None:
    kind = "application/json" if path == "/tickets" else "application/x-www-form-urlencoded"
    headers = f"Content-Type: {kind}\r\nContent-Encoding: gzip\r\nContent-Length: 10\r\n"
    answer = send_raw(target, post(target, headers, b"0123456789", path))
    assert statuses(answer) == [400]


def test_a_gzipped_json_body_is_read(target: Target) -> None:
    body = gzip.compress(b'{"subject": "zipped"}')
    headers = f"Content-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {len(body)}\r\n"
    answer = send_raw(target, post(target, headers, body))
    assert statuses(answer) == [201]
    assert b'"subject":"zipped"' in answer


def test_a_nul_in_a_header_is_a_400(target: Target) -> None:
    answer = send_raw(target, b"GET /healthz HTTP/1.1\r\nHost: fuzz\r\nX-Probe: \x00\r\n\r\n")
    assert statuses(answer) == [400]


# Its length grows with the API (every operation, MAX_EXAMPLES cases each): more than the suite's
# default per-test limit on a busy machine.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("role", ["customer", "agent"])
def test_schemathesis_finds_nothing(target: Target, role: str) -> None:
    token = target.customer_token if role == "customer" else target.agent_token
    result = run_schemathesis(target, token, max_examples=MAX_EXAMPLES, seed=SEED)
    assert result.returncode == 0, result.stdout[-15000:] + result.stderr[-3000:]
