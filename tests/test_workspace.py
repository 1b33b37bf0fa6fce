"""The agent workspace (issue 14, docs/web.md): labels, the activity log and canned responses.
Customers see none of it; agents use it; admins manage what is shared."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chatserver.app import create_app
from chatserver.keys import DB_POOL
from chatserver.settings import Settings

from .conftest import MakeUser, User, create_ticket
from .fake_groq import ai_settings
from .test_openapi import assert_matches_spec
from .wsutil import drain, recv, recv_type


@pytest.fixture
async def clean(client: TestClient) -> TestClient:
    """Labels belong to no user, so the client fixture's TRUNCATE leaves them: start empty."""
    await client.app[DB_POOL].execute("TRUNCATE labels")
    return client


async def new_label(client: TestClient, admin: User, name: str, color: str = "#2563eb") -> dict[str, Any]:
    resp = await client.post("/labels", json={"name": name, "color": color}, headers=admin.headers)
    assert resp.status == 201, await resp.text()
    label: dict[str, Any] = (await resp.json())["label"]
    return label


async def put_labels(client: TestClient, user: User, ticket_id: str, *labels: dict[str, Any]) -> Any:
    return await client.put(
        f"/tickets/{ticket_id}/labels", json={"label_ids": [label["id"] for label in labels]}, headers=user.headers
    )


async def activity(client: TestClient, user: User, ticket_id: str) -> list[dict[str, Any]]:
    resp = await client.get(f"/tickets/{ticket_id}/activity", headers=user.headers)
    assert resp.status == 200, await resp.text()
    entries: list[dict[str, Any]] = (await resp.json())["activity"]
    return entries


# ---- labels --------------------------------------------------------------------------------


async def test_admins_manage_labels_and_agents_read_them(clean: TestClient, make_user: MakeUser) -> None:
    client = clean
    admin, agent, customer = await make_user("admin"), await make_user("agent"), await make_user("customer")
    resp = await client.post("/labels", json={"name": "Billing", "color": "#FF0000"}, headers=admin.headers)
    body = await assert_matches_spec(resp, "post", "/labels")
    assert body["label"]["name"] == "Billing" and body["label"]["color"] == "#ff0000"
    await new_label(client, admin, "angry")
    for user in (agent, customer):
        assert (
            await client.post("/labels", json={"name": "x", "color": "#000000"}, headers=user.headers)
        ).status == 403
    listed = await assert_matches_spec(await client.get("/labels", headers=agent.headers), "get", "/labels")
    assert [label["name"] for label in listed["labels"]] == ["angry", "Billing"]
    assert (await client.get("/labels", headers=customer.headers)).status == 403
    label_id = body["label"]["id"]
    assert (await client.patch(f"/labels/{label_id}", json={"name": "y"}, headers=agent.headers)).status == 403
    assert (await client.delete(f"/labels/{label_id}", headers=agent.headers)).status == 403


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x" * 51, "color": "#000000"},
        {"name": "", "color": "#000000"},
        {"name": "ok", "color": "red"},
        {"name": "ok", "color": "#12345g"},
        {"name": "ok", "color": "#1234567"},
        {"name": "ok"},
        {"name": 5, "color": "#000000"},
        {"name": "ok", "color": "#000000", "extra": 1},
    ],
)
async def test_label_validation(clean: TestClient, make_user: MakeUser, body: dict[str, Any]) -> None:
    admin = await make_user("admin")
    resp = await clean.post("/labels", json=body, headers=admin.headers)
    assert resp.status == 422, await resp.text()
    assert (await resp.json())["error"]["code"] == "validation_error"


async def test_label_names_are_unique_in_any_case(clean: TestClient, make_user: MakeUser) -> None:
    admin = await make_user("admin")
    first = await new_label(clean, admin, "VIP")
    resp = await clean.post("/labels", json={"name": "vip", "color": "#000000"}, headers=admin.headers)
    assert resp.status == 409
    other = await new_label(clean, admin, "other")
    resp = await clean.patch(f"/labels/{other['id']}", json={"name": "Vip"}, headers=admin.headers)
    assert resp.status == 409
    assert (await clean.patch(f"/labels/{first['id']}", json={"color": "#zzzzzz"}, headers=admin.headers)).status == 422
    assert (await clean.patch(f"/labels/{uuid.uuid4()}", json={"name": "n"}, headers=admin.headers)).status == 404
    assert (await clean.delete(f"/labels/{uuid.uuid4()}", headers=admin.headers)).status == 404


async def test_agents_put_labels_on_tickets_and_customers_never_see_them(
    clean: TestClient, make_user: MakeUser
) -> None:
    client = clean
    admin, agent, customer = await make_user("admin"), await make_user("agent"), await make_user("customer")
    vip, bug = await new_label(client, admin, "vip", "#aa0000"), await new_label(client, admin, "bug")
    ticket = await create_ticket(client, customer)
    assert "labels" not in ticket  # the customer's own answer
    resp = await put_labels(client, agent, ticket["id"], vip, bug)
    body = await assert_matches_spec(resp, "put", "/tickets/{ticket_id}/labels")
    assert body["ticket"]["labels"] == [
        {"id": bug["id"], "name": "bug", "color": "#2563eb"},
        {"id": vip["id"], "name": "vip", "color": "#aa0000"},
    ]
    agent_view = (await (await client.get(f"/tickets/{ticket['id']}", headers=agent.headers)).json())["ticket"]
    assert [label["name"] for label in agent_view["labels"]] == ["bug", "vip"]
    own = (await (await client.get(f"/tickets/{ticket['id']}", headers=customer.headers)).json())["ticket"]
    assert "labels" not in own
    listed = (await (await client.get("/tickets", headers=customer.headers)).json())["tickets"]
    assert all("labels" not in t for t in listed)
    # Customers may not put labels, nor filter by them (which would tell them which they carry).
    assert (await put_labels(client, customer, ticket["id"])).status == 403
    assert (await client.get(f"/tickets?label={vip['id']}", headers=customer.headers)).status == 403

    # Removing one: the set is replaced.
    resp = await put_labels(client, agent, ticket["id"], vip)
    assert [label["name"] for label in (await resp.json())["ticket"]["labels"]] == ["vip"]


async def test_ticket_labels_validation(clean: TestClient, make_user: MakeUser) -> None:
    agent, customer = await make_user("agent"), await make_user("customer")
    ticket = await create_ticket(clean, customer)
    url = f"/tickets/{ticket['id']}/labels"
    for body in ({"label_ids": [str(uuid.uuid4())]}, {"label_ids": ["nope"]}, {"label_ids": "x"}, {}, [], {"x": 1}):
        resp = await clean.put(url, json=body, headers=agent.headers)
        assert resp.status == 422, (body, await resp.text())
    resp = await clean.put(url, json={"label_ids": [str(uuid.uuid4()) for _ in range(21)]}, headers=agent.headers)
    assert resp.status == 422
    resp = await clean.put(f"/tickets/{uuid.uuid4()}/labels", json={"label_ids": []}, headers=agent.headers)
    assert resp.status == 404


async def test_the_inbox_filters_by_label_id_or_name(clean: TestClient, make_user: MakeUser) -> None:
    client = clean
    admin, agent, customer = await make_user("admin"), await make_user("agent"), await make_user("customer")
    vip = await new_label(client, admin, "VIP")
    tagged = await create_ticket(client, customer, "Tagged")
    await create_ticket(client, customer, "Plain")
    assert (await put_labels(client, agent, tagged["id"], vip)).status == 200
    for value in (vip["id"], "vip", "VIP"):
        page = (await (await client.get(f"/tickets?label={value}", headers=agent.headers)).json())["tickets"]
        assert [t["subject"] for t in page] == ["Tagged"]
    inbox = await client.get(f"/console/api/inbox?label={vip['id']}", headers=agent.headers)
    assert [row["ticket"]["subject"] for row in (await inbox.json())["tickets"]] == ["Tagged"]
    assert (await client.get("/tickets?label=unknown", headers=agent.headers)).status == 422
    everything = (await (await client.get("/tickets", headers=agent.headers)).json())["tickets"]
    assert len(everything) == 2


async def test_renaming_and_deleting_a_label_changes_every_ticket(clean: TestClient, make_user: MakeUser) -> None:
    client = clean
    admin, agent, customer = await make_user("admin"), await make_user("agent"), await make_user("customer")
    old, keep = await new_label(client, admin, "aaa"), await new_label(client, admin, "mmm")
    ticket = await create_ticket(client, customer)
    await put_labels(client, agent, ticket["id"], old, keep)
    resp = await client.patch(f"/labels/{old['id']}", json={"name": "zzz", "color": "#00ff00"}, headers=admin.headers)
    assert (await assert_matches_spec(resp, "patch", "/labels/{label_id}"))["label"]["name"] == "zzz"
    labels = (await (await client.get(f"/tickets/{ticket['id']}", headers=agent.headers)).json())["ticket"]["labels"]
    assert labels == [
        {"id": keep["id"], "name": "mmm", "color": "#2563eb"},
        {"id": old["id"], "name": "zzz", "color": "#00ff00"},
    ]
    assert (await client.delete(f"/labels/{old['id']}", headers=admin.headers)).status == 204
    labels = (await (await client.get(f"/tickets/{ticket['id']}", headers=agent.headers)).json())["ticket"]["labels"]
    assert [label["name"] for label in labels] == ["mmm"]


async def test_a_label_change_records_the_ticket_updated_event(clean: TestClient, make_user: MakeUser) -> None:
    admin, agent, customer = await make_user("admin"), await make_user("agent"), await make_user("customer")
    vip = await new_label(clean, admin, "vip")
    ticket = await create_ticket(clean, customer)
    await put_labels(clean, agent, ticket["id"], vip)
    row = await clean.app[DB_POOL].fetchrow(
        "SELECT data FROM events WHERE type = 'ticket.updated' AND ticket_id = $1 ORDER BY id DESC LIMIT 1",
        uuid.UUID(ticket["id"]),
    )
    assert row["data"]["changes"] == ["labels"] and row["data"]["by"] == agent.id
    assert [label["name"] for label in row["data"]["ticket"]["labels"]] == ["vip"]


async def test_a_label_change_is_live_for_agents_and_silent_for_the_customer(
    clean: TestClient, make_user: MakeUser
) -> None:
    client = clean
    admin, agent, customer = await make_user("admin"), await make_user("agent"), await make_user("customer")
    vip = await new_label(client, admin, "vip")
    ticket = await create_ticket(client, customer)
    aws = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=agent.headers)
    cws = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=customer.headers)
    inbox = await client.ws_connect("/ws/inbox", headers=agent.headers)
    try:
        assert (await recv(aws))["type"] == "joined"
        joined = await recv(cws)
        assert "labels" not in joined["ticket"]
        assert (await recv(inbox))["type"] == "inbox.ready"
        await drain(aws)
        await put_labels(client, agent, ticket["id"], vip)
        updated = await recv_type(aws, "ticket.updated")
        assert updated["changes"] == ["labels"] and updated["ticket"]["labels"][0]["name"] == "vip"
        line = await recv_type(aws, "activity.created")
        assert line["activity"]["kind"] == "labels" and line["activity"]["data"]["added"][0]["name"] == "vip"
        assert (await recv_type(inbox, "inbox.ticket_updated"))["changes"] == ["labels"]
        # A catalogue change reaches every open inbox with the whole list.
        await client.patch(f"/labels/{vip['id']}", json={"color": "#00aa00"}, headers=admin.headers)
        catalogue = await recv_type(inbox, "inbox.labels_changed")
        assert [(label["name"], label["color"]) for label in catalogue["labels"]] == [("vip", "#00aa00")]
        # A later status change reaches the customer without the labels, and is the first frame.
        await client.patch(f"/tickets/{ticket['id']}", json={"status": "pending"}, headers=agent.headers)
        frames = [f for f in await drain(cws, 0.5) if f["type"] not in ("presence.joined", "presence.left")]
        assert [f["type"] for f in frames] == ["ticket.updated"]
        assert frames[0]["changes"] == ["status"] and "labels" not in frames[0]["ticket"]
    finally:
        for ws in (aws, cws, inbox):
            await ws.close()


# ---- activity ------------------------------------------------------------------------------


async def test_ticket_changes_are_in_the_activity_log_with_who_and_what(clean: TestClient, make_user: MakeUser) -> None:
    client = clean
    admin = await make_user("admin")
    agent = await make_user("agent", name="Alex")
    customer = await make_user("customer")
    vip = await new_label(client, admin, "vip")
    ticket = await create_ticket(client, customer)
    # Tickets start with the AI off in these tests (settings fixture).
    patch = {"status": "pending", "priority": "high", "assignee_id": agent.id, "ai_enabled": True}
    assert (await client.patch(f"/tickets/{ticket['id']}", json=patch, headers=agent.headers)).status == 200
    await put_labels(client, agent, ticket["id"], vip)
    await put_labels(client, agent, ticket["id"])
    resp = await client.get(f"/tickets/{ticket['id']}/activity", headers=admin.headers)
    entries = (await assert_matches_spec(resp, "get", "/tickets/{ticket_id}/activity"))["activity"]
    assert [(e["kind"], e["data"]) for e in entries] == [
        ("status", {"from": "open", "to": "pending"}),
        ("priority", {"from": "normal", "to": "high"}),
        ("assignee", {"from": None, "to": {"id": agent.id, "name": "Alex"}}),
        ("ai", {"from": False, "to": True}),
        ("labels", {"added": [{"id": vip["id"], "name": "vip", "color": "#2563eb"}], "removed": []}),
        ("labels", {"added": [], "removed": [{"id": vip["id"], "name": "vip", "color": "#2563eb"}]}),
    ]
    assert all(e["actor"] == {"id": agent.id, "name": "Alex", "role": "agent"} for e in entries)
    # Paging: after an id, and a limit.
    later = await client.get(
        f"/tickets/{ticket['id']}/activity?after_id={entries[3]['id']}&limit=1", headers=agent.headers
    )
    page = await later.json()
    assert [e["id"] for e in page["activity"]] == [entries[4]["id"]] and page["has_more"] is True
    # A change to the same values records nothing.
    await client.patch(f"/tickets/{ticket['id']}", json={"status": "pending"}, headers=agent.headers)
    assert len(await activity(client, agent, ticket["id"])) == len(entries)


async def test_a_customer_reopening_is_recorded_and_the_customer_cannot_read_the_log(
    clean: TestClient, make_user: MakeUser
) -> None:
    agent, customer = await make_user("agent"), await make_user("customer")
    ticket = await create_ticket(clean, customer)
    await clean.patch(f"/tickets/{ticket['id']}", json={"status": "resolved"}, headers=agent.headers)
    resp = await clean.post(
        f"/tickets/{ticket['id']}/messages", json={"body": "Still broken"}, headers=customer.headers
    )
    assert resp.status == 201
    entries = await activity(clean, agent, ticket["id"])
    assert [(e["data"]["to"], e["actor"]["role"]) for e in entries] == [("resolved", "agent"), ("open", "customer")]
    resp = await clean.get(f"/tickets/{ticket['id']}/activity", headers=customer.headers)
    assert resp.status == 403
    other = await make_user("customer")
    assert (await clean.get(f"/tickets/{ticket['id']}/activity", headers=other.headers)).status == 404
    agent_missing = await clean.get(f"/tickets/{uuid.uuid4()}/activity", headers=agent.headers)
    assert agent_missing.status == 404
    assert (await clean.get(f"/tickets/{ticket['id']}/activity?after_id=x", headers=agent.headers)).status == 422


async def test_activity_never_reaches_the_customer(clean: TestClient, make_user: MakeUser) -> None:
    """Not in REST history, not in a join snapshot (fresh or resumed), not as a live frame: the
    log is no message, so none of the paths that serve messages can carry it."""
    client = clean
    admin, agent, customer = await make_user("admin"), await make_user("agent"), await make_user("customer")
    vip = await new_label(client, admin, "vip")
    ticket = await create_ticket(client, customer, message="Hello")
    cws = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=customer.headers)
    try:
        assert (await recv(cws))["type"] == "joined"
        await client.patch(
            f"/tickets/{ticket['id']}", json={"priority": "urgent", "assignee_id": agent.id}, headers=agent.headers
        )
        await put_labels(client, agent, ticket["id"], vip)
        await client.post(f"/tickets/{ticket['id']}/messages", json={"body": "On it"}, headers=agent.headers)
        live = await drain(cws, 0.5)
    finally:
        await cws.close()
    assert len(await activity(client, agent, ticket["id"])) == 3
    assert "activity.created" not in {f["type"] for f in live}
    assert all(f["changes"] != ["labels"] for f in live if f["type"] == "ticket.updated")
    history = await (await client.get(f"/tickets/{ticket['id']}/messages", headers=customer.headers)).json()
    assert [m["body"] for m in history["messages"]] == ["Hello", "On it"]
    for after in (None, 0, 1):
        url = f"/tickets/{ticket['id']}/ws" + ("" if after is None else f"?after_seq={after}")
        ws = await client.ws_connect(url, headers=customer.headers)
        try:
            joined = await recv(ws)
        finally:
            await ws.close()
        assert "labels" not in joined["ticket"]
        assert all(m["author_kind"] in ("customer", "agent") for m in joined["messages"])
        assert all("activity" not in m["metadata"] for m in joined["messages"])


# ---- canned responses ----------------------------------------------------------------------


async def new_canned(client: TestClient, user: User, shortcut: str, body: str, **extra: Any) -> dict[str, Any]:
    resp = await client.post(
        "/canned-responses", json={"shortcut": shortcut, "body": body, **extra}, headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    item: dict[str, Any] = (await resp.json())["canned_response"]
    return item


async def shortcuts(client: TestClient, user: User, q: str = "") -> list[str]:
    resp = await client.get(f"/canned-responses?q={q}", headers=user.headers)
    assert resp.status == 200, await resp.text()
    return [item["shortcut"] for item in (await resp.json())["canned_responses"]]


async def test_agents_see_shared_and_their_own_canned_responses_only(client: TestClient, make_user: MakeUser) -> None:
    admin, alex, bo = await make_user("admin"), await make_user("agent"), await make_user("agent")
    resp = await client.post(
        "/canned-responses",
        json={"shortcut": "Hello", "body": "Hi {{customer.name}}, I am {{agent.name}}.", "shared": True},
        headers=admin.headers,
    )
    shared = (await assert_matches_spec(resp, "post", "/canned-responses"))["canned_response"]
    assert shared["shared"] is True and shared["shortcut"] == "hello" and shared["owner_id"] is None
    mine = await new_canned(client, alex, "refund", "Your refund is on its way.")
    assert mine["shared"] is False and mine["owner_id"] == alex.id
    await new_canned(client, bo, "bye", "Goodbye!")
    listed = await assert_matches_spec(
        await client.get("/canned-responses", headers=alex.headers), "get", "/canned-responses"
    )
    assert [i["shortcut"] for i in listed["canned_responses"]] == ["hello", "refund"]
    assert await shortcuts(client, bo) == ["bye", "hello"]
    assert await shortcuts(client, admin) == ["hello"]
    # Search: shortcut or text, any case; LIKE wildcards are literal.
    assert await shortcuts(client, alex, "REF") == ["refund"]
    assert await shortcuts(client, alex, "way") == ["refund"]
    assert await shortcuts(client, alex, "%") == []
    # The same shortcut may be personal for one agent and shared; not twice for one owner.
    await new_canned(client, alex, "hello", "My own hello")
    resp = await client.post("/canned-responses", json={"shortcut": "refund", "body": "x"}, headers=alex.headers)
    assert resp.status == 409


async def test_who_may_change_which_canned_response(client: TestClient, make_user: MakeUser) -> None:
    admin, alex, bo = await make_user("admin"), await make_user("agent"), await make_user("agent")
    customer = await make_user("customer")
    shared = await new_canned(client, admin, "hello", "Hi", shared=True)
    mine = await new_canned(client, alex, "refund", "Refund")
    # Agents may not share, nor change what is shared.
    resp = await client.post(
        "/canned-responses", json={"shortcut": "x", "body": "x", "shared": True}, headers=alex.headers
    )
    assert resp.status == 403
    assert (
        await client.patch(f"/canned-responses/{shared['id']}", json={"body": "Yo"}, headers=alex.headers)
    ).status == 403
    assert (await client.delete(f"/canned-responses/{shared['id']}", headers=alex.headers)).status == 403
    # Another agent's personal response does not exist for you, admins included.
    for user in (bo, admin):
        assert (
            await client.patch(f"/canned-responses/{mine['id']}", json={"body": "x"}, headers=user.headers)
        ).status == 404
        assert (await client.delete(f"/canned-responses/{mine['id']}", headers=user.headers)).status == 404
    # Customers: none of it.
    assert (await client.get("/canned-responses", headers=customer.headers)).status == 403
    assert (
        await client.post("/canned-responses", json={"shortcut": "x", "body": "x"}, headers=customer.headers)
    ).status == 403
    assert (
        await client.patch(f"/canned-responses/{mine['id']}", json={"body": "x"}, headers=customer.headers)
    ).status == 403
    assert (await client.delete(f"/canned-responses/{shared['id']}", headers=customer.headers)).status == 403
    # The owner and admins do.
    resp = await client.patch(f"/canned-responses/{mine['id']}", json={"body": "Refunded"}, headers=alex.headers)
    assert (await assert_matches_spec(resp, "patch", "/canned-responses/{canned_id}"))["canned_response"][
        "body"
    ] == "Refunded"
    resp = await client.put(f"/canned-responses/{mine['id']}", json={"shortcut": "money"}, headers=alex.headers)
    assert (await resp.json())["canned_response"]["shortcut"] == "money"
    resp = await client.patch(f"/canned-responses/{shared['id']}", json={"body": "Hello!"}, headers=admin.headers)
    assert resp.status == 200
    assert (await client.delete(f"/canned-responses/{mine['id']}", headers=alex.headers)).status == 204
    assert (await client.delete(f"/canned-responses/{shared['id']}", headers=admin.headers)).status == 204
    assert await shortcuts(client, alex) == []
    assert (await client.delete(f"/canned-responses/{uuid.uuid4()}", headers=alex.headers)).status == 404
    assert (await client.delete("/canned-responses/not-an-id", headers=alex.headers)).status == 404


@pytest.mark.parametrize(
    "body",
    [
        {"shortcut": "has space", "body": "x"},
        {"shortcut": "-dash-first", "body": "x"},
        {"shortcut": "x" * 41, "body": "x"},
        {"shortcut": "ok", "body": ""},
        {"shortcut": "ok", "body": "x" * 5001},
        {"shortcut": "ok"},
        {"shortcut": "ok", "body": "x", "shared": "yes"},
        {"shortcut": "ok", "body": "x", "owner_id": str(uuid.uuid4())},
    ],
)
async def test_canned_response_validation(client: TestClient, make_user: MakeUser, body: dict[str, Any]) -> None:
    agent = await make_user("agent")
    resp = await client.post("/canned-responses", json=body, headers=agent.headers)
    assert resp.status == 422, await resp.text()


async def test_api_keys_reach_labels_and_activity_with_their_scopes_only(
    clean: TestClient, make_user: MakeUser
) -> None:
    admin, customer = await make_user("admin"), await make_user("customer")
    ticket = await create_ticket(clean, customer)
    resp = await clean.post("/admin/api-keys", json={"name": "crm", "scopes": ["tickets:read"]}, headers=admin.headers)
    key = {"Authorization": f"Bearer {(await resp.json())['api_key']['key']}"}
    assert (await clean.get("/labels", headers=key)).status == 200
    assert (await clean.get(f"/tickets/{ticket['id']}/activity", headers=key)).status == 200
    assert (await clean.put(f"/tickets/{ticket['id']}/labels", json={"label_ids": []}, headers=key)).status == 403
    assert (await clean.get("/canned-responses", headers=key)).status == 403


async def test_socket_frames_and_takeover_record_activity(clean: TestClient, make_user: MakeUser) -> None:
    """ticket.update, ai.handback and ai.takeover over the room socket: a line each, live to agents."""
    agent, customer = await make_user("agent", name="Ava"), await make_user("customer")
    ticket = await create_ticket(clean, customer)
    aws = await clean.ws_connect(f"/tickets/{ticket['id']}/ws", headers=agent.headers)
    try:
        assert (await recv(aws))["type"] == "joined"
        await aws.send_json({"type": "ticket.update", "priority": "low"})
        assert (await recv_type(aws, "activity.created"))["activity"]["kind"] == "priority"
        await aws.send_json({"type": "ai.handback"})
        assert (await recv_type(aws, "activity.created"))["activity"]["data"] == {"from": False, "to": True}
        await aws.send_json({"type": "ai.takeover"})
        assert (await recv_type(aws, "activity.created"))["activity"]["data"] == {"from": True, "to": False}
    finally:
        await aws.close()
    kinds = [(e["kind"], e["actor"]["name"]) for e in await activity(clean, agent, ticket["id"])]
    assert kinds == [("priority", "Ava"), ("ai", "Ava"), ("ai", "Ava")]


async def test_the_ai_handing_off_is_recorded_without_an_actor(
    aiohttp_client: Any, settings: Settings, make_user: MakeUser
) -> None:
    """The offline responder's handoff (a customer asking for a person) turns the AI off: the
    line has no actor (the system did it)."""
    app = create_app(ai_settings(settings, None), bcrypt_rounds=4)
    ai_client = await aiohttp_client(app)
    agent = await make_user("agent")
    resp = await ai_client.post(
        "/auth/signup", json={"email": f"h-{uuid.uuid4().hex[:6]}@example.com", "password": "password123"}
    )
    headers = {"Authorization": f"Bearer {(await resp.json())['access_token']}"}
    created = await ai_client.post("/tickets", json={"subject": "x", "message": "I want a human"}, headers=headers)
    ticket = (await created.json())["ticket"]
    for _ in range(100):
        entries = await activity(ai_client, agent, ticket["id"])
        if entries:
            break
        await asyncio.sleep(0.05)
    assert [(e["kind"], e["data"], e["actor"]) for e in entries] == [("ai", {"from": True, "to": False}, None)]


async def test_a_canned_search_longer_than_documented_is_a_422(client: TestClient, make_user: MakeUser) -> None:
    """Found by the fuzzer: q past its documented 100 characters was cut and accepted."""
    agent = await make_user("agent")
    assert (await client.get(f"/canned-responses?q={'x' * 100}", headers=agent.headers)).status == 200
    resp = await client.get(f"/canned-responses?q={'x' * 101}", headers=agent.headers)
    assert resp.status == 422 and (await resp.json())["error"]["details"]["fields"] == {"q": "at most 100"}


async def test_junk_label_filters_and_unknown_label_ids_are_4xx(client: TestClient, make_user: MakeUser) -> None:
    """Found by the fuzzer: a label filter with a NUL in it, and a list of made-up label ids, were 500s."""
    agent, customer = await make_user("agent"), await make_user("customer")
    for junk in ("a\x00b", "x" * 101, "\x1b[31m"):
        resp = await client.get("/tickets", params={"label": junk}, headers=agent.headers)
        assert resp.status == 422, await resp.text()
    ticket = await create_ticket(client, customer, "Labels")
    ids = [str(uuid.uuid4()) for _ in range(19)]
    resp = await client.put(f"/tickets/{ticket['id']}/labels", json={"label_ids": ids}, headers=agent.headers)
    assert 400 <= resp.status < 500, await resp.text()
