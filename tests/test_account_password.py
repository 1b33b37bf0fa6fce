"""Changing your own password: POST /auth/password (REST) and the console's account page. Every
other session and token of the account ends; the caller's own carries on."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient

from chatserver.settings import Settings
from chatserver.web_session import SESSION_COOKIE

from .conftest import PASSWORD, MakeUser, User
from .test_web_console import console_login, csrf_from, session_cookie

NEW = "a brand new passphrase"


async def change(client: TestClient, user: User, current: str, new: str) -> tuple[int, dict[str, object]]:
    resp = await client.post(
        "/auth/password", json={"current_password": current, "new_password": new}, headers=user.headers
    )
    return resp.status, await resp.json()


async def login(client: TestClient, user: User, password: str) -> int:
    resp = await client.post("/auth/login", json={"email": user.email, "password": password})
    return resp.status


async def test_a_user_changes_their_password_and_other_sessions_end(client: TestClient, make_user: MakeUser) -> None:
    for role in ("customer", "agent", "admin"):
        user = await make_user(role)
        elsewhere = await client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
        other_token = (await elsewhere.json())["access_token"]
        status, body = await change(client, user, PASSWORD, NEW)
        assert status == 200, body
        fresh = {"Authorization": f"Bearer {body['access_token']}"}
        assert (await client.get("/auth/me", headers=fresh)).status == 200
        for ended in (user.token, other_token):
            resp = await client.get("/auth/me", headers={"Authorization": f"Bearer {ended}"})
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == "session_ended"
        assert await login(client, user, PASSWORD) == 401
        assert await login(client, user, NEW) == 200


async def test_a_wrong_current_password_is_refused(client: TestClient, make_user: MakeUser) -> None:
    user = await make_user("agent")
    status, body = await change(client, user, "not my password", NEW)
    assert status == 403
    assert body["error"]["code"] == "invalid_credentials"  # type: ignore[index]
    assert await login(client, user, PASSWORD) == 200  # nothing changed


async def test_wrong_current_passwords_are_throttled_like_logins(client: TestClient, make_user: MakeUser) -> None:
    user = await make_user("agent")
    statuses = [(await change(client, user, f"guess {i}", NEW))[0] for i in range(8)]
    assert statuses[:5] == [403] * 5
    assert statuses[-1] == 429
    # ... and so is the login of that account from this address: it is one budget.
    assert await login(client, user, PASSWORD) == 429


async def test_the_new_password_follows_the_rules(client: TestClient, make_user: MakeUser) -> None:
    user = await make_user("agent")
    for new in ("short", PASSWORD):
        status, body = await change(client, user, PASSWORD, new)
        assert status == 422, body
        assert "new_password" in body["error"]["details"]["fields"]  # type: ignore[index]
    resp = await client.post("/auth/password", json={"current_password": PASSWORD}, headers=user.headers)
    assert resp.status == 422


async def test_changing_a_password_needs_a_token(client: TestClient) -> None:
    resp = await client.post("/auth/password", json={"current_password": PASSWORD, "new_password": NEW})
    assert resp.status == 401


async def test_an_api_key_has_no_password_to_change(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user("admin")
    resp = await client.post("/admin/api-keys", json={"name": "k", "scopes": ["admin"]}, headers=admin.headers)
    key = (await resp.json())["api_key"]["key"]
    resp = await client.post(
        "/auth/password",
        json={"current_password": PASSWORD, "new_password": NEW},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert resp.status in (401, 403)


# ---- the console page --------------------------------------------------------------------------


async def test_console_account_page_changes_the_password_and_keeps_this_session(
    client: TestClient, make_user: MakeUser
) -> None:
    agent = await make_user("agent")
    await console_login(client, agent)
    token = await csrf_from(client, "/console/account")
    resp = await client.post(
        "/console/account/password",
        data={"csrf_token": token, "current_password": PASSWORD, "new_password": NEW, "repeat_password": NEW},
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()
    assert resp.headers["Location"] == "/console/account?changed=1"
    page = await client.get("/console/account?changed=1", allow_redirects=False)
    assert page.status == 200
    assert "Your password has been changed" in await page.text()
    # This session still gets API tokens; the agent's earlier bearer token has ended.
    resp = await client.post("/console/api/token", headers={"X-CSRF-Token": token})
    assert resp.status == 200
    assert (await client.get("/auth/me", headers=agent.headers)).status == 401
    assert await login(client, agent, NEW) == 200


async def test_console_account_form_says_what_is_wrong(client: TestClient, make_user: MakeUser) -> None:
    agent = await make_user("agent")
    await console_login(client, agent)
    token = await csrf_from(client, "/console/account")
    cases = [
        ({"current_password": "wrong one", "new_password": NEW, "repeat_password": NEW}, 403, "incorrect"),
        ({"current_password": PASSWORD, "new_password": NEW, "repeat_password": NEW + "x"}, 422, "differ"),
        ({"current_password": PASSWORD, "new_password": "short", "repeat_password": "short"}, 422, "at least 8"),
    ]
    for form, status, words in cases:
        resp = await client.post("/console/account/password", data={"csrf_token": token, **form})
        assert resp.status == status
        assert words in await resp.text()
    resp = await client.post(
        "/console/account/password",
        data={"csrf_token": "forged", "current_password": PASSWORD, "new_password": NEW, "repeat_password": NEW},
    )
    assert resp.status == 403
    assert await login(client, agent, PASSWORD) == 200


async def test_console_account_page_needs_a_staff_session(client: TestClient) -> None:
    resp = await client.get("/console/account", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/login"
    resp = await client.get("/console/reports", allow_redirects=False)
    assert resp.status == 303


async def test_console_reports_page_draws_charts_and_tables(client: TestClient, make_user: MakeUser) -> None:
    agent = await make_user("agent")
    await console_login(client, agent)
    resp = await client.get("/console/reports?from=2026-11-02&to=2026-11-08&tz=UTC")
    assert resp.status == 200
    html = await resp.text()
    assert html.count("<svg") >= 2 and "<table" in html
    assert "<main" in html
    assert re.search(r'href="/console/reports/overview.csv\?from=2026-11-02&amp;to=2026-11-08&amp;tz=UTC"', html)
    csv = await client.get("/console/reports/agents.csv?from=2026-11-02&to=2026-11-08&tz=UTC")
    assert csv.status == 200 and csv.content_type == "text/csv"
    bad = await client.get("/console/reports?from=2026-11-09&to=2026-11-08")
    assert bad.status == 422
    assert "must not be after" in await bad.text()
    assert (await client.get("/console/reports/nope.csv")).status == 404


async def test_console_report_exports_are_for_staff_sessions(client: TestClient, make_user: MakeUser) -> None:
    resp = await client.get("/console/reports/overview.csv")
    assert resp.status == 401


async def test_a_customer_session_gets_neither_reports_nor_the_account_page(
    client: TestClient, make_user: MakeUser, settings: Settings
) -> None:
    customer = await make_user("customer")
    cookie = await session_cookie(settings, {"uid": customer.id, "role": "customer", "csrf": "t"})
    client.session.cookie_jar.update_cookies({SESSION_COOKIE: cookie})
    for path in ("/console/reports", "/console/account"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 403, path
    resp = await client.get("/console/reports/overview.csv")
    assert resp.status == 403
    resp = await client.post(
        "/console/account/password",
        data={"csrf_token": "t", "current_password": PASSWORD, "new_password": NEW, "repeat_password": NEW},
    )
    assert resp.status == 403
    assert await login(client, customer, PASSWORD) == 200


async def test_junk_without_a_session_is_refused_as_junk_not_redirected(client: TestClient) -> None:
    """Found by the fuzzer: a form missing its fields, or a malformed report period, from someone
    not logged in is a 422 naming what is wrong; a well-formed one is sent to the login page."""
    resp = await client.post(
        "/console/account/password", data={"csrf_token": "", "current_password": ""}, allow_redirects=False
    )
    assert resp.status == 422
    fields = (await resp.json())["error"]["details"]["fields"]
    assert set(fields) == {"new_password", "repeat_password"}
    resp = await client.post(
        "/console/account/password",
        data={"csrf_token": "", "current_password": "", "new_password": "", "repeat_password": "", "x": "1"},
        allow_redirects=False,
    )
    assert resp.status == 422 and set((await resp.json())["error"]["details"]["fields"]) == {"x"}
    whole = {"csrf_token": "", "current_password": "a", "new_password": "b", "repeat_password": "b"}
    resp = await client.post("/console/account/password", data=whole, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/login"

    resp = await client.get("/console/reports?to=AAA", allow_redirects=False)
    assert resp.status == 422 and (await resp.json())["error"]["code"] == "validation_error"
    resp = await client.get("/console/reports?to=2026-12-01", allow_redirects=False)
    assert resp.status == 303
