"""The single route table."""

from __future__ import annotations

from aiohttp import web

from .handlers import (
    activity,
    admin,
    admin_actions,
    admin_api_keys,
    admin_kb,
    admin_webhooks,
    admin_widget,
    ai,
    attachments,
    auth,
    availability,
    canned,
    console,
    console_account,
    console_invite,
    console_reports,
    conversations,
    demo_shop,
    docs,
    events,
    health,
    kb_suggestions,
    labels,
    metrics,
    pages,
    ratings,
    reports,
    ticket_mail,
    tickets,
    widget,
    ws,
)


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/auth/signup", auth.signup, name="auth-signup")
    r.add_post("/auth/login", auth.login, name="auth-login")
    r.add_get("/auth/me", auth.me, name="auth-me")
    r.add_post("/auth/password", auth.change_password, name="auth-password")
    r.add_post("/auth/invitation", auth.accept_invitation, name="auth-invitation")

    r.add_get("/tickets", tickets.list_tickets, name="tickets-list")
    r.add_post("/tickets", tickets.create_ticket, name="tickets-create")
    r.add_get("/tickets/{ticket_id}", tickets.get_ticket, name="ticket-get")
    r.add_patch("/tickets/{ticket_id}", tickets.update_ticket, name="ticket-update")
    r.add_post("/tickets/{ticket_id}/rating", ratings.rate_ticket, name="ticket-rating")
    r.add_get("/tickets/{ticket_id}/customer", tickets.customer_panel, name="ticket-customer")
    r.add_get("/tickets/{ticket_id}/messages", tickets.list_messages, name="messages-list")
    r.add_post("/tickets/{ticket_id}/messages", tickets.post_message, name="messages-post")
    r.add_post("/tickets/{ticket_id}/attachments", attachments.upload_attachment, name="attachments-upload")
    r.add_get("/attachments/{attachment_id}", attachments.get_attachment, name="attachment-get")
    r.add_put("/tickets/{ticket_id}/contact-email", ticket_mail.set_contact_email, name="ticket-contact-email")
    r.add_post("/tickets/{ticket_id}/transcript", ticket_mail.request_transcript, name="ticket-transcript")
    r.add_get("/tickets/{ticket_id}/ai-response", ai.reply_stream, name="ai-response")
    r.add_post("/tickets/{ticket_id}/ai/retry", ai.retry_reply, name="ai-retry")
    r.add_post("/tickets/{ticket_id}/copilot", ai.request_copilot, name="copilot")
    r.add_get("/tickets/{ticket_id}/tool-calls", ai.list_tool_calls, name="tool-calls-list")
    r.add_post("/tickets/{ticket_id}/tool-calls/{call_id}/approve", ai.approve_tool_call, name="tool-call-approve")
    r.add_post("/tickets/{ticket_id}/tool-calls/{call_id}/refuse", ai.refuse_tool_call, name="tool-call-refuse")
    r.add_get("/tickets/{ticket_id}/ws", ws.ticket_socket, name="ticket-ws")
    r.add_post("/ws/tickets", ws.create_ws_ticket, name="ws-tickets-create")
    r.add_get("/ws/inbox", ws.inbox_socket, name="inbox-ws")

    # Reports (agents and admins; docs/web.md, "Reports").
    r.add_get("/reports/overview", reports.overview, name="reports-overview")
    r.add_get("/reports/agents", reports.agents, name="reports-agents")
    r.add_get("/reports/labels", reports.labels, name="reports-labels")
    r.add_get("/reports/busiest-hours", reports.busiest_hours, name="reports-busiest-hours")
    # The agent workspace (docs/web.md): labels, the activity log, canned responses.
    r.add_get("/labels", labels.list_labels, name="labels-list")
    r.add_post("/labels", labels.create_label, name="labels-create")
    r.add_patch("/labels/{label_id}", labels.update_label, name="label-update")
    r.add_delete("/labels/{label_id}", labels.delete_label, name="label-delete")
    r.add_put("/tickets/{ticket_id}/labels", labels.set_ticket_labels, name="ticket-labels")
    r.add_get("/tickets/{ticket_id}/activity", activity.list_activity, name="ticket-activity")
    r.add_get("/canned-responses", canned.list_responses, name="canned-list")
    r.add_post("/canned-responses", canned.create_response, name="canned-create")
    r.add_patch("/canned-responses/{canned_id}", canned.update_response, name="canned-update")
    r.add_put("/canned-responses/{canned_id}", canned.update_response, name="canned-replace")
    r.add_delete("/canned-responses/{canned_id}", canned.delete_response, name="canned-delete")

    # Account management (admins only).
    r.add_get("/admin/users", admin.list_users, name="admin-users-list")
    r.add_post("/admin/users", admin.create_user, name="admin-users-create")
    r.add_get("/admin/users/{user_id}", admin.get_user, name="admin-user-get")
    r.add_post("/admin/users/{user_id}/role", admin.set_role, name="admin-user-role")
    r.add_post("/admin/users/{user_id}/disable", admin.disable_user, name="admin-user-disable")
    r.add_post("/admin/users/{user_id}/enable", admin.enable_user, name="admin-user-enable")
    r.add_post("/admin/users/{user_id}/password", admin.reset_password, name="admin-user-password")
    # Invitations (admins invite; the invitee accepts at POST /auth/invitation or /console/invite).
    r.add_post("/admin/invitations", admin.invite_user, name="admin-invitations-create")
    r.add_post("/admin/users/{user_id}/invitation", admin.resend_invitation, name="admin-user-invitation")
    # Knowledge-base management (admins only).
    r.add_get("/admin/kb/articles", admin_kb.list_articles, name="admin-kb-list")
    r.add_post("/admin/kb/articles", admin_kb.create_article, name="admin-kb-create")
    r.add_get("/admin/kb/articles/{article_id}", admin_kb.get_article, name="admin-kb-get")
    r.add_patch("/admin/kb/articles/{article_id}", admin_kb.update_article, name="admin-kb-update")
    r.add_delete("/admin/kb/articles/{article_id}", admin_kb.delete_article, name="admin-kb-delete")
    # Widget settings (admins only; docs/web.md).
    r.add_get("/admin/widget-settings", admin_widget.get_settings, name="admin-widget-settings-get")
    r.add_put("/admin/widget-settings", admin_widget.put_settings, name="admin-widget-settings-put")
    # AI actions: the tools the AI may call (admins only; docs/ai.md, "Acting").
    r.add_get("/admin/actions", admin_actions.list_actions, name="admin-actions-list")
    r.add_post("/admin/actions", admin_actions.create_action, name="admin-actions-create")
    r.add_get("/admin/actions/{action_id}", admin_actions.get_action, name="admin-action-get")
    r.add_patch("/admin/actions/{action_id}", admin_actions.update_action, name="admin-action-update")
    r.add_delete("/admin/actions/{action_id}", admin_actions.delete_action, name="admin-action-delete")
    r.add_post(
        "/admin/kb/suggestions/{suggestion_id}/publish",
        admin_kb.publish_suggestion,
        name="admin-kb-suggestion-publish",
    )
    r.add_get("/kb/articles", kb_suggestions.list_articles, name="kb-articles-list")
    r.add_get("/kb/articles/{article_id}", kb_suggestions.get_article, name="kb-article-get")
    r.add_get("/kb/suggestions", kb_suggestions.list_suggestions, name="kb-suggestions-list")
    r.add_post("/kb/suggestions", kb_suggestions.create_suggestion, name="kb-suggestions-create")
    r.add_get("/kb/suggestions/{suggestion_id}", kb_suggestions.get_suggestion, name="kb-suggestion-get")
    r.add_delete("/kb/suggestions/{suggestion_id}", kb_suggestions.delete_suggestion, name="kb-suggestion-delete")

    # Integrations (docs/integrations.md): API keys, webhooks (admins), the event feed.
    r.add_get("/admin/api-keys", admin_api_keys.list_keys, name="admin-api-keys-list")
    r.add_post("/admin/api-keys", admin_api_keys.create_key, name="admin-api-keys-create")
    r.add_get("/admin/api-keys/{key_id}", admin_api_keys.get_key, name="admin-api-key-get")
    r.add_post("/admin/api-keys/{key_id}/revoke", admin_api_keys.revoke_key, name="admin-api-key-revoke")
    r.add_get("/admin/webhooks", admin_webhooks.list_endpoints, name="admin-webhooks-list")
    r.add_post("/admin/webhooks", admin_webhooks.create_endpoint, name="admin-webhooks-create")
    r.add_get("/admin/webhooks/{endpoint_id}", admin_webhooks.get_endpoint, name="admin-webhook-get")
    r.add_patch("/admin/webhooks/{endpoint_id}", admin_webhooks.update_endpoint, name="admin-webhook-update")
    r.add_delete("/admin/webhooks/{endpoint_id}", admin_webhooks.delete_endpoint, name="admin-webhook-delete")
    r.add_get(
        "/admin/webhooks/{endpoint_id}/deliveries", admin_webhooks.list_deliveries, name="admin-webhook-deliveries"
    )
    r.add_post(
        "/admin/webhooks/{endpoint_id}/deliveries/{delivery_id}/resend",
        admin_webhooks.resend,
        name="admin-webhook-resend",
    )
    r.add_post("/admin/webhooks/{endpoint_id}/test", admin_webhooks.send_test, name="admin-webhook-test")
    r.add_get("/events", events.list_events, name="events-list")

    r.add_get("/healthz", health.healthz, name="healthz")
    r.add_get("/readyz", health.readyz, name="readyz")
    r.add_get("/metrics", metrics.metrics, name="metrics")

    # Every route needs an entry in chatserver/openapi.py (tests/test_openapi.py checks).
    r.add_get("/openapi.json", docs.openapi_json, name="openapi")
    r.add_get("/docs", docs.docs_page, name="docs")
    r.add_static(docs.DOCS_STATIC_PREFIX, docs.SWAGGER_UI_ASSETS, name="docs-static")

    # The web front ends (docs/web.md): the embeddable widget and the agent console.
    r.add_get("/widget.js", widget.loader_script, name="widget-loader")
    r.add_get("/widget/frame", widget.frame_page, name="widget-frame")
    r.add_post("/widget/visitors", widget.create_visitor, name="widget-visitors")
    r.add_post("/widget/identify", widget.identify_visitor, name="widget-identify")
    r.add_post("/widget/token", widget.refresh_token, name="widget-token")
    r.add_get("/widget/conversations", conversations.list_conversations, name="widget-conversations")
    r.add_get("/widget/config", widget.config, name="widget-config")
    r.add_post("/widget/reopen", widget.reopen, name="widget-reopen")
    r.add_get("/", pages.home_page, name="home")
    r.add_get("/demo", pages.demo_page, name="demo")
    # The demo shop's mock order API, which the demo AI action calls (404 unless DEMO_SHOP).
    r.add_get("/demo/api/orders/{order_id}", demo_shop.order_status, name="demo-shop-order")
    r.add_get("/console", pages.console_page, name="console")
    r.add_get("/console/tickets/{ticket_id}", pages.console_page, name="console-ticket")
    r.add_get("/console/admin", pages.admin_page, name="console-admin")
    r.add_get("/console/admin/{section}", pages.admin_page, name="console-admin-section")
    r.add_get("/console/login", pages.login_page, name="console-login")
    r.add_post("/console/login", pages.login_submit, name="console-login-submit")
    r.add_post("/console/logout", pages.logout, name="console-logout")
    r.add_get("/console/reports", console_reports.reports_page, name="console-reports")
    r.add_get(r"/console/reports/{report:[a-z-]+}.csv", console_reports.export_report, name="console-reports-export")
    r.add_get("/console/account", console_account.account_page, name="console-account")
    r.add_post("/console/account/password", console_account.change_password, name="console-account-password")
    r.add_get("/console/invite", console_invite.invite_page, name="console-invite")
    r.add_post("/console/invite", console_invite.accept, name="console-invite-accept")
    r.add_post("/console/api/token", console.issue_console_token, name="console-token")
    r.add_get("/console/api/inbox", console.inbox, name="console-inbox")
    r.add_get("/console/api/inbox/{ticket_id}", console.inbox_item, name="console-inbox-item")
    r.add_get("/console/api/agents", console.staff, name="console-agents")
    r.add_get("/console/api/availability", availability.get_availability, name="console-availability")
    r.add_put("/console/api/availability", availability.set_availability, name="console-availability-set")
    r.add_get("/console/api/queue", availability.get_queue, name="console-queue")
    r.add_static(pages.STATIC_PREFIX, pages.STATIC_DIR, name="static")
