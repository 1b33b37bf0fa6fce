"""/kb/articles (read) and /kb/suggestions: agents read the knowledge base and suggest a new article
or a new text for one; admins publish or reject suggestions (admin_kb.py). Suggestions are never
searched by the AI until published (docs/ai.md)."""

from __future__ import annotations

import uuid

from aiohttp import web

from ..ai.knowledge import MAX_ARTICLE_CHARS, MAX_URL_CHARS
from ..errors import forbidden
from ..jsonutil import json_response
from ..keys import DB_POOL
from ..security import Identity
from ..services import kb as kb_service
from ..validation import Str, Uuid, parse_uuid, query_int, read_body, reject_unknown_query
from .identity import require_identity

SUGGEST_SCHEMA = {
    "title": Str(max_len=300),
    "body": Str(max_len=MAX_ARTICLE_CHARS),
    "url": Str(required=False, nullable=True, max_len=MAX_URL_CHARS),
    "note": Str(required=False, nullable=True, min_len=0, max_len=kb_service.MAX_NOTE_CHARS),
    "article_id": Uuid(required=False, nullable=True),
}
LIST_QUERY = ("limit", "offset")


def require_staff_person(request: web.Request) -> Identity:
    """Agents and admins; not customers, and not API keys (the middleware refuses them first)."""
    who = require_identity(request)
    if who.role not in ("agent", "admin"):
        raise forbidden("The knowledge base is managed by agents and admins")
    return who


def _suggestion_id(request: web.Request) -> uuid.UUID:
    return parse_uuid(request.match_info["suggestion_id"], "Suggestion")


async def list_articles(request: web.Request) -> web.Response:
    """GET /kb/articles: titles and slugs, by title (no bodies), for agents and admins."""
    require_staff_person(request)
    reject_unknown_query(request, LIST_QUERY)
    limit = query_int(request, "limit", 50, 1, kb_service.MAX_PAGE) or 50
    offset = query_int(request, "offset", 0, 0, 1_000_000) or 0
    return json_response(await kb_service.list_articles(request.app[DB_POOL], limit, offset))


async def get_article(request: web.Request) -> web.Response:
    """GET /kb/articles/{article_id}: one article, for agents and admins."""
    require_staff_person(request)
    article_id = parse_uuid(request.match_info["article_id"], "Article")
    return json_response({"article": await kb_service.get_article(request.app[DB_POOL], article_id)})


async def list_suggestions(request: web.Request) -> web.Response:
    """GET /kb/suggestions: an agent's own suggestions; an admin's view: everyone's. Oldest first."""
    who = require_staff_person(request)
    return json_response(await kb_service.list_suggestions(request.app[DB_POOL], who))


async def create_suggestion(request: web.Request) -> web.Response:
    """POST /kb/suggestions: a new article, or (article_id) a new text for an existing one."""
    who = require_staff_person(request)
    body = await read_body(request, SUGGEST_SCHEMA)
    suggestion = await kb_service.create_suggestion(
        request.app[DB_POOL],
        who,
        title=body["title"],
        body=body["body"],
        url=body.get("url"),
        note=body.get("note") or "",
        article_id=body.get("article_id"),
    )
    return json_response({"suggestion": suggestion}, status=201)


async def get_suggestion(request: web.Request) -> web.Response:
    """GET /kb/suggestions/{suggestion_id}: its author's, or any for an admin."""
    who = require_staff_person(request)
    suggestion = await kb_service.get_suggestion(request.app[DB_POOL], who, _suggestion_id(request))
    return json_response({"suggestion": suggestion})


async def delete_suggestion(request: web.Request) -> web.Response:
    """DELETE /kb/suggestions/{suggestion_id}: withdrawn by its author, or rejected by an admin."""
    who = require_staff_person(request)
    await kb_service.delete_suggestion(request.app[DB_POOL], who, _suggestion_id(request))
    return web.Response(status=204)
