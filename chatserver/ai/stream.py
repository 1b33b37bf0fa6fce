"""The hot path: read a Groq chat stream and coalesce its text into few, ordered deltas.

Reading through the SDK's parsed chunk objects builds pydantic models per chunk (~140 µs CPU
each). Here the SDK still sends the request (base URL, auth, retries with backoff, HTTP errors
raised as its exceptions) through its generic `post`, on its aiohttp backend, but:
- the body is encoded once with orjson, instead of `chat.completions.create` walking the whole
  prompt through its type-driven transform on every request (~2.5 ms of CPU for a 21-message prompt);
- the SSE bytes are split and parsed with orjson into plain dicts, no objects kept.
About 20 µs of CPU per chunk in all (docs/performance.md). `DeltaBatcher` then turns hundreds of
tokens per second into a few tens of frames per second per stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from groq import AsyncGroq

from .groq_client import DETAIL_CHARS, STREAM_STOPPED, GenerationError, map_error

# The path `chat.completions.create` posts to, relative to the client's base URL.
CHAT_COMPLETIONS_PATH = "/openai/v1/chat/completions"

_TOKEN_RE = re.compile(r"\s*\S+|\s+")

# `post(stream=True)` without a stream class: typed as a plain bool, the overload that allows it.
_STREAM: bool = True

# finish_reason values that still leave a usable reply.
_USABLE_FINISH = ("stop", "length", "tool_calls", "function_call")


def split_tokens(text: str) -> list[str]:
    """Word-ish pieces with their leading space, roughly what a model streams."""
    return _TOKEN_RE.findall(text)


@dataclass
class StreamOutcome:
    """What the stream said about itself besides the text."""

    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    groq_request_id: str | None = None
    model: str | None = None
    chunks: int = 0
    # Function calls the model made ({"id", "name", "arguments"}: the arguments' JSON text as
    # streamed, pieced together by index).
    tool_calls: list[dict[str, str]] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        """The parts stored in the reply message's metadata."""
        meta: dict[str, Any] = {"model": self.model, "finish_reason": self.finish_reason}
        if self.groq_request_id:
            meta["groq_request_id"] = self.groq_request_id
        if self.usage:
            meta["usage"] = self.usage
        return meta


class _SseParser:
    """Splits SSE bytes into events and applies each `data:` payload."""

    __slots__ = ("buffer", "done", "event", "on_text", "outcome")

    def __init__(self, on_text: Callable[[str], None], outcome: StreamOutcome) -> None:
        self.on_text = on_text
        self.outcome = outcome
        self.buffer = b""
        self.event: bytes | None = None
        self.done = False

    def feed(self, data: bytes) -> None:
        if self.buffer:
            data = self.buffer + data
        lines = data.split(b"\n")
        self.buffer = lines.pop()
        for line in lines:
            self.line(line)
            if self.done:
                return

    def line(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            self.event = None  # a blank line ends an event
            return
        if line.startswith(b"data:"):
            payload = line[6:] if line[5:6] == b" " else line[5:]
            if payload == b"[DONE]":
                self.done = True
                return
            self.chunk(orjson.loads(payload))
        elif line.startswith(b"event:"):
            self.event = line[6:].strip()
        # Comments (":...") and other fields (id:, retry:) carry nothing for us.

    def chunk(self, data: dict[str, Any]) -> None:
        outcome = self.outcome
        outcome.chunks += 1
        error = data.get("error")
        if error or self.event == b"error":
            message = error.get("message") if isinstance(error, dict) else None
            raise GenerationError(
                "ai_stream_error",
                STREAM_STOPPED,
                retryable=True,
                detail=f"error in the stream: {str(message or error or 'stream error')[:DETAIL_CHARS]}",
            )
        choices = data.get("choices")
        if choices:
            choice = choices[0]
            delta = choice.get("delta")
            if delta:
                content = delta.get("content")
                if content:  # Groq sends "" and content-less deltas; skip them
                    self.on_text(content)
                calls = delta.get("tool_calls")
                if calls:
                    self.tool_call_deltas(calls)
            finish = choice.get("finish_reason")
            if finish:
                outcome.finish_reason = finish
        if outcome.model is None and data.get("model"):
            outcome.model = data["model"]
        x_groq = data.get("x_groq")
        if x_groq:
            if x_groq.get("id"):
                outcome.groq_request_id = x_groq["id"]
            if x_groq.get("usage"):
                outcome.usage = x_groq["usage"]
            if x_groq.get("error"):
                # Groq ends the stream early with a reason here, and the SDK raises nothing.
                raise GenerationError(
                    "ai_stream_error",
                    STREAM_STOPPED,
                    retryable=True,
                    detail=f"x_groq.error: {str(x_groq['error'])[:DETAIL_CHARS]}",
                )
        if data.get("usage"):  # OpenAI-style stream_options.include_usage, if ever sent
            outcome.usage = data["usage"]

    def tool_call_deltas(self, deltas: list[Any]) -> None:
        """Piece function calls together: the first delta of a call names it (id, name), later
        ones with the same index append to its arguments (Groq sends one delta per call)."""
        calls = self.outcome.tool_calls
        for delta in deltas:
            if not isinstance(delta, dict):
                continue
            index = delta.get("index", len(calls))
            if not isinstance(index, int) or not 0 <= index <= len(calls):
                continue
            if index == len(calls):
                calls.append({"id": "", "name": "", "arguments": ""})
            call = calls[index]
            if isinstance(delta.get("id"), str):
                call["id"] = delta["id"]
            function = delta.get("function")
            if isinstance(function, dict):
                if isinstance(function.get("name"), str):
                    call["name"] = function["name"]
                if isinstance(function.get("arguments"), str):
                    call["arguments"] += function["arguments"]


def chat_request_body(
    *,
    model: str,
    messages: list[dict[str, Any]],
    max_tokens: int,
    temperature: float,
    tools: list[dict[str, Any]] | None = None,
    tool_choice: str = "auto",
) -> bytes:
    """The JSON body `chat.completions.create(..., stream=True)` would send for these arguments."""
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_completion_tokens": max_tokens,
        "temperature": temperature,
        "stream": True,
    }
    if tools:
        body["tools"] = tools
        body["tool_choice"] = tool_choice
    return orjson.dumps(body)


async def stream_chat(
    client: AsyncGroq,
    *,
    model: str,
    messages: list[dict[str, Any]],
    max_tokens: int,
    temperature: float,
    on_text: Callable[[str], None],
    tools: list[dict[str, Any]] | None = None,
    tool_choice: str = "auto",
    path: str = CHAT_COMPLETIONS_PATH,
) -> StreamOutcome:
    """Stream one completion, calling `on_text` for each non-empty piece. Raises GenerationError
    for every failure (text already passed to `on_text` stays the caller's to keep). `path` is
    joined to the client's base URL: Groq's by default, "/chat/completions" for a server that
    follows OpenAI's layout (a base URL ending in /v1; `eval-ai --base-url`)."""
    outcome = StreamOutcome(model=None)
    parser = _SseParser(on_text, outcome)
    body = chat_request_body(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        temperature=temperature,
        tools=tools,
        tool_choice=tool_choice,
    )
    try:
        # cast_to=httpx.Response: the SDK hands back the open response once the status is OK
        # (error statuses are retried or raised as its exceptions before that).
        response = await client.post(
            path,
            cast_to=httpx.Response,
            content=body,
            options={"headers": {"Accept": "text/event-stream"}},
            stream=_STREAM,
        )
        try:
            async for data in response.aiter_bytes():
                parser.feed(data)
                if parser.done:
                    break
            else:
                if parser.buffer:
                    parser.line(parser.buffer)
        finally:
            await response.aclose()
    except GenerationError:
        raise
    except Exception as exc:
        raise map_error(exc) from exc
    outcome.model = outcome.model or model
    if outcome.finish_reason is None:
        raise GenerationError(
            "ai_incomplete", "The AI reply was cut off before it finished; try again.", retryable=True
        )
    if outcome.finish_reason == "content_filter":
        raise GenerationError(
            "ai_content_filtered", "The AI service withheld this reply (content filter).", retryable=False
        )
    if outcome.finish_reason not in _USABLE_FINISH:
        raise GenerationError(
            "ai_incomplete",
            "The AI reply ended unexpectedly; try again.",
            retryable=True,
            detail=f"finish_reason: {str(outcome.finish_reason)[:DETAIL_CHARS]}",
        )
    return outcome


class DeltaBatcher:
    """Coalesces text pieces into deltas: a delta goes out `window` seconds after the first piece
    it holds, or as soon as it holds `max_chars`. The reply's first text goes out at once: the
    time to the first visible token is what a customer waits for, and one extra frame per reply
    costs nothing. One task sends them, so they stay in order; each carries the character offset
    of its text in the whole reply."""

    def __init__(self, send: Callable[[int, str], Awaitable[None]], *, window: float, max_chars: int) -> None:
        self._send = send
        self._window = window
        self._max_chars = max_chars
        self._parts: list[str] = []
        self._size = 0
        self.sent_chars = 0
        self._pending = asyncio.Event()
        self._full = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ai-delta-batcher")

    def add(self, text: str) -> None:
        self._parts.append(text)
        self._size += len(text)
        if not self._pending.is_set():
            self._pending.set()
        if self._size >= self._max_chars:
            self._full.set()

    async def _run(self) -> None:
        while True:
            await self._pending.wait()
            if not self._closing and self._size < self._max_chars and self.sent_chars > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._window):
                        await self._full.wait()
            text = "".join(self._parts)
            self._parts.clear()
            self._size = 0
            self._pending.clear()
            self._full.clear()
            if text:
                offset = self.sent_chars
                self.sent_chars += len(text)
                await self._send(offset, text)
            if self._closing and not self._parts:
                return

    async def finish(self) -> None:
        """Send what is buffered, then stop."""
        self._closing = True
        self._pending.set()
        self._full.set()
        if self._task is not None:
            await self._task

    async def abort(self) -> None:
        """Stop without sending what is buffered."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            # asyncio.wait, not `await task`: our own cancellation must still propagate.
            await asyncio.wait({self._task})
