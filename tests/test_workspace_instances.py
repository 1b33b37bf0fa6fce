"""Labels are live across instances: a label put on a ticket on instance A shows at once in the
room and the inbox of an agent connected to instance B (through the Redis backplane)."""

from __future__ import annotations

import uuid

import aiohttp

from .conftest import PASSWORD
from .services import ServerProcess
from .test_access_instances import auth, make_account, sign_in
from .wsutil import drain, recv, recv_type


async def test_a_label_added_on_one_instance_shows_on_the_other_at_once(
    two_servers: list[ServerProcess], database_url: str
) -> None:
    a, b = two_servers
    admin = await make_account(database_url, "admin")
    agent = await make_account(database_url, "agent")
    async with aiohttp.ClientSession() as http:
        admin_token = (await sign_in(http, a.base_url, admin))["access_token"]
        agent_token = (await sign_in(http, b.base_url, agent))["access_token"]
        async with http.post(
            f"{a.base_url}/auth/signup", json={"email": f"c-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD}
        ) as resp:
            customer_token = (await resp.json())["access_token"]
        async with http.post(
            f"{a.base_url}/tickets", json={"subject": "Two hosts"}, headers=auth(customer_token)
        ) as resp:
            ticket = (await resp.json())["ticket"]
        name = f"vip-{uuid.uuid4().hex[:6]}"
        async with http.post(
            f"{a.base_url}/labels", json={"name": name, "color": "#aa0000"}, headers=auth(admin_token)
        ) as resp:
            assert resp.status == 201, await resp.text()
            label = (await resp.json())["label"]

        ws_b = b.base_url.replace("http", "ws")
        room = await http.ws_connect(f"{ws_b}/tickets/{ticket['id']}/ws", headers=auth(agent_token))
        inbox = await http.ws_connect(f"{ws_b}/ws/inbox", headers=auth(agent_token))
        customer_room = await http.ws_connect(f"{ws_b}/tickets/{ticket['id']}/ws", headers=auth(customer_token))
        try:
            assert (await recv(room))["type"] == "joined"
            await recv_type(inbox, "inbox.ready")
            assert (await recv(customer_room))["type"] == "joined"
            await drain(room)
            async with http.put(
                f"{a.base_url}/tickets/{ticket['id']}/labels",
                json={"label_ids": [label["id"]]},
                headers=auth(admin_token),
            ) as resp:
                assert resp.status == 200, await resp.text()
            updated = await recv_type(room, "ticket.updated")
            assert updated["changes"] == ["labels"]
            assert [item["name"] for item in updated["ticket"]["labels"]] == [name]
            line = await recv_type(room, "activity.created")
            assert line["activity"]["kind"] == "labels"
            listed = await recv_type(inbox, "inbox.ticket_updated")
            assert [item["id"] for item in listed["ticket"]["labels"]] == [label["id"]]
            # The customer's socket on B heard nothing of it.
            frames = await drain(customer_room, 0.5)
            assert not [f for f in frames if f["type"] in ("ticket.updated", "activity.created")]
            # The inbox filter on B finds it.
            async with http.get(f"{b.base_url}/tickets?label={label['id']}", headers=auth(agent_token)) as resp:
                assert [t["id"] for t in (await resp.json())["tickets"]] == [ticket["id"]]
        finally:
            for ws in (room, inbox, customer_room):
                await ws.close()
