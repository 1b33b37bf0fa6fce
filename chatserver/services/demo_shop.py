"""The demo shop's mock order API and the demo action that calls it (development only,
DEMO_SHOP): what `make run` shows of AI actions (docs/ai.md, "Acting")."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson

from ..db import actions as actions_db
from ..db import kb as kb_db

if TYPE_CHECKING:  # the fake Groq imports this module: it stays free of the crypto and schema libraries
    from .actions import SecretBox

log = logging.getLogger(__name__)

DEMO_ACTION_NAME = "get_order_status"
DEMO_PATH = "/demo/api/orders/{order_id}"
KEY_HEADER = "X-Shop-Key"
SEEDED_FLAG = "demo_action_seeded"

# A question about an order ("where is order 1042?"): the demo model and the offline demo path
# look it up with the demo action.
ORDER_QUESTION = re.compile(r"\border\b\D{0,20}?(\d{3,10})\b", re.IGNORECASE)

# Northwind Outdoor's orders, as its order system would answer.
ORDERS: dict[str, dict[str, Any]] = {
    "1042": {
        "order_id": "1042",
        "status": "shipped",
        "items": ["Ridgeline 2 tent", "Trail pack 35 L"],
        "carrier": "UPS",
        "tracking_number": "1Z999AA10123456784",
        "shipped_on": "2026-11-28",
        "estimated_delivery": "2026-12-04",
    },
    "1043": {
        "order_id": "1043",
        "status": "processing",
        "items": ["Merino base layer (M)"],
        "estimated_ship_date": "2026-12-05",
    },
    "1044": {
        "order_id": "1044",
        "status": "delivered",
        "items": ["Summit down jacket (L)"],
        "delivered_on": "2026-11-20",
    },
    "1045": {
        "order_id": "1045",
        "status": "cancelled",
        "items": ["Camp stove"],
        "refund": "issued 2026-11-22 to the original card",
    },
}


def shop_key(actions_secret_key: str) -> str:
    """The demo API's credential: the demo action sends it as an (encrypted-at-rest) header."""
    return hmac.new(actions_secret_key.encode(), b"northwind demo shop", hashlib.sha256).hexdigest()[:32]


def demo_base_url(host: str, port: int) -> str:
    if host in ("", "0.0.0.0", "::", "localhost"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def demo_action_fields(base_url: str, box: SecretBox, actions_secret_key: str) -> dict[str, Any]:
    return {
        "name": DEMO_ACTION_NAME,
        "description": (
            "Look up a Northwind Outdoor order by its number: status, items, carrier, tracking number "
            "and delivery dates. Use it when the customer asks where an order is or what happened to it."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "order_id": {"type": "string", "pattern": "^[0-9]{3,10}$", "description": "The order number"}
            },
            "required": ["order_id"],
            "additionalProperties": False,
        },
        "method": "GET",
        "url_template": base_url + DEMO_PATH,
        "label": "Looking up order {order_id}…",
        "headers_encrypted": box.seal({KEY_HEADER: shop_key(actions_secret_key)}),
        "header_names": [KEY_HEADER],
        "timeout_seconds": 5.0,
    }


async def seed_demo_action(pool: asyncpg.Pool, box: SecretBox, actions_secret_key: str, base_url: str) -> None:
    """Register the demo action once per database (an admin who deletes it does not see it come
    back); on later starts, point it at this server's address again (the port may change)."""
    fields = demo_action_fields(base_url, box, actions_secret_key)
    async with pool.acquire() as conn, conn.transaction():
        if await kb_db.set_flag(conn, SEEDED_FLAG):
            if await actions_db.insert_action(conn, fields) is not None:
                log.info("AI actions: registered the demo action %s (%s)", DEMO_ACTION_NAME, fields["url_template"])
            return
        row = await actions_db.action_by_name(conn, DEMO_ACTION_NAME)
        url = fields["url_template"]
        if row is not None and row["url_template"].endswith(DEMO_PATH) and row["url_template"] != url:
            await actions_db.update_action(
                conn,
                row["id"],
                {"url_template": url, "headers_encrypted": fields["headers_encrypted"]},
            )


def describe_order_result(content: str) -> str:
    """A tool result of the order action (ai/tools.py HttpOutcome.for_model) told in words: what
    the demo model (fake Groq --demo) and the offline demo path answer."""
    try:
        result = orjson.loads(content)
    except orjson.JSONDecodeError:
        result = {}
    if not isinstance(result, dict) or not result.get("ok"):
        return 'I couldn\'t look that up right now. Write "talk to a person" and a human agent will check it for you.'
    data = result.get("body")
    order = data.get("order") if isinstance(data, dict) else None
    if not isinstance(order, dict):
        return f"Here is what I found: {orjson.dumps(data).decode()[:300]}"
    facts = [f"Order {order.get('order_id')} is **{order.get('status')}**."]
    labels = {
        "items": "Items",
        "carrier": "Carrier",
        "tracking_number": "Tracking number",
        "shipped_on": "Shipped on",
        "estimated_delivery": "Expected delivery",
        "estimated_ship_date": "Expected to ship",
        "delivered_on": "Delivered on",
        "refund": "Refund",
    }
    for key, label in labels.items():
        value = order.get(key)
        if value:
            facts.append(f"- {label}: {', '.join(value) if isinstance(value, list) else value}")
    return "\n".join(facts)
