"""Client addresses behind a reverse proxy (TRUSTED_PROXIES), attacked: a forged X-Forwarded-For
from anyone but a trusted proxy changes nothing; from a trusted proxy, the right-most untrusted
address is the client, for the per-address throttles and the access log alike."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from chatserver.app import create_app
from chatserver.middleware import AccessLogger, client_address
from chatserver.settings import ConfigError, Settings, load_settings

from .conftest import PASSWORD, TEST_SECRET
from .services import ServerProcess, free_port, wait_for_port
from .wsutil import recv, recv_type

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32"))


# ---- the setting ---------------------------------------------------------------------------


def test_trusted_proxies_takes_cidr_blocks_and_single_addresses(tmp_path: Path) -> None:
    env = {"CHATSERVER_DATA_DIR": str(tmp_path), "SECRET_KEY": "k" * 40}
    assert load_settings(env).trusted_proxies == ()
    settings = load_settings({**env, "TRUSTED_PROXIES": " 10.0.0.0/8, 172.18.0.7 ,fd00::/8,"})
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.0/8", "172.18.0.7/32", "fd00::/8"]


@pytest.mark.parametrize("value", ["10.0.0.0/33", "proxy.internal", "10.0.0.0/8;"])
def test_a_malformed_trusted_proxy_is_refused_by_name(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        load_settings({"CHATSERVER_DATA_DIR": str(tmp_path), "SECRET_KEY": "k" * 40, "TRUSTED_PROXIES": value})


# ---- the rule, on its own ------------------------------------------------------------------


def test_an_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    assert client_address("203.0.113.9", ["198.51.100.1"], PROXIES) == "203.0.113.9"


def test_no_trusted_proxies_means_the_header_is_never_read() -> None:
    assert client_address("127.0.0.1", ["198.51.100.1"], ()) == "127.0.0.1"


def test_the_right_most_untrusted_address_is_the_client() -> None:
    # The client wrote the first two entries itself; our proxies appended the last two.
    chain = ["6.6.6.6, 7.7.7.7", "203.0.113.9, 10.1.2.3"]
    assert client_address("10.0.0.2", chain, PROXIES) == "203.0.113.9"


def test_garbage_ends_the_walk_at_the_last_address_believed() -> None:
    assert client_address("10.0.0.2", ["not-an-ip, 10.1.2.3"], PROXIES) == "10.1.2.3"
    assert client_address("10.0.0.2", [""], PROXIES) == "10.0.0.2"


def test_a_chain_of_only_trusted_proxies_gives_the_left_most() -> None:
    assert client_address("10.0.0.2", ["10.9.9.9, 10.1.2.3"], PROXIES) == "10.9.9.9"


def test_ipv4_mapped_peers_are_matched_as_ipv4() -> None:
    assert client_address("::ffff:10.0.0.2", ["203.0.113.9"], PROXIES) == "203.0.113.9"


# ---- through the server: per-address throttles and the access log ---------------------------


@pytest.fixture
def access_log() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger = logging.getLogger("aiohttp.access")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


async def server_client(settings: Settings) -> TestClient:
    app = create_app(settings, bcrypt_rounds=4)
    server = TestServer(app)
    await server.start_server(access_log_class=AccessLogger)
    client = TestClient(server)
    await client.start_server()
    return client


async def new_visitor(client: TestClient, forwarded_for: str | None) -> int:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    resp = await client.post("/widget/visitors", json={}, headers=headers)
    return resp.status


async def test_a_forged_forwarded_for_from_an_untrusted_peer_is_ignored(settings: Settings) -> None:
    """The attacker rotates X-Forwarded-For to dodge the per-address visitor limit: no proxy is
    trusted, so every request counts against its real address."""
    client = await server_client(settings.with_overrides(widget_visitors_per_window=2))
    try:
        statuses = [await new_visitor(client, f"198.51.100.{i}") for i in range(4)]
    finally:
        await client.close()
    assert statuses == [201, 201, 429, 429]


async def test_a_peer_outside_trusted_proxies_is_not_believed(settings: Settings) -> None:
    only_elsewhere = (ipaddress.ip_network("10.0.0.0/8"),)
    client = await server_client(settings.with_overrides(widget_visitors_per_window=2, trusted_proxies=only_elsewhere))
    try:
        statuses = [await new_visitor(client, f"198.51.100.{i}") for i in range(3)]
    finally:
        await client.close()
    assert statuses == [201, 201, 429]


async def test_behind_a_trusted_proxy_each_client_has_its_own_limit(
    settings: Settings, access_log: list[logging.LogRecord]
) -> None:
    """Through the proxy (127.0.0.1 here), one client's exhausted limit does not lock out
    another, and a client that prepends forged addresses is still counted as itself."""
    client = await server_client(settings.with_overrides(widget_visitors_per_window=2, trusted_proxies=LOOPBACK))
    try:
        first = [await new_visitor(client, "203.0.113.5") for _ in range(2)]
        # The same client, forging a first hop: the proxy appended its real address last.
        forged = await new_visitor(client, "198.51.100.77, 203.0.113.5")
        other = await new_visitor(client, "203.0.113.6")
    finally:
        await client.close()
    assert first == [201, 201]
    assert forged == 429
    assert other == 201
    remotes: list[Any] = [record.__dict__["fields"]["remote"] for record in access_log]
    assert remotes == ["203.0.113.5", "203.0.113.5", "203.0.113.5", "203.0.113.6"]
    assert "198.51.100.77" not in json.dumps(remotes)


async def test_the_scheme_is_the_trusted_proxys_forwarded_proto(settings: Settings) -> None:
    """TLS ends at the proxy: pages (and the console's same-origin check) must see https, as the
    browser did; the same header from an untrusted peer changes nothing."""
    headers = {"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https"}
    behind = await server_client(settings.with_overrides(trusted_proxies=LOOPBACK))
    direct = await server_client(settings)
    try:
        behind_page = await (await behind.get("/", headers=headers)).text()
        direct_page = await (await direct.get("/", headers=headers)).text()
    finally:
        await behind.close()
        await direct.close()
    assert '<code id="widget-src">https://127.0.0.1:' in behind_page
    assert '<code id="widget-src">http://127.0.0.1:' in direct_page


# ---- the shipped nginx configuration, run for real in front of two server processes ----------

NGINX_CONF = Path(__file__).resolve().parent.parent / "deploy" / "nginx.conf"


def require_nginx() -> str:
    """Path of nginx, or skip — a failure when CHATSERVER_REQUIRE_PROXY is set (.ci/run sets it
    and installs nginx)."""
    exe = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if exe is None:
        reason = "nginx is not installed (apt-get install nginx)"
        if os.environ.get("CHATSERVER_REQUIRE_PROXY"):
            pytest.fail(f"{reason} and CHATSERVER_REQUIRE_PROXY is set")
        pytest.skip(reason)
    return exe


def substitute(text: str, old: str, new: str) -> str:
    """Replace a line of the shipped file that must be there: if it changes, so must this test."""
    assert old in text, f"deploy/nginx.conf no longer has {old!r}"
    return text.replace(old, new)


def nginx_config(folder: Path, port: int, upstreams: list[int]) -> Path:
    """The shipped file with only its port, upstream servers and paths made local."""
    text = NGINX_CONF.read_text()
    text = substitute(text, "listen 80;", f"listen 127.0.0.1:{port};")
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=3 fail_timeout=10s;" for p in upstreams)
    text = substitute(text, "        server app:8080 max_fails=3 fail_timeout=10s;", servers)
    text = substitute(text, "/var/cache/nginx", str(folder))
    text = substitute(text, "pid /var/run/nginx.pid;", f"pid {folder / 'nginx.pid'};")
    text = substitute(text, "error_log /dev/stderr warn;", f"error_log {folder / 'error.log'} warn;")
    text = substitute(text, "access_log /dev/stdout;", f"access_log {folder / 'access.log'};")
    path = folder / "nginx.conf"
    path.write_text(text)
    return path


@pytest.fixture
def proxied_servers(
    database_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> Iterator[tuple[str, list[ServerProcess]]]:
    """nginx from deploy/nginx.conf in front of two chatserver processes sharing PostgreSQL and
    the Redis backplane, which trust the proxy's address (127.0.0.1) and nothing else."""
    nginx = require_nginx()
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": redis_prefix,
        "SECRET_KEY": TEST_SECRET,
        "CHATSERVER_DATA_DIR": str(tmp_path),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "AI_DEFAULT_ENABLED": "false",
        "TRUSTED_PROXIES": "127.0.0.1/32",
    }
    servers = [ServerProcess(env, tmp_path / f"server-{i}.log") for i in range(2)]
    folder = tmp_path / "nginx"
    folder.mkdir()
    port = free_port()
    proxy: subprocess.Popen[bytes] | None = None
    try:
        for server in servers:
            server.start()
        conf = nginx_config(folder, port, [server.port for server in servers])
        # As the nginx image runs it: in the foreground.
        proxy = subprocess.Popen([nginx, "-c", str(conf), "-p", str(folder), "-g", "daemon off;"])
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}", servers
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(10)
        for server in servers:
            server.stop()


def access_lines(server: ServerProcess) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line["logger"] == "aiohttp.access"]


async def test_through_the_shipped_nginx_a_room_works_across_instances_and_clients_keep_their_address(
    proxied_servers: tuple[str, list[ServerProcess]],
) -> None:
    base, servers = proxied_servers
    # The client connects to the proxy from 127.0.0.2: that is the address the app must see.
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as http:
        # Instances are reached in turn (round robin), and a forged X-Forwarded-For is not believed.
        for _ in range(4):
            async with http.get(f"{base}/healthz", headers={"X-Forwarded-For": "6.6.6.6"}) as resp:
                assert resp.status == 200
        async with http.get(f"{base}/metrics") as resp:
            assert resp.status == 404, "the proxy keeps /metrics private"

        async with http.post(
            f"{base}/auth/signup",
            json={"email": f"c-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD, "name": "Casey"},
        ) as resp:
            assert resp.status == 201, await resp.text()
            customer = await resp.json()
        headers = {"Authorization": f"Bearer {customer['access_token']}"}
        async with http.post(f"{base}/tickets", json={"subject": "Via the proxy"}, headers=headers) as resp:
            assert resp.status == 201, await resp.text()
            ticket = (await resp.json())["ticket"]

        # A socket upgraded through the proxy; two messages posted over REST through it, which
        # round robin sends to one instance each: one of them reaches the socket across the
        # Redis backplane.
        room = await http.ws_connect(f"{base}/tickets/{ticket['id']}/ws", headers=headers)
        try:
            assert (await recv(room))["type"] == "joined"
            for n in (1, 2):
                async with http.post(
                    f"{base}/tickets/{ticket['id']}/messages", json={"body": f"post {n}"}, headers=headers
                ) as resp:
                    assert resp.status == 201, await resp.text()
            bodies = [(await recv_type(room, "message.created"))["message"]["body"] for _ in range(2)]
            assert sorted(bodies) == ["post 1", "post 2"]
        finally:
            await room.close()

    # A socket's access-log line is written when its handler returns, just after the close.
    for _ in range(100):
        logs = [access_lines(server) for server in servers]
        if any(line["path"].endswith("/ws") for lines in logs for line in lines):
            break
        await asyncio.sleep(0.1)
    for lines in logs:
        assert len([line for line in lines if line["path"] == "/healthz"]) == 2, "instances reached alternately"
        posts = [line for line in lines if line["path"].endswith("/messages")]
        assert [line["status"] for line in posts] == [201], "one post on each instance"
    upgrades = [line["status"] for lines in logs for line in lines if line["path"].endswith("/ws")]
    assert upgrades == [101], "the WebSocket upgrade went through the proxy"
    remotes = {line["remote"] for lines in logs for line in lines}
    assert remotes == {"127.0.0.2"}, "the app sees the client's address, not the proxy's or a forged one"
