"""The single route table."""

from __future__ import annotations

from aiohttp import web

from .handlers import auth, docs, health, metrics, tickets, ws


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/auth/signup", auth.signup, name="auth-signup")
    r.add_post("/auth/login", auth.login, name="auth-login")
    r.add_get("/auth/me", auth.me, name="auth-me")

    r.add_get("/tickets", tickets.list_tickets, name="tickets-list")
    r.add_post("/tickets", tickets.create_ticket, name="tickets-create")
    r.add_get("/tickets/{ticket_id}", tickets.get_ticket, name="ticket-get")
    r.add_patch("/tickets/{ticket_id}", tickets.update_ticket, name="ticket-update")
    r.add_get("/tickets/{ticket_id}/messages", tickets.list_messages, name="messages-list")
    r.add_post("/tickets/{ticket_id}/messages", tickets.post_message, name="messages-post")
    r.add_get("/tickets/{ticket_id}/ws", ws.ticket_socket, name="ticket-ws")
    r.add_post("/ws/tickets", ws.create_ws_ticket, name="ws-tickets-create")
    r.add_get("/ws/inbox", ws.inbox_socket, name="inbox-ws")

    r.add_get("/healthz", health.healthz, name="healthz")
    r.add_get("/readyz", health.readyz, name="readyz")
    r.add_get("/metrics", metrics.metrics, name="metrics")

    # Every route needs an entry in chatserver/openapi.py (tests/test_openapi.py checks).
    r.add_get("/openapi.json", docs.openapi_json, name="openapi")
    r.add_get("/docs", docs.docs_page, name="docs")
    r.add_static(docs.DOCS_STATIC_PREFIX, docs.SWAGGER_UI_ASSETS, name="docs-static")
