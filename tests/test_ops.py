"""Operations: request ids, structured and access logs (no secrets in them), Prometheus metrics,
health probes. Against a real server whose access log is our AccessLogger, as in production."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.parser import text_string_to_metric_families

from chatserver.app import create_app
from chatserver.keys import DB_POOL, METRICS_REGISTRY, REQUEST_ID_KEY
from chatserver.logs import REQUEST_ID, TEXT_FORMAT, JsonFormatter, RequestIdFilter, TextFormatter
from chatserver.metrics import HttpMetrics
from chatserver.middleware import AccessLogger, request_middleware
from chatserver.settings import Settings

LogLines = Callable[[], list[dict[str, Any]]]
TEST_LOG = logging.getLogger("chatserver.tests")


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    """Every log record, at DEBUG, as the JSON lines LOG_FORMAT=json would write."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


async def log_and_answer(request: web.Request) -> web.Response:
    TEST_LOG.warning("inside the handler")
    await asyncio.sleep(0)  # the id must survive a suspension too
    TEST_LOG.info("still inside, request attribute %s", request[REQUEST_ID_KEY])
    return web.json_response({"ok": True})


async def explode(request: web.Request) -> web.Response:
    raise RuntimeError("secret internal detail")


@pytest.fixture
async def ops_client(aiohttp_client: Any, settings: Settings) -> AsyncIterator[TestClient]:
    app = create_app(settings, bcrypt_rounds=4)
    # Test-only routes, on this app only (the OpenAPI coverage test uses the real route table).
    app.router.add_get("/_test/log", log_and_answer, name="test-log")
    app.router.add_get("/_test/explode", explode, name="test-explode")
    # TestServer(**kwargs) drops runner options; start_server(**kwargs) passes them on.
    server = TestServer(app)
    await server.start_server(access_log_class=AccessLogger)
    client: TestClient = await aiohttp_client(server)
    yield client


async def access_lines(log_lines: LogLines, path: str) -> list[dict[str, Any]]:
    """The access log line is written just after the response is sent: give the server task a
    few turns of the loop to get there."""
    for _ in range(200):
        lines = [e for e in log_lines() if e["logger"] == "aiohttp.access" and e.get("path") == path]
        if lines:
            return lines
        await asyncio.sleep(0.005)
    raise AssertionError(f"no access log line for {path}")


# ---- request ids ---------------------------------------------------------------------------


async def test_a_request_id_is_generated_and_echoed(ops_client: TestClient) -> None:
    resp = await ops_client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Request-ID"])
    other = await ops_client.get("/healthz")
    assert other.headers["X-Request-ID"] != resp.headers["X-Request-ID"]


async def test_a_sane_incoming_request_id_is_kept(ops_client: TestClient) -> None:
    for incoming in ("abc-123", "3f1c2a9e-1b2c-4d5e-8f90-0123456789ab", "Root=1-5759e988;".rstrip(";")):
        resp = await ops_client.get("/healthz", headers={"X-Request-ID": incoming})
        assert resp.headers["X-Request-ID"] == incoming


@pytest.mark.parametrize("incoming", ["x" * 129, "has space", "new\tline", "<script>", "ünïcode", ""])
async def test_an_insane_incoming_request_id_is_replaced(ops_client: TestClient, incoming: str) -> None:
    resp = await ops_client.get("/healthz", headers={"X-Request-ID": incoming})
    assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Request-ID"])


async def test_error_responses_carry_the_request_id(ops_client: TestClient) -> None:
    for path in ("/nowhere", "/auth/me", "/_test/explode"):
        resp = await ops_client.get(path, headers={"X-Request-ID": "err-check"})
        assert resp.status >= 400
        assert resp.headers["X-Request-ID"] == "err-check"


async def test_every_log_line_of_a_request_carries_its_id(ops_client: TestClient, log_lines: LogLines) -> None:
    resp = await ops_client.get("/_test/log", headers={"X-Request-ID": "trace-me"})
    assert resp.status == 200
    ours = [e for e in log_lines() if e["logger"] == "chatserver.tests"]
    assert [e["msg"] for e in ours] == ["inside the handler", "still inside, request attribute trace-me"]
    assert all(e["request_id"] == "trace-me" for e in ours)
    access = await access_lines(log_lines, "/_test/log")
    assert access[0]["request_id"] == "trace-me"
    assert REQUEST_ID.get() == "-", "the id must not leak out of the request"


async def test_unhandled_errors_are_logged_with_the_id_and_hidden_from_the_client(
    ops_client: TestClient, log_lines: LogLines
) -> None:
    resp = await ops_client.get("/_test/explode", headers={"X-Request-ID": "boom-1"})
    assert resp.status == 500
    body = await resp.json()
    assert body == {"error": {"code": "internal_error", "message": "Internal server error"}}
    errors = [e for e in log_lines() if e["level"] == "ERROR"]
    assert len(errors) == 1
    assert errors[0]["request_id"] == "boom-1"
    assert errors[0]["logger"] == "chatserver.errors"
    assert "RuntimeError: secret internal detail" in errors[0]["exc"]


async def test_errors_outside_any_handler_have_the_json_shape_and_the_request_id(ops_client: TestClient) -> None:
    """No route (404) and a wrong method (405) are raised by aiohttp's router, not by a handler."""
    resp = await ops_client.get("/nowhere", headers={"X-Request-ID": "route-404"})
    assert resp.status == 404 and resp.headers["X-Request-ID"] == "route-404"
    assert await resp.json() == {"error": {"code": "not_found", "message": "No such endpoint"}}
    resp = await ops_client.delete("/healthz", headers={"X-Request-ID": "route-405"})
    assert resp.status == 405 and resp.headers["X-Request-ID"] == "route-405"
    assert resp.headers["Allow"] == "GET,HEAD"
    assert await resp.json() == {
        "error": {"code": "method_not_allowed", "message": "Method DELETE is not allowed here"}
    }


# ---- access log ----------------------------------------------------------------------------


async def test_access_log_has_method_path_status_duration_and_no_query_string(
    ops_client: TestClient, log_lines: LogLines
) -> None:
    resp = await ops_client.get("/auth/me?token=sekrit-token&password=hunter22", headers={"X-Request-ID": "acc-1"})
    assert resp.status == 401
    (line,) = await access_lines(log_lines, "/auth/me")
    assert line["method"] == "GET"
    assert line["status"] == 401
    assert line["request_id"] == "acc-1"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["msg"].startswith("GET /auth/me 401 ")
    everything = json.dumps(log_lines())
    assert "sekrit-token" not in everything
    assert "hunter22" not in everything


async def test_access_log_cannot_be_split_by_an_encoded_newline(ops_client: TestClient, log_lines: LogLines) -> None:
    await ops_client.get("/x%0Afake%20line")
    (line,) = await access_lines(log_lines, "/x%0Afake%20line")
    assert "\n" not in line["msg"]


async def test_passwords_and_tokens_never_reach_the_logs(ops_client: TestClient, log_lines: LogLines) -> None:
    password = "pa55word-that-must-not-leak"
    signup = await ops_client.post("/auth/signup", json={"email": "quiet@example.com", "password": password})
    assert signup.status == 201
    signup_token = (await signup.json())["access_token"]
    login = await ops_client.post("/auth/login", json={"email": "quiet@example.com", "password": password})
    assert login.status == 200
    login_token = (await login.json())["access_token"]
    wrong = await ops_client.post("/auth/login", json={"email": "quiet@example.com", "password": password + "x"})
    assert wrong.status == 401
    me = await ops_client.get("/auth/me", headers={"Authorization": f"Bearer {login_token}"})
    assert me.status == 200
    bad_json = await ops_client.post(
        "/auth/login", data=f'{{"password": "{password}"', headers={"Content-Type": "application/json"}
    )
    assert bad_json.status == 400
    await access_lines(log_lines, "/auth/me")
    lines = log_lines()
    assert len([e for e in lines if e["logger"] == "aiohttp.access"]) >= 5
    everything = json.dumps(lines)
    for secret in (password, signup_token, login_token, signup_token.split(".")[2], login_token.split(".")[2]):
        assert secret not in everything


# ---- log formats ----------------------------------------------------------------------------


def test_json_lines_include_structured_fields_without_overwriting_base_keys() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    record.fields = {"status": 200, "msg": "spoof", "level": "spoof"}
    record.request_id = "rid"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["msg"] == "hello world"
    assert entry["level"] == "INFO"
    assert entry["status"] == 200
    assert entry["request_id"] == "rid"


def test_json_lines_survive_unserialisable_arguments_and_exceptions() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "%s", (object(),), sys.exc_info())
    record.fields = {"thing": object()}
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert "ValueError: bad" in entry["exc"]
    assert entry["thing"].startswith("<object")


def test_text_lines_show_the_request_id() -> None:
    token = REQUEST_ID.set("txt-1")
    try:
        record = logging.LogRecord("chatserver", logging.INFO, __file__, 1, "hi", (), None)
        RequestIdFilter().filter(record)
    finally:
        REQUEST_ID.reset(token)
    assert "[txt-1] hi" in logging.Formatter(TEXT_FORMAT).format(record)


def test_the_text_format_reads_as_logging_formats_it() -> None:
    """TextFormatter caches the time's text per second; lines must not change."""
    ours, stdlib = TextFormatter(), logging.Formatter(TEXT_FORMAT)
    # The same second twice, the next one, then an earlier one.
    for created, msecs in ((1_800_000_000.0, 0.0), (1_800_000_000.0071, 7.0), (1_800_000_001.5, 500.0), (5.25, 250.0)):
        record = logging.LogRecord("chatserver", logging.INFO, __file__, 1, "at %s", (created,), None)
        record.created, record.msecs = created, msecs
        record.request_id = "rid"
        assert ours.format(record) == stdlib.format(record)


# ---- metrics --------------------------------------------------------------------------------


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def test_metrics_count_requests_by_route_method_and_status(client: TestClient) -> None:
    for _ in range(3):
        await client.get("/tickets")  # 401: no token
    await client.get("/healthz")
    await client.get("/tickets/123/messages")  # 401 too, routed by its template
    await client.get("/no/such/path")
    await client.request("PROPFIND", "/healthz")  # a real method, but not one we label
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    text = await resp.text()
    counts = samples(text, "chatserver_http_requests_total")
    assert counts[(("method", "GET"), ("route", "tickets-list"), ("status", "401"))] == 3
    assert counts[(("method", "GET"), ("route", "healthz"), ("status", "200"))] == 1
    assert counts[(("method", "GET"), ("route", "messages-list"), ("status", "401"))] == 1
    assert counts[(("method", "GET"), ("route", "unmatched"), ("status", "404"))] == 1
    assert counts[(("method", "other"), ("route", "unmatched"), ("status", "405"))] == 1
    assert not any("123" in value for key in counts for _, value in key)
    latency = samples(text, "chatserver_http_request_duration_seconds_count")
    assert latency[(("method", "GET"), ("route", "tickets-list"), ("status", "401"))] == 3
    buckets = samples(text, "chatserver_http_request_duration_seconds_bucket")
    assert buckets[(("le", "+Inf"), ("method", "GET"), ("route", "healthz"), ("status", "200"))] == 1
    assert "process_resident_memory_bytes" in text or "python_info" in text


async def routed(method: str, path: str) -> web.Request:
    async def thing(request: web.Request) -> web.Response:
        return web.Response()

    app = web.Application()
    app.router.add_get("/thing", thing, name="thing")
    request = make_mocked_request(method, path, app=app)
    request._match_info = await app.router.resolve(request)  # what Application._handle does
    return request


def count(registry: CollectorRegistry, name: str, status: str, method: str = "GET") -> float | None:
    return registry.get_sample_value(name, {"route": "thing", "method": method, "status": status})


async def test_a_client_that_hangs_up_is_counted_as_499() -> None:
    registry = CollectorRegistry()
    middleware = request_middleware(HttpMetrics(registry))

    async def waits(request: web.Request) -> web.StreamResponse:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await middleware(await routed("GET", "/thing"), waits)
    assert count(registry, "chatserver_http_requests_total", "499") == 1
    assert REQUEST_ID.get() == "-"


async def test_a_raised_redirect_passes_through_and_is_counted_with_its_status() -> None:
    registry = CollectorRegistry()
    middleware = request_middleware(HttpMetrics(registry))

    async def redirects(request: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther("/elsewhere")

    for _ in range(2):
        with pytest.raises(web.HTTPSeeOther):
            await middleware(await routed("GET", "/thing"), redirects)
    assert count(registry, "chatserver_http_requests_total", "303") == 2
    assert count(registry, "chatserver_http_request_duration_seconds_count", "303") == 2


async def test_websocket_upgrades_are_counted_without_latency() -> None:
    registry = CollectorRegistry()
    middleware = request_middleware(HttpMetrics(registry))

    async def upgrades(request: web.Request) -> web.StreamResponse:
        return web.Response(status=101)

    for _ in range(3):
        await middleware(await routed("GET", "/thing"), upgrades)
    assert count(registry, "chatserver_http_requests_total", "101") == 3
    assert count(registry, "chatserver_http_request_duration_seconds_count", "101") is None


async def test_each_app_has_its_own_registry(client: TestClient, aiohttp_client: Any, settings: Settings) -> None:
    await client.get("/healthz")
    other: TestClient = await aiohttp_client(create_app(settings, bcrypt_rounds=4))
    assert other.app[METRICS_REGISTRY] is not client.app[METRICS_REGISTRY]
    text = await (await other.get("/metrics")).text()
    assert (("method", "GET"), ("route", "healthz"), ("status", "200")) not in samples(
        text, "chatserver_http_requests_total"
    )


async def test_other_components_can_add_metrics_to_the_registry(client: TestClient) -> None:
    gauge = Gauge("chatserver_test_widgets", "Widgets in flight", registry=client.app[METRICS_REGISTRY])
    gauge.set(7)
    text = await (await client.get("/metrics")).text()
    assert samples(text, "chatserver_test_widgets") == {(): 7.0}


async def test_metrics_speak_openmetrics_when_asked(client: TestClient) -> None:
    resp = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert resp.content_type == "application/openmetrics-text"
    assert (await resp.text()).rstrip().endswith("# EOF")


# ---- health probes --------------------------------------------------------------------------


async def test_healthz_and_readyz_answer_when_healthy(client: TestClient) -> None:
    assert await (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert await ready.json() == {"status": "ready", "database": "ok"}


async def test_readyz_is_503_when_the_database_is_gone(client: TestClient) -> None:
    await client.app[DB_POOL].close()
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "not_ready"
    assert (await client.get("/healthz")).status == 200
