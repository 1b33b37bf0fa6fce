"""Reports (docs/web.md, "Reports"): the figures on a known dataset, to the second; who may read
them; periods; CSV; satisfaction and the per-label figures, with ratings and labels given through
the API."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import uuid
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from chatserver.keys import DB_POOL
from chatserver.services.reports import parse_period

from .conftest import MakeUser, User
from .test_openapi import assert_matches_spec
from .test_web_console import console_login

UTC = dt.UTC
PERIOD = "from=2026-11-02&to=2026-11-08"


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def later(start: str, seconds: int) -> dt.datetime:
    return at(start) + dt.timedelta(seconds=seconds)


class Dataset:
    """Eight tickets whose figures are worked out by hand in the tests below. The period is the
    week of Monday 2026-11-02 to Sunday 2026-11-08. Written as an import would (messages with
    their own times, straight into the table), so load() ends as an import must: with
    tickets_recount_replies() over the tickets it wrote (migration 0018)."""

    def __init__(self, pool: asyncpg.Pool, customer: User, alice: User, bob: User) -> None:
        self.pool = pool
        self.customer = uuid.UUID(customer.id)
        self.alice = uuid.UUID(alice.id)
        self.bob = uuid.UUID(bob.id)
        self.tickets: dict[str, uuid.UUID] = {}

    async def ticket(
        self,
        name: str,
        created: str,
        *,
        status: str = "open",
        resolved: dt.datetime | None = None,
        assignee: uuid.UUID | None = None,
    ) -> uuid.UUID:
        ticket_id: uuid.UUID = await self.pool.fetchval(
            """INSERT INTO tickets (customer_id, subject, status, assignee_id, created_at, updated_at,
                                    last_activity_at, resolved_at)
               VALUES ($1, $2, $3, $4, $5, $5, $5, $6) RETURNING id""",
            self.customer,
            name,
            status,
            assignee,
            at(created),
            resolved,
        )
        self.tickets[name] = ticket_id
        await self.message(name, at(created), "customer", self.customer)
        return ticket_id

    async def message(
        self,
        name: str,
        when: dt.datetime,
        kind: str,
        author: uuid.UUID | None = None,
        *,
        visibility: str = "public",
        metadata: dict[str, str] | None = None,
    ) -> None:
        await self.pool.execute(
            """WITH bumped AS (UPDATE tickets SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq)
               INSERT INTO messages (ticket_id, seq, author_id, author_kind, body, visibility, metadata, created_at)
               SELECT $1, last_seq, $2, $3, 'text', $4, $5::jsonb, $6 FROM bumped""",
            self.tickets[name],
            author,
            kind,
            visibility,
            metadata or {},
            when,
        )

    async def load(self) -> None:
        # T1: answered by the AI in 10 s, resolved after 600 s without a person (an internal note
        # by an agent is not a reply).
        await self.ticket("T1", "2026-11-02T09:00:00", status="resolved", resolved=later("2026-11-02T09:00:00", 600))
        await self.message("T1", later("2026-11-02T09:00:00", 10), "ai")
        await self.message("T1", later("2026-11-02T09:00:00", 30), "agent", self.alice, visibility="internal")
        # T2: the AI answers in 20 s, hands off at 60 s, Alice answers at 180 s (120 s after the
        # handoff); resolved after an hour.
        t = "2026-11-02T10:00:00"
        await self.ticket("T2", t, status="resolved", resolved=later(t, 3600), assignee=self.alice)
        await self.message("T2", later(t, 20), "ai")
        await self.message("T2", later(t, 60), "system", metadata={"handoff": "customer_asked"})
        await self.message("T2", later(t, 180), "agent", self.alice)
        # T3: AI off; Bob answers in 300 s; resolved after two hours.
        t = "2026-11-03T14:00:00"
        await self.ticket("T3", t, status="resolved", resolved=later(t, 7200), assignee=self.bob)
        await self.message("T3", later(t, 300), "agent", self.bob)
        # T4: the AI answers in 40 s; a second customer message at 15:45; still open.
        t = "2026-11-04T15:30:00"
        await self.ticket("T4", t)
        await self.message("T4", later(t, 40), "ai")
        await self.message("T4", at("2026-11-04T15:45:00"), "customer", self.customer)
        # T5: nobody answered yet.
        await self.ticket("T5", "2026-11-05T23:30:00")
        # T6: opened before the period (Alice replied then), resolved in it after four days.
        t = "2026-10-30T12:00:00"
        await self.ticket("T6", t, status="closed", resolved=at("2026-11-03T12:00:00"), assignee=self.alice)
        await self.message("T6", at("2026-10-31T09:00:00"), "agent", self.alice)
        # T7: opened in the period, the AI answers in 30 s, resolved after it.
        t = "2026-11-06T08:00:00"
        await self.ticket("T7", t, status="resolved", resolved=at("2026-11-10T08:00:00"))
        await self.message("T7", later(t, 30), "ai")
        # T8: Monday 00:30 UTC after the period: Sunday 19:30 in New York, inside it there.
        await self.ticket("T8", "2026-11-09T00:30:00")
        await self.pool.execute("SELECT tickets_recount_replies($1::uuid[])", list(self.tickets.values()))


@pytest.fixture
async def staff(make_user: MakeUser) -> dict[str, User]:
    return {
        "customer": await make_user("customer", name="Cara"),
        "alice": await make_user("agent", name="Alice"),
        "bob": await make_user("agent", name="Bob"),
        "admin": await make_user("admin", name="Carol"),
    }


@pytest.fixture
async def dataset(client: TestClient, staff: dict[str, User]) -> Dataset:
    data = Dataset(client.app[DB_POOL], staff["customer"], staff["alice"], staff["bob"])
    await data.load()
    return data


async def get_json(client: TestClient, path: str, user: User, status: int = 200) -> Any:
    resp = await client.get(path, headers=user.headers)
    assert resp.status == status, await resp.text()
    return await resp.json()


# ---- the figures ---------------------------------------------------------------------------------


async def test_overview_figures_on_the_known_dataset(
    client: TestClient, staff: dict[str, User], dataset: Dataset
) -> None:
    data = await get_json(client, f"/reports/overview?{PERIOD}&tz=UTC", staff["alice"])
    assert data["period"]["from"] == "2026-11-02" and data["period"]["to"] == "2026-11-08"
    assert data["conversations"] == {"opened": 6, "resolved": 4, "responded": 5, "human_responded": 2}
    # First replies of T1, T2, T7, T4, T3: 10, 20, 30, 40, 300 s (T5 has none).
    assert data["first_response"] == {"count": 5, "median_seconds": 30.0, "p90_seconds": 196.0}
    # T2 120 s after its handoff, T3 300 s after opening.
    assert data["first_human_response"] == {"count": 2, "median_seconds": 210.0, "p90_seconds": 282.0}
    # Resolved in the period: T1 600, T2 3600, T3 7200, T6 345600 s.
    assert data["resolution"] == {"count": 4, "median_seconds": 5400.0, "p90_seconds": 244080.0}
    assert data["ai"] == {"resolved_without_human": 1, "resolved_without_human_share": 0.25}
    assert data["handoffs"] == {
        "conversations": 1,
        "rate": round(1 / 6, 4),
        "reasons": [{"reason": "customer_asked", "count": 1}],
    }
    assert data["daily"] == [
        {"date": "2026-11-02", "opened": 2, "resolved": 2},
        {"date": "2026-11-03", "opened": 1, "resolved": 2},
        {"date": "2026-11-04", "opened": 1, "resolved": 0},
        {"date": "2026-11-05", "opened": 1, "resolved": 0},
        {"date": "2026-11-06", "opened": 1, "resolved": 0},
        {"date": "2026-11-07", "opened": 0, "resolved": 0},
        {"date": "2026-11-08", "opened": 0, "resolved": 0},
    ]


async def test_the_time_zone_moves_days_and_hours(client: TestClient, staff: dict[str, User], dataset: Dataset) -> None:
    data = await get_json(client, f"/reports/overview?{PERIOD}&tz=America/New_York", staff["bob"])
    assert data["period"]["start"] == "2026-11-02T00:00:00-05:00"
    assert data["conversations"]["opened"] == 7  # T8 is Sunday evening in New York
    assert data["daily"][-1] == {"date": "2026-11-08", "opened": 1, "resolved": 0}
    hours = await get_json(client, f"/reports/busiest-hours?{PERIOD}&tz=America/New_York", staff["bob"])
    cell = {(c["weekday"], c["hour"]): c for c in hours["cells"]}
    assert cell[(1, 4)]["conversations"] == 1  # T1: Monday 09:00 UTC is 04:00 in New York
    assert cell[(7, 19)]["conversations"] == 1  # T8


async def test_busiest_hours_count_conversations_and_customer_messages(
    client: TestClient, staff: dict[str, User], dataset: Dataset
) -> None:
    data = await get_json(client, f"/reports/busiest-hours?{PERIOD}", staff["alice"])
    assert data["weekdays"][0] == "Monday" and len(data["cells"]) == 7 * 24
    busy = {
        (c["weekday"], c["hour"]): (c["conversations"], c["customer_messages"])
        for c in data["cells"]
        if c["conversations"] or c["customer_messages"]
    }
    assert busy == {(1, 9): (1, 1), (1, 10): (1, 1), (2, 14): (1, 1), (3, 15): (1, 2), (4, 23): (1, 1), (5, 8): (1, 1)}


async def test_agents_report(client: TestClient, staff: dict[str, User], dataset: Dataset) -> None:
    data = await get_json(client, f"/reports/agents?{PERIOD}", staff["admin"])
    by_name = {a["name"]: a for a in data["agents"]}
    assert set(by_name) == {"Alice", "Bob", "Carol"}
    alice, bob, carol = by_name["Alice"], by_name["Bob"], by_name["Carol"]
    assert (alice["replies"], alice["conversations"]) == (1, 1)  # her T6 reply was before the period
    assert alice["first_response"] == {"count": 1, "median_seconds": 120.0, "p90_seconds": 120.0}
    # T2 (3600 s) and T6 (345600 s) were resolved in the period while assigned to her.
    assert alice["resolved"] == 2
    assert alice["resolution"] == {"count": 2, "median_seconds": 174600.0, "p90_seconds": 311400.0}
    assert bob["first_response"] == {"count": 1, "median_seconds": 300.0, "p90_seconds": 300.0}
    assert (bob["resolved"], bob["resolution"]["median_seconds"]) == (1, 7200.0)
    assert carol["replies"] == 0 and carol["resolution"]["median_seconds"] is None


async def test_a_disabled_agent_without_activity_is_left_out(
    client: TestClient, staff: dict[str, User], dataset: Dataset, make_user: MakeUser
) -> None:
    dave = await make_user("agent", name="Dave")
    resp = await client.post(f"/admin/users/{dave.id}/disable", headers=staff["admin"].headers)
    assert resp.status == 200
    data = await get_json(client, f"/reports/agents?{PERIOD}", staff["admin"])
    assert "Dave" not in {a["name"] for a in data["agents"]}


async def test_an_invited_agent_who_has_not_joined_is_left_out(
    client: TestClient, staff: dict[str, User], dataset: Dataset
) -> None:
    body = {"email": "erin@example.com", "name": "Erin", "role": "agent"}
    resp = await client.post("/admin/invitations", json=body, headers=staff["admin"].headers)
    assert resp.status == 201, await resp.text()
    data = await get_json(client, f"/reports/agents?{PERIOD}", staff["admin"])
    names = {a["name"] for a in data["agents"]}
    assert "Erin" not in names and "Carol" in names  # Carol: an agent with no activity either


async def test_resolution_time_follows_status_changes(client: TestClient, staff: dict[str, User]) -> None:
    """resolved_at is kept by the database: set when a ticket becomes resolved, kept when it is
    then closed, cleared when it opens again."""
    pool = client.app[DB_POOL]
    ticket = (await client.post("/tickets", json={"subject": "x"}, headers=staff["customer"].headers)).status
    assert ticket == 201
    ticket_id = await pool.fetchval("SELECT id FROM tickets")
    assert await pool.fetchval("SELECT resolved_at FROM tickets") is None
    for status in ("resolved", "closed", "open"):
        resp = await client.patch(f"/tickets/{ticket_id}", json={"status": status}, headers=staff["alice"].headers)
        assert resp.status == 200, await resp.text()
        if status == "resolved":
            first = await pool.fetchval("SELECT resolved_at FROM tickets")
            assert first is not None
        elif status == "closed":
            assert await pool.fetchval("SELECT resolved_at FROM tickets") == first
        else:
            assert await pool.fetchval("SELECT resolved_at FROM tickets") is None


async def test_an_empty_period_has_no_times(client: TestClient, staff: dict[str, User]) -> None:
    data = await get_json(client, "/reports/overview?from=2020-01-01&to=2020-01-01", staff["alice"])
    assert data["conversations"]["opened"] == 0
    assert data["first_response"] == {"count": 0, "median_seconds": None, "p90_seconds": None}
    assert data["ai"]["resolved_without_human_share"] is None and data["handoffs"]["rate"] is None
    assert data["satisfaction"] == {
        "ratings": 0,
        "average": None,
        "satisfied_share": None,
        "distribution": {"1": 0, "2": 0, "3": 0, "4": 0, "5": 0},
    }


# ---- who may read them ---------------------------------------------------------------------------

REPORT_PATHS = ("/reports/overview", "/reports/agents", "/reports/labels", "/reports/busiest-hours")


async def test_customers_may_not_read_reports(client: TestClient, staff: dict[str, User]) -> None:
    for path in REPORT_PATHS:
        resp = await client.get(path, headers=staff["customer"].headers)
        assert resp.status == 403, path
        assert (await resp.json())["error"]["code"] == "forbidden"


async def test_reports_need_a_token(client: TestClient) -> None:
    for path in REPORT_PATHS:
        resp = await client.get(path)
        assert resp.status == 401, path


async def test_agents_and_admins_read_every_report(
    client: TestClient, staff: dict[str, User], dataset: Dataset
) -> None:
    for who in ("alice", "admin"):
        for path in REPORT_PATHS:
            resp = await client.get(f"{path}?{PERIOD}", headers=staff[who].headers)
            assert resp.status == 200, path
            await assert_matches_spec(resp, "get", path)


async def test_api_keys_may_not_read_reports(client: TestClient, staff: dict[str, User]) -> None:
    resp = await client.post(
        "/admin/api-keys", json={"name": "bi", "scopes": ["admin"]}, headers=staff["admin"].headers
    )
    assert resp.status == 201, await resp.text()
    key = (await resp.json())["api_key"]["key"]
    resp = await client.get("/reports/overview", headers={"Authorization": f"Bearer {key}"})
    assert resp.status in (401, 403)


# ---- periods -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2026-11-09&to=2026-11-08", "from"),
        ("from=2026-13-01", "from"),
        ("from=20261101", "from"),
        ("to=yesterday", "to"),
        ("from=2025-01-01&to=2026-11-08", "to"),
        ("tz=Mars/Olympus", "tz"),
        ("tz=../../etc/passwd", "tz"),
        ("format=xml", "format"),
        ("colour=blue", "colour"),
    ],
)
async def test_bad_periods_are_refused(client: TestClient, staff: dict[str, User], query: str, field: str) -> None:
    for path in REPORT_PATHS:
        resp = await client.get(f"{path}?{query}", headers=staff["alice"].headers)
        assert resp.status == 422, (path, query, await resp.text())
        body = await resp.json()
        assert body["error"]["code"] == "validation_error"
        assert field in body["error"]["details"]["fields"]


def test_the_default_period_is_the_last_seven_days() -> None:
    period = parse_period(None, None, "Europe/Paris", today=dt.date(2026, 12, 3))
    assert (period.first_day, period.last_day) == (dt.date(2026, 11, 27), dt.date(2026, 12, 3))
    assert period.start.isoformat() == "2026-11-27T00:00:00+01:00"


# ---- CSV ---------------------------------------------------------------------------------------


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


async def test_overview_as_csv(client: TestClient, staff: dict[str, User], dataset: Dataset) -> None:
    resp = await client.get(f"/reports/overview?{PERIOD}&format=csv", headers=staff["alice"].headers)
    assert resp.status == 200
    assert resp.content_type == "text/csv"
    assert 'filename="report-overview-2026-11-02-to-2026-11-08.csv"' in resp.headers["Content-Disposition"]
    metrics = dict(rows_of(await resp.text()))
    assert metrics["metric"] == "value"
    assert metrics["opened"] == "6" and metrics["resolved"] == "4"
    assert metrics["first_response_median_seconds"] == "30.0"
    assert metrics["resolution_p90_seconds"] == "244080.0"
    assert metrics["handoff_rate"] == "0.1667"
    assert metrics["opened_on_2026-11-02"] == "2"


async def test_accept_text_csv_gives_csv(client: TestClient, staff: dict[str, User], dataset: Dataset) -> None:
    resp = await client.get(
        f"/reports/agents?{PERIOD}", headers={**staff["alice"].headers, "Accept": "text/csv;q=0.9, */*;q=0.1"}
    )
    assert resp.status == 200 and resp.content_type == "text/csv"
    rows = rows_of(await resp.text())
    assert rows[0][:3] == ["agent_id", "name", "email"]
    alice = next(r for r in rows if r[1] == "Alice")
    assert alice[5:9] == ["1", "1", "1", "120.0"]


async def test_busiest_hours_csv_has_every_cell(client: TestClient, staff: dict[str, User], dataset: Dataset) -> None:
    resp = await client.get(f"/reports/busiest-hours?{PERIOD}&format=csv", headers=staff["alice"].headers)
    rows = rows_of(await resp.text())
    assert rows[0] == ["weekday", "weekday_name", "hour", "conversations", "customer_messages"]
    assert len(rows) == 1 + 7 * 24
    assert ["3", "Wednesday", "15", "1", "2"] in rows


async def test_csv_cells_cannot_become_formulas(
    client: TestClient, staff: dict[str, User], make_user: MakeUser
) -> None:
    await make_user("agent", name='=HYPERLINK("http://x")')
    resp = await client.get("/reports/agents?format=csv", headers=staff["admin"].headers)
    names = [r[1] for r in rows_of(await resp.text())[1:]]
    assert '\'=HYPERLINK("http://x")' in names


async def test_json_is_the_default_and_format_json_wins(client: TestClient, staff: dict[str, User]) -> None:
    resp = await client.get("/reports/overview?format=json", headers={**staff["alice"].headers, "Accept": "text/csv"})
    assert resp.content_type == "application/json"


# ---- ratings and labels ----------------------------------------------------------------------------


@pytest.fixture
async def rated_and_labelled(client: TestClient, staff: dict[str, User], dataset: Dataset) -> dict[str, str]:
    """The dataset with labels and ratings given through the API. An admin creates billing,
    shipping and refunds (POST /labels); Alice labels T1, T2 and T6 billing and T2, T3 and T4
    shipping (PUT /tickets/{id}/labels); refunds is on no ticket. Cara rates T1 5, T2 2, T3 4 and
    T6 1 (POST /tickets/{id}/rating), and the ratings are then dated inside the period (T6's after
    it), as the API dates them now. Returns the label ids by name."""
    pool = client.app[DB_POOL]
    # Labels belong to no user, so the client fixture's TRUNCATE leaves them behind.
    await pool.execute("TRUNCATE labels")
    label_ids = {}
    for name, color in (("billing", "#b42318"), ("shipping", "#175cd3"), ("refunds", "#067647")):
        resp = await client.post("/labels", json={"name": name, "color": color}, headers=staff["admin"].headers)
        assert resp.status == 201, await resp.text()
        label_ids[name] = (await resp.json())["label"]["id"]
    carried = {
        "T1": ["billing"],
        "T2": ["billing", "shipping"],
        "T3": ["shipping"],
        "T4": ["shipping"],
        "T6": ["billing"],
    }
    for ticket, names in carried.items():
        resp = await client.put(
            f"/tickets/{dataset.tickets[ticket]}/labels",
            json={"label_ids": [label_ids[n] for n in names]},
            headers=staff["alice"].headers,
        )
        assert resp.status == 200, await resp.text()
    for ticket, score, when in (
        ("T1", 5, "2026-11-02T12:00:00"),
        ("T2", 2, "2026-11-03T12:00:00"),
        ("T3", 4, "2026-11-04T12:00:00"),
        ("T6", 1, "2026-11-20T12:00:00"),
    ):
        resp = await client.post(
            f"/tickets/{dataset.tickets[ticket]}/rating", json={"score": score}, headers=staff["customer"].headers
        )
        assert resp.status == 201, await resp.text()
        await pool.execute("UPDATE tickets SET rated_at = $2 WHERE id = $1", dataset.tickets[ticket], at(when))
    return label_ids


async def test_satisfaction_counts_the_ratings_given_in_the_period(
    client: TestClient, staff: dict[str, User], rated_and_labelled: dict[str, str]
) -> None:
    overview = await get_json(client, f"/reports/overview?{PERIOD}", staff["alice"])
    assert overview["satisfaction"] == {
        "ratings": 3,  # T6's rating came after the period
        "average": round(11 / 3, 3),
        "satisfied_share": round(2 / 3, 4),
        "distribution": {"1": 0, "2": 1, "3": 0, "4": 1, "5": 1},
    }
    agents = {a["name"]: a for a in (await get_json(client, f"/reports/agents?{PERIOD}", staff["alice"]))["agents"]}
    assert agents["Alice"]["satisfaction"] == {"ratings": 1, "average": 2.0}  # T2 (T6's is outside)
    assert agents["Bob"]["satisfaction"] == {"ratings": 1, "average": 4.0}  # T3
    assert agents["Carol"]["satisfaction"] == {"ratings": 0, "average": None}
    metrics = dict(
        rows_of(
            await (await client.get(f"/reports/overview?{PERIOD}&format=csv", headers=staff["alice"].headers)).text()
        )
    )
    assert (metrics["ratings"], metrics["rating_average"], metrics["satisfied_share"]) == ("3", "3.667", "0.6667")


def timing(count: int, median: float | None = None, p90: float | None = None) -> dict[str, Any]:
    return {"count": count, "median_seconds": median, "p90_seconds": p90}


async def test_labels_report_figures_on_the_known_dataset(
    client: TestClient, staff: dict[str, User], rated_and_labelled: dict[str, str]
) -> None:
    resp = await client.get(f"/reports/labels?{PERIOD}", headers=staff["bob"].headers)
    assert resp.status == 200
    await assert_matches_spec(resp, "get", "/reports/labels")
    data = await resp.json()
    assert set(data) == {"period", "labels"}
    ids = rated_and_labelled
    # Ordered by conversations opened, then name; a ticket with two labels (T2) counts under both.
    assert data["labels"] == [
        {
            # Opened T2, T3, T4: first replies 20, 300, 40 s; resolved T2 3600 s and T3 7200 s, by
            # people; rated T2 2 and T3 4.
            "id": ids["shipping"],
            "name": "shipping",
            "opened": 3,
            "handoffs": 1,
            "first_response": timing(3, 40.0, 248.0),
            "resolved": 2,
            "resolved_without_human": 0,
            "resolution": timing(2, 5400.0, 6840.0),
            "satisfaction": {"ratings": 2, "average": 3.0},
        },
        {
            # Opened T1, T2 (T6 before the period): first replies 10 and 20 s; resolved T1 600 s
            # (by the AI alone), T2 3600 s and T6 345600 s; rated T1 5 and T2 2 (T6 after).
            "id": ids["billing"],
            "name": "billing",
            "opened": 2,
            "handoffs": 1,
            "first_response": timing(2, 15.0, 19.0),
            "resolved": 3,
            "resolved_without_human": 1,
            "resolution": timing(3, 3600.0, 277200.0),
            "satisfaction": {"ratings": 2, "average": 3.5},
        },
        {
            "id": ids["refunds"],
            "name": "refunds",
            "opened": 0,
            "handoffs": 0,
            "first_response": timing(0),
            "resolved": 0,
            "resolved_without_human": 0,
            "resolution": timing(0),
            "satisfaction": {"ratings": 0, "average": None},
        },
    ]
    rows = rows_of(
        await (await client.get(f"/reports/labels?{PERIOD}&format=csv", headers=staff["bob"].headers)).text()
    )
    assert rows[0][:3] == ["label_id", "name", "opened"] and rows[0][-2:] == ["ratings", "rating_average"]
    assert rows[1] == [ids["shipping"], "shipping", "3", "1", "40.0", "248.0", "2", "0", "5400.0", "6840.0", "2", "3.0"]
    assert rows[3] == [ids["refunds"], "refunds", "0", "0", "", "", "0", "0", "", "", "0", ""]


async def test_labels_count_as_the_ticket_is_labelled_now(
    client: TestClient, staff: dict[str, User], dataset: Dataset, rated_and_labelled: dict[str, str]
) -> None:
    """Taking a label off a ticket takes the ticket out of that label's figures; renaming a label
    renames its row; deleting it removes the row."""
    resp = await client.put(
        f"/tickets/{dataset.tickets['T4']}/labels", json={"label_ids": []}, headers=staff["alice"].headers
    )
    assert resp.status == 200
    resp = await client.patch(
        f"/labels/{rated_and_labelled['billing']}", json={"name": "invoices"}, headers=staff["admin"].headers
    )
    assert resp.status == 200, await resp.text()
    resp = await client.delete(f"/labels/{rated_and_labelled['refunds']}", headers=staff["admin"].headers)
    assert resp.status == 204
    data = await get_json(client, f"/reports/labels?{PERIOD}", staff["bob"])
    assert [(label["name"], label["opened"]) for label in data["labels"]] == [("invoices", 2), ("shipping", 2)]


async def test_without_labels_the_labels_report_is_empty(client: TestClient, staff: dict[str, User]) -> None:
    await client.app[DB_POOL].execute("TRUNCATE labels")
    data = await get_json(client, f"/reports/labels?{PERIOD}", staff["alice"])
    assert data == {"period": data["period"], "labels": []}


async def test_the_reports_page_shows_satisfaction_and_labels(
    client: TestClient, staff: dict[str, User], rated_and_labelled: dict[str, str]
) -> None:
    await console_login(client, staff["alice"])
    resp = await client.get(f"/console/reports?{PERIOD}&tz=UTC")
    assert resp.status == 200
    html = await resp.text()
    assert "3.67 / 5" in html and "3 ratings, 66.7 % rated 4 or 5" in html
    assert 'id="no-ratings"' not in html
    rows = re.findall(
        r"<tr><th scope=\"row\">(\w+)</th><td>(\d+)</td><td>(\d+)</td>", html.split('id="labels-table"')[1]
    )
    assert rows == [("shipping", "3", "1"), ("billing", "2", "1"), ("refunds", "0", "0")]
    assert "3.50 (2)" in html and "3.00 (2)" in html


async def test_the_reports_page_without_ratings_or_labels(client: TestClient, staff: dict[str, User]) -> None:
    await client.app[DB_POOL].execute("TRUNCATE labels")
    await console_login(client, staff["alice"])
    html = await (await client.get(f"/console/reports?{PERIOD}&tz=UTC")).text()
    assert 'id="kpi-satisfaction">No ratings<' in html and 'id="no-ratings"' in html
    assert "No labels defined yet." in html


async def test_first_replies_are_kept_on_the_ticket_as_messages_are_written(
    client: TestClient, staff: dict[str, User]
) -> None:
    """The triggers of migration 0017, through the API's own message path: a note is not a reply,
    the first public agent message is the first (human) reply and names its author, a later one
    changes nothing."""
    pool = client.app[DB_POOL]
    resp = await client.post("/tickets", json={"subject": "x", "message": "hi"}, headers=staff["customer"].headers)
    ticket_id = (await resp.json())["ticket"]["id"]
    columns = "first_reply_at, first_human_reply_at, first_human_reply_by, human_replied, ai_replied"

    async def post(who: str, body: str, **extra: Any) -> None:
        resp = await client.post(
            f"/tickets/{ticket_id}/messages", json={"body": body, **extra}, headers=staff[who].headers
        )
        assert resp.status == 201, await resp.text()

    await post("alice", "a note", internal=True)
    row = await pool.fetchrow(f"SELECT {columns} FROM tickets WHERE id = $1", uuid.UUID(ticket_id))
    assert row["first_reply_at"] is None and not row["human_replied"]
    await post("bob", "first answer")
    first = await pool.fetchrow(f"SELECT {columns} FROM tickets WHERE id = $1", uuid.UUID(ticket_id))
    answered_at = await pool.fetchval("SELECT created_at FROM messages WHERE body = 'first answer'")
    assert first["first_reply_at"] == first["first_human_reply_at"] == answered_at
    assert str(first["first_human_reply_by"]) == staff["bob"].id
    assert first["human_replied"] and not first["ai_replied"]
    await post("alice", "second answer")
    assert await pool.fetchrow(f"SELECT {columns} FROM tickets WHERE id = $1", uuid.UUID(ticket_id)) == first


@pytest.mark.parametrize(
    ("highest", "ticks"),
    [(0, ["0", "1"]), (1, ["0", "1"]), (4, ["0", "1", "2", "3", "4", "5"]), (37, ["0", "10", "20", "30", "40", "50"])],
)
def test_chart_ticks_are_whole_distinct_numbers(highest: int, ticks: list[str]) -> None:
    from chatserver.charts import daily_bars

    chart = daily_bars([{"date": "2026-11-02", "opened": highest, "resolved": 0}])
    assert [t["text"] for t in chart["ticks"]] == ticks
