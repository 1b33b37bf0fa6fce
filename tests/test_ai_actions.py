"""AI actions (docs/ai.md, "Acting"): admin-configured HTTP calls the model makes during a reply,
through the real groq SDK against the fake Groq (which streams `tool_calls` as Groq does and
checks the follow-up's `tool` messages), on a real mock shop API on loopback."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from chatserver.ai.fake_groq import FakeGroq, Script, ToolCall, demo_responder
from chatserver.ai.orphans import INSTANCE_LOST, OrphanSweeper
from chatserver.ai.service import AiService
from chatserver.jsonutil import dumps_bytes
from chatserver.keys import AI_SERVICE, DB_POOL, HUB
from chatserver.services import demo_shop
from chatserver.settings import Settings

from .conftest import MakeUser, User, create_ticket
from .fake_groq import EventLog, _events_log, _fake_groq, ai_settings  # noqa: F401  (fixtures)
from .test_openapi import assert_matches_spec
from .wsutil import recv, recv_type

SECRET = "sk_live_very_secret_shop_token_4242"
ANSWER = "Your order 1042 has shipped with UPS."


@dataclass
class Shop:
    """The company's API, as an action sees it: records every request it gets."""

    server: TestServer
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.port}{path}"


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    app = web.Application()
    holder: dict[str, Shop] = {}

    async def record(request: web.Request) -> None:
        holder["shop"].requests.append(
            {
                "method": request.method,
                "path": request.path_qs,
                "headers": dict(request.headers),
                "body": await request.text(),
            }
        )

    async def order(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"order_id": request.match_info["id"], "status": "shipped", "carrier": "UPS"})

    async def cancel(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"cancelled": True})

    async def slow(request: web.Request) -> web.Response:
        await record(request)
        await holder["shop"].release.wait()
        return web.json_response({})

    async def boom(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"error": "database on fire"}, status=500)

    async def redirect(request: web.Request) -> web.Response:
        await record(request)
        raise web.HTTPFound("/orders/1")

    async def echo(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"you_sent": request.headers.get("Authorization", "")})

    async def big(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(text="x" * 100_000)

    app.router.add_get("/orders/{id}", order)
    app.router.add_post("/orders/{id}/cancel", cancel)
    app.router.add_get("/slow", slow)
    app.router.add_get("/boom", boom)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/echo", echo)
    app.router.add_get("/big", big)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    holder["shop"] = Shop(server)
    yield holder["shop"]
    holder["shop"].release.set()
    await server.close()


@pytest.fixture(autouse=True)
def no_actions(database_url: str) -> None:
    """Actions outlive the per-test truncation of users and tickets: each test starts with none
    (and with the demo action not yet registered)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE ai_actions CASCADE")
        conn.execute("DELETE FROM app_flags WHERE name = %s", (demo_shop.SEEDED_FLAG,))


@pytest.fixture
def settings(settings: Settings, fake_groq: FakeGroq) -> Settings:
    return ai_settings(
        settings,
        fake_groq,
        actions_allow_private_networks=("127.0.0.0/8",),
        actions_secret_key="a-test-actions-key-of-enough-length-0123456789",
        ai_actions_approval_timeout_seconds=30.0,
    )


@pytest.fixture
async def admin(make_user: MakeUser) -> User:
    return await make_user("admin")


@pytest.fixture
async def agent(make_user: MakeUser) -> User:
    return await make_user("agent")


@pytest.fixture
async def customer(make_user: MakeUser) -> User:
    return await make_user("customer")


ORDER_SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "string", "pattern": "^[0-9]+$"}},
    "required": ["order_id"],
    "additionalProperties": False,
}


def definition(shop: Shop, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "get_order",
        "description": "Look up an order by number.",
        "parameters": ORDER_SCHEMA,
        "method": "GET",
        "url_template": shop.url("/orders/{order_id}"),
        "label": "Looking up order {order_id}…",
        "headers": {"Authorization": f"Bearer {SECRET}"},
        "timeout_seconds": 5,
    }
    if "parameters" in changes:
        base["label"] = ""  # the default label names the order
    base.update(changes)
    return base


async def add_action(client: TestClient, admin: User, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post("/admin/actions", json=body, headers=admin.headers)
    assert resp.status == 201, await resp.text()
    action: dict[str, Any] = (await resp.json())["action"]
    return action


async def ask(client: TestClient, customer: User, body: str) -> dict[str, Any]:
    ticket = await create_ticket(client, customer, "Order question")
    resp = await client.post(f"/tickets/{ticket['id']}/messages", json={"body": body}, headers=customer.headers)
    assert resp.status == 201, await resp.text()
    return ticket


async def final(log: EventLog) -> dict[str, Any]:
    await log.wait_for(lambda: bool(log.frames("ai.completed", "ai.failed", "ai.cancelled")))
    [frame] = log.frames("ai.completed", "ai.failed", "ai.cancelled")
    return frame


def tool_messages(fake: FakeGroq, index: int) -> list[dict[str, Any]]:
    return [m for m in fake.requests[index].body["messages"] if m.get("role") == "tool"]


def tool_result(fake: FakeGroq, index: int) -> dict[str, Any]:
    [message] = tool_messages(fake, index)
    result: dict[str, Any] = orjson.loads(message["content"])
    return result


def call(name: str, arguments: Any) -> ToolCall:
    return ToolCall(name, arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode())


# ---- offering and running read-only actions -----------------------------------------------------


async def test_the_model_is_offered_the_enabled_actions_beside_the_handoff_tool(
    client: TestClient, admin: User, customer: User, shop: Shop, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    await add_action(client, admin, definition(shop))
    await add_action(client, admin, definition(shop, name="disabled_one", enabled=False))
    await ask(client, customer, "hello")
    await final(events_log)
    tools = fake_groq.requests[0].body["tools"]
    assert [t["function"]["name"] for t in tools] == ["handoff_to_human", "get_order"]
    assert tools[1]["function"]["parameters"] == ORDER_SCHEMA
    assert tools[1]["function"]["description"] == "Look up an order by number."


async def test_a_read_only_action_runs_at_once_and_the_model_answers_with_its_result(
    client: TestClient,
    admin: User,
    agent: User,
    customer: User,
    shop: Shop,
    fake_groq: FakeGroq,
    events_log: EventLog,
) -> None:
    await add_action(client, admin, definition(shop))
    model_call = call("get_order", {"order_id": "1042"})
    fake_groq.push(Script(text="Let me check.", tool_calls=[model_call], argument_pieces=3), Script(text=ANSWER))
    ticket = await ask(client, customer, "where is order 1042?")
    completed = await final(events_log)

    assert completed["type"] == "ai.completed"
    assert completed["text"] == f"Let me check.\n\n{ANSWER}"
    # The shop was called with the URL filled in and the stored header.
    [request] = shop.requests
    assert (request["method"], request["path"]) == ("GET", "/orders/1042")
    assert request["headers"]["Authorization"] == f"Bearer {SECRET}"
    # The follow-up: the assistant's call, then the tool's answer to it.
    follow_up = fake_groq.requests[1].body["messages"]
    assistant = follow_up[-2]
    assert assistant["role"] == "assistant" and assistant["content"] == "Let me check."
    assert assistant["tool_calls"][0]["id"] == model_call.id
    assert assistant["tool_calls"][0]["function"] == {"name": "get_order", "arguments": model_call.arguments}
    assert follow_up[-1]["tool_call_id"] == model_call.id
    assert tool_result(fake_groq, 1) == {
        "ok": True,
        "status": 200,
        "body": {"order_id": "1042", "status": "shipped", "carrier": "UPS"},
    }
    # The room saw the human label, started then finished.
    room = [(f["status"], f["label"]) for f in events_log.frames("ai.tool_call")]
    assert room == [("started", "Looking up order 1042…"), ("finished", "Looking up order 1042…")]
    # Agents can read the log.
    resp = await client.get(f"/tickets/{ticket['id']}/tool-calls", headers=agent.headers)
    [logged] = (await assert_matches_spec(resp, "get", "/tickets/{ticket_id}/tool-calls"))["tool_calls"]
    assert (logged["name"], logged["status"], logged["http_status"]) == ("get_order", "succeeded", 200)
    assert logged["arguments"] == {"order_id": "1042"}
    assert "shipped" in logged["result_excerpt"]
    # The customer sees none of it: only calls waiting for their confirmation are listed to them.
    resp = await client.get(f"/tickets/{ticket['id']}/tool-calls", headers=customer.headers)
    assert (await resp.json())["tool_calls"] == []


async def test_customers_never_receive_the_detail_frames(
    client: TestClient, admin: User, customer: User, shop: Shop, fake_groq: FakeGroq
) -> None:
    await add_action(client, admin, definition(shop))
    fake_groq.push(Script(text="", tool_calls=[call("get_order", {"order_id": "7"})]), Script(text=ANSWER))
    ticket = await create_ticket(client, customer, "Order")
    ws = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=customer.headers)
    assert (await recv(ws))["type"] == "joined"
    await ws.send_json({"type": "message.send", "body": "where is order 7", "client_id": "c1"})
    seen = []
    while True:
        frame = await recv(ws)
        seen.append(frame)
        if frame["type"] == "ai.completed":
            break
    await ws.close()
    kinds = {f["type"] for f in seen}
    assert "ai.tool_call" in kinds and "ai.tool_call_detail" not in kinds
    assert "shipped" not in dumps_bytes([f for f in seen if f["type"] == "ai.tool_call"]).decode()


# ---- failures are the model's to handle -----------------------------------------------------------


async def test_an_action_that_times_out_is_reported_to_the_model(
    client: TestClient, admin: User, customer: User, shop: Shop, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    await add_action(
        client,
        admin,
        definition(
            shop,
            name="slow",
            url_template=shop.url("/slow"),
            timeout_seconds=0.3,
            parameters={"type": "object", "properties": {}},
        ),
    )
    fake_groq.push(Script(text="", tool_calls=[call("slow", {})]), Script(text="Sorry, our order system is slow."))
    await ask(client, customer, "status?")
    completed = await final(events_log)
    assert completed["type"] == "ai.completed"
    assert tool_result(fake_groq, 1) == {"ok": False, "error": "timed out after 0.3 s"}
    assert [f["status"] for f in events_log.frames("ai.tool_call")] == ["started", "failed"]
    assert events_log.frames("ai.failed") == []


async def test_an_action_answering_500_is_reported_to_the_model(
    client: TestClient, admin: User, customer: User, shop: Shop, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    await add_action(
        client, admin, definition(shop, name="boom", url_template=shop.url("/boom"), parameters={"type": "object"})
    )
    fake_groq.push(Script(text="", tool_calls=[call("boom", {})]), Script(text="I could not look that up."))
    await ask(client, customer, "status?")
    assert (await final(events_log))["type"] == "ai.completed"
    result = tool_result(fake_groq, 1)
    assert (result["ok"], result["status"], result["error"]) == (False, 500, "the API answered 500")
    [detail] = [f["call"] for f in events_log.frames("ai.tool_call_detail") if f["call"]["status"] == "failed"]
    assert detail["http_status"] == 500


async def test_a_call_to_an_unknown_tool_is_answered_as_a_failed_call(
    client: TestClient, agent: User, customer: User, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    fake_groq.push(Script(text="", tool_calls=[call("refund_order", {"order": 1042})]), Script(text=ANSWER))
    ticket = await ask(client, customer, "refund order 1042")
    completed = await final(events_log)
    assert (completed["type"], completed["text"]) == ("ai.completed", ANSWER)
    assert tool_result(fake_groq, 1) == {"ok": False, "error": "unknown tool 'refund_order': there is no such action"}
    assert events_log.frames("ai.tool_call") == [], "the room hears nothing of a call that never ran"
    [logged] = (await (await client.get(f"/tickets/{ticket['id']}/tool-calls", headers=agent.headers)).json())[
        "tool_calls"
    ]
    assert (logged["name"], logged["status"]) == ("refund_order", "failed")


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"order_id": 1042}, "the arguments do not match the schema: order_id: 1042 is not of type 'string'"),
        ({}, "the arguments do not match the schema: 'order_id' is a required property"),
        ('{"order_id": ', "the arguments are not valid JSON"),
        ("[1]", "the arguments must be a JSON object"),
    ],
)
async def test_arguments_failing_the_schema_are_not_sent(
    client: TestClient,
    admin: User,
    customer: User,
    shop: Shop,
    fake_groq: FakeGroq,
    events_log: EventLog,
    arguments: Any,
    problem: str,
) -> None:
    await add_action(client, admin, definition(shop))
    fake_groq.push(Script(text="", tool_calls=[call("get_order", arguments)]), Script(text=ANSWER))
    await ask(client, customer, "order?")
    assert (await final(events_log))["type"] == "ai.completed"
    assert tool_result(fake_groq, 1) == {"ok": False, "error": problem}
    assert shop.requests == []


async def test_calls_beyond_the_per_reply_limit_are_refused_and_the_model_must_answer(
    client: TestClient,
    admin: User,
    customer: User,
    shop: Shop,
    fake_groq: FakeGroq,
    settings: Settings,
    events_log: EventLog,
) -> None:
    limited = settings.with_overrides(ai_actions_max_calls_per_reply=1)
    client.app[AI_SERVICE].settings = client.app[AI_SERVICE].tools.settings = limited
    await add_action(client, admin, definition(shop))
    first, second = call("get_order", {"order_id": "1"}), call("get_order", {"order_id": "2"})
    fake_groq.push(Script(text="", tool_calls=[first, second]), Script(text=ANSWER))
    await ask(client, customer, "orders 1 and 2?")
    assert (await final(events_log))["type"] == "ai.completed"
    results = [orjson.loads(m["content"]) for m in tool_messages(fake_groq, 1)]
    assert results[0]["ok"] is True
    assert results[1] == {
        "ok": False,
        "error": "limit reached: at most 1 calls per reply; answer with what you know",
    }
    assert fake_groq.requests[1].body["tool_choice"] == "none"
    assert [r["path"] for r in shop.requests] == ["/orders/1"]


async def test_a_large_answer_is_cut_to_the_response_limit(
    client: TestClient, admin: User, customer: User, shop: Shop, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    await add_action(
        client, admin, definition(shop, name="big", url_template=shop.url("/big"), parameters={"type": "object"})
    )
    fake_groq.push(Script(text="", tool_calls=[call("big", {})]), Script(text=ANSWER))
    await ask(client, customer, "big?")
    await final(events_log)
    result = tool_result(fake_groq, 1)
    assert result["truncated"] is True
    assert len(result["body"]) == client.app[AI_SERVICE].settings.ai_actions_max_response_bytes


async def test_redirects_are_not_followed(
    client: TestClient, admin: User, customer: User, shop: Shop, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    await add_action(
        client, admin, definition(shop, name="moved", url_template=shop.url("/redirect"), parameters={"type": "object"})
    )
    fake_groq.push(Script(text="", tool_calls=[call("moved", {})]), Script(text=ANSWER))
    await ask(client, customer, "moved?")
    await final(events_log)
    result = tool_result(fake_groq, 1)
    assert (result["ok"], result["status"]) == (False, 302)
    assert [r["path"] for r in shop.requests] == ["/redirect"]


# ---- actions that change something wait for a person ------------------------------------------------


async def _waiting(
    client: TestClient,
    admin: User,
    customer: User,
    shop: Shop,
    fake_groq: FakeGroq,
    log: EventLog,
    **changes: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    await add_action(
        client,
        admin,
        definition(
            shop,
            name="cancel_order",
            method="POST",
            url_template=shop.url("/orders/{order_id}/cancel"),
            label="Cancelling order {order_id}",
            mutating=True,
            **changes,
        ),
    )
    fake_groq.push(
        Script(text="I can cancel it.", tool_calls=[call("cancel_order", {"order_id": "1042"})]),
        Script(text="Done: order 1042 is cancelled."),
    )
    ticket = await ask(client, customer, "please cancel order 1042")
    [waiting] = await log.wait_type("ai.tool_call")
    return ticket, waiting


async def test_a_mutating_action_waits_for_an_agents_approval(
    client: TestClient,
    admin: User,
    agent: User,
    customer: User,
    shop: Shop,
    fake_groq: FakeGroq,
    events_log: EventLog,
) -> None:
    ticket, waiting = await _waiting(client, admin, customer, shop, fake_groq, events_log)
    assert (waiting["status"], waiting["confirm_by"], waiting["label"]) == (
        "awaiting_approval",
        "agent",
        "Cancelling order 1042",
    )
    assert shop.requests == []
    path = f"/tickets/{ticket['id']}/tool-calls/{waiting['call_id']}"
    # The customer may not approve an action only agents may.
    assert (await client.post(f"{path}/approve", headers=customer.headers)).status == 403

    resp = await client.post(f"{path}/approve", headers=agent.headers)
    assert resp.status == 200, await resp.text()
    approved = await assert_matches_spec(resp, "post", "/tickets/{ticket_id}/tool-calls/{call_id}/approve")
    assert approved["tool_call"]["status"] == "approved"
    completed = await final(events_log)
    assert completed["text"] == "I can cancel it.\n\nDone: order 1042 is cancelled."
    [request] = shop.requests
    assert (request["method"], request["path"], orjson.loads(request["body"])) == ("POST", "/orders/1042/cancel", {})
    statuses = [f["status"] for f in events_log.frames("ai.tool_call")]
    assert statuses == ["awaiting_approval", "approved", "finished"]
    # Deciding twice is a conflict.
    assert (await client.post(f"{path}/refuse", headers=agent.headers)).status == 409


async def test_a_refused_action_is_not_done_and_the_model_is_told(
    client: TestClient,
    admin: User,
    agent: User,
    customer: User,
    shop: Shop,
    fake_groq: FakeGroq,
    events_log: EventLog,
) -> None:
    ticket, waiting = await _waiting(client, admin, customer, shop, fake_groq, events_log)
    ws = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=agent.headers)
    assert (await recv(ws))["type"] == "joined"
    await ws.send_json({"type": "ai.tool_call.refuse", "call_id": waiting["call_id"]})
    refused = await recv_type(ws, "ai.tool_call")
    assert refused["status"] == "refused"
    await ws.close()
    assert (await final(events_log))["type"] == "ai.completed"
    assert tool_result(fake_groq, 1) == {
        "ok": False,
        "error": "a person refused this action; it was not done: do not try it again",
    }
    assert shop.requests == []


async def test_a_takeover_while_an_action_waits_cancels_it(
    client: TestClient,
    admin: User,
    agent: User,
    customer: User,
    shop: Shop,
    fake_groq: FakeGroq,
    events_log: EventLog,
) -> None:
    ticket, waiting = await _waiting(client, admin, customer, shop, fake_groq, events_log)
    resp = await client.patch(f"/tickets/{ticket['id']}", json={"ai_enabled": False}, headers=agent.headers)
    assert resp.status == 200
    cancelled = await final(events_log)
    assert (cancelled["type"], cancelled["reason"]) == ("ai.cancelled", "takeover")
    await events_log.wait_for(lambda: [f["status"] for f in events_log.frames("ai.tool_call")][-1] == "cancelled")
    # Nothing is left to approve.
    path = f"/tickets/{ticket['id']}/tool-calls/{waiting['call_id']}/approve"
    assert (await client.post(path, headers=agent.headers)).status == 409
    assert shop.requests == []
    assert len(fake_groq.requests) == 1, "no follow-up is asked for"


async def test_a_customer_confirms_where_the_admin_allows_it(
    client: TestClient,
    admin: User,
    customer: User,
    make_user: MakeUser,
    shop: Shop,
    fake_groq: FakeGroq,
    events_log: EventLog,
) -> None:
    ticket, waiting = await _waiting(client, admin, customer, shop, fake_groq, events_log, customer_confirmation=True)
    assert waiting["confirm_by"] == "customer"
    # A widget opened again finds what waits for its customer.
    resp = await client.get(f"/tickets/{ticket['id']}/tool-calls", headers=customer.headers)
    [listed] = (await assert_matches_spec(resp, "get", "/tickets/{ticket_id}/tool-calls"))["tool_calls"]
    assert listed == {
        "id": waiting["call_id"],
        "reply_id": waiting["reply_id"],
        "name": "cancel_order",
        "label": "Cancelling order 1042",
        "status": "awaiting_approval",
        "confirm_by": "customer",
    }
    path = f"/tickets/{ticket['id']}/tool-calls/{waiting['call_id']}/approve"
    stranger = await make_user("customer")
    assert (await client.post(path, headers=stranger.headers)).status == 404
    resp = await client.post(path, headers=customer.headers)
    assert resp.status == 200, await resp.text()
    body = (await assert_matches_spec(resp, "post", "/tickets/{ticket_id}/tool-calls/{call_id}/approve"))["tool_call"]
    assert set(body) == {"id", "reply_id", "name", "label", "status", "confirm_by"}
    assert (await final(events_log))["type"] == "ai.completed"
    assert [r["path"] for r in shop.requests] == ["/orders/1042/cancel"]


async def test_an_approval_nobody_gives_expires(
    client: TestClient,
    admin: User,
    customer: User,
    shop: Shop,
    fake_groq: FakeGroq,
    settings: Settings,
    events_log: EventLog,
) -> None:
    client.app[AI_SERVICE].tools.settings = settings.with_overrides(ai_actions_approval_timeout_seconds=1.0)
    await _waiting(client, admin, customer, shop, fake_groq, events_log)
    assert (await final(events_log))["type"] == "ai.completed"
    assert tool_result(fake_groq, 1)["error"] == "nobody approved this action in time; it was not done"
    assert shop.requests == []


async def test_the_sweeper_cancels_the_approval_a_dead_instance_left(
    client: TestClient, admin: User, agent: User, customer: User, events_log: EventLog
) -> None:
    pool = client.app[DB_POOL]
    ticket = await create_ticket(client, customer, "Order")
    reply_id = uuid.uuid4()
    ticket_id = uuid.UUID(ticket["id"])
    await pool.execute("UPDATE tickets SET ai_enabled = false WHERE id = $1", ticket_id)
    await pool.execute(
        "INSERT INTO ai_generations (ticket_id, kind, reply_id, instance_id, expires_at)"
        " VALUES ($1, 'reply', $2, 'dead-instance', now() - interval '1 second')",
        ticket_id,
        reply_id,
    )
    call_id = await pool.fetchval(
        "INSERT INTO ai_tool_calls (ticket_id, reply_id, model_call_id, name, label, mutating, confirm_by, status,"
        " instance_id) VALUES ($1, $2, 'call_1', 'cancel_order', 'Cancelling', true, 'agent', 'awaiting_approval',"
        " 'dead-instance') RETURNING id",
        ticket_id,
        reply_id,
    )
    service: AiService = client.app[AI_SERVICE]
    await OrphanSweeper(service, client.app[HUB], interval=0.05).sweep()

    [frame] = events_log.frames("ai.tool_call")
    assert (frame["call_id"], frame["status"]) == (str(call_id), "cancelled")
    row = await pool.fetchrow("SELECT status, error FROM ai_tool_calls WHERE id = $1", call_id)
    assert (row["status"], row["error"]) == ("cancelled", INSTANCE_LOST)
    path = f"/tickets/{ticket['id']}/tool-calls/{call_id}/approve"
    assert (await client.post(path, headers=agent.headers)).status == 409


# ---- outbound safety ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/orders/{order_id}",
        "http://169.254.169.254/latest/meta-data/{order_id}",
        "http://10.1.2.3/orders/{order_id}",
        "http://[::1]/orders/{order_id}",
        "ftp://shop.example/orders/{order_id}",
        "file:///etc/passwd?{order_id}",
        "http://{order_id}.shop.example/orders",
        "https://shop.example/orders/{nope}",
    ],
)
async def test_targets_the_guard_refuses_cannot_be_saved(
    client: TestClient, admin: User, shop: Shop, settings: Settings, url: str
) -> None:
    client.app[AI_SERVICE].tools.guard = type(client.app[AI_SERVICE].tools.guard)()  # no private networks
    resp = await client.post("/admin/actions", json=definition(shop, url_template=url), headers=admin.headers)
    assert resp.status == 422, await resp.text()
    assert "url_template" in (await resp.json())["error"]["details"]["fields"]


async def test_a_name_resolving_to_a_private_address_is_refused_when_called(
    client: TestClient, admin: User, customer: User, shop: Shop, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    await add_action(
        client, admin, definition(shop, url_template=f"http://localhost:{shop.server.port}/orders/{{order_id}}")
    )
    tools = client.app[AI_SERVICE].tools
    await tools.close()
    tools.guard = type(tools.guard)()  # the operator allows no private network
    fake_groq.push(Script(text="", tool_calls=[call("get_order", {"order_id": "1"})]), Script(text=ANSWER))
    await ask(client, customer, "order 1?")
    assert (await final(events_log))["type"] == "ai.completed"
    result = tool_result(fake_groq, 1)
    assert result["ok"] is False and result["error"].startswith("refused: ")
    assert shop.requests == []


# ---- secrets -----------------------------------------------------------------------------------------


async def test_header_secrets_never_leave_the_server(
    client: TestClient,
    admin: User,
    agent: User,
    customer: User,
    shop: Shop,
    fake_groq: FakeGroq,
    events_log: EventLog,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    created = await add_action(
        client, admin, definition(shop, name="echo", url_template=shop.url("/echo"), parameters={"type": "object"})
    )
    assert created["header_names"] == ["Authorization"]
    seen = [created]
    seen.append(await (await client.get(f"/admin/actions/{created['id']}", headers=admin.headers)).json())
    seen.append(await (await client.get("/admin/actions", headers=admin.headers)).json())
    resp = await client.patch(f"/admin/actions/{created['id']}", json={"label": "Echoing"}, headers=admin.headers)
    seen.append(await resp.json())
    fake_groq.push(Script(text="", tool_calls=[call("echo", {})]), Script(text=ANSWER))
    ticket = await ask(client, customer, "echo")
    await final(events_log)
    assert shop.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    seen.append(await (await client.get(f"/tickets/{ticket['id']}/tool-calls", headers=agent.headers)).json())
    seen.append([e.frame for e in events_log.events])
    seen.append(await (await client.get(f"/tickets/{ticket['id']}/messages", headers=agent.headers)).json())
    # The API echoed the credential back: the model (and so the customer) gets it redacted.
    assert tool_result(fake_groq, 1)["body"] == {"you_sent": "[redacted]"}
    assert SECRET not in dumps_bytes(seen).decode()
    assert SECRET not in caplog.text
    stored = await client.app[DB_POOL].fetchval(
        "SELECT headers_encrypted FROM ai_actions WHERE id = $1", uuid.UUID(created["id"])
    )
    assert SECRET.encode() not in bytes(stored)


# ---- admin REST --------------------------------------------------------------------------------------


async def test_admins_manage_actions(client: TestClient, admin: User, shop: Shop) -> None:
    resp = await client.post("/admin/actions", json=definition(shop), headers=admin.headers)
    created = (await assert_matches_spec(resp, "post", "/admin/actions"))["action"]
    assert created["timeout_seconds"] == 5.0 and created["mutating"] is False and created["enabled"] is True
    path = f"/admin/actions/{created['id']}"
    resp = await client.patch(
        path, json={"mutating": True, "customer_confirmation": True, "headers": {}}, headers=admin.headers
    )
    assert resp.status == 200, await resp.text()
    changed = (await resp.json())["action"]
    assert (changed["mutating"], changed["customer_confirmation"], changed["header_names"]) == (True, True, [])
    resp = await client.get("/admin/actions", headers=admin.headers)
    listed = (await assert_matches_spec(resp, "get", "/admin/actions"))["actions"]
    assert [a["name"] for a in listed] == ["get_order"]
    assert (await client.delete(path, headers=admin.headers)).status == 204
    assert (await client.get(path, headers=admin.headers)).status == 404
    assert (await client.delete(path, headers=admin.headers)).status == 404


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"parameters": {"type": "object", "properties": {"x": {"type": "nonsense"}}}}, "parameters"),
        ({"parameters": {"type": "string"}}, "parameters"),
        ({"parameters": []}, "parameters"),
        (
            {"parameters": {"type": "object", "properties": {"a": {"$ref": "https://evil.example/s.json"}}}},
            "parameters",
        ),
        ({"name": "handoff_to_human"}, "name"),
        ({"name": "has spaces"}, "name"),
        ({"label": "Order {missing}"}, "label"),
        ({"label": "Order {0}"}, "label"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": "5"}, "timeout_seconds"),
        ({"headers": {"Bad Header": "x"}}, "headers"),
        ({"headers": {"X-Token": "a\r\nInjected: 1"}}, "headers"),
        ({"headers": {"Host": "evil.example"}}, "headers"),
        ({"method": "TRACE"}, "method"),
        ({"customer_confirmation": True}, "customer_confirmation"),
        ({"surprise": 1}, "surprise"),
    ],
)
async def test_bad_definitions_are_refused(
    client: TestClient, admin: User, shop: Shop, changes: dict[str, Any], field_name: str
) -> None:
    resp = await client.post("/admin/actions", json=definition(shop, **changes), headers=admin.headers)
    assert resp.status == 422, await resp.text()
    assert field_name in (await resp.json())["error"]["details"]["fields"]


async def test_names_are_unique(client: TestClient, admin: User, shop: Shop) -> None:
    await add_action(client, admin, definition(shop))
    resp = await client.post("/admin/actions", json=definition(shop), headers=admin.headers)
    assert resp.status == 409
    other = await add_action(client, admin, definition(shop, name="other"))
    resp = await client.patch(f"/admin/actions/{other['id']}", json={"name": "get_order"}, headers=admin.headers)
    assert resp.status == 409


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"name": 5}'])
async def test_malformed_bodies_are_4xx(client: TestClient, admin: User, body: bytes) -> None:
    resp = await client.post("/admin/actions", data=body, headers={**admin.headers, "Content-Type": "application/json"})
    assert 400 <= resp.status < 500
    assert "error" in await resp.json()


async def test_only_admins_manage_actions(
    client: TestClient, admin: User, agent: User, customer: User, shop: Shop
) -> None:
    created = await add_action(client, admin, definition(shop))
    path = f"/admin/actions/{created['id']}"
    requests = [
        ("GET", "/admin/actions", None),
        ("POST", "/admin/actions", definition(shop, name="x")),
        ("GET", path, None),
        ("PATCH", path, {"label": "x"}),
        ("DELETE", path, None),
    ]
    for method, url, body in requests:
        assert (await client.request(method, url, json=body)).status == 401, (method, url)
        for user in (customer, agent):
            resp = await client.request(method, url, json=body, headers=user.headers)
            assert resp.status == 403, (method, url, user.role)


async def test_an_integration_key_needs_the_admin_scope(client: TestClient, admin: User) -> None:
    for scopes, expected in ((["tickets:read"], 403), (["admin"], 200)):
        resp = await client.post(
            "/admin/api-keys", json={"name": f"k-{scopes[0]}", "scopes": scopes}, headers=admin.headers
        )
        assert resp.status == 201, await resp.text()
        key = (await resp.json())["api_key"]["key"]
        resp = await client.get("/admin/actions", headers={"Authorization": f"Bearer {key}"})
        assert resp.status == expected


# ---- the demo ----------------------------------------------------------------------------------------


async def test_the_demo_shop_action_answers_about_an_order(
    aiohttp_client: Any, settings: Settings, fake_groq: FakeGroq, make_user: MakeUser
) -> None:
    from chatserver.app import create_app

    from .fake_groq import attach_log

    fake_groq.responder = demo_responder
    client: TestClient = await aiohttp_client(create_app(settings.with_overrides(demo_shop=True), bcrypt_rounds=4))
    log = attach_log(client.app)
    pool = client.app[DB_POOL]
    row = await pool.fetchrow("SELECT id, header_names FROM ai_actions WHERE name = $1", demo_shop.DEMO_ACTION_NAME)
    assert list(row["header_names"]) == [demo_shop.KEY_HEADER]
    # Point it at this test server's port (the seed used the configured one).
    await pool.execute(
        "UPDATE ai_actions SET url_template = $2 WHERE id = $1",
        row["id"],
        f"http://127.0.0.1:{client.server.port}{demo_shop.DEMO_PATH}",
    )
    assert (await client.get("/demo/api/orders/1042")).status == 401
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer, "Where is it?")
    await client.post(
        f"/tickets/{ticket['id']}/messages", json={"body": "Where is order 1042?"}, headers=customer.headers
    )
    await log.wait_for(lambda: bool(log.frames("ai.completed", "ai.failed", "ai.cancelled")))
    [completed] = log.frames("ai.completed")
    assert "Order 1042 is **shipped**" in completed["text"]
    assert "1Z999AA10123456784" in completed["text"]
    assert [f["label"] for f in log.frames("ai.tool_call")] == ["Looking up order 1042…"] * 2


async def test_the_demo_shop_api_is_not_served_without_demo_shop(client: TestClient) -> None:
    assert (await client.get("/demo/api/orders/1042")).status == 404


# ---- across instances ---------------------------------------------------------------------------------


async def _two_instances(aiohttp_client: Any, settings: Settings) -> tuple[TestClient, TestClient]:
    from chatserver.app import create_app

    a: TestClient = await aiohttp_client(create_app(settings, bcrypt_rounds=4))
    b: TestClient = await aiohttp_client(create_app(settings, bcrypt_rounds=4))
    await a.app[DB_POOL].execute("TRUNCATE users, tickets, messages CASCADE")
    return a, b


async def _login(client: TestClient, role: str) -> User:
    from chatserver.services.auth import create_user

    from .conftest import PASSWORD

    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    await create_user(client.app[DB_POOL], email=email, password=PASSWORD, role=role, name=role, bcrypt_rounds=4)
    resp = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    return User("", email, role, (await resp.json())["access_token"])


@pytest.fixture
def with_redis(settings: Settings, redis_url: str, redis_prefix: str) -> Settings:
    return settings.with_overrides(redis_url=redis_url, redis_prefix=redis_prefix)


@pytest.mark.parametrize("decision", ["approve", "takeover"])
async def test_an_approval_waiting_on_one_instance_is_decided_on_another(
    aiohttp_client: Any, with_redis: Settings, shop: Shop, fake_groq: FakeGroq, decision: str
) -> None:
    from .fake_groq import attach_log

    # A long heartbeat and decision poll: only the backplane can carry the decision quickly.
    a, b = await _two_instances(aiohttp_client, with_redis.with_overrides(ai_claim_heartbeat_seconds=2.0))
    log_a = attach_log(a.app)
    admin, agent, customer = await _login(a, "admin"), await _login(b, "agent"), await _login(a, "customer")
    await add_action(
        a,
        admin,
        definition(
            shop, name="cancel_order", method="POST", url_template=shop.url("/orders/{order_id}/cancel"), mutating=True
        ),
    )
    fake_groq.push(Script(text="", tool_calls=[call("cancel_order", {"order_id": "9"})]), Script(text="Cancelled."))
    ticket = await ask(a, customer, "cancel order 9")
    [waiting] = await log_a.wait_type("ai.tool_call")
    assert waiting["status"] == "awaiting_approval"

    if decision == "approve":
        path = f"/tickets/{ticket['id']}/tool-calls/{waiting['call_id']}/approve"
        assert (await b.post(path, headers=agent.headers)).status == 200
        assert (await final(log_a))["type"] == "ai.completed"
        assert [r["path"] for r in shop.requests] == ["/orders/9/cancel"]
    else:
        resp = await b.patch(f"/tickets/{ticket['id']}", json={"ai_enabled": False}, headers=agent.headers)
        assert resp.status == 200
        assert (await final(log_a))["reason"] == "takeover"
        await log_a.wait_for(lambda: log_a.frames("ai.tool_call")[-1]["status"] == "cancelled")
        assert shop.requests == []


async def test_without_a_groq_key_the_demo_looks_up_an_order_itself(
    aiohttp_client: Any, settings: Settings, make_user: MakeUser
) -> None:
    from chatserver.app import create_app

    from .fake_groq import attach_log

    offline_demo = ai_settings(settings, None, demo_shop=True, actions_allow_private_networks=("127.0.0.0/8",))
    client: TestClient = await aiohttp_client(create_app(offline_demo, bcrypt_rounds=4))
    log = attach_log(client.app)
    await client.app[DB_POOL].execute(
        "UPDATE ai_actions SET url_template = $2 WHERE name = $1",
        demo_shop.DEMO_ACTION_NAME,
        f"http://127.0.0.1:{client.server.port}{demo_shop.DEMO_PATH}",
    )
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer, "Parcel")
    await client.post(
        f"/tickets/{ticket['id']}/messages", json={"body": "where's my order 1043?"}, headers=customer.headers
    )
    await log.wait_for(lambda: bool(log.frames("ai.completed", "ai.failed", "ai.cancelled")))
    [completed] = log.frames("ai.completed")
    assert "Order 1043 is **processing**" in completed["text"]
    assert completed["message"]["metadata"]["offline"] is True
    assert [(f["status"], f["label"]) for f in log.frames("ai.tool_call")] == [
        ("started", "Looking up order 1043…"),
        ("finished", "Looking up order 1043…"),
    ]


async def test_decision_frames_are_checked(client: TestClient, customer: User) -> None:
    ticket = await create_ticket(client, customer, "Order")
    ws = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=customer.headers)
    assert (await recv(ws))["type"] == "joined"
    await ws.send_json({"type": "ai.tool_call.approve", "call_id": "nope", "client_id": "c1"})
    error = await recv_type(ws, "error")
    assert (error["code"], error["ref"]) == ("validation_error", "c1")
    await ws.send_json({"type": "ai.tool_call.refuse", "call_id": str(uuid.uuid4())})
    assert (await recv_type(ws, "error"))["code"] == "not_found"
    await ws.close()
