"""Request ids and the access log.

Every request gets an id: a sane incoming X-Request-ID is kept (so a proxy's id follows the
request through), anything else is replaced by a fresh one. The id is put in logs.REQUEST_ID
for the duration of the handler (every log line carries it), stored on the request, and echoed
in the X-Request-ID response header.

The access log replaces aiohttp's default, which logs the full request line and so every token
or password that a client puts in a query string: ours logs the path without the query.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from .keys import REQUEST_ID_KEY
from .logs import REQUEST_ID

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUEST_ID_HEADER = "X-Request-ID"
# What we accept from outside: UUIDs, hex, base64 and the like. No spaces or control
# characters, so an id cannot forge log lines or headers; bounded so it cannot bloat them.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")


def new_request_id() -> str:
    return uuid.uuid4().hex


def accept_request_id(incoming: str | None) -> str:
    """The incoming id when it is sane, else a new one."""
    if incoming and _SANE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return new_request_id()


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost middleware: everything logged while handling the request carries its id."""
    request_id = accept_request_id(request.headers.get(REQUEST_ID_HEADER))
    request[REQUEST_ID_KEY] = request_id
    token = REQUEST_ID.set(request_id)
    try:
        return await handler(request)
    finally:
        REQUEST_ID.reset(token)


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
        request_id = request.get(REQUEST_ID_KEY) or "-"
        # raw_path: still percent-encoded, so a %0A in the path cannot start a fake log line.
        path = request.rel_url.raw_path
        duration_ms = round(time * 1000, 2)
        self.logger.info(
            "%s %s %s %.1fms",
            request.method,
            path,
            response.status,
            duration_ms,
            extra={
                "request_id": request_id,
                "fields": {
                    "method": request.method,
                    "path": path,
                    "status": response.status,
                    "duration_ms": duration_ms,
                    "remote": request.remote,
                },
            },
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
