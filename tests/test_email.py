"""Email to visitors against a real SMTP server on loopback (aiosmtpd): agent replies for a
visitor who left, the signed link that reopens the conversation, transcripts, a mail server that
is down, and no email at all without SMTP_URL."""

from __future__ import annotations

import asyncio
import email
import email.policy
import uuid
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from chatserver.app import create_app
from chatserver.keys import DB_POOL
from chatserver.services.mail import reopen_token
from chatserver.settings import Settings

from .conftest import TEST_SECRET, MakeUser, User
from .services import free_port
from .test_openapi import assert_matches_spec

WAIT = 15.0


class Inbox:
    """What the SMTP server received."""

    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, EmailMessage]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope, parsed))
        return "250 Message accepted"

    async def wait_for(self, count: int, timeout: float = WAIT) -> list[EmailMessage]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.messages) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"expected {count} email(s), got {len(self.messages)}")
            await asyncio.sleep(0.05)
        return [m for _, m in self.messages]


def smtp_server(inbox: Inbox, port: int) -> Controller:
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def smtp(inbox: Inbox, smtp_port: int) -> Iterator[Controller]:
    controller = smtp_server(inbox, smtp_port)
    try:
        yield controller
    finally:
        controller.stop()


def mail_settings(settings: Settings, smtp_port: int, **extra: Any) -> Settings:
    return settings.with_overrides(
        smtp_url=f"smtp://127.0.0.1:{smtp_port}",
        mail_from="Support <support@example.com>",
        public_base_url="https://chat.example.com",
        visitor_away_minutes=0.0,
        mail_retry_base_seconds=0.1,
        mail_poll_seconds=0.05,
        smtp_timeout_seconds=2.0,
        **extra,
    )


async def start_client(aiohttp_client: Any, settings: Settings) -> TestClient:
    app = create_app(settings, bcrypt_rounds=4)
    test_client: TestClient = await aiohttp_client(app)
    await app[DB_POOL].execute("TRUNCATE users, tickets, messages CASCADE")
    return test_client


@pytest.fixture
async def mail_client(aiohttp_client: Any, settings: Settings, smtp: Controller, smtp_port: int) -> TestClient:
    return await start_client(aiohttp_client, mail_settings(settings, smtp_port))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def visitor_with_ticket(client: TestClient, contact: str | None = "cara@example.com") -> dict[str, Any]:
    """An anonymous widget visitor with a ticket, who gave `contact` in the widget."""
    resp = await client.post("/widget/visitors", json={})
    assert resp.status == 201, await resp.text()
    visitor = await resp.json()
    token = visitor["access_token"]
    resp = await client.post(
        "/tickets", json={"subject": "Parcel <late>", "message": "Where is it?"}, headers=bearer(token)
    )
    assert resp.status == 201, await resp.text()
    ticket = (await resp.json())["ticket"]
    if contact is not None:
        resp = await client.put(
            f"/tickets/{ticket['id']}/contact-email", json={"email": contact}, headers=bearer(token)
        )
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["ticket"]["contact_email"] == contact
    return {"token": token, "user": visitor["user"], "ticket": ticket}


async def visit_and_leave(client: TestClient, token: str, ticket_id: str) -> None:
    """The visitor opens the conversation's socket and closes it (they left)."""
    ws = await client.ws_connect(f"/tickets/{ticket_id}/ws", headers=bearer(token))
    assert (await ws.receive_json())["type"] == "joined"
    await ws.close()
    # Their leaving is written when the server has seen the close.
    pool = client.app[DB_POOL]
    for _ in range(200):
        if await pool.fetchval("SELECT visitor_left_at FROM tickets WHERE id = $1", uuid.UUID(ticket_id)):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the visitor's leaving was never recorded")


async def agent_says(client: TestClient, agent: User, ticket_id: str, body: str, internal: bool = False) -> None:
    resp = await client.post(
        f"/tickets/{ticket_id}/messages", json={"body": body, "internal": internal}, headers=agent.headers
    )
    assert resp.status == 201, await resp.text()


def bodies(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


def reopen_link(message: EmailMessage, base: str = "https://chat.example.com") -> str:
    text, _ = bodies(message)
    links = [word for word in text.split() if word.startswith(base + "/")]
    assert len(links) == 1, text
    return links[0]


async def job_rows(client: TestClient, ticket_id: str) -> list[Any]:
    return await client.app[DB_POOL].fetch(
        "SELECT kind, status, attempts, last_error FROM mail_jobs WHERE ticket_id = $1 ORDER BY id",
        uuid.UUID(ticket_id),
    )


async def wait_for_job(client: TestClient, ticket_id: str, status: str) -> list[Any]:
    for _ in range(300):
        rows = await job_rows(client, ticket_id)
        if rows and all(r["status"] == status for r in rows):
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"mail jobs never reached {status}: {await job_rows(client, ticket_id)}")


# ---- reply emails and the reopen link --------------------------------------------------------------


async def test_an_agent_reply_reaches_a_visitor_who_left_with_a_link_that_reopens_the_ticket(
    mail_client: TestClient, make_user: MakeUser, inbox: Inbox
) -> None:
    client = mail_client
    visitor = await visitor_with_ticket(client)
    ticket_id = visitor["ticket"]["id"]
    await visit_and_leave(client, visitor["token"], ticket_id)
    agent = await make_user("agent", name="Alex")
    await agent_says(client, agent, ticket_id, "note for the team", internal=True)
    await agent_says(client, agent, ticket_id, "Your parcel ships **today** <script>x()</script>")

    [message] = await inbox.wait_for(1)
    envelope = inbox.messages[0][0]
    assert envelope.rcpt_tos == ["cara@example.com"]
    assert message["To"] == "cara@example.com"
    assert message["From"] == "Support <support@example.com>"
    assert "Parcel <late>" in message["Subject"]
    text, html = bodies(message)
    assert "Your parcel ships **today** <script>x()</script>" in text
    assert "Alex" in text
    assert "note for the team" not in text and "note for the team" not in html
    # The HTML body escapes what people wrote.
    assert "<script>" not in html and "&lt;script&gt;x()&lt;/script&gt;" in html
    assert "Parcel &lt;late&gt;" in html

    # Follow the link as the widget frame does: the token is in the fragment.
    link = reopen_link(message)
    parts = urlsplit(link)
    assert parts.path == "/widget/frame" and parts.fragment.startswith("reopen=")
    page = await client.get(parts.path)
    assert page.status == 200
    resp = await client.post("/widget/reopen", json={"token": parts.fragment.removeprefix("reopen=")})
    assert resp.status == 200, await resp.text()
    signed_in = await assert_matches_spec(resp, "post", "/widget/reopen")
    assert signed_in["ticket_id"] == ticket_id
    assert signed_in["user"]["id"] == visitor["user"]["id"]
    headers = bearer(signed_in["access_token"])
    me = await (await client.get("/auth/me", headers=headers)).json()
    assert me["user"]["id"] == visitor["user"]["id"]
    resp = await client.get(f"/tickets/{ticket_id}/messages", headers=headers)
    assert resp.status == 200
    said = [m["body"] for m in (await resp.json())["messages"]]
    assert "Your parcel ships **today** <script>x()</script>" in said
    assert "note for the team" not in said


async def test_replies_written_while_the_visitor_is_away_are_coalesced_into_one_email(
    aiohttp_client: Any, settings: Settings, smtp: Controller, smtp_port: int, inbox: Inbox, make_user: MakeUser
) -> None:
    # Away counts from their leaving: replies written within that minute and a bit go out together.
    client = await start_client(
        aiohttp_client, mail_settings(settings, smtp_port).with_overrides(visitor_away_minutes=0.03)
    )
    visitor = await visitor_with_ticket(client)
    ticket_id = visitor["ticket"]["id"]
    await visit_and_leave(client, visitor["token"], ticket_id)
    agent = await make_user("agent", name="Alex")
    await agent_says(client, agent, ticket_id, "First reply")
    await agent_says(client, agent, ticket_id, "Second reply")
    [message] = await inbox.wait_for(1)
    text, _ = bodies(message)
    assert "First reply" in text and "Second reply" in text
    assert message["Subject"].startswith("2 new replies")
    await wait_for_job(client, ticket_id, "sent")
    # A later reply is a new email with that reply only.
    await agent_says(client, agent, ticket_id, "Third reply")
    messages = await inbox.wait_for(2)
    text, _ = bodies(messages[1])
    assert "Third reply" in text and "First reply" not in text


async def test_a_visitor_still_connected_gets_no_email(
    mail_client: TestClient, make_user: MakeUser, inbox: Inbox
) -> None:
    client = mail_client
    visitor = await visitor_with_ticket(client)
    ticket_id = visitor["ticket"]["id"]
    ws = await client.ws_connect(f"/tickets/{ticket_id}/ws", headers=bearer(visitor["token"]))
    try:
        assert (await ws.receive_json())["type"] == "joined"
        agent = await make_user("agent")
        await agent_says(client, agent, ticket_id, "Here while you are")
        await wait_for_job(client, ticket_id, "skipped")
        assert inbox.messages == []
    finally:
        await ws.close()


async def test_a_visitor_without_an_address_gets_no_email(
    mail_client: TestClient, make_user: MakeUser, inbox: Inbox
) -> None:
    client = mail_client
    visitor = await visitor_with_ticket(client, contact=None)
    agent = await make_user("agent")
    await agent_says(client, agent, visitor["ticket"]["id"], "Hello?")
    assert await job_rows(client, visitor["ticket"]["id"]) == []


async def test_an_expired_or_tampered_link_is_refused(mail_client: TestClient) -> None:
    client = mail_client
    visitor = await visitor_with_ticket(client)
    user_id, ticket_id = uuid.UUID(visitor["user"]["id"]), uuid.UUID(visitor["ticket"]["id"])
    expired = reopen_token(TEST_SECRET, user_id, ticket_id, 0, -60)
    resp = await client.post("/widget/reopen", json={"token": expired})
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "link_expired"

    good = reopen_token(TEST_SECRET, user_id, ticket_id, 0, 600)
    head, payload, signature = good.split(".")
    tampered = f"{head}.{payload}.{signature[:-2]}{'A' if signature[-2] != 'A' else 'B'}{signature[-1]}"
    forged = reopen_token("another-secret-" + "y" * 40, user_id, ticket_id, 0, 600)
    for token in (tampered, forged, visitor["token"], "not a token"):
        resp = await client.post("/widget/reopen", json={"token": token})
        assert resp.status == 401, token
        assert (await resp.json())["error"]["code"] == "link_invalid"
    # A link for another visitor's ticket opens nothing.
    other = await visitor_with_ticket(client)
    crossed = reopen_token(TEST_SECRET, user_id, uuid.UUID(other["ticket"]["id"]), 0, 600)
    assert (await client.post("/widget/reopen", json={"token": crossed})).status == 404
    assert (await client.post("/widget/reopen", json={"token": good})).status == 200


async def test_a_link_is_refused_once_the_account_signed_out_everywhere(mail_client: TestClient) -> None:
    client = mail_client
    visitor = await visitor_with_ticket(client)
    user_id, ticket_id = uuid.UUID(visitor["user"]["id"]), uuid.UUID(visitor["ticket"]["id"])
    link = reopen_token(TEST_SECRET, user_id, ticket_id, 0, 600)
    await client.app[DB_POOL].execute(
        "UPDATE users SET session_generation = session_generation + 1 WHERE id = $1", user_id
    )
    resp = await client.post("/widget/reopen", json={"token": link})
    assert resp.status == 401


async def test_only_widget_visitors_sign_in_by_link(mail_client: TestClient, make_user: MakeUser) -> None:
    client = mail_client
    customer = await make_user("customer")
    resp = await client.post("/tickets", json={"subject": "Mine"}, headers=customer.headers)
    ticket_id = (await resp.json())["ticket"]["id"]
    link = reopen_token(TEST_SECRET, uuid.UUID(customer.id), uuid.UUID(ticket_id), 0, 600)
    assert (await client.post("/widget/reopen", json={"token": link})).status == 401


# ---- the contact address ---------------------------------------------------------------------------


async def test_who_may_set_the_contact_address(mail_client: TestClient, make_user: MakeUser) -> None:
    client = mail_client
    visitor = await visitor_with_ticket(client, contact=None)
    path = f"/tickets/{visitor['ticket']['id']}/contact-email"
    assert (await client.put(path, json={"email": "a@example.com"})).status == 401
    other = await make_user("customer")
    assert (await client.put(path, json={"email": "a@example.com"}, headers=other.headers)).status == 404
    agent = await make_user("agent")
    resp = await client.put(path, json={"email": "agent-set@example.com"}, headers=agent.headers)
    assert resp.status == 200
    # Agents and the owner see it in the ticket.
    for headers in (agent.headers, bearer(visitor["token"])):
        ticket = await (await client.get(f"/tickets/{visitor['ticket']['id']}", headers=headers)).json()
        assert ticket["ticket"]["contact_email"] == "agent-set@example.com"
    resp = await client.put(path, json={"email": None}, headers=bearer(visitor["token"]))
    assert resp.status == 200 and (await resp.json())["ticket"]["contact_email"] is None


@pytest.mark.parametrize(
    "address", ["not an email", "a@b", "x@visitors.invalid", "a@example.com\r\nBcc: b@example.com"]
)
async def test_a_bad_contact_address_is_refused(mail_client: TestClient, address: str) -> None:
    client = mail_client
    visitor = await visitor_with_ticket(client, contact=None)
    resp = await client.put(
        f"/tickets/{visitor['ticket']['id']}/contact-email", json={"email": address}, headers=bearer(visitor["token"])
    )
    assert resp.status == 422
    assert (await resp.json())["error"]["code"] == "validation_error"


# ---- transcripts ---------------------------------------------------------------------------------


async def test_the_owner_gets_a_transcript_by_email(mail_client: TestClient, make_user: MakeUser, inbox: Inbox) -> None:
    client = mail_client
    visitor = await visitor_with_ticket(client)
    ticket_id = visitor["ticket"]["id"]
    agent = await make_user("agent", name="Alex")
    await agent_says(client, agent, ticket_id, "internal only", internal=True)
    ws = await client.ws_connect(f"/tickets/{ticket_id}/ws", headers=bearer(visitor["token"]))
    await ws.receive_json()
    await agent_says(client, agent, ticket_id, "It ships today")
    resp = await client.patch(f"/tickets/{ticket_id}", json={"status": "closed"}, headers=bearer(visitor["token"]))
    assert resp.status == 200
    await ws.close()

    path = f"/tickets/{ticket_id}/transcript"
    assert (await client.post(path, json={})).status == 401
    other = await make_user("customer")
    assert (await client.post(path, json={}, headers=other.headers)).status == 404
    assert (await client.post(path, json={}, headers=agent.headers)).status == 403
    resp = await client.post(path, json={"email": "copy@example.com"}, headers=bearer(visitor["token"]))
    assert resp.status == 202, await resp.text()
    queued = await assert_matches_spec(resp, "post", "/tickets/{ticket_id}/transcript")
    assert queued["transcript"]["email"] == "copy@example.com"

    [message] = await inbox.wait_for(1)
    assert message["To"] == "copy@example.com"
    assert message["Subject"].startswith("Transcript:")
    text, _ = bodies(message)
    assert "Where is it?" in text and "It ships today" in text and "Alex" in text
    assert "internal only" not in text
    # Without an address in the request it goes to the ticket's contact address.
    resp = await client.post(path, json={}, headers=bearer(visitor["token"]))
    assert resp.status == 202 and (await resp.json())["transcript"]["email"] == "cara@example.com"
    await inbox.wait_for(2)


async def test_transcripts_per_ticket_are_limited(mail_client: TestClient, inbox: Inbox) -> None:
    client = mail_client
    visitor = await visitor_with_ticket(client)
    path = f"/tickets/{visitor['ticket']['id']}/transcript"
    statuses = [(await client.post(path, json={}, headers=bearer(visitor["token"]))).status for _ in range(4)]
    assert statuses == [202, 202, 202, 429]


# ---- a mail server that is down --------------------------------------------------------------------


async def test_when_smtp_is_down_the_message_is_stored_and_the_mail_sent_later(
    aiohttp_client: Any, settings: Settings, inbox: Inbox, make_user: MakeUser
) -> None:
    port = free_port()  # nothing listens here yet
    client = await start_client(aiohttp_client, mail_settings(settings, port))
    visitor = await visitor_with_ticket(client)
    ticket_id = visitor["ticket"]["id"]
    await visit_and_leave(client, visitor["token"], ticket_id)
    agent = await make_user("agent")
    await agent_says(client, agent, ticket_id, "Sent while the mail server is down")
    # The message is stored and readable at once, whatever the mail server does.
    resp = await client.get(f"/tickets/{ticket_id}/messages", headers=bearer(visitor["token"]))
    assert "Sent while the mail server is down" in [m["body"] for m in (await resp.json())["messages"]]
    for _ in range(300):
        rows = await job_rows(client, ticket_id)
        if rows and rows[0]["attempts"] >= 2 and rows[0]["last_error"]:
            break
        await asyncio.sleep(0.05)
    [row] = await job_rows(client, ticket_id)
    assert row["status"] == "pending" and row["attempts"] >= 2
    assert "Connect" in row["last_error"] or "Error" in row["last_error"]

    controller = smtp_server(inbox, port)
    try:
        [message] = await inbox.wait_for(1)
        assert "Sent while the mail server is down" in bodies(message)[0]
        await wait_for_job(client, ticket_id, "sent")
    finally:
        controller.stop()


# ---- no SMTP_URL -------------------------------------------------------------------------------------


@pytest.fixture
async def no_mail_client(aiohttp_client: Any, settings: Settings) -> AsyncIterator[TestClient]:
    assert settings.smtp_url is None
    yield await start_client(aiohttp_client, settings)


async def test_without_smtp_nothing_is_queued_and_transcripts_are_refused(
    no_mail_client: TestClient, make_user: MakeUser
) -> None:
    client = no_mail_client
    config = await (await client.get("/widget/config")).json()
    assert config["email"] == {"enabled": False, "ask": False}
    visitor = await visitor_with_ticket(client)
    agent = await make_user("agent")
    await agent_says(client, agent, visitor["ticket"]["id"], "No mail for this")
    assert await job_rows(client, visitor["ticket"]["id"]) == []
    resp = await client.post(
        f"/tickets/{visitor['ticket']['id']}/transcript", json={}, headers=bearer(visitor["token"])
    )
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "email_disabled"


async def test_with_smtp_the_away_widget_asks_for_an_email(mail_client: TestClient) -> None:
    config = await (await mail_client.get("/widget/config")).json()
    # No agent has the inbox open: away, and the default capture mode asks when away.
    assert config["status"]["away"] is True
    assert config["email"] == {"enabled": True, "ask": True}


def test_the_templates_folder_exists() -> None:
    from chatserver.services.mail import TEMPLATES_DIR

    assert sorted(p.name for p in Path(TEMPLATES_DIR).iterdir()) == [
        "invitation.html",
        "invitation.txt",
        "reply.html",
        "reply.txt",
        "transcript.html",
        "transcript.txt",
    ]


# ---- settings ------------------------------------------------------------------------------------


def test_email_settings_are_read_and_checked(tmp_path: Path) -> None:
    from chatserver.services.mail import SmtpTarget
    from chatserver.settings import ConfigError, load_settings

    base = {"CHATSERVER_DATA_DIR": str(tmp_path), "SECRET_KEY": "k" * 40, "HOST": "0.0.0.0", "PORT": "9000"}
    plain = load_settings(base)
    assert plain.smtp_url is None and not plain.email_enabled
    assert plain.public_base_url == "http://0.0.0.0:9000"
    assert "p%40ss" not in repr(load_settings({**base, "SMTP_URL": "smtp://u:p%40ss@mail:2525"}))
    on = load_settings(
        {**base, "SMTP_URL": "smtps://me%40x.com:p%40ss@mail.example.com", "PUBLIC_BASE_URL": "https://chat.x.com/"}
    )
    assert on.email_enabled and on.public_base_url == "https://chat.x.com"
    target = SmtpTarget.from_url(on.smtp_url or "")
    assert (target.hostname, target.port, target.use_tls) == ("mail.example.com", 465, True)
    assert (target.username, target.password) == ("me@x.com", "p@ss")
    for bad in (
        {"SMTP_URL": "http://mail"},
        {"SMTP_URL": "smtp://:25"},
        {"SMTP_URL": "smtp://mail:port"},
        {"MAIL_FROM": "nobody"},
        {"VISITOR_AWAY_MINUTES": "-1"},
    ):
        with pytest.raises(ConfigError) as info:
            load_settings({**base, **bad})
        assert next(iter(bad)) in str(info.value)


async def test_workers_of_several_instances_share_the_jobs_without_sending_one_twice(
    aiohttp_client: Any, settings: Settings, smtp: Controller, smtp_port: int, inbox: Inbox
) -> None:
    from chatserver.services.mail import MailWorker

    # The app's own worker polls rarely here, so the two below do the work.
    client = await start_client(
        aiohttp_client, mail_settings(settings, smtp_port).with_overrides(mail_poll_seconds=600.0)
    )
    visitor = await visitor_with_ticket(client)
    pool = client.app[DB_POOL]
    ticket_id = uuid.UUID(visitor["ticket"]["id"])
    for i in range(12):
        await pool.execute(
            "INSERT INTO mail_jobs (kind, ticket_id, recipient) VALUES ('transcript', $1, $2)",
            ticket_id,
            f"copy{i}@example.com",
        )

    async def nobody_here(ticket: uuid.UUID, customer: uuid.UUID) -> bool:
        return False

    config = mail_settings(settings, smtp_port)
    workers = [MailWorker(pool, config, nobody_here), MailWorker(pool, config, nobody_here)]

    async def drain(worker: MailWorker) -> int:
        sent = 0
        while claimed := await worker.run_once():
            sent += claimed
        return sent

    counts = await asyncio.gather(*(drain(w) for w in workers))
    assert sum(counts) == 12
    messages = await inbox.wait_for(12)
    assert sorted(str(m["To"]) for m in messages) == sorted(f"copy{i}@example.com" for i in range(12))
    assert [r["status"] for r in await job_rows(client, str(ticket_id))] == ["sent"] * 12
