"""Attachments over the real API: uploads, messages that carry them, who may fetch them, the
limits, and the local filesystem backend (the S3 backend: tests/test_attachments_s3.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from chatserver.app import create_app
from chatserver.keys import ATTACHMENT_STORAGE, DB_POOL
from chatserver.services.attachments import sweep_orphans
from chatserver.services.filetypes import sniff
from chatserver.settings import Settings

from .attachment_files import pdf, png
from .conftest import MakeUser, User, create_ticket
from .wsutil import recv_type

MAX_BYTES = 100_000


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_overrides(attachment_max_bytes=MAX_BYTES, attachments_per_message=3)


def form(data: bytes, filename: str, content_type: str = "application/octet-stream") -> aiohttp.FormData:
    payload = aiohttp.FormData()
    payload.add_field("file", data, filename=filename, content_type=content_type)
    return payload


async def upload(
    client: TestClient, user: User, ticket_id: str, data: bytes, filename: str, content_type: str = "image/png"
) -> aiohttp.ClientResponse:
    resp = await client.post(
        f"/tickets/{ticket_id}/attachments", data=form(data, filename, content_type), headers=user.headers
    )
    await resp.read()
    return resp


async def uploaded(client: TestClient, user: User, ticket_id: str, data: bytes, filename: str, **kw: Any) -> dict:
    resp = await upload(client, user, ticket_id, data, filename, **kw)
    assert resp.status == 201, await resp.text()
    return (await resp.json())["attachment"]


async def post_message(
    client: TestClient, user: User, ticket_id: str, attachment_ids: list[str], body: str = "", **extra: Any
) -> aiohttp.ClientResponse:
    resp = await client.post(
        f"/tickets/{ticket_id}/messages",
        json={"body": body, "attachment_ids": attachment_ids, **extra},
        headers=user.headers,
    )
    await resp.read()
    return resp


async def error_code(resp: aiohttp.ClientResponse) -> str:
    return str((await resp.json())["error"]["code"])


def stored_files(settings: Settings) -> list[Path]:
    root = settings.data_dir / "attachments"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


# ---- uploads and messages ------------------------------------------------------------------


async def test_a_customer_sends_an_image_that_the_message_carries_everywhere(
    client: TestClient, make_user: MakeUser
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    image = png()
    attachment = await uploaded(client, customer, ticket["id"], image, "screenshot.png")
    assert attachment["content_type"] == "image/png"
    assert attachment["size"] == len(image)
    assert attachment["filename"] == "screenshot.png"
    assert attachment["message_id"] is None

    resp = await post_message(client, customer, ticket["id"], [attachment["id"]])
    assert resp.status == 201, await resp.text()
    message = (await resp.json())["message"]
    assert message["body"] == ""
    assert message["attachments"] == [
        {
            "id": attachment["id"],
            "filename": "screenshot.png",
            "content_type": "image/png",
            "size": len(image),
            "url": f"/attachments/{attachment['id']}",
        }
    ]

    history = await client.get(f"/tickets/{ticket['id']}/messages", headers=customer.headers)
    assert [m["attachments"] for m in (await history.json())["messages"]] == [message["attachments"]]

    got = await client.get(attachment["url"], headers=customer.headers)
    assert got.status == 200
    assert await got.read() == image
    assert got.headers["Content-Type"] == "image/png"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Content-Disposition"].startswith('inline; filename="screenshot.png"')


async def test_a_message_without_attachments_carries_an_empty_list(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    resp = await client.post(f"/tickets/{ticket['id']}/messages", json={"body": "hi"}, headers=customer.headers)
    assert (await resp.json())["message"]["attachments"] == []


async def test_message_send_over_a_socket_carries_attachments_in_the_frame_and_the_ack(
    client: TestClient, make_user: MakeUser
) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    attachment = await uploaded(client, customer, ticket["id"], pdf(), "invoice.pdf", content_type="application/pdf")
    watcher = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=agent.headers)
    sender = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=customer.headers)
    try:
        await recv_type(watcher, "joined")
        await recv_type(sender, "joined")
        await sender.send_json(
            {"type": "message.send", "client_id": "c1", "body": "my invoice", "attachment_ids": [attachment["id"]]}
        )
        ack = await recv_type(sender, "ack")
        created = await recv_type(watcher, "message.created")
        for message in (ack["message"], created["message"]):
            assert [a["id"] for a in message["attachments"]] == [attachment["id"]]
            assert message["attachments"][0]["content_type"] == "application/pdf"
    finally:
        await watcher.close()
        await sender.close()


async def test_a_resend_with_the_same_client_id_returns_the_stored_message(
    client: TestClient, make_user: MakeUser
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    attachment = await uploaded(client, customer, ticket["id"], png(), "a.png")
    first = await post_message(client, customer, ticket["id"], [attachment["id"]], client_id="same")
    again = await post_message(client, customer, ticket["id"], [attachment["id"]], client_id="same")
    assert (first.status, again.status) == (201, 200)
    assert (await first.json())["message"]["id"] == (await again.json())["message"]["id"]


async def test_an_attachment_belongs_to_one_message_and_to_its_uploader(
    client: TestClient, make_user: MakeUser
) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    attachment = await uploaded(client, customer, ticket["id"], png(), "a.png")
    # An agent cannot send the customer's upload as their own.
    resp = await post_message(client, agent, ticket["id"], [attachment["id"]])
    assert (resp.status, await error_code(resp)) == (422, "attachment_unavailable")
    assert (await post_message(client, customer, ticket["id"], [attachment["id"]])).status == 201
    resp = await post_message(client, customer, ticket["id"], [attachment["id"]], body="again")
    assert (resp.status, await error_code(resp)) == (422, "attachment_unavailable")
    # The refused messages were not stored (the transaction rolled back their seq too).
    history = await client.get(f"/tickets/{ticket['id']}/messages", headers=agent.headers)
    page = await history.json()
    assert [m["seq"] for m in page["messages"]] == [1]
    assert page["last_seq"] == 1


async def test_an_upload_into_another_ticket_cannot_be_attached_here(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    first = await create_ticket(client, customer, "one")
    second = await create_ticket(client, customer, "two")
    attachment = await uploaded(client, customer, first["id"], png(), "a.png")
    resp = await post_message(client, customer, second["id"], [attachment["id"]])
    assert (resp.status, await error_code(resp)) == (422, "attachment_unavailable")


# ---- who may read an attachment -------------------------------------------------------------


async def test_only_the_owner_and_agents_may_fetch_a_customers_attachment(
    client: TestClient, make_user: MakeUser
) -> None:
    owner = await make_user("customer")
    stranger = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, owner)
    attachment = await uploaded(client, owner, ticket["id"], png(), "a.png")
    assert (await post_message(client, owner, ticket["id"], [attachment["id"]])).status == 201
    assert (await client.get(attachment["url"], headers=owner.headers)).status == 200
    assert (await client.get(attachment["url"], headers=agent.headers)).status == 200
    other = await client.get(attachment["url"], headers=stranger.headers)
    assert (other.status, await error_code(other)) == (404, "not_found")
    assert (await client.get(attachment["url"])).status == 401
    assert (await client.get(f"/attachments/{uuid.uuid4()}", headers=agent.headers)).status == 404
    assert (await client.get("/attachments/not-a-uuid", headers=agent.headers)).status == 404


async def test_an_internal_notes_attachment_is_for_agents_only(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    attachment = await uploaded(client, agent, ticket["id"], pdf(), "notes.pdf", content_type="application/pdf")
    resp = await post_message(client, agent, ticket["id"], [attachment["id"]], body="internal", internal=True)
    assert resp.status == 201
    hidden = await client.get(attachment["url"], headers=customer.headers)
    assert hidden.status == 404
    shown = await client.get(attachment["url"], headers=agent.headers)
    assert shown.status == 200
    assert shown.headers["Content-Disposition"].startswith('attachment; filename="notes.pdf"')
    assert shown.headers["X-Content-Type-Options"] == "nosniff"
    history = await client.get(f"/tickets/{ticket['id']}/messages", headers=customer.headers)
    assert (await history.json())["messages"] == []


async def test_an_upload_not_yet_sent_is_readable_only_by_its_uploader(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    attachment = await uploaded(client, customer, ticket["id"], png(), "draft.png")
    assert (await client.get(attachment["url"], headers=customer.headers)).status == 200
    assert (await client.get(attachment["url"], headers=agent.headers)).status == 404


async def test_a_customer_cannot_upload_into_someone_elses_ticket(client: TestClient, make_user: MakeUser) -> None:
    owner = await make_user("customer")
    stranger = await make_user("customer")
    ticket = await create_ticket(client, owner)
    resp = await upload(client, stranger, ticket["id"], png(), "a.png")
    assert (resp.status, await error_code(resp)) == (404, "not_found")
    assert stored_files(_settings(client)) == []


def _settings(client: TestClient) -> Settings:
    from chatserver.keys import SETTINGS

    return client.app[SETTINGS]


# ---- limits --------------------------------------------------------------------------------


async def test_a_file_named_like_an_image_must_be_one(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    resp = await upload(client, customer, ticket["id"], b"<html><script>alert(1)</script></html>", "cat.png")
    assert (resp.status, await error_code(resp)) == (415, "attachment_type_not_allowed")
    resp = await upload(client, customer, ticket["id"], pdf(), "cat.jpg", content_type="image/jpeg")
    assert resp.status == 415


async def test_an_image_is_recognised_by_its_bytes_whatever_its_name(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    attachment = await uploaded(client, customer, ticket["id"], png(), "photo.pdf", content_type="application/pdf")
    assert attachment["content_type"] == "image/png"


@pytest.mark.parametrize(
    ("data", "filename", "content_type"),
    [
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "logo.svg", "image/svg+xml"),
        (b"<!doctype html><script>alert(1)</script>", "page.html", "text/html"),
        (b"<html><body>hi</body></html>", "notes.txt", "text/plain"),
        (b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 64, "tool.exe", "application/octet-stream"),
        (b"PK\x03\x04" + b"\x00" * 64, "archive.zip", "application/zip"),
    ],
)
async def test_types_outside_the_allowed_list_are_refused(
    client: TestClient, make_user: MakeUser, data: bytes, filename: str, content_type: str
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    resp = await upload(client, customer, ticket["id"], data, filename, content_type=content_type)
    assert (resp.status, await error_code(resp)) == (415, "attachment_type_not_allowed")


async def test_plain_text_and_office_documents_are_accepted(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    text = await uploaded(client, customer, ticket["id"], "héllo\n".encode(), "log.txt", content_type="text/plain")
    assert text["content_type"] == "text/plain"
    docx = await uploaded(
        client, customer, ticket["id"], b"PK\x03\x04" + b"\x00" * 64, "report.docx", content_type="application/zip"
    )
    assert docx["content_type"].endswith("wordprocessingml.document")
    got = await client.get(text["url"], headers=customer.headers)
    assert got.headers["Content-Disposition"].startswith("attachment;")


async def test_a_file_over_the_size_limit_is_refused_from_its_length(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    resp = await upload(client, customer, ticket["id"], png() + b"\x00" * (MAX_BYTES + 20_000), "big.png")
    assert (resp.status, await error_code(resp)) == (413, "attachment_too_large")
    assert (await resp.json())["error"]["details"]["max_bytes"] == MAX_BYTES


async def test_a_streamed_file_growing_past_the_limit_is_cut_off_and_nothing_is_kept(
    client: TestClient, make_user: MakeUser
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    boundary = "xyzBOUNDARY"

    async def body() -> AsyncIterator[bytes]:
        # Chunked, no Content-Length: the limit must hold while the bytes stream.
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        yield png()
        for _ in range(20):
            yield b"\x00" * 8192
        yield f"\r\n--{boundary}--\r\n".encode()

    resp = await client.post(
        f"/tickets/{ticket['id']}/attachments",
        data=body(),
        headers={**customer.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert (resp.status, await error_code(resp)) == (413, "attachment_too_large")
    assert stored_files(_settings(client)) == []
    count = await client.app[DB_POOL].fetchval("SELECT count(*) FROM attachments")
    assert count == 0


async def test_a_message_may_carry_only_so_many_attachments(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    ids = [(await uploaded(client, customer, ticket["id"], png(), f"{i}.png"))["id"] for i in range(4)]
    resp = await post_message(client, customer, ticket["id"], ids)
    assert (resp.status, await error_code(resp)) == (422, "too_many_attachments")
    assert (await resp.json())["error"]["details"]["max_attachments"] == 3
    assert (await post_message(client, customer, ticket["id"], ids[:3])).status == 201


async def test_bad_attachment_ids_are_a_validation_error(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    for bad in ("abc", ["not-a-uuid"], [1]):
        resp = await client.post(
            f"/tickets/{ticket['id']}/messages", json={"body": "x", "attachment_ids": bad}, headers=customer.headers
        )
        assert (resp.status, await error_code(resp)) == (422, "validation_error")
    # Without attachments a message still needs text.
    resp = await post_message(client, customer, ticket["id"], [])
    assert resp.status == 422


async def test_an_upload_without_a_file_field_is_refused(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    payload = aiohttp.FormData()
    payload.add_field("note", "no file here")
    payload.add_field("other", b"x", filename="x.bin")
    resp = await client.post(f"/tickets/{ticket['id']}/attachments", data=payload, headers=customer.headers)
    assert (resp.status, await error_code(resp)) == (422, "validation_error")
    resp = await client.post(f"/tickets/{ticket['id']}/attachments", json={"file": "x"}, headers=customer.headers)
    assert (resp.status, await error_code(resp)) == (415, "unsupported_media_type")


@pytest.fixture
async def slow_uploads(aiohttp_client: Any, settings: Settings, client: TestClient) -> TestClient:
    # `client` first: it empties the database.
    return await aiohttp_client(create_app(settings.with_overrides(attachment_uploads_per_window=3), bcrypt_rounds=4))


async def test_uploads_are_rate_limited_per_user(slow_uploads: TestClient, make_user: MakeUser) -> None:
    client = slow_uploads
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    statuses = [(await upload(client, customer, ticket["id"], png(), f"{i}.png")).status for i in range(5)]
    assert statuses == [201, 201, 201, 429, 429]
    resp = await upload(client, customer, ticket["id"], png(), "late.png")
    assert (resp.status, await error_code(resp)) == (429, "rate_limited")
    assert int(resp.headers["Retry-After"]) >= 1
    # Another user has their own budget.
    other = await make_user("customer")
    other_ticket = await create_ticket(client, other)
    assert (await upload(client, other, other_ticket["id"], png(), "mine.png")).status == 201


# ---- orphans ---------------------------------------------------------------------------------


async def test_uploads_never_sent_are_swept_after_a_day(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    pool = client.app[DB_POOL]
    storage = client.app[ATTACHMENT_STORAGE]
    old = await uploaded(client, customer, ticket["id"], png(), "old.png")
    young = await uploaded(client, customer, ticket["id"], png(), "young.png")
    sent = await uploaded(client, customer, ticket["id"], png(), "sent.png")
    assert (await post_message(client, customer, ticket["id"], [sent["id"]])).status == 201
    await pool.execute(
        "UPDATE attachments SET created_at = now() - interval '25 hours' WHERE id = ANY($1::uuid[])",
        [uuid.UUID(old["id"]), uuid.UUID(sent["id"])],
    )
    assert len(stored_files(_settings(client))) == 3

    # Two instances sweeping at once: each orphan is deleted once (SKIP LOCKED).
    counts = await asyncio.gather(*(sweep_orphans(pool, storage, 24 * 3600) for _ in range(2)))
    assert sum(counts) == 1
    left = {r["id"] for r in await pool.fetch("SELECT id FROM attachments")}
    assert left == {uuid.UUID(young["id"]), uuid.UUID(sent["id"])}
    assert len(stored_files(_settings(client))) == 2
    assert (await client.get(old["url"], headers=customer.headers)).status == 404
    assert (await client.get(sent["url"], headers=customer.headers)).status == 200


async def test_a_swept_upload_can_no_longer_be_attached(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    pool = client.app[DB_POOL]
    attachment = await uploaded(client, customer, ticket["id"], png(), "late.png")
    await pool.execute("UPDATE attachments SET created_at = now() - interval '2 days'")
    assert await sweep_orphans(pool, client.app[ATTACHMENT_STORAGE], 24 * 3600) == 1
    resp = await post_message(client, customer, ticket["id"], [attachment["id"]])
    assert (resp.status, await error_code(resp)) == (422, "attachment_unavailable")


# ---- file types, by their bytes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "name", "expected"),
    [
        (png(), "x.png", "image/png"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 16, "x.jpg", "image/jpeg"),
        (b"GIF89a" + b"\x00" * 16, "x.gif", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "x.webp", "image/webp"),
        (b"%PDF-1.7\n", "x.pdf", "application/pdf"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 16, "x.xls", "application/vnd.ms-excel"),
        (b"a,b\n1,2\n", "x.csv", "text/csv"),
        (b"\x00\x01binary", "x.txt", None),
        (b"\xff\xfe\xfd", "x.txt", None),
        (b"GIF89a", "x.bmp", "image/gif"),
        (b"plain words", "x.gif", None),
    ],
)
def test_types_are_decided_by_the_bytes(head: bytes, name: str, expected: str | None) -> None:
    assert sniff(head, name, None, complete=True).content_type == expected


async def test_upload_and_message_responses_match_the_openapi_spec(client: TestClient, make_user: MakeUser) -> None:
    from .test_openapi import assert_matches_spec

    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    resp = await upload(client, customer, ticket["id"], png(), "a.png")
    attachment = (await assert_matches_spec(resp, "post", "/tickets/{ticket_id}/attachments"))["attachment"]
    resp = await post_message(client, customer, ticket["id"], [attachment["id"]])
    await assert_matches_spec(resp, "post", "/tickets/{ticket_id}/messages")
    resp = await upload(client, customer, ticket["id"], b"MZ\x90\x00", "x.exe")
    await assert_matches_spec(resp, "post", "/tickets/{ticket_id}/attachments")


def test_the_ai_is_told_which_files_a_customer_sent() -> None:
    from chatserver.ai.prompts import PromptBuilder

    builder = PromptBuilder(product_name="X", history_token_budget=2000)
    ticket = {"subject": "s", "description": "", "status": "open", "priority": "normal"}
    files = [{"filename": "error.png"}, {"filename": "log.txt"}]
    history = [{"author_kind": "customer", "visibility": "public", "body": "", "metadata": {}, "attachments": files}]
    prompt = builder.reply(ticket, {"name": "C"}, history, [])
    assert prompt.messages[-1] == {"role": "user", "content": "[attached: error.png, log.txt]"}


def test_uploads_on_an_instance_share_one_bandwidth_budget() -> None:
    from chatserver.services.attachments import UploadBandwidth

    now = [100.0]
    budget = UploadBandwidth(1000, clock=lambda: now[0])
    assert budget.reserve(150) == 0  # a quarter second's worth may be read at once
    assert budget.reserve(100) == 0
    assert budget.reserve(500) == pytest.approx(0.5)  # any upload: the budget is the instance's
    now[0] += 0.5
    assert budget.reserve(250) == pytest.approx(0.25)
    now[0] += 10  # idle time refills at most a quarter second's worth
    assert budget.reserve(250) == 0
    assert budget.reserve(1) > 0
    assert UploadBandwidth(0).reserve(10**9) == 0  # 0: no limit


@pytest.mark.parametrize(
    "part_head",
    [
        "Content-Disposition form-data\r\n",  # a header line without a colon
        'Content-Disposition: form-data; name="file"; filename="a.png"\r\nBad Header: x\r\n',
        "\x00\x01: \x02\r\n",
    ],
)
async def test_a_multipart_body_with_unparsable_part_headers_is_a_400(
    client: TestClient, make_user: MakeUser, part_head: str
) -> None:
    # Found by the fuzzer: aiohttp's InvalidHeader on a part's headers was a 500 with a traceback.
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    boundary = "xyzBOUNDARY"
    body = f"--{boundary}\r\n{part_head}\r\n".encode() + png() + f"\r\n--{boundary}--\r\n".encode()
    resp = await client.post(
        f"/tickets/{ticket['id']}/attachments",
        data=body,
        headers={**customer.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert resp.status in (400, 422), await resp.text()
    assert await error_code(resp) in ("bad_request", "validation_error")
