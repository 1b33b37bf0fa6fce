"""The fake Groq server (chatserver.ai.fake_groq) in its own process, noting when it sends each
token, so that the AI scenarios measure lag from the fake emitting a token to a participant
receiving it, instead of inferring it from the fake's nominal schedule.

    python -m bench.fake_groq_timed --port P [--tokens-per-second 750] [--ttft-ms 100] [--tokens 300]

Every customer message a benchmark sends carries a marker (`bench-mark:<id>`); the fake finds the
newest marker in each request's prompt and records, under it, when the request arrived and the
monotonic time and token count of every write of content chunks. `GET /bench/timings` returns
and clears them. Timestamps are `time.monotonic_ns()`, the clock the clients use.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import re
import time
from typing import Any

import orjson
from aiohttp import web

from chatserver.ai.fake_groq import FakeGroq, Script, filler_text

MARKER = re.compile(rb"bench-mark:([A-Za-z0-9_.-]+)")
# The fake sends each content token as one chunk that starts like this.
CONTENT_CHUNK = b'"delta":{"content":'

_current: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("bench_stream", default=None)
_original_write = web.StreamResponse.write


async def _timed_write(self: web.StreamResponse, data: bytes | bytearray | memoryview) -> None:
    entry = _current.get()
    await _original_write(self, data)
    if entry is not None:
        tokens = bytes(data).count(CONTENT_CHUNK)
        if tokens:
            entry["writes"].append((time.monotonic_ns(), tokens))


class TimedFakeGroq(FakeGroq):
    def __init__(self, default: Script) -> None:
        super().__init__(default)
        self.timings: dict[str, dict[str, Any]] = {}

    def make_app(self) -> web.Application:
        app = super().make_app()
        app.router.add_get("/bench/timings", self.handle_timings)
        return app

    async def handle_completion(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic_ns()
        raw = await request.read()  # aiohttp keeps the body: the fake reads it again
        markers = MARKER.findall(raw)
        entry: dict[str, Any] = {"arrived": arrived, "writes": []}
        if markers:
            self.timings[markers[-1].decode()] = entry
        token = _current.set(entry)
        try:
            return await super().handle_completion(request)
        finally:
            _current.reset(token)
            # Keep the fake's own request log from growing through a long benchmark.
            self.requests.clear()

    async def handle_timings(self, request: web.Request) -> web.Response:
        data, self.timings = self.timings, {}
        return web.Response(body=orjson.dumps(data), content_type="application/json")


async def _serve(args: argparse.Namespace) -> None:
    web.StreamResponse.write = _timed_write  # type: ignore[method-assign]
    fake = TimedFakeGroq(
        Script(text=filler_text(args.tokens), ttft_ms=args.ttft_ms, tokens_per_second=args.tokens_per_second)
    )
    fake.default.encoded_contents()
    await fake.start("127.0.0.1", args.port)
    print(f"fake Groq on {fake.base_url}", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens-per-second", type=float, default=750.0)
    parser.add_argument("--ttft-ms", type=float, default=100.0)
    parser.add_argument("--tokens", type=int, default=300)
    args = parser.parse_args(argv)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
