"""The knowledge base: load Markdown articles from a folder, find the ones that match a question,
and cut the passages worth showing the model (or the customer, when offline)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from ..db import kb as kb_db

# Articles longer than this are cut: the prompt carries excerpts, never whole manuals.
MAX_ARTICLE_CHARS = 50_000
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

    def citation(self) -> dict[str, Any]:
        return {"id": self.id, "slug": self.slug, "title": self.title}


def parse_markdown(path: Path) -> tuple[str, str, str]:
    """(slug, title, body) of one article: the title is the first `# ` heading (or the file name),
    the body everything else."""
    text = path.read_text(encoding="utf-8").replace("\r\n", "\n").strip()
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
    return slug, title, text[:MAX_ARTICLE_CHARS]


def read_kb_dir(folder: Path) -> list[tuple[str, str, str]]:
    """(slug, title, body) of every non-empty *.md under `folder`, sorted by path. Blocking."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    articles = [parse_markdown(path) for path in sorted(folder.rglob("*.md"))]
    return [a for a in articles if a[2]]


async def store_articles(
    pool: asyncpg.Pool, articles: list[tuple[str, str, str]], *, prune: bool = False
) -> dict[str, int]:
    """Upsert articles by slug in one transaction; with `prune`, delete every other article."""
    counts = {"inserted": 0, "updated": 0, "unchanged": 0, "deleted": 0}
    async with pool.acquire() as conn, conn.transaction():
        for slug, title, body in articles:
            counts[await kb_db.upsert_article(conn, slug, title, body)] += 1
        if prune:
            counts["deleted"] = await kb_db.delete_articles_except(conn, [a[0] for a in articles])
    return counts


async def search(pool: asyncpg.Pool, question: str, limit: int) -> list[Article]:
    if not question.strip() or limit <= 0:
        return []
    rows = await kb_db.search_articles(pool, question[:2000], limit)
    return [Article(str(r["id"]), r["slug"], r["title"], r["body"], float(r["rank"])) for r in rows]


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
