"""The one middleware every request passes through, and the access log.

request_middleware does, in this order, what used to be three middlewares:

- Client address: when the TCP peer is one of TRUSTED_PROXIES, the client is the right-most
  address of X-Forwarded-For that is not a trusted proxy (and the scheme is the proxy's
  X-Forwarded-Proto); the handler gets a clone of the request whose request.remote (and
  request.scheme) say so, so per-address throttles and the access log see the real client.
- Request id: a sane incoming X-Request-ID is kept (so a proxy's id follows the request through),
  anything else is replaced by a fresh one. The id is put in logs.REQUEST_ID for the duration of the
  handler (every log line carries it), stored on the request, and echoed in the X-Request-ID
  response header (by echo_request_id, an on_response_prepare hook).
- Errors: whatever the handler raises leaves as the one JSON error shape (errors.py); the database
  being unreachable is a 503 database_unavailable with Retry-After (logged once per outage);
  other unexpected exceptions are logged with their stack trace and answered with a bare 500.
- Metrics: count and latency of every request, with the status the client really gets.

One middleware instead of three: each is a coroutine frame per request, and an open WebSocket keeps
the frames of every middleware it passed through alive for its whole life (docs/performance.md).

The access log replaces aiohttp's default, which logs the full request line and so every token
or password that a client puts in a query string: ours logs the path without the query.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import re
import time
from collections.abc import Iterable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler, Middleware

from .db.pool import is_unavailable
from .errors import ApiError, database_unavailable, error_response, http_error_response, unhandled_error_response
from .keys import CLIENT_ADDRESS_KEY, DB_HEALTH, REQUEST_ID_KEY
from .logs import REQUEST_ID
from .metrics import CLIENT_CLOSED, HttpMetrics
from .settings import IPNetwork

REQUEST_ID_HEADER = "X-Request-ID"
# What we accept from outside: UUIDs, hex, base64 and the like. No spaces or control
# characters, so an id cannot forge log lines or headers; bounded so it cannot bloat them.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")


def new_request_id() -> str:
    # 32 random hex digits, the shape uuid4().hex had, at a quarter of its cost (0.5 vs 2.1 µs).
    return os.urandom(16).hex()


def accept_request_id(incoming: str | None) -> str:
    """The incoming id when it is sane, else a new one."""
    if incoming and _SANE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return new_request_id()


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; TRUSTED_PROXIES names them as IPv4.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: tuple[IPNetwork, ...]) -> bool:
    return any(address in network for network in trusted)


def client_address(peer: str | None, forwarded_for: Iterable[str], trusted: tuple[IPNetwork, ...]) -> str | None:
    """The client's address. The TCP peer, unless it is a trusted proxy: then X-Forwarded-For
    (every header line, in order) is read from the right, each trusted proxy having appended the
    address it got the request from, and the first address that is not a trusted proxy is the
    client. What lies left of it was written by the client and is never believed. An entry that
    is not an address ends the walk: the last address believed is used."""
    peer_address = _address(peer) if peer else None
    if peer_address is None or not _trusted(peer_address, trusted):
        return peer
    client = str(peer_address)
    hops = [hop for line in forwarded_for for hop in line.split(",")]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break
        client = str(address)
        if not _trusted(address, trusted):
            break
    return client


def behind_proxy(request: web.Request, trusted: tuple[IPNetwork, ...]) -> web.Request:
    """The request as the client made it, when it came through a trusted proxy; else itself."""
    peer = _address(request.remote or "")
    if peer is None or not _trusted(peer, trusted):
        # Not through a proxy of ours: its forwarding headers are the client's own words.
        return request
    forwarded_for = request.headers.getall("X-Forwarded-For", ())
    client = client_address(request.remote, forwarded_for, trusted) or str(peer)
    request[CLIENT_ADDRESS_KEY] = client
    # The nearest proxy's view of the scheme (it terminates TLS): the right-most value.
    proto = request.headers.get("X-Forwarded-Proto", "").rsplit(",", 1)[-1].strip().lower()
    return request.clone(remote=client, scheme=proto if proto in ("http", "https") else request.scheme)


def request_middleware(metrics: HttpMetrics, trusted_proxies: tuple[IPNetwork, ...] = ()) -> Middleware:
    """Our outermost middleware; see the module docstring."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = accept_request_id(request.headers.get(REQUEST_ID_HEADER))
        # On the request as it arrived (the access log gets that one), before a clone copies it.
        request[REQUEST_ID_KEY] = request_id
        if trusted_proxies:
            request = behind_proxy(request, trusted_proxies)
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        # What a BaseException other than cancellation (say KeyboardInterrupt) is counted as.
        status = 500
        try:
            try:
                response = await handler(request)
            except ApiError as err:
                response = error_response(err)
            except web.HTTPException as exc:
                if exc.status < 400:
                    # A redirect aiohttp raised: not an error, aiohttp sends it as it is.
                    status = exc.status
                    raise
                response = http_error_response(request, exc)
            except asyncio.CancelledError:
                status = CLIENT_CLOSED
                raise
            except Exception as exc:  # noqa: BLE001 - logged with its stack trace by unhandled_error_response
                if is_unavailable(exc):
                    # One warning per outage (DatabaseHealth), not a traceback per request.
                    request.app[DB_HEALTH].unavailable(exc)
                    response = error_response(database_unavailable())
                else:
                    response = unhandled_error_response(request)
            status = response.status
            return response
        finally:
            metrics.observe(request, status, time.perf_counter() - started)
            REQUEST_ID.reset(token)

    return middleware


async def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare hook: runs for every response, WebSocket handshakes included,
    which a middleware could not do once a handler has prepared its response itself."""
    request_id = request.get(REQUEST_ID_KEY)
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, path (no query string), status, duration, request id.

    Use it with web.run_app(..., access_log_class=AccessLogger); in tests, with
    TestServer(app).start_server(access_log_class=AccessLogger).
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        request_id = request.get(REQUEST_ID_KEY) or "-"
        # raw_path: still percent-encoded, so a %0A in the path cannot start a fake log line.
        path = request.rel_url.raw_path
        duration_ms = round(time * 1000, 2)
        extra = {
            "request_id": request_id,
            "fields": {
                "method": request.method,
                "path": path,
                "status": response.status,
                "duration_ms": duration_ms,
                "remote": request.get(CLIENT_ADDRESS_KEY) or request.remote,
            },
        }
        # logger.info() would first walk the stack to find the caller's file and line, which no
        # format of ours prints: a fifth of the cost of this line, paid on every request.
        args = (request.method, path, response.status, duration_ms)
        logger.handle(
            logger.makeRecord(logger.name, logging.INFO, __file__, 0, "%s %s %s %.1fms", args, None, extra=extra)
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
