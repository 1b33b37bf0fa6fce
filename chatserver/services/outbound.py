"""Outgoing requests to addresses an admin typed in (webhooks, AI actions): the SSRF guard.

Only http(s); loopback, private, link-local, multicast and reserved addresses are refused unless
an operator allowed their network (WEBHOOK_ALLOW_PRIVATE_NETWORKS, ACTIONS_ALLOW_PRIVATE_NETWORKS).
Names are checked as they are resolved (GuardedResolver), so the address checked is the one
connected to. Callers never follow redirects (a redirect could point anywhere).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver


class TargetRefused(Exception):
    """The target is not one we may reach (scheme, or an address the SSRF guard refuses)."""


@dataclass(frozen=True)
class TargetGuard:
    """Which addresses outgoing requests (webhooks, AI actions) may reach: public ones,
    plus the networks an operator allowed (WEBHOOK_ALLOW_PRIVATE_NETWORKS, ACTIONS_ALLOW_PRIVATE_NETWORKS)."""

    allowed: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str]) -> TargetGuard:
        return cls(tuple(ipaddress.ip_network(c, strict=False) for c in cidrs))

    def check_address(self, address: str) -> None:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.allowed):
            return
        if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_link_local or ip.is_loopback:
            raise TargetRefused(f"{ip} is a private, loopback or link-local address")

    def check_url(self, url: str) -> None:
        """Scheme and host; an address literal is checked here (aiohttp resolves nothing for it),
        a name when it is resolved (GuardedResolver), so the address checked is the one used."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TargetRefused("only http(s) URLs with a host are allowed")
        try:
            ipaddress.ip_address(parts.hostname)
        except ValueError:
            return  # a name
        self.check_address(parts.hostname)


class AddressRefused(OSError):
    """Raised by GuardedResolver when every address of a name is refused."""


class GuardedResolver(AbstractResolver):
    """Resolves names and drops the addresses the guard refuses; with none left, the connection
    fails. The connector connects to what this returns, so a name cannot be re-resolved to a
    private address between the check and the connection (DNS rebinding)."""

    def __init__(self, guard: TargetGuard) -> None:
        self.guard = guard
        self.inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        kept = []
        refusal = None
        for result in results:
            try:
                self.guard.check_address(result["host"])
            except TargetRefused as exc:
                refusal = exc
                continue
            kept.append(result)
        if not kept:
            if refusal is not None:
                raise AddressRefused(f"refused: {host}: {refusal}")
            raise OSError(f"{host} has no address")
        return kept

    async def close(self) -> None:
        await self.inner.close()


def guarded_connector(guard: TargetGuard, *, limit: int = 100) -> aiohttp.TCPConnector:
    """A connector whose every connection goes only where `guard` allows."""
    return aiohttp.TCPConnector(resolver=GuardedResolver(guard), limit=limit)
