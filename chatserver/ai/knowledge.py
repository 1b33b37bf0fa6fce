"""The knowledge base: load Markdown articles from a folder, find the ones that match a question,
and cut the passages worth showing the model (or the customer, when offline)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import asyncpg

from ..db import kb as kb_db

# Articles longer than this are cut: the prompt carries excerpts, never whole manuals.
MAX_ARTICLE_CHARS = 50_000
# The column's own limit (migrations/0006): longer is a mistake in the file, not a real address.
MAX_URL_CHARS = 2000
# Front matter: a first line "---", `key: value` lines, a closing "---".
_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---(?:\n|\Z)", re.S)
_WORD = re.compile(r"[a-z0-9]{3,}")
# Words too common to tell paragraphs apart.
_STOP = frozenset(
    {
        "the",
        "and",
        "for",
        "you",
        "your",
        "with",
        "that",
        "this",
        "have",
        "how",
        "can",
        "what",
        "when",
        "where",
        "why",
        "are",
        "was",
        "not",
        "but",
        "our",
        "from",
        "does",
        "did",
        "will",
        "would",
        "could",
        "should",
        "into",
        "about",
        "there",
        "their",
        "they",
        "them",
        "then",
        "than",
        "just",
        "get",
        "got",
    }
)


@dataclass(frozen=True)
class Article:
    id: str
    slug: str
    title: str
    body: str
    rank: float
    url: str | None = None

    def citation(self) -> dict[str, Any]:
        cited: dict[str, Any] = {"id": self.id, "slug": self.slug, "title": self.title}
        if self.url:
            cited["url"] = self.url
        return cited


class ParsedArticle(NamedTuple):
    slug: str
    title: str
    body: str
    url: str | None = None


def _front_matter(text: str, path: Path) -> tuple[dict[str, str], str]:
    """The `key: value` pairs of a leading front-matter block, and the text after it."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    values = {}
    for line in match.group(1).split("\n"):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"{path}: front matter line {line!r} is not 'key: value'")
        values[key.strip().lower()] = value.strip().strip("\"'")
    return values, text[match.end() :]


def _article_url(value: str | None, path: Path) -> str | None:
    """Only http(s) addresses: the widget links to it, and a javascript: URL must never get there."""
    if not value:
        return None
    if not re.match(r"^https?://[^\s]+$", value, re.I) or len(value) > MAX_URL_CHARS:
        raise ValueError(f"{path}: url must be an http:// or https:// address, got {value[:80]!r}")
    return value


def parse_markdown(path: Path) -> ParsedArticle:
    """One article: an optional front-matter block (`url:` — the article's public page), the
    title from the first `# ` heading (or the file name), the body everything else."""
    text = path.read_text(encoding="utf-8").replace("\r\n", "\n").strip()
    meta, text = _front_matter(text, path)
    text = text.strip()
    slug = path.stem.strip().lower()
    title = slug.replace("-", " ").replace("_", " ").capitalize()
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.strip() == "":
            continue
        if line.startswith("# "):
            title = line[2:].strip()
            text = "\n".join(lines[i + 1 :]).strip()
        break
    return ParsedArticle(slug, title, text[:MAX_ARTICLE_CHARS], _article_url(meta.get("url"), path))


def read_kb_dir(folder: Path) -> list[ParsedArticle]:
    """Every non-empty *.md under `folder`, sorted by path. Blocking."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    articles = [parse_markdown(path) for path in sorted(folder.rglob("*.md"))]
    return [a for a in articles if a[2]]


async def store_articles(pool: asyncpg.Pool, articles: list[ParsedArticle], *, prune: bool = False) -> dict[str, int]:
    """Upsert articles by slug in one transaction; with `prune`, delete every other article."""
    counts = {"inserted": 0, "updated": 0, "unchanged": 0, "deleted": 0}
    async with pool.acquire() as conn, conn.transaction():
        for article in articles:
            counts[await kb_db.upsert_article(conn, article.slug, article.title, article.body, article.url)] += 1
        if prune:
            counts["deleted"] = await kb_db.delete_articles_except(conn, [a[0] for a in articles])
    return counts


async def search(pool: asyncpg.Pool, question: str, limit: int) -> list[Article]:
    if not question.strip() or limit <= 0:
        return []
    rows = await kb_db.search_articles(pool, question[:2000], limit)
    return [Article(str(r["id"]), r["slug"], r["title"], r["body"], float(r["rank"]), r["url"]) for r in rows]


def keywords(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def excerpt(body: str, question: str, max_chars: int) -> str:
    """The paragraphs of `body` that share the most words with `question`, in their original
    order, within `max_chars`."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()]
    if not paragraphs:
        return ""
    wanted = keywords(question)
    scored = sorted(
        range(len(paragraphs)),
        key=lambda i: (-len(wanted & keywords(paragraphs[i])), i),
    )
    chosen: list[int] = []
    used = 0
    for i in scored:
        size = len(paragraphs[i]) + 2
        if used + size > max_chars and chosen:
            continue
        chosen.append(i)
        used += size
        if used >= max_chars:
            break
    text = "\n\n".join(paragraphs[i] for i in sorted(chosen))
    return text if len(text) <= max_chars else text[: max_chars - 1].rstrip() + "…"
