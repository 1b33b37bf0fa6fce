"""Client addresses behind a reverse proxy (TRUSTED_PROXIES), attacked: a forged X-Forwarded-For
from anyone but a trusted proxy changes nothing; from a trusted proxy, the right-most untrusted
address is the client, for the per-address throttles and the access log alike."""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from chatserver.app import create_app
from chatserver.middleware import AccessLogger, client_address
from chatserver.settings import ConfigError, Settings, load_settings

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
