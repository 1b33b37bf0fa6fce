"""Invitations to the team against a real SMTP server on loopback (aiosmtpd): an admin invites an
agent by email, the emailed link sets the password once and signs in, and every way a link stops
working (used, expired, re-sent, account disabled, password set otherwise). Without SMTP_URL the
admin gets the link instead. Roles and malformed bodies."""

from __future__ import annotations

import asyncio
import re
import uuid
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient
from aiosmtpd.controller import Controller

from chatserver.keys import DB_POOL, MAILER
from chatserver.services.auth import create_user
from chatserver.services.invitations import INVITATIONS_PER_HOUR
from chatserver.services.mail import invitation_token, reopen_token
from chatserver.settings import Settings

from . import test_email
from .conftest import PASSWORD, TEST_SECRET, User
from .test_email import Inbox, bearer, mail_settings, start_client
from .test_openapi import assert_matches_spec

# The real SMTP server on loopback of tests/test_email.py.
inbox = test_email.inbox
smtp_port = test_email.smtp_port
smtp = test_email.smtp

NEW_PASSWORD = "a brand new secret"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
async def mail_client(aiohttp_client: Any, settings: Settings, smtp: Controller, smtp_port: int) -> TestClient:
    return await start_client(aiohttp_client, mail_settings(settings, smtp_port))


@pytest.fixture
async def plain_client(aiohttp_client: Any, settings: Settings) -> TestClient:
    """Email off: no SMTP_URL."""
    return await start_client(aiohttp_client, settings.with_overrides(public_base_url="https://chat.example.com"))


async def member(client: TestClient, role: str = "admin") -> User:
    """An account with a password, signed in through the API."""
    email = f"{role}-{uuid.uuid4().hex[:10]}@example.com"
    await create_user(client.app[DB_POOL], email=email, password=PASSWORD, role=role, name=role, bcrypt_rounds=4)
    resp = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    return User(data["user"]["id"], email, role, data["access_token"])


async def invite(
    client: TestClient, admin: User, email: str = "nia@example.com", role: str = "agent", name: str = "Nia"
) -> dict[str, Any]:
    resp = await client.post(
        "/admin/invitations", json={"email": email, "role": role, "name": name}, headers=admin.headers
    )
    assert resp.status == 201, await resp.text()
    await assert_matches_spec(resp, "post", "/admin/invitations")
    return dict(await resp.json())


async def resend(client: TestClient, admin: User, user_id: str) -> dict[str, Any]:
    resp = await client.post(f"/admin/users/{user_id}/invitation", headers=admin.headers)
    assert resp.status == 200, await resp.text()
    await assert_matches_spec(resp, "post", "/admin/users/{user_id}/invitation")
    return dict(await resp.json())


def link_in(message: EmailMessage) -> str:
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    match = re.search(r"https://chat\.example\.com/console/invite#token=\S+", text.get_content())
    assert match, text.get_content()
    html = message.get_body(preferencelist=("html",))
    assert html is not None and match.group(0) in html.get_content()
    return match.group(0)


def token_of(link: str) -> str:
    parts = urlsplit(link)
    assert parts.path == "/console/invite" and not parts.query, "the token must stay out of the path and query"
    assert parts.fragment.startswith("token=")
    return parts.fragment.removeprefix("token=")


async def accept(client: TestClient, token: str, password: str = NEW_PASSWORD) -> Any:
    return await client.post("/auth/invitation", json={"token": token, "password": password})


async def refused(resp: Any, status: int, code: str) -> None:
    assert resp.status == status, await resp.text()
    assert (await resp.json())["error"]["code"] == code
    await assert_matches_spec(resp, "post", "/auth/invitation")


async def login_status(client: TestClient, email: str, password: str) -> int:
    return (await client.post("/auth/login", json={"email": email, "password": password})).status


async def status_of(client: TestClient, admin: User, user_id: str) -> str:
    resp = await client.get(f"/admin/users/{user_id}", headers=admin.headers)
    return str((await resp.json())["user"]["status"])


async def jobs(client: TestClient, user_id: str) -> list[str]:
    rows = await client.app[DB_POOL].fetch(
        "SELECT status FROM mail_jobs WHERE user_id = $1 ORDER BY id", uuid.UUID(user_id)
    )
    return [r["status"] for r in rows]


async def wait_for_jobs(client: TestClient, user_id: str, *statuses: str) -> None:
    for _ in range(300):
        if await jobs(client, user_id) == list(statuses):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"jobs {await jobs(client, user_id)}, expected {list(statuses)}")


# ---- the invitation email and its link ------------------------------------------------------------


async def test_the_invitation_email_carries_a_link_that_sets_the_password_and_signs_in(
    mail_client: TestClient, inbox: Inbox
) -> None:
    admin = await member(mail_client)
    result = await invite(mail_client, admin, email="Nia@Example.com")
    user = result["user"]
    assert user["status"] == "invited" and user["invited_at"] and user["role"] == "agent"
    # Email on: the link goes to the invitee only, not to the admin.
    assert result["invitation"]["delivery"] == "email" and "link" not in result["invitation"]

    [message] = await inbox.wait_for(1)
    envelope = inbox.messages[0][0]
    assert envelope.rcpt_tos == ["Nia@Example.com"]
    assert message["To"] == "Nia@Example.com" and "invited" in message["Subject"].lower()
    assert "X-Chatserver-Ticket" not in message
    assert "Nia" in message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    token = token_of(link_in(message))
    await wait_for_jobs(mail_client, user["id"], "sent")

    resp = await accept(mail_client, token)
    assert resp.status == 200, await resp.text()
    await assert_matches_spec(resp, "post", "/auth/invitation")
    signed_in = await resp.json()
    assert signed_in["user"]["id"] == user["id"]
    me = await mail_client.get("/auth/me", headers=bearer(signed_in["access_token"]))
    assert me.status == 200 and (await me.json())["user"]["email"] == "Nia@Example.com"
    # The password works for an ordinary login from now on, and the account is active.
    assert await login_status(mail_client, "nia@example.com", NEW_PASSWORD) == 200
    assert await status_of(mail_client, admin, user["id"]) == "active"


async def test_an_invited_account_cannot_sign_in_before_setting_its_password(
    mail_client: TestClient, inbox: Inbox
) -> None:
    admin = await member(mail_client)
    await invite(mail_client, admin)
    for password in (PASSWORD, NEW_PASSWORD, "x"):
        resp = await mail_client.post("/auth/login", json={"email": "nia@example.com", "password": password})
        # As an unknown email answers: the invitation is not revealed to whoever guesses addresses.
        assert resp.status == 401 and (await resp.json())["error"]["code"] == "invalid_credentials"
    page = await mail_client.get("/console/login")
    csrf = CSRF_FIELD.search(await page.text())
    assert csrf
    resp = await mail_client.post(
        "/console/login",
        data={"email": "nia@example.com", "password": PASSWORD, "csrf_token": csrf.group(1)},
        allow_redirects=False,
    )
    assert resp.status == 401


async def test_a_link_works_once(mail_client: TestClient, inbox: Inbox) -> None:
    admin = await member(mail_client)
    await invite(mail_client, admin)
    token = token_of(link_in((await inbox.wait_for(1))[0]))
    assert (await accept(mail_client, token)).status == 200
    await refused(await accept(mail_client, token, "someone else's choice"), 410, "invitation_used")
    # The first password stands.
    assert await login_status(mail_client, "nia@example.com", NEW_PASSWORD) == 200
    assert await login_status(mail_client, "nia@example.com", "someone else's choice") == 401


async def test_two_requests_with_one_link_set_one_password(plain_client: TestClient) -> None:
    admin = await member(plain_client)
    token = token_of((await invite(plain_client, admin))["invitation"]["link"])
    first, second = await asyncio.gather(accept(plain_client, token, "first password"), accept(plain_client, token))
    assert sorted([first.status, second.status]) == [200, 410]
    winner = "first password" if first.status == 200 else NEW_PASSWORD
    loser = NEW_PASSWORD if first.status == 200 else "first password"
    assert await login_status(plain_client, "nia@example.com", winner) == 200
    assert await login_status(plain_client, "nia@example.com", loser) == 401


async def test_an_expired_link_is_refused(mail_client: TestClient, inbox: Inbox) -> None:
    admin = await member(mail_client)
    user = (await invite(mail_client, admin))["user"]
    generation = await mail_client.app[DB_POOL].fetchval(
        "SELECT session_generation FROM users WHERE id = $1", uuid.UUID(user["id"])
    )
    # A genuine link for the right generation, past its expiry.
    expired = invitation_token(TEST_SECRET, uuid.UUID(user["id"]), generation, -10)
    await refused(await accept(mail_client, expired), 410, "invitation_expired")
    fresh = invitation_token(TEST_SECRET, uuid.UUID(user["id"]), generation, 60)
    assert (await accept(mail_client, fresh)).status == 200


async def test_a_resent_invitation_replaces_the_earlier_link(mail_client: TestClient, inbox: Inbox) -> None:
    admin = await member(mail_client)
    user = (await invite(mail_client, admin))["user"]
    first = token_of(link_in((await inbox.wait_for(1))[0]))
    again = await resend(mail_client, admin, user["id"])
    assert again["invitation"]["delivery"] == "email" and again["user"]["status"] == "invited"
    second = token_of(link_in((await inbox.wait_for(2))[1]))
    assert second != first
    await refused(await accept(mail_client, first), 410, "invitation_revoked")
    assert (await accept(mail_client, second)).status == 200
    # Nothing left to re-send once the password is set.
    resp = await mail_client.post(f"/admin/users/{user['id']}/invitation", headers=admin.headers)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "not_invited"


async def test_a_queued_invitation_replaced_before_it_is_sent_is_skipped(
    aiohttp_client: Any, settings: Settings, smtp: Controller, smtp_port: int, inbox: Inbox
) -> None:
    client = await start_client(aiohttp_client, mail_settings(settings, smtp_port))
    mailer = client.app[MAILER]
    # The worker stops, so both jobs are queued before either runs; then one batch runs by hand.
    await mailer.close()
    admin = await member(client)
    user = (await invite(client, admin))["user"]
    await resend(client, admin, user["id"])
    assert await mailer.run_once() == 2
    assert await jobs(client, user["id"]) == ["skipped", "sent"]
    [message] = await inbox.wait_for(1)
    assert (await accept(client, token_of(link_in(message)))).status == 200


async def test_a_disabled_account_cannot_use_its_link_nor_be_reinvited(mail_client: TestClient, inbox: Inbox) -> None:
    admin = await member(mail_client)
    user = (await invite(mail_client, admin))["user"]
    token = token_of(link_in((await inbox.wait_for(1))[0]))
    resp = await mail_client.post(f"/admin/users/{user['id']}/disable", headers=admin.headers)
    assert resp.status == 200 and (await resp.json())["user"]["status"] == "disabled"
    await refused(await accept(mail_client, token), 403, "account_disabled")
    resp = await mail_client.post(f"/admin/users/{user['id']}/invitation", headers=admin.headers)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "account_disabled"
    # Enabled again, it is still invited, but the link from before the disable stays dead.
    resp = await mail_client.post(f"/admin/users/{user['id']}/enable", headers=admin.headers)
    assert (await resp.json())["user"]["status"] == "invited"
    await refused(await accept(mail_client, token), 410, "invitation_revoked")
    await resend(mail_client, admin, user["id"])
    assert (await accept(mail_client, token_of(link_in((await inbox.wait_for(2))[1])))).status == 200


async def test_a_password_set_by_an_admin_ends_the_invitation(mail_client: TestClient, inbox: Inbox) -> None:
    admin = await member(mail_client)
    user = (await invite(mail_client, admin))["user"]
    token = token_of(link_in((await inbox.wait_for(1))[0]))
    resp = await mail_client.post(
        f"/admin/users/{user['id']}/password", json={"password": PASSWORD}, headers=admin.headers
    )
    assert resp.status == 200 and (await resp.json())["user"]["status"] == "active"
    await refused(await accept(mail_client, token), 410, "invitation_used")
    assert await login_status(mail_client, "nia@example.com", PASSWORD) == 200


async def test_re_sending_is_limited_per_hour(mail_client: TestClient, inbox: Inbox) -> None:
    admin = await member(mail_client)
    user = (await invite(mail_client, admin))["user"]
    for _ in range(INVITATIONS_PER_HOUR - 1):
        await resend(mail_client, admin, user["id"])
    resp = await mail_client.post(f"/admin/users/{user['id']}/invitation", headers=admin.headers)
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0


# ---- without email ---------------------------------------------------------------------------------


async def test_without_email_the_admin_gets_the_link_to_pass_on(plain_client: TestClient) -> None:
    admin = await member(plain_client)
    result = await invite(plain_client, admin)
    invitation = result["invitation"]
    assert invitation["delivery"] == "link" and invitation["expires_at"]
    first = token_of(invitation["link"])
    assert invitation["link"].startswith("https://chat.example.com/console/invite#")
    assert await jobs(plain_client, result["user"]["id"]) == []  # nothing queued for a mailer that is off
    second = token_of((await resend(plain_client, admin, result["user"]["id"]))["invitation"]["link"])
    await refused(await accept(plain_client, first), 410, "invitation_revoked")
    assert (await accept(plain_client, second)).status == 200


# ---- the console's page ------------------------------------------------------------------------------


async def test_the_console_page_sets_the_password_and_opens_a_console_session(plain_client: TestClient) -> None:
    admin = await member(plain_client)
    result = await invite(plain_client, admin, role="admin")
    token = token_of(result["invitation"]["link"])
    page = await plain_client.get("/console/invite")
    assert page.status == 200 and page.headers["Cache-Control"] == "no-store"
    html = await page.text()
    # Labelled fields, and the script that moves the fragment's token into the form.
    assert '<label for="new_password">' in html and '<label for="repeat_password">' in html
    assert "/static/js/invite.js" in html
    csrf = CSRF_FIELD.search(html)
    assert csrf
    form = {"csrf_token": csrf.group(1), "token": token, "new_password": NEW_PASSWORD}

    differ = await plain_client.post(
        "/console/invite", data={**form, "repeat_password": "something else"}, allow_redirects=False
    )
    assert differ.status == 422 and "differ" in await differ.text()
    short = await plain_client.post(
        "/console/invite", data={**form, "new_password": "short", "repeat_password": "short"}, allow_redirects=False
    )
    assert short.status == 422 and "at least 8" in await short.text()
    # Neither spent the link.
    done = await plain_client.post(
        "/console/invite", data={**form, "repeat_password": NEW_PASSWORD}, allow_redirects=False
    )
    assert done.status == 303 and done.headers["Location"] == "/console"
    console = await plain_client.get("/console", allow_redirects=False)
    assert console.status == 200  # the session cookie signs them in
    admin_page = await plain_client.get("/console/admin", allow_redirects=False)
    assert admin_page.status == 200

    # The login renewed the CSRF token: the page gives the current one.
    fresh = CSRF_FIELD.search(await (await plain_client.get("/console/invite")).text())
    assert fresh
    again = await plain_client.post(
        "/console/invite",
        data={**form, "csrf_token": fresh.group(1), "repeat_password": NEW_PASSWORD},
        allow_redirects=False,
    )
    assert again.status == 410 and "already been used" in await again.text()
    assert 'name="new_password"' not in await again.text()


async def test_the_console_page_refuses_a_form_without_its_csrf_token(plain_client: TestClient) -> None:
    admin = await member(plain_client)
    token = token_of((await invite(plain_client, admin))["invitation"]["link"])
    resp = await plain_client.post(
        "/console/invite",
        data={"token": token, "new_password": NEW_PASSWORD, "repeat_password": NEW_PASSWORD},
        allow_redirects=False,
    )
    assert resp.status == 403
    assert (await accept(plain_client, token)).status == 200  # the link was not spent


# ---- the admin list -------------------------------------------------------------------------------


async def test_pending_invitations_show_in_the_account_list(plain_client: TestClient) -> None:
    admin = await member(plain_client)
    invited = (await invite(plain_client, admin))["user"]
    resp = await plain_client.get("/admin/users?role=agent", headers=admin.headers)
    assert [(u["id"], u["status"]) for u in (await resp.json())["users"]] == [(invited["id"], "invited")]
    pending = await (await plain_client.get("/admin/users?invited=true", headers=admin.headers)).json()
    assert [u["id"] for u in pending["users"]] == [invited["id"]]
    others = await (await plain_client.get("/admin/users?invited=false", headers=admin.headers)).json()
    assert [u["id"] for u in others["users"]] == [admin.id]
    assert (await plain_client.get("/admin/users?invited=maybe", headers=admin.headers)).status == 422
    # Not offered as an assignee until they have joined.
    agents = await (await plain_client.get("/console/api/agents", headers=admin.headers)).json()
    assert invited["id"] not in [a["id"] for a in agents["agents"]]


async def test_an_invited_admin_does_not_count_as_another_admin(plain_client: TestClient) -> None:
    admin = await member(plain_client)
    await invite(plain_client, admin, role="admin", email="ada@example.com")
    resp = await plain_client.post(f"/admin/users/{admin.id}/role", json={"role": "agent"}, headers=admin.headers)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "last_admin"


# ---- who may, and what is refused -------------------------------------------------------------------


async def test_only_admins_invite(plain_client: TestClient) -> None:
    admin = await member(plain_client)
    invited = (await invite(plain_client, admin))["user"]
    calls = [
        ("/admin/invitations", {"email": "x@example.com", "role": "admin"}),
        (f"/admin/users/{invited['id']}/invitation", None),
    ]
    for role in ("agent", "customer"):
        someone = await member(plain_client, role)
        for path, body in calls:
            resp = await plain_client.post(path, json=body, headers=someone.headers)
            assert resp.status == 403, f"{role} {path}: {resp.status}"
    for path, body in calls:
        assert (await plain_client.post(path, json=body)).status == 401
    assert await plain_client.app[DB_POOL].fetchval("SELECT count(*) FROM users WHERE email = 'x@example.com'") == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"email": "a@example.com"},
        {"email": "a@example.com", "role": "customer"},
        {"email": "a@example.com", "role": "owner"},
        {"email": "not an email", "role": "agent"},
        {"email": "a@example.com\r\nBcc: b@example.com", "role": "agent"},
        {"email": "<a@example.com>", "role": "agent"},
        {"email": 12, "role": "agent"},
        {"email": "a@example.com", "role": "agent", "name": ["x"]},
        {"email": "a@example.com", "role": "agent", "name": "x" * 101},
        {"email": "a@example.com", "role": "agent", "password": PASSWORD},
        {"email": "a@example.com" + "x" * 300, "role": "agent"},
        [],
        "a@example.com",
        None,
    ],
)
async def test_malformed_invitations_are_4xx(plain_client: TestClient, body: Any) -> None:
    admin = await member(plain_client)
    resp = await plain_client.post("/admin/invitations", json=body, headers=admin.headers)
    assert 400 <= resp.status < 500, await resp.text()
    assert "code" in (await resp.json())["error"]


async def test_an_email_already_taken_is_a_conflict(plain_client: TestClient) -> None:
    admin = await member(plain_client)
    resp = await plain_client.post(
        "/admin/invitations", json={"email": admin.email.upper(), "role": "agent"}, headers=admin.headers
    )
    assert resp.status == 409


async def test_resending_to_an_unknown_or_malformed_account(plain_client: TestClient) -> None:
    admin = await member(plain_client)
    assert (await plain_client.post(f"/admin/users/{uuid.uuid4()}/invitation", headers=admin.headers)).status == 404
    assert (await plain_client.post("/admin/users/nope/invitation", headers=admin.headers)).status in (400, 404, 422)
    resp = await plain_client.post(f"/admin/users/{admin.id}/invitation", headers=admin.headers)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "not_invited"


async def test_malformed_acceptances_are_4xx_and_spend_nothing(plain_client: TestClient) -> None:
    admin = await member(plain_client)
    result = await invite(plain_client, admin)
    token = token_of(result["invitation"]["link"])
    user_id = uuid.UUID(result["user"]["id"])
    generation = await plain_client.app[DB_POOL].fetchval("SELECT session_generation FROM users WHERE id = $1", user_id)
    not_links = [
        "garbage",
        token[:-4] + "AAAA",  # a tampered signature
        admin.token,  # an access token is not an invitation
        reopen_token(TEST_SECRET, user_id, uuid.uuid4(), generation, 60),  # nor is a reopen link
        invitation_token("another secret" * 3, user_id, generation, 60),
        invitation_token(TEST_SECRET, uuid.uuid4(), 0, 60),  # no such account
    ]
    for bad in not_links:
        await refused(await accept(plain_client, bad), 400, "invitation_invalid")
    for body in (
        {},
        {"token": token},
        {"password": NEW_PASSWORD},
        {"token": token, "password": "short"},
        {"token": token, "password": 12345678},
        {"token": None, "password": NEW_PASSWORD},
        {"token": token, "password": NEW_PASSWORD, "role": "admin"},
        {"token": "x" * 5000, "password": NEW_PASSWORD},
        [token, NEW_PASSWORD],
    ):
        resp = await plain_client.post("/auth/invitation", json=body)
        assert 400 <= resp.status < 500, f"{body}: {resp.status}"
        assert "code" in (await resp.json())["error"]
    resp = await plain_client.post("/auth/invitation", data=b"{not json", headers={"Content-Type": "application/json"})
    assert resp.status == 400
    # An invitation token is no bearer token either.
    assert (await plain_client.get("/auth/me", headers=bearer(token))).status == 401
    # None of it spent the link.
    assert (await accept(plain_client, token)).status == 200
