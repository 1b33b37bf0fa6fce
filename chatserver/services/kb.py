"""Knowledge-base management: admins list, view, create, edit and delete articles, and publish or
reject the suggestions agents make (a new article, or a new text for one). Saving
re-chunks and re-embeds the article in the same transaction, and the version bump that comes with
it makes every instance reload its vectors at its next search."""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg

from ..ai.embedding import Embedder
from ..ai.knowledge import MAX_ARTICLE_CHARS, check_url, index_article
from ..db import kb as kb_db
from ..errors import conflict, not_found, validation_error
from ..security import Identity

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,199}$")
MAX_PAGE = 200


def article_view(row: asyncpg.Record, *, body: bool = True) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row["id"],
        "slug": row["slug"],
        "title": row["title"],
        "url": row["url"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
    if body:
        view["body"] = row["body"]
    return view


def slug_from(title: str) -> str:
    """A slug for a title: lower case ASCII words joined by dashes."""
    words = re.findall(r"[a-z0-9]+", title.lower())
    return "-".join(words)[:200].strip("-") or f"article-{uuid.uuid4().hex[:8]}"


def check_slug(slug: str) -> str:
    if not SLUG.match(slug):
        raise validation_error(
            "slug must be 1 to 200 lower-case letters, digits, dashes or underscores",
            details={"fields": {"slug": "lower-case letters, digits, - and _ only"}},
        )
    return slug


def check_body(body: str) -> str:
    if len(body) > MAX_ARTICLE_CHARS:
        raise validation_error(
            f"body must be at most {MAX_ARTICLE_CHARS} characters",
            details={"fields": {"body": f"at most {MAX_ARTICLE_CHARS} characters"}},
        )
    return body


def check_article_url(url: str | None) -> str | None:
    """The article's public page: http(s) only, as in front matter (the widget links to it)."""
    try:
        return check_url(url)
    except ValueError:
        raise validation_error(
            "url must be an http:// or https:// address", details={"fields": {"url": "http(s) address"}}
        ) from None


async def list_articles(pool: asyncpg.Pool, limit: int, offset: int) -> dict[str, Any]:
    rows = await kb_db.list_articles(pool, limit, offset)
    return {
        "articles": [article_view(r, body=False) for r in rows],
        "total": await kb_db.count_articles(pool),
    }


async def get_article(pool: asyncpg.Pool, article_id: uuid.UUID) -> dict[str, Any]:
    row = await kb_db.get_article(pool, article_id)
    if row is None:
        raise not_found("Article")
    return article_view(row)


async def create_article(
    pool: asyncpg.Pool, embedder: Embedder, *, title: str, body: str, slug: str | None, url: str | None = None
) -> dict[str, Any]:
    slug = check_slug(slug) if slug else slug_from(title)
    check_body(body)
    url = check_article_url(url)
    async with pool.acquire() as conn, conn.transaction():
        try:
            row = await kb_db.insert_article(conn, slug, title, body, url)
        except asyncpg.UniqueViolationError:
            raise conflict(f"An article with the slug {slug!r} exists") from None
        await index_article(conn, embedder, row["id"], title, body)
    return article_view(row)


async def update_article(
    pool: asyncpg.Pool, embedder: Embedder, article_id: uuid.UUID, changes: dict[str, Any]
) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction():
        current = await kb_db.lock_article(conn, article_id)
        if current is None:
            raise not_found("Article")
        existing = await kb_db.get_article(conn, article_id)
        assert existing is not None  # locked above
        slug = check_slug(changes["slug"]) if changes.get("slug") else existing["slug"]
        title = changes.get("title") or existing["title"]
        body = check_body(changes["body"]) if changes.get("body") is not None else existing["body"]
        url = check_article_url(changes["url"]) if "url" in changes else existing["url"]
        try:
            row = await kb_db.update_article(conn, article_id, slug, title, body, url)
        except asyncpg.UniqueViolationError:
            raise conflict(f"An article with the slug {slug!r} exists") from None
        assert row is not None  # locked above
        if (title, body) != (existing["title"], existing["body"]):
            await index_article(conn, embedder, article_id, title, body)
    return article_view(row)


async def delete_article(pool: asyncpg.Pool, article_id: uuid.UUID) -> None:
    if not await kb_db.delete_article(pool, article_id):
        raise not_found("Article")


# ---- suggestions: agents propose, admins publish or reject (only articles are searched) ------

MAX_NOTE_CHARS = 2000


def suggestion_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "article": (
            {"id": row["article_id"], "slug": row["article_slug"], "title": row["article_title"]}
            if row["article_id"]
            else None
        ),
        "title": row["title"],
        "body": row["body"],
        "url": row["url"],
        "note": row["note"],
        "author": (
            {"id": row["author_id"], "name": row["author_name"] or row["author_email"]} if row["author_id"] else None
        ),
        "created_at": row["created_at"],
    }


def _may_see(who: Identity, row: asyncpg.Record) -> bool:
    """Admins see every suggestion; an agent only their own."""
    return who.role == "admin" or row["author_id"] == who.user_id


async def create_suggestion(
    pool: asyncpg.Pool,
    who: Identity,
    *,
    title: str,
    body: str,
    url: str | None,
    note: str,
    article_id: uuid.UUID | None,
) -> dict[str, Any]:
    """A new article (article_id None) or a new text for an article, by an agent or an admin."""
    check_body(body)
    url = check_article_url(url)
    async with pool.acquire() as conn, conn.transaction():
        if article_id is not None and await kb_db.get_article(conn, article_id) is None:
            raise not_found("Article")
        suggestion_id = await kb_db.insert_suggestion(
            conn, article_id=article_id, title=title, body=body, url=url, note=note, author_id=who.user_id
        )
        row = await kb_db.get_suggestion(conn, suggestion_id)
    assert row is not None  # inserted above
    return suggestion_view(row)


async def list_suggestions(pool: asyncpg.Pool, who: Identity) -> dict[str, Any]:
    """Oldest first: an agent's own, or (an admin) everyone's."""
    rows = await kb_db.list_suggestions(pool, None if who.role == "admin" else who.user_id, MAX_PAGE)
    return {"suggestions": [suggestion_view(r) for r in rows]}


async def get_suggestion(pool: asyncpg.Pool, who: Identity, suggestion_id: uuid.UUID) -> dict[str, Any]:
    row = await kb_db.get_suggestion(pool, suggestion_id)
    if row is None or not _may_see(who, row):
        raise not_found("Suggestion")  # another agent's is indistinguishable from a missing one
    return suggestion_view(row)


async def delete_suggestion(pool: asyncpg.Pool, who: Identity, suggestion_id: uuid.UUID) -> None:
    """Withdrawn by its author, or rejected by an admin."""
    async with pool.acquire() as conn, conn.transaction():
        row = await kb_db.get_suggestion(conn, suggestion_id)
        if row is None or not _may_see(who, row):
            raise not_found("Suggestion")
        await kb_db.delete_suggestion(conn, suggestion_id)


async def publish_suggestion(
    pool: asyncpg.Pool, embedder: Embedder, suggestion_id: uuid.UUID, changes: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    """An admin publishes a suggestion, with their own `changes` (title, body, slug, url) if any:
    a new article, or the new text of the article it is for, indexed in the same transaction;
    the suggestion is gone afterwards. Returns (the article, whether it is new)."""
    async with pool.acquire() as conn, conn.transaction():
        suggestion = await kb_db.lock_suggestion(conn, suggestion_id)
        if suggestion is None:
            raise not_found("Suggestion")
        title = changes.get("title") or suggestion["title"]
        body = check_body(changes["body"]) if changes.get("body") is not None else suggestion["body"]
        url = check_article_url(changes["url"]) if "url" in changes else suggestion["url"]
        target = suggestion["article_id"]
        if target is None:
            slug = check_slug(changes["slug"]) if changes.get("slug") else slug_from(title)
            try:
                async with conn.transaction():
                    row = await kb_db.insert_article(conn, slug, title, body, url)
            except asyncpg.UniqueViolationError:
                raise conflict(f"An article with the slug {slug!r} exists: publish it with another slug") from None
        else:
            if await kb_db.lock_article(conn, target) is None:
                raise not_found("Article")
            existing = await kb_db.get_article(conn, target)
            assert existing is not None  # locked above
            slug = check_slug(changes["slug"]) if changes.get("slug") else existing["slug"]
            # An edit suggested without a page address keeps the article's.
            url = url if url is not None or "url" in changes else existing["url"]
            try:
                async with conn.transaction():
                    row = await kb_db.update_article(conn, target, slug, title, body, url)
            except asyncpg.UniqueViolationError:
                raise conflict(f"An article with the slug {slug!r} exists") from None
            assert row is not None  # locked above
        await index_article(conn, embedder, row["id"], title, body)
        await kb_db.delete_suggestion(conn, suggestion_id)
    return article_view(row), target is None
