"""Bodies and query strings the server cannot use get a 4xx in the one JSON error shape, never a
500: broken forms and JSON on every route that reads a body, numbers beyond what the database
holds in query strings and on the room socket. (Requests broken below HTTP, such as a lying
Content-Length, are in tests/test_fuzz.py, against a real server and its log.)"""

from __future__ import annotations

import gzip
import logging
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from chatserver.handlers.tickets import MAX_SEQ

from .conftest import MakeUser, create_ticket

BEYOND_BIGINT = str(2**63)
LOGIN_FORM = {"email": "someone@example.com", "password": "whatever", "csrf_token": "x"}


async def assert_error(resp: aiohttp.ClientResponse, status: int, code: str) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body: dict[str, Any] = await resp.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    return body


@pytest.fixture(autouse=True)
def no_unhandled_errors(caplog: pytest.LogCaptureFixture) -> Any:
    """Every test here also checks that nothing reached the 500 path (which logs a traceback)."""
    caplog.set_level(logging.ERROR)
    yield
    unhandled = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not unhandled, [r.getMessage() for r in unhandled]


# ---- HTML form posts: /console/login and /console/logout ---------------------------------

FORM_PATHS = ["/console/login", "/console/logout"]


@pytest.mark.parametrize("path", FORM_PATHS)
async def test_a_multipart_body_without_a_boundary_is_refused_as_unsupported(client: TestClient, path: str) -> None:
    headers = {"Content-Type": "multipart/form-data"}
    resp = await client.post(path, data=b"csrf_token=&email=&password=", headers=headers)
    await assert_error(resp, 415, "unsupported_media_type")


@pytest.mark.parametrize("path", FORM_PATHS)
async def test_a_well_formed_multipart_form_is_refused_too(client: TestClient, path: str) -> None:
    form = aiohttp.FormData()
    form.add_field("csrf_token", "x")
    form.add_field("file", b"content", filename="a.txt")
    await assert_error(await client.post(path, data=form), 415, "unsupported_media_type")


@pytest.mark.parametrize("path", FORM_PATHS)
@pytest.mark.parametrize("charset", ["no-such-charset", "latin-1", "utf-16"])
async def test_a_form_in_a_charset_other_than_utf8_is_a_bad_request(
    client: TestClient, path: str, charset: str
) -> None:
    headers = {"Content-Type": f"application/x-www-form-urlencoded; charset={charset}"}
    await assert_error(await client.post(path, data=b"csrf_token=x", headers=headers), 400, "bad_request")


@pytest.mark.parametrize("path", FORM_PATHS)
async def test_a_form_that_is_not_utf8_is_a_bad_request(client: TestClient, path: str) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    for body in (b"email=\xff\xfe", b"email=%FF%FE"):
        await assert_error(await client.post(path, data=body, headers=headers), 400, "bad_request")


@pytest.mark.parametrize("path", FORM_PATHS)
async def test_a_form_with_hundreds_of_fields_is_a_bad_request(client: TestClient, path: str) -> None:
    body = "&".join(f"f{i}=x" for i in range(500)).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    await assert_error(await client.post(path, data=body, headers=headers), 400, "bad_request")


@pytest.mark.parametrize("path", FORM_PATHS)
async def test_json_sent_to_a_form_is_refused_as_unsupported(client: TestClient, path: str) -> None:
    await assert_error(await client.post(path, json=LOGIN_FORM), 415, "unsupported_media_type")


@pytest.mark.parametrize("path", FORM_PATHS)
async def test_a_form_with_a_broken_gzip_encoding_is_a_bad_request(client: TestClient, path: str) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "gzip"}
    await assert_error(await client.post(path, data=b"not gzip at all", headers=headers), 400, "bad_request")


async def test_a_gzipped_utf8_form_is_still_read(client: TestClient) -> None:
    """A valid encoding is not refused: the form is read and its (missing) CSRF token refused."""
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "gzip"}
    body = gzip.compress(b"email=a%40example.com&password=p&csrf_token=")
    resp = await client.post("/console/login", data=body, headers=headers)
    assert resp.status == 403
    assert resp.content_type == "text/html"


# ---- JSON bodies ---------------------------------------------------------------------------

# Every route that reads a JSON body, with who may call it ("customer", "agent" or None).
JSON_ROUTES = [
    ("post", "/auth/signup", None),
    ("post", "/auth/login", None),
    ("post", "/tickets", "customer"),
    ("patch", "/tickets/{ticket}", "agent"),
    ("post", "/tickets/{ticket}/messages", "customer"),
    ("post", "/widget/visitors", None),
    ("post", "/widget/identify", None),
]

MALFORMED_JSON = {
    "invalid UTF-8": b'{"subject": "\xff\xfe"}',
    "a lone surrogate": b'{"subject": "\\ud800"}',
    "a byte order mark": b'\xef\xbb\xbf{"subject": "x"}',
    "NaN": b'{"subject": "x", "n": NaN}',
    "Infinity": b'{"subject": "x", "n": Infinity}',
    "a number beyond a double": b'{"subject": "x", "n": 1e400}',
    "nesting 5000 deep": b"[" * 5000 + b"]" * 5000,
    "truncated": b'{"subject": "x"',
    "trailing garbage": b'{"subject": "x"} {}',
    "empty": b"",
}


@pytest.fixture
async def callers(client: TestClient, make_user: MakeUser) -> dict[str, Any]:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    return {"customer": customer.headers, "agent": agent.headers, None: {}, "ticket": ticket["id"]}


def _route(path: str, callers: dict[str, Any]) -> str:
    return path.replace("{ticket}", callers["ticket"])


@pytest.mark.parametrize(("method", "path", "role"), JSON_ROUTES)
@pytest.mark.parametrize("case", list(MALFORMED_JSON))
async def test_malformed_json_is_a_bad_request_on_every_route(
    client: TestClient, callers: dict[str, Any], method: str, path: str, role: str | None, case: str
) -> None:
    headers = {**callers[role], "Content-Type": "application/json"}
    resp = await client.request(method, _route(path, callers), data=MALFORMED_JSON[case], headers=headers)
    await assert_error(resp, 400, "bad_request")


@pytest.mark.parametrize(("method", "path", "role"), JSON_ROUTES)
@pytest.mark.parametrize("body", [b"[]", b'"text"', b"1", b"null", b"true", b"99999999999999999999999"])
async def test_json_that_is_not_an_object_is_a_validation_error(
    client: TestClient, callers: dict[str, Any], method: str, path: str, role: str | None, body: bytes
) -> None:
    headers = {**callers[role], "Content-Type": "application/json"}
    resp = await client.request(method, _route(path, callers), data=body, headers=headers)
    await assert_error(resp, 422, "validation_error")


@pytest.mark.parametrize(("method", "path", "role"), JSON_ROUTES)
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
async def test_a_body_that_is_not_json_is_refused_as_unsupported(
    client: TestClient, callers: dict[str, Any], method: str, path: str, role: str | None, content_type: str
) -> None:
    headers = {**callers[role], "Content-Type": content_type}
    resp = await client.request(method, _route(path, callers), data=b'{"subject": "x"}', headers=headers)
    await assert_error(resp, 415, "unsupported_media_type")


@pytest.mark.parametrize(("method", "path", "role"), JSON_ROUTES)
async def test_json_with_a_broken_gzip_encoding_is_a_bad_request(
    client: TestClient, callers: dict[str, Any], method: str, path: str, role: str | None
) -> None:
    headers = {**callers[role], "Content-Type": "application/json", "Content-Encoding": "gzip"}
    resp = await client.request(method, _route(path, callers), data=b"not gzip", headers=headers)
    await assert_error(resp, 400, "bad_request")


async def test_numbers_too_big_for_any_field_are_validation_errors(client: TestClient, callers: dict[str, Any]) -> None:
    """orjson reads integers beyond 64 bits as floats: a string or boolean field refuses either."""
    headers = callers["agent"]
    for value in (2**63, 2**64, 10**30, -(2**63) - 1):
        body = f'{{"ai_enabled": {value}}}'.encode()
        resp = await client.patch(
            f"/tickets/{callers['ticket']}", data=body, headers={**headers, "Content-Type": "application/json"}
        )
        await assert_error(resp, 422, "validation_error")


async def test_a_repeated_key_keeps_its_last_value(client: TestClient, callers: dict[str, Any]) -> None:
    """As JSON.parse does: one defined meaning, whichever proxy or client produced the body."""
    headers = {**callers["customer"], "Content-Type": "application/json"}
    resp = await client.post("/tickets", data=b'{"subject": "first", "subject": "last"}', headers=headers)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["ticket"]["subject"] == "last"


async def test_a_body_over_the_size_limit_is_payload_too_large(client: TestClient, callers: dict[str, Any]) -> None:
    headers = {**callers["customer"], "Content-Type": "application/json"}
    body = b'{"subject": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    await assert_error(await client.post("/tickets", data=body, headers=headers), 413, "payload_too_large")


# ---- query strings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        f"after_seq={BEYOND_BIGINT}",
        f"before_seq={BEYOND_BIGINT}",
        f"limit={BEYOND_BIGINT}",
        "after_seq=" + "9" * 5000,
        "after_seq=-" + "9" * 5000,
        "after_seq=%D9%A1",  # ARABIC-INDIC DIGIT ONE, which int() would take
        "after_seq=1_000",
        "after_seq=%201",
        "after_seq=1.5",
    ],
)
async def test_message_history_bounds_beyond_the_database_are_validation_errors(
    client: TestClient, callers: dict[str, Any], query: str
) -> None:
    resp = await client.get(f"/tickets/{callers['ticket']}/messages?{query}", headers=callers["customer"])
    await assert_error(resp, 422, "validation_error")


@pytest.mark.parametrize("path", ["/tickets", "/console/api/inbox"])
async def test_a_page_size_beyond_bigint_is_a_validation_error(
    client: TestClient, callers: dict[str, Any], path: str
) -> None:
    resp = await client.get(f"{path}?limit={BEYOND_BIGINT}", headers=callers["agent"])
    await assert_error(resp, 422, "validation_error")


@pytest.mark.parametrize("after_seq", [BEYOND_BIGINT, "9" * 5000, "-1", "x", "%D9%A1"])
async def test_a_room_socket_resuming_beyond_bigint_is_refused_before_the_upgrade(
    client: TestClient, callers: dict[str, Any], after_seq: str
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect(f"/tickets/{callers['ticket']}/ws?after_seq={after_seq}", headers=callers["customer"])
    assert info.value.status == 422


async def test_a_room_socket_resuming_at_the_largest_seq_joins(client: TestClient, callers: dict[str, Any]) -> None:
    ws = await client.ws_connect(f"/tickets/{callers['ticket']}/ws?after_seq={MAX_SEQ}", headers=callers["customer"])
    try:
        joined = await ws.receive_json(timeout=10)
        assert joined["type"] == "joined"
        assert joined["resumed"] is True
        assert joined["messages"] == []
    finally:
        await ws.close()
