"""The one AsyncGroq client per app, and how Groq failures map to our error codes.

The SDK makes the request, authenticates, retries (429 honouring retry-after, 408/409/5xx and
connection errors, with backoff) and maps HTTP errors to exceptions; `GenerationError` is what the
rest of the AI layer sees: a stable code, a message for the room, whether a retry can help.

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
    """A generation failed. `retryable`: asking again later may work (rate limit, outage)."""

    def __init__(self, code: str, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


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


def _upstream_message(err: APIStatusError) -> str:
    body = err.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])[:300]
    return err.message[:300]


def _transport_cause(exc: BaseException) -> GenerationError | None:
    """Classify by the aiohttp error underneath, when there is one: the aiohttp backend reports
    every `ClientConnectionError` (a refused connection, a peer that hung up) to httpx, and so to
    the SDK, as a connect *timeout*, which would tell the room the wrong story."""
    seen: BaseException | None = exc
    for _ in range(5):  # SDK error -> httpx error -> aiohttp error; bounded, causes can loop
        if seen is None:
            return None
        if isinstance(seen, aiohttp.ServerTimeoutError):
            return GenerationError("ai_timeout", "The AI service took too long to answer; try again.", retryable=True)
        if isinstance(seen, aiohttp.ClientError):
            return GenerationError(
                "ai_connection_lost", "The connection to the AI service was lost; try again.", retryable=True
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
        )
    if isinstance(exc, AuthenticationError | PermissionDeniedError):
        return GenerationError(
            "ai_auth_failed", "The AI service refused our credentials; an agent will follow up.", retryable=False
        )
    if isinstance(exc, APIStatusError):
        if exc.status_code >= 500 or exc.status_code in (408, 409):
            return GenerationError(
                "ai_unavailable",
                f"The AI service had a problem (HTTP {exc.status_code}); try again.",
                retryable=True,
                retry_after=_retry_after(exc.response.headers),
            )
        return GenerationError(
            "ai_request_rejected",
            f"The AI service rejected the request: {_upstream_message(exc)}",
            retryable=False,
        )
    if isinstance(exc, APITimeoutError | httpx.TimeoutException):
        return GenerationError("ai_timeout", "The AI service took too long to answer; try again.", retryable=True)
    if isinstance(exc, APIConnectionError | httpx.TransportError | OSError):
        return GenerationError(
            "ai_connection_lost", "The connection to the AI service was lost; try again.", retryable=True
        )
    if isinstance(exc, APIError):
        # An `error` object inside the stream (the SDK raises plain APIError for it).
        return GenerationError("ai_stream_error", f"The AI service stopped: {exc.message[:300]}", retryable=True)
    if isinstance(exc, orjson.JSONDecodeError | ValueError | KeyError | TypeError):
        return GenerationError("ai_bad_response", "The AI service sent a malformed stream; try again.", retryable=True)
    return GenerationError("ai_error", f"The AI reply failed ({type(exc).__name__}).", retryable=True)
