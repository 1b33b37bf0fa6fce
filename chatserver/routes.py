"""The single route table."""

from __future__ import annotations

from aiohttp import web

from .handlers import auth, health, tickets


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

    r.add_get("/healthz", health.healthz, name="healthz")
    r.add_get("/readyz", health.readyz, name="readyz")
