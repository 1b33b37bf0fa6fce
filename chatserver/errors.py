"""ApiError and the one JSON error shape every failure leaves the server in:
``{"error": {"code": ..., "message": ..., "details"?: ...}}``.

The request middleware (middleware.py) turns whatever a handler raises into that shape with the
three *_response functions at the end.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error meant for the client: an HTTP status, a stable code, a human message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


def bad_request(message: str, details: Any = None) -> ApiError:
    return ApiError(400, "bad_request", message, details=details)


def validation_error(message: str, details: Any = None) -> ApiError:
    return ApiError(422, "validation_error", message, details=details)


def unauthorized(message: str = "Authentication required") -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def account_gone() -> ApiError:
    """A validly signed token for an account that has since been deleted."""
    return unauthorized("Account no longer exists")


def forbidden(message: str = "You may not do that") -> ApiError:
    return ApiError(403, "forbidden", message)


def not_found(what: str = "Resource") -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


def too_many_requests(message: str, retry_after: float) -> ApiError:
    seconds = max(1, int(retry_after + 0.999))
    return ApiError(
        429,
        "rate_limited",
        message,
        details={"retry_after": seconds},
        headers={"Retry-After": str(seconds)},
    )


# What clients are told to wait before retrying during a database outage: a PostgreSQL restart
# takes a few seconds, and the pool reconnects on the first request after it.
DATABASE_RETRY_AFTER = 2


def database_unavailable() -> ApiError:
    """The database cannot be reached right now (db/pool.py's is_unavailable says which errors)."""
    return ApiError(
        503,
        "database_unavailable",
        "The database is unavailable; retry after retry_after seconds",
        details={"retry_after": DATABASE_RETRY_AFTER},
        headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
    )


# aiohttp raises its own HTTP exceptions for routing and body limits; give them our codes.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def error_response(err: ApiError) -> web.Response:
    return web.Response(
        body=orjson.dumps(err.body()), status=err.status, headers=err.headers, content_type="application/json"
    )


def http_error_response(request: web.Request, exc: web.HTTPException) -> web.Response:
    """An aiohttp HTTP error (no route, wrong method, body too large, ...) in our shape. Only
    Allow and Retry-After are kept from its headers: the rest describe aiohttp's text body."""
    code = _HTTP_CODES.get(exc.status, "http_error")
    message = exc.reason
    if exc.status == 413:
        message = "Request body is too large"
    elif exc.status == 404:
        message = "No such endpoint"
    elif exc.status == 405:
        message = f"Method {request.method} is not allowed here"
    headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
    return error_response(ApiError(exc.status, code, message, headers=headers))


def unhandled_error_response(request: web.Request) -> web.Response:
    """Call it in the except block of an unexpected exception: the stack trace goes to the log
    (inside the request's context, so with its id), the client gets a 500 without any detail."""
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(ApiError(500, "internal_error", "Internal server error"))
