"""A fake Groq API on loopback that speaks Groq's streaming wire format, scriptable per request.

Used by the tests (through the real `groq` SDK, pointed at it with base_url) and by the benchmarks:

    python -m chatserver.ai.fake_groq --port 8765 --tokens-per-second 750 --ttft-ms 100 --tokens 300

What it sends, as Groq does (POST /openai/v1/chat/completions, stream=true):
- `data: {chat.completion.chunk}` lines, each followed by a blank line; the first chunk carries
  `delta.role` with empty content and `x_groq.id`; content chunks carry `delta.content`; the final
  chunk has an empty delta, `finish_reason`, and `x_groq.usage` (token counts and timings);
  then `data: [DONE]`.
- errors as `{"error": {"message", "type", "code"}}` with the HTTP status; 429 with `retry-after`
  and the `x-ratelimit-*` headers.
- a mid-stream failure as a chunk whose `x_groq.error` names the reason, after which the stream
  simply ends (the SDK raises nothing for it).
It can also stall (send nothing more, keep the socket open) or reset the TCP connection.

Tool calling, as Groq streams it: a script's `tool_calls` go out after its text as
`delta.tool_calls` entries (`index`, `id`, `type: "function"`, `function.name`,
`function.arguments`; in one delta as Groq sends them, or with the arguments split over several
deltas as OpenAI-style streams do), and the final chunk's `finish_reason` is "tool_calls". A
follow-up request must answer each call with a `tool` message whose `tool_call_id` names a call
of an earlier assistant message, or it gets Groq's 400.

`responder` scripts a request from its body (tests, and `--demo`: a model that calls the demo
shop's order action when asked about an order, then describes what it returned).

Content chunks are encoded once per script; each request only builds its first and last chunk and
a per-request prefix, so the fake stays cheap at hundreds of tokens per second and many streams.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import struct
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from ..services.demo_shop import ORDER_QUESTION, describe_order_result
from .stream import split_tokens

COMPLETIONS_PATH = "/openai/v1/chat/completions"
DEFAULT_TEXT = "Thanks for reaching out! I can help with that. Could you tell me a little more about the problem?"
FINGERPRINT = "fp_fake0groq"


@dataclass
class ToolCall:
    """One function call the scripted model makes."""

    name: str
    # The JSON text of the arguments, as the model writes it (it may be invalid: tests send that too).
    arguments: str = "{}"
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")


@dataclass
class Script:
    """What the fake does for one request. Defaults: a quick, successful reply."""

    text: str = DEFAULT_TEXT
    # Explicit pieces to stream (overrides splitting `text`); "" pieces become empty deltas.
    tokens: list[str] | None = None
    ttft_ms: float = 0.0
    # 0 streams every token at once.
    tokens_per_second: float = 0.0
    status: int = 200
    # For status != 200: the error body's message/type/code (Groq-like defaults per status).
    error_message: str | None = None
    error_type: str | None = None
    error_code: str | None = None
    retry_after: str | None = None
    # After this many content tokens: send an x_groq.error chunk and end the stream.
    x_groq_error_after: int | None = None
    x_groq_error: str = "over_capacity"
    # After this many content tokens: stop sending and keep the connection open.
    stall_after: int | None = None
    # After this many content tokens: reset the TCP connection.
    reset_after: int | None = None
    # After this many content tokens: pause until `release` is set, then go on (tests make
    # "mid-stream" deterministic with it).
    hold_after: int | None = None
    release: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)
    finish_reason: str = "stop"
    # Function calls made after the text; the finish_reason becomes "tool_calls".
    tool_calls: list[ToolCall] | None = None
    # Split each call's arguments over this many deltas (0 or 1: one delta per call, as Groq does).
    argument_pieces: int = 0
    # Also send the empty/role-only deltas Groq sends (clients must skip them).
    include_empty_deltas: bool = True
    _encoded: list[bytes] | None = field(default=None, repr=False, compare=False)

    def pieces(self) -> list[str]:
        return list(self.tokens) if self.tokens is not None else split_tokens(self.text)

    def encoded_contents(self) -> list[bytes]:
        """Each piece's JSON string, encoded once."""
        if self._encoded is None:
            self._encoded = [orjson.dumps(p) for p in self.pieces()]
        return self._encoded


_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request", "invalid_request_error", None),
    401: ("Invalid API Key", "invalid_request_error", "invalid_api_key"),
    403: ("Forbidden", "permissions_error", None),
    404: ("The model does not exist or you do not have access to it.", "invalid_request_error", "model_not_found"),
    413: ("Request Entity Too Large", "invalid_request_error", "request_too_large"),
    429: ("Rate limit reached: please try again in 2s.", "tokens", "rate_limit_exceeded"),
    500: ("Internal Server Error", "internal_server_error", None),
    502: ("Bad Gateway", "internal_server_error", None),
    503: ("Service Unavailable", "internal_server_error", "service_unavailable"),
}


@dataclass
class RecordedRequest:
    body: dict[str, Any]
    headers: dict[str, str]
    # How the stream ended: "done", "x_groq_error", "stall", "reset", "error", "client_gone".
    outcome: str = "pending"


# Decides a script from the request body (e.g. answer a `tool` message); None: the default.
Responder = Callable[[dict[str, Any]], "Script | None"]


class FakeGroq:
    """The fake server. `push()` scripts for the next requests; otherwise `responder` (when set)
    picks one from the request, else `default` answers."""

    def __init__(
        self, default: Script | None = None, api_key: str | None = None, responder: Responder | None = None
    ) -> None:
        self.default = default or Script()
        self.api_key = api_key
        self.responder = responder
        self.queue: deque[Script] = deque()
        self.requests: list[RecordedRequest] = []
        self._runner: web.AppRunner | None = None
        self._stalls: set[asyncio.Event] = set()
        self.host = "127.0.0.1"
        self.port = 0
        self._changed = asyncio.Condition()

    # ---- scripting -------------------------------------------------------------------------

    def push(self, *scripts: Script) -> None:
        self.queue.extend(scripts)

    @property
    def base_url(self) -> str:
        """What to give AsyncGroq(base_url=...) / GROQ_BASE_URL."""
        return f"http://{self.host}:{self.port}"

    async def wait_for_requests(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.requests) >= count)

    async def wait_for_outcome(self, index: int, timeout: float = 5.0) -> str:
        """Wait until request `index` has finished streaming; returns how it ended."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(
                lambda: len(self.requests) > index and self.requests[index].outcome != "pending"
            )
        return self.requests[index].outcome

    async def _note(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # ---- lifecycle -------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(COMPLETIONS_PATH, self.handle_completion)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.host, self.port = self._runner.addresses[0][:2]

    async def close(self) -> None:
        for stall in list(self._stalls):
            stall.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---- the endpoint ----------------------------------------------------------------------

    async def handle_completion(self, request: web.Request) -> web.StreamResponse:
        body = await request.json(loads=orjson.loads)
        record = RecordedRequest(body, dict(request.headers))
        self.requests.append(record)
        await self._note()
        script = self.queue.popleft() if self.queue else None
        if script is None and self.responder is not None:
            script = self.responder(body)
        script = script or self.default
        try:
            return await self._respond(request, record, script)
        finally:
            if record.outcome == "pending":
                record.outcome = "client_gone"
            await self._note()

    async def _respond(self, request: web.Request, record: RecordedRequest, script: Script) -> web.StreamResponse:
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            record.outcome = "error"
            return self._error(401, Script(status=401))
        if script.status != 200:
            record.outcome = "error"
            return self._error(script.status, script)
        if not record.body.get("stream"):
            record.outcome = "error"
            return self._error(400, Script(status=400, error_message="This fake only streams: send stream=true"))
        problem = _tool_messages_problem(record.body)
        if problem is not None:
            record.outcome = "error"
            return self._error(400, Script(status=400, error_message=problem))

        started = time.monotonic()
        model = str(record.body.get("model", "unknown"))
        completion_id = f"chatcmpl-{uuid.uuid4()}"
        request_id = f"req_{uuid.uuid4().hex[:26]}"
        created = int(time.time())
        head = (
            b'data: {"id":"'
            + completion_id.encode()
            + b'","object":"chat.completion.chunk","created":'
            + str(created).encode()
            + b',"model":'
            + orjson.dumps(model)
            + b',"system_fingerprint":"'
            + FINGERPRINT.encode()
            + b'","choices":[{"index":0,"delta":'
        )
        content_tail = b'},"logprobs":null,"finish_reason":null}]}\n\n'

        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "x-request-id": request_id,
                "x-ratelimit-limit-requests": "14400",
                "x-ratelimit-remaining-requests": "14399",
                "x-ratelimit-limit-tokens": "6000",
                "x-ratelimit-remaining-tokens": "5900",
            }
        )
        await resp.prepare(request)
        if script.ttft_ms:
            await asyncio.sleep(script.ttft_ms / 1000)

        first: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": FINGERPRINT,
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
            ],
            "x_groq": {"id": request_id},
        }
        contents = script.encoded_contents()
        try:
            await resp.write(b"data: " + orjson.dumps(first) + b"\n\n")
            first_token_at = time.monotonic()
            limits = [n for n in (script.x_groq_error_after, script.stall_after, script.reset_after) if n is not None]
            stop_at = min([len(contents), *limits])
            frames = [head + b'{"content":' + c + content_tail for c in contents[:stop_at]]
            if script.include_empty_deltas and frames:
                # Groq sometimes sends a content-less delta; clients must skip it.
                frames[0] = head + b"{" + content_tail + frames[0]
            hold = script.hold_after if script.hold_after is not None and script.hold_after < stop_at else None
            if hold is None:
                await _pace(resp, frames, script.tokens_per_second)
            else:
                await _pace(resp, frames[:hold], script.tokens_per_second)
                if not await self._hold(request, script.release):
                    record.outcome = "client_gone"
                    return resp
                await _pace(resp, frames[hold:], script.tokens_per_second)
            sent = stop_at

            if script.x_groq_error_after is not None and sent >= script.x_groq_error_after:
                chunk = {**first, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": None}]}
                chunk["x_groq"] = {"id": request_id, "error": script.x_groq_error}
                await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
                record.outcome = "x_groq_error"
                return resp
            if script.stall_after is not None and sent >= script.stall_after:
                record.outcome = "stall"
                await self._stall(request)
                return resp
            if script.reset_after is not None and sent >= script.reset_after:
                record.outcome = "reset"
                _reset(request)
                return resp

            finish_reason = script.finish_reason
            if script.tool_calls:
                for frame in _tool_call_frames(first, script.tool_calls, script.argument_pieces):
                    await resp.write(frame)
                if finish_reason == "stop":
                    finish_reason = "tool_calls"
            completion_tokens = len(contents)
            prompt_tokens = _estimate_prompt_tokens(record.body)
            elapsed = time.monotonic() - started
            completion_time = round(max(time.monotonic() - first_token_at, 1e-6), 9)
            final = {
                **first,
                "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish_reason}],
                "x_groq": {
                    "id": request_id,
                    "usage": {
                        "queue_time": 0.012,
                        "prompt_tokens": prompt_tokens,
                        "prompt_time": round(script.ttft_ms / 1000, 9),
                        "completion_tokens": completion_tokens,
                        "completion_time": completion_time,
                        "total_tokens": prompt_tokens + completion_tokens,
                        "total_time": round(elapsed, 9),
                    },
                },
            }
            await resp.write(b"data: " + orjson.dumps(final) + b"\n\ndata: [DONE]\n\n")
            await resp.write_eof()
            record.outcome = "done"
        except (ConnectionResetError, ConnectionError, RuntimeError):
            # The client went away mid-stream (e.g. the generation was cancelled).
            record.outcome = "client_gone"
        return resp

    async def _hold(self, request: web.Request, release: asyncio.Event) -> bool:
        """Wait for `release`; False when the client went away meanwhile."""
        while not release.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                return False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    await release.wait()
        return True

    async def _stall(self, request: web.Request) -> None:
        """Send nothing more; return once the client gives up (or the fake closes)."""
        stop = asyncio.Event()
        self._stalls.add(stop)
        try:
            while not stop.is_set():
                transport = request.transport
                if transport is None or transport.is_closing():
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.05):
                        await stop.wait()
        finally:
            self._stalls.discard(stop)

    def _error(self, status: int, script: Script) -> web.Response:
        message, type_, code = _ERRORS.get(status, ("Upstream error", "internal_server_error", None))
        error: dict[str, str] = {
            "message": script.error_message or message,
            "type": script.error_type or type_,
        }
        error_code = script.error_code or code
        if error_code:
            error["code"] = error_code
        headers = {"x-request-id": f"req_{uuid.uuid4().hex[:26]}"}
        if status == 429:
            headers["retry-after"] = script.retry_after or "2"
            headers["x-ratelimit-limit-tokens"] = "6000"
            headers["x-ratelimit-remaining-tokens"] = "0"
            headers["x-ratelimit-reset-tokens"] = f"{headers['retry-after']}s"
        elif script.retry_after is not None:
            headers["retry-after"] = script.retry_after
        return web.Response(
            status=status, body=orjson.dumps({"error": error}), headers=headers, content_type="application/json"
        )


async def _pace(resp: web.StreamResponse, frames: list[bytes], tokens_per_second: float) -> None:
    """Write `frames` at `tokens_per_second` (0: all at once), batching whatever is due."""
    if tokens_per_second <= 0:
        await resp.write(b"".join(frames))
        return
    start = time.monotonic()
    sent = 0
    while sent < len(frames):
        # Frame k is due k/tps seconds after the first; send whatever is due.
        now = time.monotonic() - start
        due = min(len(frames), int(now * tokens_per_second) + 1)
        if due <= sent:
            await asyncio.sleep(sent / tokens_per_second - now + 0.0005)
            continue
        await resp.write(b"".join(frames[sent:due]))
        sent = due


def _tool_call_frames(first: dict[str, Any], calls: list[ToolCall], pieces: int) -> list[bytes]:
    """The chunks that stream `calls`: per call, a delta with its id, type, name and (all or the
    first piece of) its arguments, then a delta per further piece of the arguments."""
    frames = []
    for index, call in enumerate(calls):
        n = max(1, pieces)
        size = max(1, -(-len(call.arguments) // n))
        parts = [call.arguments[i : i + size] for i in range(0, len(call.arguments), size)] or [""]
        deltas: list[dict[str, Any]] = [
            {"index": index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": parts[0]}}
        ]
        deltas += [{"index": index, "function": {"arguments": part}} for part in parts[1:]]
        for delta in deltas:
            chunk = {
                **first,
                "choices": [{"index": 0, "delta": {"tool_calls": [delta]}, "logprobs": None, "finish_reason": None}],
            }
            chunk.pop("x_groq", None)
            frames.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
    return frames


def _tool_messages_problem(body: dict[str, Any]) -> str | None:
    """Groq's 400 for a `tool` message that answers no call of an earlier assistant message."""
    called: set[str] = set()
    for message in body.get("messages", []):
        if not isinstance(message, dict):
            continue
        if message.get("role") == "assistant":
            for call in message.get("tool_calls") or []:
                if isinstance(call, dict) and isinstance(call.get("id"), str):
                    called.add(call["id"])
        elif message.get("role") == "tool" and message.get("tool_call_id") not in called:
            return f"'messages': tool_call_id {message.get('tool_call_id')!r} does not match any tool call"
    return None


def _estimate_prompt_tokens(body: dict[str, Any]) -> int:
    chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []) if isinstance(m, dict))
    return max(1, chars // 4)


def _reset(request: web.Request) -> None:
    """Abort the TCP connection with an RST (SO_LINGER 0), as a crashed proxy would."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def filler_text(tokens: int) -> str:
    """`tokens` word-pieces of plausible support prose (for benchmarks)."""
    words = (
        "Thanks",
        "for",
        "your",
        "patience",
        "while",
        "I",
        "look",
        "into",
        "this.",
        "Your",
        "account",
        "settings",
        "are",
        "under",
        "Profile,",
        "and",
        "changes",
        "apply",
        "right",
        "away.",
    )
    return "".join((" " if i else "") + words[i % len(words)] for i in range(tokens))


# ---- the demo model (--demo) ---------------------------------------------------------------------

_TOOL_CHOICE_NONE = "none"


def demo_responder(body: dict[str, Any]) -> Script | None:
    """A scripted model for trying AI actions without a Groq key: a customer message that names
    an order number ("where is order 1042?") calls the offered tool that takes an `order_id`; a
    tool result is answered in words. Anything else gets the default reply."""
    messages = [m for m in body.get("messages", []) if isinstance(m, dict)]
    if not messages:
        return None
    last = messages[-1]
    if last.get("role") == "tool":
        return Script(text=describe_order_result(str(last.get("content") or "")))
    if last.get("role") != "user" or body.get("tool_choice") == _TOOL_CHOICE_NONE:
        return None
    match = ORDER_QUESTION.search(str(last.get("content") or ""))
    for tool in body.get("tools") or []:
        function = tool.get("function", {}) if isinstance(tool, dict) else {}
        properties = (function.get("parameters") or {}).get("properties") or {}
        if match and "order_id" in properties:
            arguments = orjson.dumps({"order_id": match.group(1)}).decode()
            return Script(text="Let me check that order for you.", tool_calls=[ToolCall(function["name"], arguments)])
    return None


async def _serve(args: argparse.Namespace) -> None:
    # The demo answers other questions with a short reply, not benchmark filler.
    text = DEFAULT_TEXT if args.demo else filler_text(args.tokens)
    fake = FakeGroq(
        Script(text=text, ttft_ms=args.ttft_ms, tokens_per_second=args.tokens_per_second),
        responder=demo_responder if args.demo else None,
    )
    fake.default.encoded_contents()  # pre-encode before the first request
    await fake.start(args.host, args.port)
    print(f"fake Groq on {fake.base_url} (GROQ_BASE_URL={fake.base_url})", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chatserver.ai.fake_groq", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--tokens-per-second", type=float, default=750.0, help="0 sends every token at once")
    parser.add_argument("--ttft-ms", type=float, default=100.0, help="time to first token")
    parser.add_argument("--tokens", type=int, default=300, help="tokens per reply")
    parser.add_argument(
        "--demo", action="store_true", help="act as a model that calls an order-lookup action (docs/ai.md, Acting)"
    )
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
