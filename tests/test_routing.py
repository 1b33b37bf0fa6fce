"""Agent availability and automatic assignment on one instance: who is online, away or offline,
and which agent a new, handed-off or orphaned waiting ticket goes to (docs/web.md, "Never miss
a customer"). tests/test_routing_instances.py covers two instances."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from chatserver.keys import AI_SERVICE, DB_POOL
from chatserver.settings import Settings

from .conftest import MakeUser, User, create_ticket
from .test_openapi import assert_matches_spec
from .wsutil import drain, recv, recv_type

# The sweep runs every third of the TTL: every second, so that tests wait little (and a
# loaded machine does not miss a heartbeat: an instance silent for the TTL counts as dead).
FAST = {
    "auto_assign": True,
    "agent_presence_ttl_seconds": 3.0,
    "agent_offline_after_seconds": 0.0,
    "agent_away_after_seconds": 300.0,
    "agent_max_open_conversations": 3,
}


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """FAST, plus what a test asks for with @with_settings (the app it talks to is then the only
    one: every instance must run with the same settings, or they disagree about statuses)."""
    return settings.with_overrides(**{**FAST, **getattr(request, "param", {})})


def with_settings(**overrides: Any) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("settings", [overrides], indirect=True, ids=[""])


async def open_console(client: TestClient, agent: User) -> aiohttp.ClientWebSocketResponse:
    """An agent's inbox socket (their console), once the server has announced them online."""
    inbox = await client.ws_connect("/ws/inbox", headers=agent.headers)
    assert (await recv(inbox))["type"] == "inbox.ready"
    await wait_status(client, agent, "online")
    return inbox


async def status_of(client: TestClient, agent: User) -> str:
    resp = await client.get("/console/api/availability", headers=agent.headers)
    assert resp.status == 200, await resp.text()
    me: dict[str, Any] = (await resp.json())["me"]
    return str(me["status"])


async def wait_status(client: TestClient, agent: User, status: str, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (current := await status_of(client, agent)) != status:
        assert asyncio.get_running_loop().time() < deadline, f"{agent.email} stayed {current}, not {status}"
        await asyncio.sleep(0.05)


async def availability_frame(inbox: aiohttp.ClientWebSocketResponse, user: User, status: str) -> dict[str, Any]:
    """The next agent.availability frame announcing `user` as `status`."""
    while True:
        frame = await recv_type(inbox, "agent.availability")
        if frame["agent"]["id"] == user.id and frame["agent"]["status"] == status:
            return frame


async def assignment_frame(
    inbox: aiohttp.ClientWebSocketResponse, ticket_id: str, timeout: float = 5.0
) -> dict[str, Any]:
    """The next inbox.ticket_updated frame that changes `ticket_id`'s assignee."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        frame = await recv_type(
            inbox, "inbox.ticket_updated", timeout=max(0.01, deadline - asyncio.get_running_loop().time())
        )
        if frame["ticket"]["id"] == ticket_id and "assignee_id" in frame["changes"]:
            return frame


async def get_ticket(client: TestClient, user: User, ticket_id: str) -> dict[str, Any]:
    resp = await client.get(f"/tickets/{ticket_id}", headers=user.headers)
    assert resp.status == 200
    ticket: dict[str, Any] = (await resp.json())["ticket"]
    return ticket


async def wait_assignee(
    client: TestClient, user: User, ticket_id: str, assignee: str | None, timeout: float = 5.0
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (current := (await get_ticket(client, user, ticket_id))["assignee_id"]) != assignee:
        assert asyncio.get_running_loop().time() < deadline, f"ticket assigned to {current}, not {assignee}"
        await asyncio.sleep(0.05)


# ---- routing ----------------------------------------------------------------------------------


async def test_a_new_ticket_goes_to_the_online_agent(client: TestClient, make_user: MakeUser) -> None:
    agent = await make_user("agent")
    customer = await make_user("customer")
    inbox = await open_console(client, agent)
    ticket = await create_ticket(client, customer, message="Hello?")
    assert ticket["assignee_id"] == agent.id
    frame = await assignment_frame(inbox, ticket["id"])
    assert frame["ticket"]["assignee_id"] == agent.id
    # Recorded as every ticket update is: a ticket.updated event, made by nobody (the router).
    event = await client.app[DB_POOL].fetchrow(
        "SELECT data FROM events WHERE type = 'ticket.updated' AND ticket_id = $1", uuid.UUID(ticket["id"])
    )
    assert event is not None
    assert event["data"]["changes"] == ["assignee_id"] and event["data"]["by"] is None
    # And in the ticket's activity log, with no actor, live to an agent in the room too.
    room = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=agent.headers)
    await recv_type(room, "joined")
    resp = await client.get(f"/tickets/{ticket['id']}/activity", headers=agent.headers)
    lines = (await resp.json())["activity"]
    assert [(line["kind"], line["actor"]) for line in lines] == [("assignee", None)]
    await room.close()
    await inbox.close()


async def test_an_assignment_by_the_sweep_is_live_in_the_room_as_an_activity_line(
    client: TestClient, make_user: MakeUser
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer, message="Anyone?")
    # Waiting for a person, and nobody online: it stays unassigned until an agent comes.
    await client.app[AI_SERVICE].pool.execute(
        "UPDATE tickets SET waiting_for_agent = true, ai_enabled = false WHERE id = $1", uuid.UUID(ticket["id"])
    )
    watcher = await make_user("admin")
    room = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=watcher.headers)
    await recv_type(room, "joined")
    agent = await make_user("agent")
    inbox = await open_console(client, agent)
    frame = await recv_type(room, "activity.created", timeout=10)
    assert frame["activity"]["kind"] == "assignee" and frame["activity"]["actor"] is None
    await room.close()
    await inbox.close()


async def test_new_tickets_go_round_robin(client: TestClient, make_user: MakeUser) -> None:
    first, second = await make_user("agent"), await make_user("agent")
    customer = await make_user("customer")
    consoles = [await open_console(client, first), await open_console(client, second)]
    assignees = [(await create_ticket(client, customer, message=f"q{i}"))["assignee_id"] for i in range(4)]
    assert set(assignees[:2]) == {first.id, second.id}
    assert assignees[2:] == assignees[:2], "each agent in turn, in the same order"
    for inbox in consoles:
        await inbox.close()


async def test_an_agent_gets_no_more_than_the_limit(client: TestClient, make_user: MakeUser) -> None:
    agent = await make_user("agent")
    customer = await make_user("customer")
    inbox = await open_console(client, agent)
    tickets = [await create_ticket(client, customer, message=f"question {i}") for i in range(4)]
    assert [t["assignee_id"] for t in tickets[:3]] == [agent.id] * 3
    assert tickets[3]["assignee_id"] is None, "over AGENT_MAX_OPEN_CONVERSATIONS (3): left unassigned"
    # A conversation resolved frees a place: the sweep gives the waiting ticket to the agent.
    resp = await client.patch(f"/tickets/{tickets[0]['id']}", json={"status": "resolved"}, headers=agent.headers)
    assert resp.status == 200
    frame = await assignment_frame(inbox, tickets[3]["id"])
    assert frame["ticket"]["assignee_id"] == agent.id
    await inbox.close()


async def test_no_agent_online_leaves_the_ticket_unassigned_until_one_comes(
    client: TestClient, make_user: MakeUser
) -> None:
    agent = await make_user("agent")
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer, message="Anyone there?")
    assert ticket["assignee_id"] is None
    # The agent opens the console: the ticket waits for a person (AI off, the customer wrote
    # last), so it is theirs.
    inbox = await client.ws_connect("/ws/inbox", headers=agent.headers)
    frame = await assignment_frame(inbox, ticket["id"])
    assert frame["ticket"]["assignee_id"] == agent.id
    await inbox.close()


async def test_an_away_agent_gets_no_new_tickets(client: TestClient, make_user: MakeUser) -> None:
    agent = await make_user("agent")
    customer = await make_user("customer")
    inbox = await open_console(client, agent)
    resp = await client.put("/console/api/availability", json={"status": "away"}, headers=agent.headers)
    assert resp.status == 200
    assert (await assert_matches_spec(resp, "put", "/console/api/availability"))["me"]["status"] == "away"
    await availability_frame(inbox, agent, "away")
    assert (await create_ticket(client, customer, message="hi"))["assignee_id"] is None
    resp = await client.put("/console/api/availability", json={"status": "online"}, headers=agent.headers)
    assert (await resp.json())["me"]["status"] == "online"
    assert (await create_ticket(client, customer, message="hi again"))["assignee_id"] == agent.id
    await inbox.close()


@pytest.mark.parametrize("assigned_before", [False, True])
async def test_a_handed_off_ticket_goes_to_an_online_agent(
    client: TestClient, make_user: MakeUser, assigned_before: bool
) -> None:
    agent, gone = await make_user("agent"), await make_user("agent")
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)  # no message: nothing for the AI to answer
    if assigned_before:
        # Assigned by hand to an agent who is not online: the handoff moves it.
        resp = await client.patch(f"/tickets/{ticket['id']}", json={"assignee_id": gone.id}, headers=agent.headers)
        assert resp.status == 200
    inbox = await open_console(client, agent)
    await client.app[AI_SERVICE].hand_off(uuid.UUID(ticket["id"]), "customer_asked", "A person will answer.")
    assert (await get_ticket(client, agent, ticket["id"]))["assignee_id"] == agent.id
    frame = await assignment_frame(inbox, ticket["id"])
    assert frame["ticket"]["waiting_for_agent"] is True
    await inbox.close()


async def test_a_handoff_keeps_an_online_assignee(client: TestClient, make_user: MakeUser) -> None:
    first, second = await make_user("agent"), await make_user("agent")
    customer = await make_user("customer")
    consoles = [await open_console(client, first), await open_console(client, second)]
    ticket = await create_ticket(client, customer)
    owner = ticket["assignee_id"]
    await client.app[AI_SERVICE].hand_off(uuid.UUID(ticket["id"]), "customer_asked", "A person will answer.")
    assert (await get_ticket(client, first, ticket["id"]))["assignee_id"] == owner
    for inbox in consoles:
        await inbox.close()


async def test_a_waiting_ticket_moves_when_its_agent_goes_offline(client: TestClient, make_user: MakeUser) -> None:
    first, second = await make_user("agent"), await make_user("agent")
    customer = await make_user("customer")
    inbox_first = await open_console(client, first)
    waiting = await create_ticket(client, customer, message="Still there?")
    answered = await create_ticket(client, customer, message="A question")
    assert waiting["assignee_id"] == answered["assignee_id"] == first.id
    resp = await client.post(f"/tickets/{answered['id']}/messages", json={"body": "Answered."}, headers=first.headers)
    assert resp.status == 201
    inbox_second = await open_console(client, second)

    await inbox_first.close()
    await availability_frame(inbox_second, first, "offline")
    frame = await assignment_frame(inbox_second, waiting["id"])
    assert frame["ticket"]["assignee_id"] == second.id
    # The answered ticket waits for the customer, not for a person: it stays with its agent.
    assert (await get_ticket(client, second, answered["id"]))["assignee_id"] == first.id
    await inbox_second.close()


@with_settings(auto_assign=False)
async def test_routing_off_assigns_nothing(client: TestClient, make_user: MakeUser) -> None:
    agent = await make_user("agent")
    customer = await make_user("customer")
    inbox = await open_console(client, agent)
    ticket = await create_ticket(client, customer, message="hi")
    assert ticket["assignee_id"] is None
    await asyncio.sleep(2.5)  # two sweeps: they leave it alone too
    assert (await get_ticket(client, agent, ticket["id"]))["assignee_id"] is None
    resp = await client.get("/console/api/availability", headers=agent.headers)
    assert (await resp.json())["auto_assign"] is False
    await inbox.close()


# ---- availability -----------------------------------------------------------------------------


async def test_statuses_follow_the_console_and_the_agents_choice(client: TestClient, make_user: MakeUser) -> None:
    agent, watcher = await make_user("agent"), await make_user("admin")
    watching = await open_console(client, watcher)
    assert await status_of(client, agent) == "offline"
    inbox = await client.ws_connect("/ws/inbox", headers=agent.headers)
    online = await availability_frame(watching, agent, "online")
    assert set(online["agent"]) == {"id", "name", "role", "status", "away", "since"}
    await client.put("/console/api/availability", json={"status": "away"}, headers=agent.headers)
    away = await availability_frame(watching, agent, "away")
    assert away["agent"]["away"] is True
    # Away by choice stays away, whatever the console does.
    await inbox.send_json({"type": "activity"})
    await client.put("/console/api/availability", json={"status": "online"}, headers=agent.headers)
    await availability_frame(watching, agent, "online")
    await inbox.close()
    await availability_frame(watching, agent, "offline")
    resp = await client.get("/console/api/availability", headers=watcher.headers)
    body = await assert_matches_spec(resp, "get", "/console/api/availability")
    assert {a["id"]: a["status"] for a in body["agents"]} == {agent.id: "offline", watcher.id: "online"}
    assert body["me"]["id"] == watcher.id and body["auto_assign"] is True
    await watching.close()


@with_settings(agent_away_after_seconds=0.5)
async def test_an_idle_agent_goes_away_and_activity_brings_them_back(client: TestClient, make_user: MakeUser) -> None:
    agent, watcher = await make_user("agent"), await make_user("admin")
    watching = await client.ws_connect("/ws/inbox", headers=watcher.headers)
    inbox = await client.ws_connect("/ws/inbox", headers=agent.headers)
    await availability_frame(watching, agent, "online")
    frame = await availability_frame(watching, agent, "away")
    assert frame["agent"]["away"] is False, "away for inactivity, not by choice"
    await inbox.send_json({"type": "activity"})
    await availability_frame(watching, agent, "online")
    await inbox.close()
    await watching.close()


async def test_a_console_on_a_second_tab_keeps_the_agent_online(client: TestClient, make_user: MakeUser) -> None:
    agent = await make_user("agent")
    tabs = [await open_console(client, agent), await client.ws_connect("/ws/inbox", headers=agent.headers)]
    await tabs[0].close()
    await asyncio.sleep(2.5)  # more than two sweeps
    assert await status_of(client, agent) == "online"
    await tabs[1].close()
    await wait_status(client, agent, "offline")


async def test_the_queue_counts_what_waits_for_the_agent(client: TestClient, make_user: MakeUser) -> None:
    agent = await make_user("agent")
    customer = await make_user("customer")
    inbox = await open_console(client, agent)
    waiting = await create_ticket(client, customer, message="Help")
    answered = await create_ticket(client, customer, message="Help too")
    await client.post(f"/tickets/{answered['id']}/messages", json={"body": "On it."}, headers=agent.headers)
    resp = await client.get("/console/api/queue", headers=agent.headers)
    assert resp.status == 200
    queue = await assert_matches_spec(resp, "get", "/console/api/queue")
    assert set(queue["assigned"]) == {waiting["id"], answered["id"]}
    assert queue["waiting"] == [waiting["id"]]
    await inbox.close()


# ---- authorization and input -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/console/api/availability"), ("PUT", "/console/api/availability"), ("GET", "/console/api/queue")],
)
async def test_customers_and_strangers_see_none_of_it(
    client: TestClient, make_user: MakeUser, method: str, path: str
) -> None:
    customer = await make_user("customer")
    body = {"status": "away"}
    resp = await client.request(method, path, json=body)
    assert resp.status == 401
    resp = await client.request(method, path, json=body, headers=customer.headers)
    assert resp.status == 403
    assert (await assert_matches_spec(resp, method.lower(), path))["error"]["code"] == "forbidden"
    admin = await make_user("admin")
    resp = await client.request(method, path, json=body, headers=admin.headers)
    assert resp.status == 200, await resp.text()


async def test_an_api_key_cannot_reach_availability(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user("admin")
    resp = await client.post("/admin/api-keys", json={"name": "bot", "scopes": ["admin"]}, headers=admin.headers)
    assert resp.status == 201, await resp.text()
    key = (await resp.json())["api_key"]["key"]
    # Even a key with every scope: the console's endpoints are for people.
    for method, path in [
        ("GET", "/console/api/availability"),
        ("PUT", "/console/api/availability"),
        ("GET", "/console/api/queue"),
    ]:
        resp = await client.request(method, path, json={"status": "away"}, headers={"Authorization": f"Bearer {key}"})
        assert resp.status == 403


@pytest.mark.parametrize(
    "body", [{"status": "offline"}, {"status": "busy"}, {}, {"status": 1}, {"status": "away", "extra": 1}, []]
)
async def test_a_bad_choice_is_a_422(client: TestClient, make_user: MakeUser, body: Any) -> None:
    agent = await make_user("agent")
    resp = await client.put("/console/api/availability", json=body, headers=agent.headers)
    assert resp.status == 422
    assert (await resp.json())["error"]["code"] == "validation_error"


async def test_a_body_that_is_not_json_is_a_400(client: TestClient, make_user: MakeUser) -> None:
    agent = await make_user("agent")
    resp = await client.put(
        "/console/api/availability", data=b"{nope", headers={**agent.headers, "Content-Type": "application/json"}
    )
    assert resp.status == 400


async def test_customers_hear_no_availability_in_their_room(client: TestClient, make_user: MakeUser) -> None:
    agent = await make_user("agent")
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    room = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=customer.headers)
    assert (await recv(room))["type"] == "joined"
    inbox = await open_console(client, agent)
    await client.put("/console/api/availability", json={"status": "away"}, headers=agent.headers)
    await inbox.close()
    await wait_status(client, agent, "offline")
    frames = await drain(room)
    assert not [f for f in frames if f["type"].startswith("agent.")]
    await room.close()


async def test_the_inbox_refuses_other_frames(client: TestClient, make_user: MakeUser) -> None:
    agent = await make_user("agent")
    inbox = await open_console(client, agent)
    await inbox.send_json({"type": "availability.set", "status": "offline"})
    error = await recv_type(inbox, "error")
    assert error["code"] == "unknown_type"
    await inbox.close()


@with_settings(agent_offline_after_seconds=60.0)
async def test_a_reload_within_the_grace_is_not_going_offline(client: TestClient, make_user: MakeUser) -> None:
    agent, watcher = await make_user("agent"), await make_user("admin")
    watching = await client.ws_connect("/ws/inbox", headers=watcher.headers)
    inbox = await client.ws_connect("/ws/inbox", headers=agent.headers)
    await availability_frame(watching, agent, "online")
    await inbox.close()  # the page reloads...
    await asyncio.sleep(2.5)  # ...slowly: two sweeps pass
    inbox = await client.ws_connect("/ws/inbox", headers=agent.headers)
    frames = await drain(watching, quiet=1.5)
    assert not [f for f in frames if f["type"] == "agent.availability" and f["agent"]["id"] == agent.id]
    assert await status_of(client, agent) == "online"
    await inbox.close()
    await watching.close()


async def test_agents_available_answers_for_the_server(client: TestClient, make_user: MakeUser) -> None:
    from chatserver.services.availability import agents_available, online_agents

    agent = await make_user("agent")
    assert await agents_available(client.app) is False
    inbox = await open_console(client, agent)
    assert await agents_available(client.app) is True
    assert [a["id"] for a in await online_agents(client.app)] == [uuid.UUID(agent.id)]
    await client.put("/console/api/availability", json={"status": "away"}, headers=agent.headers)
    assert await agents_available(client.app) is False, "an away agent does not count"
    await inbox.close()
