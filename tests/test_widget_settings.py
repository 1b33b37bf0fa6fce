"""Widget settings edited by admins: who may read and change them, validation, business hours and
away mode, what the widget frame gets, and a change reaching another instance without a restart."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import re
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from chatserver.services.widget_settings import is_open, next_opening, validate_settings
from chatserver.settings import Settings

from .conftest import PASSWORD, MakeUser, backplane_env
from .services import running_servers
from .test_openapi import assert_matches_spec

FULL = {
    "color": "#facc15",
    "title": "Help desk",
    "greeting": "Hello from the admin",
    "expected_reply": "We usually reply within the hour",
    "away_message": "We're away right now",
    "business_hours": {
        "timezone": "Europe/Paris",
        "schedule": [
            {"day": "mon", "open": "09:00", "close": "12:00"},
            {"day": "mon", "open": "13:00", "close": "17:30"},
            {"day": "sat", "open": "10:00", "close": "24:00"},
        ],
    },
    "default_locale": "fr",
    "languages": ["fr", "en"],
    "strings": {"fr": {"greeting": "Bonjour de l'admin"}},
    "email_capture": "always",
}
ALWAYS_CLOSED = {"business_hours": {"timezone": "UTC", "schedule": []}}


def assert_error(body: dict[str, Any], code: str) -> None:
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


# ---- authorization ------------------------------------------------------------------------------


async def test_only_admins_read_the_settings(client: TestClient, make_user: MakeUser) -> None:
    resp = await client.get("/admin/widget-settings")
    assert resp.status == 401
    assert_error(await resp.json(), "unauthorized")
    for role in ("customer", "agent"):
        user = await make_user(role)
        resp = await client.get("/admin/widget-settings", headers=user.headers)
        assert resp.status == 403, role
        assert_error(await resp.json(), "forbidden")
    admin = await make_user("admin")
    resp = await client.get("/admin/widget-settings", headers=admin.headers)
    assert resp.status == 200
    body = await resp.json()
    assert body["settings"]["color"] is None and body["settings"]["email_capture"] == "away"


async def test_only_admins_change_the_settings(client: TestClient, make_user: MakeUser) -> None:
    resp = await client.put("/admin/widget-settings", json={"color": "#000000"})
    assert resp.status == 401
    for role in ("customer", "agent"):
        user = await make_user(role)
        resp = await client.put("/admin/widget-settings", json={"color": "#000000"}, headers=user.headers)
        assert resp.status == 403, role
    admin = await make_user("admin")
    resp = await client.get("/admin/widget-settings", headers=admin.headers)
    assert (await resp.json())["settings"]["color"] != "#000000"


async def test_an_api_key_needs_the_admin_scope(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user("admin")
    keys = {}
    for scopes in (["tickets:read"], ["admin"]):
        resp = await client.post(
            "/admin/api-keys", json={"name": f"k-{scopes[0]}", "scopes": scopes}, headers=admin.headers
        )
        assert resp.status == 201, await resp.text()
        keys[scopes[0]] = (await resp.json())["api_key"]["key"]
    weak = {"Authorization": f"Bearer {keys['tickets:read']}"}
    strong = {"Authorization": f"Bearer {keys['admin']}"}
    assert (await client.put("/admin/widget-settings", json={}, headers=weak)).status == 403
    assert (await client.put("/admin/widget-settings", json={"greeting": "Hi"}, headers=strong)).status == 200


# ---- saving and reading ---------------------------------------------------------------------------


async def test_admin_saves_the_whole_document(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user("admin")
    resp = await client.put("/admin/widget-settings", json=FULL, headers=admin.headers)
    assert resp.status == 200, await resp.text()
    saved = await assert_matches_spec(resp, "put", "/admin/widget-settings")
    assert saved["settings"] == FULL
    assert saved["updated_by"] == admin.id and saved["version"] >= 1
    resp = await client.get("/admin/widget-settings", headers=admin.headers)
    assert (await assert_matches_spec(resp, "get", "/admin/widget-settings"))["settings"] == FULL
    # PUT replaces: what is left out is unset again.
    resp = await client.put("/admin/widget-settings", json={"greeting": "Only this"}, headers=admin.headers)
    body = await resp.json()
    assert body["settings"]["greeting"] == "Only this"
    assert body["settings"]["color"] is None and body["settings"]["business_hours"] is None
    assert body["version"] == saved["version"] + 1


async def test_the_widget_gets_the_effective_settings(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user("admin")
    await client.put("/admin/widget-settings", json=FULL, headers=admin.headers)
    resp = await client.get("/widget/config")
    assert resp.status == 200
    config = await assert_matches_spec(resp, "get", "/widget/config")
    assert config["settings"]["greeting"] == "Hello from the admin"
    assert config["settings"]["strings"] == {"fr": {"greeting": "Bonjour de l'admin"}}
    # The frame page carries the same document, escaped into an attribute.
    page = await (await client.get("/widget/frame")).text()
    match = re.search(r'data-widget-config="([^"]*)"', page)
    assert match is not None
    embedded = orjson.loads(html.unescape(match.group(1)))
    assert embedded["settings"] == config["settings"]


# ---- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"color": "red"}, "color"),
        ({"color": "#12345"}, "color"),
        ({"business_hours": {"timezone": "Mars/Olympus", "schedule": []}}, "business_hours.timezone"),
        ({"business_hours": {"timezone": "../etc/passwd", "schedule": []}}, "business_hours.timezone"),
        (
            {
                "business_hours": {
                    "timezone": "UTC",
                    "schedule": [
                        {"day": "tue", "open": "09:00", "close": "13:00"},
                        {"day": "tue", "open": "12:00", "close": "18:00"},
                    ],
                }
            },
            "business_hours.schedule[1]",
        ),
        (
            {"business_hours": {"timezone": "UTC", "schedule": [{"day": "wed", "open": "18:00", "close": "09:00"}]}},
            "business_hours.schedule[0]",
        ),
        (
            {"business_hours": {"timezone": "UTC", "schedule": [{"day": "wed", "open": "9am", "close": "17:00"}]}},
            "business_hours.schedule[0].open",
        ),
        (
            {"business_hours": {"timezone": "UTC", "schedule": [{"day": "funday", "open": "09:00", "close": "17:00"}]}},
            "business_hours.schedule[0].day",
        ),
        ({"business_hours": "9 to 5"}, "business_hours"),
        ({"default_locale": "xx"}, "default_locale"),
        ({"languages": []}, "languages"),
        ({"strings": {"klingon": {"greeting": "nuqneH"}}}, "strings.klingon"),
        ({"strings": {"en": {"greeting": 5}}}, "strings.en.greeting"),
        ({"greeting": "x" * 501}, "greeting"),
        ({"email_capture": "sometimes"}, "email_capture"),
        ({"colour": "#fff"}, "colour"),
        # Odd JSON types anywhere are a 422, never a 500.
        ({"business_hours": {"timezone": "UTC", "schedule": [5]}}, "business_hours.schedule[0]"),
        ({"business_hours": {"timezone": ["UTC"], "schedule": []}}, "business_hours.timezone"),
        ({"business_hours": {"timezone": "UTC", "schedule": {}}}, "business_hours.schedule"),
        (
            {"business_hours": {"timezone": "UTC", "schedule": [{"day": ["mon"], "open": 9, "close": None}]}},
            "business_hours.schedule[0].day",
        ),
        ({"languages": [["en"]]}, "languages"),
        ({"default_locale": {}}, "default_locale"),
        ({"strings": {"en": []}}, "strings.en"),
        ({"strings": []}, "strings"),
        ({"email_capture": ["away"]}, "email_capture"),
        ({"greeting": 42}, "greeting"),
    ],
)
async def test_bad_settings_are_refused_naming_the_field(
    client: TestClient, make_user: MakeUser, document: dict[str, Any], field: str
) -> None:
    admin = await make_user("admin")
    resp = await client.put("/admin/widget-settings", json=document, headers=admin.headers)
    assert resp.status == 422, await resp.text()
    body = await resp.json()
    assert_error(body, "validation_error")
    assert field in body["error"]["details"]["fields"], body


async def test_a_body_that_is_not_an_object_is_refused(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user("admin")
    resp = await client.put("/admin/widget-settings", json=["#fff"], headers=admin.headers)
    assert resp.status == 422
    resp = await client.put(
        "/admin/widget-settings", data=b"{", headers={**admin.headers, "Content-Type": "application/json"}
    )
    assert resp.status == 400


# ---- business hours ---------------------------------------------------------------------------------


def test_business_hours_are_read_in_their_time_zone() -> None:
    hours = validate_settings(FULL)["business_hours"]
    # Monday 2026-12-07 08:30 UTC is 09:30 in Paris (UTC+1 in winter): open.
    assert is_open(hours, dt.datetime(2026, 12, 7, 8, 30, tzinfo=dt.UTC))
    # 11:30 UTC is 12:30 in Paris: the lunch break.
    assert not is_open(hours, dt.datetime(2026, 12, 7, 11, 30, tzinfo=dt.UTC))
    # Saturday until midnight ("24:00"): 22:59 UTC is 23:59 in Paris.
    assert is_open(hours, dt.datetime(2026, 12, 12, 22, 59, tzinfo=dt.UTC))
    assert not is_open(hours, dt.datetime(2026, 12, 12, 23, 0, tzinfo=dt.UTC))
    assert is_open(None, dt.datetime(2026, 12, 12, 23, 0, tzinfo=dt.UTC))


def test_the_next_opening_is_found_across_days() -> None:
    hours = validate_settings(FULL)["business_hours"]
    # Tuesday evening in Paris: next is Saturday 10:00 Paris = 09:00 UTC.
    opens = next_opening(hours, dt.datetime(2026, 12, 8, 18, 0, tzinfo=dt.UTC))
    assert opens == dt.datetime(2026, 12, 12, 9, 0, tzinfo=dt.UTC)
    # In the lunch break: 13:00 Paris the same day.
    opens = next_opening(hours, dt.datetime(2026, 12, 7, 11, 30, tzinfo=dt.UTC))
    assert opens == dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


async def test_outside_business_hours_the_widget_is_away(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user("admin")
    await client.put("/admin/widget-settings", json=ALWAYS_CLOSED, headers=admin.headers)
    config = await assert_matches_spec(await client.get("/widget/config"), "get", "/widget/config")
    assert config["status"]["open"] is False and config["status"]["away"] is True


async def test_in_hours_the_widget_is_away_until_an_agent_opens_the_inbox(
    client: TestClient, make_user: MakeUser
) -> None:
    config = await (await client.get("/widget/config")).json()
    assert config["status"] == {"open": True, "agents_available": False, "away": True, "next_open_at": None}
    agent = await make_user("agent")
    inbox = await client.ws_connect("/ws/inbox", headers=agent.headers)
    try:
        assert (await inbox.receive_json())["type"] == "inbox.ready"
        # The open console is recorded by the instance's availability writer, just after the
        # socket is ready (services/availability.py): bounded polling, not a fixed sleep.
        for _ in range(100):
            config = await (await client.get("/widget/config")).json()
            if config["status"]["agents_available"]:
                break
            await asyncio.sleep(0.05)
        assert config["status"]["agents_available"] is True and config["status"]["away"] is False
    finally:
        await inbox.close()


async def test_without_smtp_the_widget_never_asks_for_an_email(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user("admin")
    await client.put("/admin/widget-settings", json={**ALWAYS_CLOSED, "email_capture": "always"}, headers=admin.headers)
    config = await (await client.get("/widget/config")).json()
    assert config["status"]["away"] is True
    assert config["email"] == {"enabled": False, "ask": False}


# ---- two instances ------------------------------------------------------------------------------------


async def test_a_change_reaches_another_instance_without_a_restart(
    database_url: str, redis_url: str, redis_prefix: str, tmp_path: Path, settings: Settings
) -> None:
    # A cache that would keep its copy for an hour: only the change event can refresh it in time.
    env = backplane_env(database_url, redis_url, redis_prefix, tmp_path, WIDGET_SETTINGS_CACHE_SECONDS="3600")
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    import asyncpg

    from chatserver.services.auth import create_user

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        await create_user(pool, email=email, password=PASSWORD, role="admin", name="Ada", bcrypt_rounds=4)
    finally:
        await pool.close()
    with running_servers(env, tmp_path) as (a, b):
        async with aiohttp.ClientSession() as http:
            before = await (await http.get(f"{b.base_url}/widget/config")).json()  # B caches it
            login = await http.post(f"{a.base_url}/auth/login", json={"email": email, "password": PASSWORD})
            token = (await login.json())["access_token"]
            colour = "#" + uuid.uuid4().hex[:6]
            resp = await http.put(
                f"{a.base_url}/admin/widget-settings",
                json={"color": colour, "greeting": before["settings"]["greeting"]},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert resp.status == 200, await resp.text()
            for _ in range(100):
                seen = await (await http.get(f"{b.base_url}/widget/config")).json()
                if seen["settings"]["color"] == colour:
                    break
                await asyncio.sleep(0.05)
            assert seen["settings"]["color"] == colour
