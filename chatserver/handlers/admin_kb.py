"""/admin/kb/articles: knowledge-base management, for admins only (docs/ai.md)."""

from __future__ import annotations

import uuid

from aiohttp import web

from ..ai.knowledge import MAX_ARTICLE_CHARS, MAX_URL_CHARS
from ..jsonutil import json_response
from ..keys import AI_SERVICE, DB_POOL
from ..services import kb as kb_service
from ..validation import Str, parse_uuid, query_int, read_body, reject_unknown_query
from .admin import require_admin

CREATE_SCHEMA = {
    "title": Str(max_len=300),
    "body": Str(max_len=MAX_ARTICLE_CHARS),
    "slug": Str(required=False, nullable=True, max_len=200),
    "url": Str(required=False, nullable=True, max_len=MAX_URL_CHARS),
}
UPDATE_SCHEMA = {
    "title": Str(required=False, max_len=300),
    "body": Str(required=False, max_len=MAX_ARTICLE_CHARS),
    "slug": Str(required=False, max_len=200),
    "url": Str(required=False, nullable=True, max_len=MAX_URL_CHARS),
}
LIST_QUERY = ("limit", "offset")


def _article_id(request: web.Request) -> uuid.UUID:
    return parse_uuid(request.match_info["article_id"], "Article")


async def list_articles(request: web.Request) -> web.Response:
    """GET /admin/kb/articles: titles and slugs, by title (no bodies)."""
    require_admin(request)
    reject_unknown_query(request, LIST_QUERY)
    limit = query_int(request, "limit", 50, 1, kb_service.MAX_PAGE) or 50
    offset = query_int(request, "offset", 0, 0, 1_000_000) or 0
    return json_response(await kb_service.list_articles(request.app[DB_POOL], limit, offset))


async def get_article(request: web.Request) -> web.Response:
    """GET /admin/kb/articles/{article_id}."""
    require_admin(request)
    article = await kb_service.get_article(request.app[DB_POOL], _article_id(request))
    return json_response({"article": article})


async def create_article(request: web.Request) -> web.Response:
    """POST /admin/kb/articles: a new article, chunked and embedded before the response."""
    require_admin(request)
    body = await read_body(request, CREATE_SCHEMA)
    article = await kb_service.create_article(
        request.app[DB_POOL],
        request.app[AI_SERVICE].knowledge.embedder,
        title=body["title"],
        body=body["body"],
        slug=body.get("slug"),
        url=body.get("url"),
    )
    return json_response({"article": article}, status=201)


async def update_article(request: web.Request) -> web.Response:
    """PATCH /admin/kb/articles/{article_id}: title, body, slug and/or url (null removes it);
    re-indexed when the title or body changed."""
    require_admin(request)
    article_id = _article_id(request)
    body = await read_body(request, UPDATE_SCHEMA)
    embedder = request.app[AI_SERVICE].knowledge.embedder
    article = await kb_service.update_article(request.app[DB_POOL], embedder, article_id, body)
    return json_response({"article": article})


async def delete_article(request: web.Request) -> web.Response:
    """DELETE /admin/kb/articles/{article_id}: the article and its chunks."""
    require_admin(request)
    await kb_service.delete_article(request.app[DB_POOL], _article_id(request))
    return web.Response(status=204)


PUBLISH_SCHEMA = {
    "title": Str(required=False, max_len=300),
    "body": Str(required=False, max_len=MAX_ARTICLE_CHARS),
    "slug": Str(required=False, max_len=200),
    "url": Str(required=False, nullable=True, max_len=MAX_URL_CHARS),
}


async def publish_suggestion(request: web.Request) -> web.Response:
    """POST /admin/kb/suggestions/{suggestion_id}/publish: the suggestion becomes an article (201),
    or the new text of the article it was for (200), indexed at once; optional fields override
    the suggestion's (send {} to publish it as it is). The suggestion is deleted. (Rejecting is
    DELETE /kb/suggestions/{id}.)"""
    require_admin(request)
    suggestion_id = parse_uuid(request.match_info["suggestion_id"], "Suggestion")
    body = await read_body(request, PUBLISH_SCHEMA)
    article, created = await kb_service.publish_suggestion(
        request.app[DB_POOL], request.app[AI_SERVICE].knowledge.embedder, suggestion_id, body
    )
    return json_response({"article": article}, status=201 if created else 200)
