"""The fake Groq server speaks Groq's wire format (the real SDK parses it), and the hot-path reader
turns every way a Groq stream can end into text plus an outcome or a GenerationError."""

from __future__ import annotations

import asyncio

import groq
import pytest

from chatserver.ai.fake_groq import FakeGroq, Script, filler_text
from chatserver.ai.groq_client import GenerationError, groq_client
from chatserver.ai.stream import DeltaBatcher, StreamOutcome, split_tokens, stream_chat

from .fake_groq import FAKE_KEY, _fake_groq  # noqa: F401  (pytest fixture "fake_groq")

MESSAGES = [{"role": "user", "content": "How do I reset my password?"}]


def sdk(fake: FakeGroq, **options: object) -> groq.AsyncGroq:
    """The client the app makes (the SDK on its aiohttp backend)."""
    return groq_client(
        api_key=FAKE_KEY,
        base_url=fake.base_url,
        max_retries=int(options.get("max_retries", 0)),  # type: ignore[call-overload]
        timeout=float(options.get("timeout", 5.0)),  # type: ignore[arg-type]
    )


def sdk_on_httpx(fake: FakeGroq, **options: object) -> groq.AsyncGroq:
    """The SDK with its default httpx transport."""
    return groq.AsyncGroq(
        api_key=FAKE_KEY,
        base_url=fake.base_url,
        max_retries=int(options.get("max_retries", 0)),  # type: ignore[call-overload]
        timeout=float(options.get("timeout", 5.0)),  # type: ignore[arg-type]
    )


async def read(fake: FakeGroq, make: object = sdk, **options: object) -> tuple[str, StreamOutcome | GenerationError]:
    pieces: list[str] = []
    client = make(fake, **options)  # type: ignore[operator]
    try:
        outcome = await stream_chat(
            client,
            model="llama-3.3-70b-versatile",
            messages=MESSAGES,
            max_tokens=256,
            temperature=0.2,
            on_text=pieces.append,
        )
    except GenerationError as err:
        return "".join(pieces), err
    finally:
        await client.close()
    return "".join(pieces), outcome


async def test_the_sdk_itself_parses_the_fakes_stream(fake_groq: FakeGroq) -> None:
    fake_groq.push(Script(text="Open Settings, then Security."))
    client = sdk(fake_groq)
    chunks = [c async for c in await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)]  # type: ignore[arg-type]
    await client.close()
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Open Settings, then Security."
    assert chunks[0].x_groq is not None and chunks[0].x_groq.id
    assert chunks[0].choices[0].delta.role == "assistant"
    final = chunks[-1]
    assert final.choices[0].finish_reason == "stop"
    assert final.x_groq is not None and final.x_groq.usage is not None
    usage = final.x_groq.usage
    assert usage.completion_tokens == len(split_tokens("Open Settings, then Security."))
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    for timing in ("queue_time", "prompt_time", "completion_time", "total_time"):
        assert isinstance(getattr(usage, timing), float)
    # Content-less deltas are part of the stream: readers must skip them.
    assert any(c.choices and c.choices[0].delta.content is None for c in chunks)


async def test_the_fake_answers_errors_in_groqs_shape(fake_groq: FakeGroq) -> None:
    fake_groq.push(Script(status=429, retry_after="7"))
    client = sdk(fake_groq)
    with pytest.raises(groq.RateLimitError) as caught:
        await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    await client.close()
    assert caught.value.response.headers["retry-after"] == "7"
    body = caught.value.body
    assert isinstance(body, dict)
    assert set(body["error"]) == {"message", "type", "code"}
    assert body["error"]["code"] == "rate_limit_exceeded"


async def test_hot_path_reads_text_usage_model_and_request_id(fake_groq: FakeGroq) -> None:
    fake_groq.push(Script(text="You can reset it from the sign-in page."))
    text, outcome = await read(fake_groq)
    assert isinstance(outcome, StreamOutcome)
    assert text == "You can reset it from the sign-in page."
    assert outcome.finish_reason == "stop"
    assert outcome.model == "llama-3.3-70b-versatile"
    assert outcome.groq_request_id and outcome.groq_request_id.startswith("req_")
    assert outcome.usage is not None and outcome.usage["completion_tokens"] == len(split_tokens(text))
    assert set(outcome.usage) >= {"prompt_tokens", "completion_tokens", "total_tokens", "queue_time", "total_time"}
    request = fake_groq.requests[0]
    assert request.body == {
        "model": "llama-3.3-70b-versatile",
        "messages": MESSAGES,
        "max_completion_tokens": 256,
        "temperature": 0.2,
        "stream": True,
    }
    assert request.headers["Authorization"] == f"Bearer {FAKE_KEY}"
    assert request.headers["Content-Type"] == "application/json"


async def test_our_request_body_is_the_one_the_sdks_create_sends(fake_groq: FakeGroq) -> None:
    """The body is built once with orjson instead of through create(): same JSON, same headers."""
    fake_groq.push(Script(text="Hello."), Script(text="Hello."))
    client = sdk(fake_groq)
    try:
        stream = await client.chat.completions.create(
            model="llama-3.3-70b-versatile",
            messages=MESSAGES,  # type: ignore[arg-type]
            max_completion_tokens=256,
            temperature=0.2,
            stream=True,
        )
        [c async for c in stream]
    finally:
        await client.close()
    await read(fake_groq)
    by_sdk, ours = fake_groq.requests
    assert ours.body == by_sdk.body
    for header in ("Authorization", "Content-Type", "User-Agent"):
        assert ours.headers[header] == by_sdk.headers[header]


@pytest.mark.parametrize("failure", ["none", "reset", "stall", "status"])
async def test_the_reader_works_on_the_sdks_default_httpx_backend_too(fake_groq: FakeGroq, failure: str) -> None:
    script = {
        "none": Script(text="Plain httpx works as well."),
        "reset": Script(text="alpha beta gamma delta", reset_after=2),
        "stall": Script(text="alpha beta gamma delta", stall_after=2),
        "status": Script(status=503),
    }[failure]
    fake_groq.push(script)
    text, result = await read(fake_groq, sdk_on_httpx, timeout=0.3)
    if failure == "none":
        assert isinstance(result, StreamOutcome)
        assert (text, result.finish_reason) == ("Plain httpx works as well.", "stop")
        return
    assert isinstance(result, GenerationError)
    expected = {"reset": "ai_connection_lost", "stall": "ai_timeout", "status": "ai_unavailable"}[failure]
    assert (result.code, result.retryable) == (expected, True)


async def test_x_groq_error_mid_stream_is_a_retryable_failure_keeping_the_text(fake_groq: FakeGroq) -> None:
    script = Script(text="one two three four five six", x_groq_error_after=3, x_groq_error="over_capacity")
    fake_groq.push(script)
    text, err = await read(fake_groq)
    assert isinstance(err, GenerationError)
    assert (err.code, err.retryable) == ("ai_stream_error", True)
    # Groq's reason is for agents and logs; the room's message is generic.
    assert err.detail is not None and "over_capacity" in err.detail
    assert "over_capacity" not in err.message
    assert text == "".join(script.pieces()[:3])


async def test_429_after_retries_is_rate_limited_with_retry_after(fake_groq: FakeGroq) -> None:
    fake_groq.push(Script(status=429, retry_after="7"))
    text, err = await read(fake_groq)
    assert isinstance(err, GenerationError)
    assert (err.code, err.retryable, err.retry_after) == ("rate_limited", True, 7.0)
    assert text == ""


async def test_429_is_retried_by_the_sdk_honouring_retry_after(fake_groq: FakeGroq) -> None:
    fake_groq.push(Script(status=429, retry_after="0.05"), Script(text="Second time lucky."))
    text, outcome = await read(fake_groq, max_retries=2)
    assert isinstance(outcome, StreamOutcome)
    assert text == "Second time lucky."
    assert len(fake_groq.requests) == 2


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (401, "ai_auth_failed", False),
        (403, "ai_auth_failed", False),
        (400, "ai_request_rejected", False),
        (500, "ai_unavailable", True),
        (503, "ai_unavailable", True),
    ],
)
async def test_http_errors_map_to_codes(fake_groq: FakeGroq, status: int, code: str, retryable: bool) -> None:
    fake_groq.push(Script(status=status))
    _, err = await read(fake_groq)
    assert isinstance(err, GenerationError)
    assert (err.code, err.retryable) == (code, retryable)


async def test_a_stalled_stream_times_out_keeping_the_text(fake_groq: FakeGroq) -> None:
    script = Script(text="alpha beta gamma delta", stall_after=2)
    fake_groq.push(script)
    text, err = await read(fake_groq, timeout=0.3)
    assert isinstance(err, GenerationError)
    assert (err.code, err.retryable) == ("ai_timeout", True)
    assert text == "".join(script.pieces()[:2])


async def test_a_reset_connection_is_a_retryable_failure_keeping_the_text(fake_groq: FakeGroq) -> None:
    script = Script(text="alpha beta gamma delta", reset_after=2)
    fake_groq.push(script)
    text, err = await read(fake_groq)
    assert isinstance(err, GenerationError)
    assert (err.code, err.retryable) == ("ai_connection_lost", True)
    assert text == "".join(script.pieces()[:2])


async def test_a_connection_refused_is_a_retryable_failure() -> None:
    fake = FakeGroq()
    await fake.start()
    await fake.close()  # nothing listens on its port any more
    _, err = await read(fake)
    assert isinstance(err, GenerationError)
    assert (err.code, err.retryable) == ("ai_connection_lost", True)


async def test_content_filter_is_a_final_failure(fake_groq: FakeGroq) -> None:
    fake_groq.push(Script(text="I can", finish_reason="content_filter"))
    _, err = await read(fake_groq)
    assert isinstance(err, GenerationError)
    assert (err.code, err.retryable) == ("ai_content_filtered", False)


async def test_length_finish_is_a_usable_reply(fake_groq: FakeGroq) -> None:
    fake_groq.push(Script(text="A long answer that got", finish_reason="length"))
    text, outcome = await read(fake_groq)
    assert isinstance(outcome, StreamOutcome)
    assert (text, outcome.finish_reason) == ("A long answer that got", "length")


async def test_the_batcher_coalesces_a_750_tokens_per_second_stream(fake_groq: FakeGroq) -> None:
    fake_groq.push(Script(text=filler_text(300), tokens_per_second=750))
    frames: list[tuple[int, str]] = []

    async def send(offset: int, text: str) -> None:
        frames.append((offset, text))

    batcher = DeltaBatcher(send, window=0.05, max_chars=400)
    batcher.start()
    client = sdk(fake_groq)
    await stream_chat(client, model="m", messages=MESSAGES, max_tokens=10, temperature=0, on_text=batcher.add)
    await client.close()
    await batcher.finish()
    assert "".join(t for _, t in frames) == filler_text(300)
    # At most one frame per five tokens, and offsets that chain exactly.
    assert len(frames) <= 300 / 5
    position = 0
    for offset, piece in frames:
        assert offset == position
        position += len(piece)


async def test_the_first_delta_goes_out_without_waiting_for_the_window() -> None:
    frames: list[tuple[int, str]] = []
    flushed = asyncio.Event()

    async def send(offset: int, text: str) -> None:
        frames.append((offset, text))
        flushed.set()

    # A window far longer than the test: only the first text may go out before finish().
    batcher = DeltaBatcher(send, window=60.0, max_chars=1000)
    batcher.start()
    batcher.add("Hel")
    async with asyncio.timeout(5):
        await flushed.wait()
    assert frames == [(0, "Hel")]
    batcher.add("lo")
    batcher.add("!")
    await asyncio.sleep(0.05)
    assert frames == [(0, "Hel")]  # the rest waits for the window
    await batcher.finish()
    assert frames == [(0, "Hel"), (3, "lo!")]


async def test_the_batcher_flushes_at_the_size_limit_without_waiting() -> None:
    frames: list[tuple[int, str]] = []
    flushed = asyncio.Event()

    async def send(offset: int, text: str) -> None:
        frames.append((offset, text))
        flushed.set()

    # A window far longer than the test: only the size limit can make it send.
    batcher = DeltaBatcher(send, window=60.0, max_chars=10)
    batcher.start()
    batcher.add("0123456789ab")
    async with asyncio.timeout(5):
        await flushed.wait()
    assert frames == [(0, "0123456789ab")]
    batcher.add("cd")
    await batcher.finish()
    assert frames == [(0, "0123456789ab"), (12, "cd")]


async def test_aborting_the_batcher_drops_what_it_holds() -> None:
    frames: list[tuple[int, str]] = []

    async def send(offset: int, text: str) -> None:
        frames.append((offset, text))

    batcher = DeltaBatcher(send, window=60.0, max_chars=1000)
    batcher.start()
    batcher.add("first")  # the first text goes out at once
    for _ in range(100):
        if frames:
            break
        await asyncio.sleep(0.01)
    batcher.add("never sent")
    await asyncio.sleep(0)
    await batcher.abort()
    assert frames == [(0, "first")]


async def test_the_fake_runs_as_a_command_for_benchmarks() -> None:
    import sys

    from .services import ROOT, free_port, wait_for_port

    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chatserver.ai.fake_groq",
        "--port",
        str(port),
        "--tokens-per-second",
        "0",
        "--ttft-ms",
        "0",
        "--tokens",
        "300",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        await asyncio.get_running_loop().run_in_executor(None, wait_for_port, port)
        fake = FakeGroq()
        fake.port = port
        text, outcome = await read(fake)
        assert isinstance(outcome, StreamOutcome)
        assert text == filler_text(300)
        assert outcome.usage is not None and outcome.usage["completion_tokens"] == 300
    finally:
        proc.terminate()
        await proc.wait()
