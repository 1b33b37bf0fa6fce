"""GET /tickets/{id}/ai-response is described as it is: each Server-Sent Event is an `event` name
and `data` that is JSON (contentMediaType) of that event's documented shape (contentSchema)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator

from chatserver.ai.knowledge import read_kb_dir, store_articles
from chatserver.keys import DB_POOL
from chatserver.openapi import build_spec
from chatserver.settings import Settings

from .conftest import MakeUser, create_ticket
from .fake_groq import ai_settings, clear_kb
from .test_ai_offline import KB_DIR

PATH = "/tickets/{ticket_id}/ai-response"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return ai_settings(settings, None)  # the offline responder answers


def documented_event_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    spec = build_spec()
    content = spec["paths"][PATH]["get"]["responses"]["200"]["content"]
    return content["text/event-stream"]["schema"], spec["components"]


def raw_events(body: str) -> list[dict[str, str]]:
    """The events as an SSE parser sees them (comments skipped)."""
    events = []
    for block in body.strip("\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n") if not line.startswith(":"))
        if fields:
            events.append(fields)
    return events


def test_the_stream_is_documented_as_json_events_not_strings() -> None:
    schema, _ = documented_event_schema()
    names = []
    for branch in schema["oneOf"]:
        assert branch["required"] == ["event", "data"]
        names += branch["properties"]["event"]["enum"]
        data = branch["properties"]["data"]
        assert data["contentMediaType"] == "application/json"
        assert data["contentSchema"]["type"] == "object"
    assert names == ["started", "delta", "completed", "failed", "cancelled", "revoked"]


async def test_a_real_reply_stream_matches_the_documented_events(client: TestClient, make_user: MakeUser) -> None:
    await clear_kb(client)
    await store_articles(client.app[DB_POOL], read_kb_dir(KB_DIR))
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer, "Export", message="How do I export my notes?")
    resp = await client.get(f"/tickets/{ticket['id']}/ai-response", headers=customer.headers)
    assert resp.status == 200
    events = raw_events(await resp.text())
    assert events[-1]["event"] == "completed"

    schema, components = documented_event_schema()
    stream_validator = Draft202012Validator({**schema, "components": components})
    branches = {branch["properties"]["event"]["enum"][0]: branch for branch in schema["oneOf"]}
    for event in events:
        stream_validator.validate(event)
        data_schema = branches[event["event"]]["properties"]["data"]["contentSchema"]
        validator = Draft202012Validator(
            {**data_schema, "components": components}, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
        validator.validate(orjson.loads(event["data"]))
