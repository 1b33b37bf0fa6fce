"""The one AsyncGroq client per app, and how Groq failures map to our error codes.

The SDK makes the request, authenticates, retries (429 honouring retry-after, 408/409/5xx and
connection errors, with backoff) and maps HTTP errors to exceptions; `GenerationError` is what the
rest of the AI layer sees: a stable code, a message for the room, whether a retry can help, and
the detail. The message is a fixed sentence per code, safe for customers; what Groq said (its
error text can name the organisation, the model and its limits) goes only into `detail`, which
reaches agents (the staff-only ai.failure_detail frame) and the log, never a customer.

The client runs on the SDK's aiohttp backend (`groq[aiohttp]`, `DefaultAioHttpClient`) rather
than httpx's default httpcore/anyio transport: a reply is hundreds of small network reads, and
httpcore's per-read cancel scopes and state machine cost more CPU than everything else we do per
token (docs/performance.md measures both).
"""

from __future__ import annotations

import aiohttp
import httpx
import orjson
from groq import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AsyncGroq,
    AuthenticationError,
    DefaultAioHttpClient,
    PermissionDeniedError,
    RateLimitError,
)

from ..settings import Settings


class GenerationError(Exception):
    """A generation failed. `message` is for everyone in the room, customers included: never
    anything the AI service said. `detail` (agents and logs only) is. `retryable`: asking again
    later may work (rate limit, outage)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.detail = detail


def create_groq_client(settings: Settings) -> AsyncGroq | None:
    """None without GROQ_API_KEY: the offline responder answers instead."""
    if not settings.groq_api_key:
        return None
    return groq_client(
        api_key=settings.groq_api_key,
        base_url=settings.groq_base_url,
        timeout=settings.groq_timeout,
        max_retries=settings.groq_max_retries,
    )


def groq_client(*, api_key: str, base_url: str | None, timeout: float, max_retries: int) -> AsyncGroq:
    """An AsyncGroq on the aiohttp backend. `timeout` applies to connecting and to every read:
    a stream that stalls longer fails."""
    return AsyncGroq(
        api_key=api_key,
        base_url=base_url,
        timeout=timeout,
        max_retries=max_retries,
        http_client=DefaultAioHttpClient(),
    )


def _retry_after(headers: httpx.Headers) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            return max(0.0, float(raw) * scale)
        except ValueError:
            continue
    return None


STREAM_STOPPED = "The AI service stopped before the reply was finished; try again."
# Upstream text kept in a detail: enough to diagnose, bounded.
DETAIL_CHARS = 500


def _upstream_message(err: APIStatusError) -> str:
    body = err.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])[:DETAIL_CHARS]
    return err.message[:DETAIL_CHARS]


def _status_detail(err: APIStatusError) -> str:
    return f"HTTP {err.status_code}: {_upstream_message(err)}"


def _exception_detail(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:DETAIL_CHARS]


def _transport_cause(exc: BaseException) -> GenerationError | None:
    """Classify by the aiohttp error underneath, when there is one: the aiohttp backend reports
    every `ClientConnectionError` (a refused connection, a peer that hung up) to httpx, and so to
    the SDK, as a connect *timeout*, which would tell the room the wrong story."""
    seen: BaseException | None = exc
    for _ in range(5):  # SDK error -> httpx error -> aiohttp error; bounded, causes can loop
        if seen is None:
            return None
        if isinstance(seen, aiohttp.ServerTimeoutError):
            return GenerationError(
                "ai_timeout",
                "The AI service took too long to answer; try again.",
                retryable=True,
                detail=_exception_detail(seen),
            )
        if isinstance(seen, aiohttp.ClientError):
            return GenerationError(
                "ai_connection_lost",
                "The connection to the AI service was lost; try again.",
                retryable=True,
                detail=_exception_detail(seen),
            )
        seen = seen.__cause__ or seen.__context__
    return None


def map_error(exc: BaseException) -> GenerationError:
    """Turn whatever the SDK or the transport raised into a GenerationError."""
    if isinstance(exc, GenerationError):
        return exc
    if not isinstance(exc, APIStatusError):
        transport = _transport_cause(exc)
        if transport is not None:
            return transport
    if isinstance(exc, RateLimitError):
        return GenerationError(
            "rate_limited",
            "The AI service is busy (rate limited); try again shortly.",
            retryable=True,
            retry_after=_retry_after(exc.response.headers),
            detail=_status_detail(exc),
        )
    if isinstance(exc, AuthenticationError | PermissionDeniedError):
        return GenerationError(
            "ai_auth_failed",
            "The AI service refused our credentials; an agent will follow up.",
            retryable=False,
            detail=_status_detail(exc),
        )
    if isinstance(exc, APIStatusError):
        if exc.status_code >= 500 or exc.status_code in (408, 409):
            return GenerationError(
                "ai_unavailable",
                "The AI service had a problem; try again.",
                retryable=True,
                retry_after=_retry_after(exc.response.headers),
                detail=_status_detail(exc),
            )
        return GenerationError(
            "ai_request_rejected",
            "The AI service could not answer this request; an agent will follow up.",
            retryable=False,
            detail=_status_detail(exc),
        )
    detail = _exception_detail(exc)
    if isinstance(exc, APITimeoutError | httpx.TimeoutException):
        return GenerationError(
            "ai_timeout", "The AI service took too long to answer; try again.", retryable=True, detail=detail
        )
    if isinstance(exc, APIConnectionError | httpx.TransportError | OSError):
        return GenerationError(
            "ai_connection_lost", "The connection to the AI service was lost; try again.", retryable=True, detail=detail
        )
    if isinstance(exc, APIError):
        # An `error` object inside the stream (the SDK raises plain APIError for it).
        return GenerationError("ai_stream_error", STREAM_STOPPED, retryable=True, detail=detail)
    if isinstance(exc, orjson.JSONDecodeError | ValueError | KeyError | TypeError):
        return GenerationError(
            "ai_bad_response", "The AI service sent a malformed stream; try again.", retryable=True, detail=detail
        )
    return GenerationError("ai_error", "The AI reply failed; try again.", retryable=True, detail=detail)
