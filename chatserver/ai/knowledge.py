"""The knowledge base: articles split into sections (chunks), each embedded once when saved;
hybrid search that fuses the full-text ranking (PostgreSQL) with the vector ranking (numpy over
every chunk's vector, held in memory and reloaded whenever the knowledge-base version changes,
whichever instance changed it); and the passages worth showing the model or the customer."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import asyncpg
import numpy as np
import numpy.typing as npt

from ..db import kb as kb_db
from .embedding import Embedder, RetrievalEmbedder, Vectors, from_bytes, to_bytes

# Articles longer than this are cut: the prompt carries excerpts, never whole manuals.
MAX_ARTICLE_CHARS = 50_000
# The column's own limit (migrations/0006): longer is a mistake in the file, not a real address.
MAX_URL_CHARS = 2000
# Front matter: a first line "---", `key: value` lines, a closing "---".
_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---(?:\n|\Z)", re.S)
# A section longer than this is split at paragraph boundaries: a chunk should say one thing.
CHUNK_CHARS = 1200
# Candidates taken from each ranking before fusing.
CANDIDATES = 20
# Reciprocal rank fusion's constant. Cormack et al.'s 60 makes the first ranks nearly equal
# (1/61 against 1/62), so any full-text hit, even on one common word, outvoted the vector
# ranking's order: on paraphrases the full text is the weaker ranking (docs/ai.md, Measured
# quality). With 2, rank 1 counts 1/3, rank 2 1/4, rank 10 1/12: the vector ranking leads.
RRF_K = 2
# Below this cosine (question against the chunk itself) a chunk is not a vector match at all:
# with nothing else matching, the question is about something the knowledge base does not cover.
# The cosine is the mean of WordLlama's (low: related texts 0.2 to 0.5, off-topic under 0.2) and
# MiniLM's (related 0.4 to 0.7); 0.2 to 0.3 did the same on the development sets.
VECTOR_FLOOR = 0.2
# The full-text ranking's weight in the fusion (the vector ranking's is 1): it breaks near-ties
# of the vector ranking and brings exact terms (product names, "Klarna", "VAT") up, without
# overruling a clearly better vector match. Chosen on a development set of paraphrases that is
# not one of the reported sets (docs/ai.md). 0.25 with WordLlama alone; with MiniLM beside it,
# whose vectors lean towards a question's topic ("return my tent" near pitching a tent), 0.5
# puts the words that name the task back in front, at no cost on the development sets.
FTS_WEIGHT = 0.5
# A chunk's vector score is its own cosine plus this much of its whole article's: a section is
# judged in its article's context, so a short section that happens to share a word with the
# question does not outrank the article that is about the question's subject.
ARTICLE_WEIGHT = 0.3
# Chunks of one article passed on (the best ones, in the article's order).
CHUNKS_PER_ARTICLE = 3

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
    """A search result: an article, represented by its best-matching sections."""

    id: str
    slug: str
    title: str
    body: str
    rank: float
    sections: tuple[str, ...] = ()
    url: str | None = None

    def citation(self) -> dict[str, Any]:
        cited: dict[str, Any] = {"id": self.id, "slug": self.slug, "title": self.title, "sections": list(self.sections)}
        if self.url:
            cited["url"] = self.url
        return cited


@dataclass(frozen=True)
class Chunk:
    id: int
    article_id: str
    slug: str
    title: str
    position: int
    heading: str
    body: str
    url: str | None = None


class ParsedArticle(NamedTuple):
    slug: str
    title: str
    body: str
    url: str | None = None


def _front_matter(text: str, source: str) -> tuple[dict[str, str], str]:
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
            raise ValueError(f"{source}: front matter line {line!r} is not 'key: value'")
        values[key.strip().lower()] = value.strip().strip("\"'")
    return values, text[match.end() :]


def check_url(value: str | None, source: str = "url") -> str | None:
    """Only http(s) addresses: the widget links to it, and a javascript: URL must never get there."""
    if not value:
        return None
    if not re.match(r"^https?://[^\s]+$", value, re.I) or len(value) > MAX_URL_CHARS:
        raise ValueError(f"{source}: url must be an http:// or https:// address, got {value[:80]!r}")
    return value


def parse_markdown_text(text: str, slug: str, source: str | None = None) -> ParsedArticle:
    """One article: an optional front-matter block (`url:` — the article's public page), the
    title from the first `# ` heading (or the slug), the body everything else. `source` names
    the file in errors."""
    source = source or slug
    text = text.replace("\r\n", "\n").strip()
    meta, text = _front_matter(text, source)
    text = text.strip()
    title = slug.replace("-", " ").replace("_", " ").capitalize()
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.strip() == "":
            continue
        if line.startswith("# "):
            title = line[2:].strip()
            text = "\n".join(lines[i + 1 :]).strip()
        break
    return ParsedArticle(slug, title, text[:MAX_ARTICLE_CHARS], check_url(meta.get("url"), source))


def parse_markdown(path: Path) -> ParsedArticle:
    """One article file; the slug is the file name without .md."""
    return parse_markdown_text(path.read_text(encoding="utf-8"), path.stem.strip().lower(), str(path))


def read_kb_dir(folder: Path) -> list[ParsedArticle]:
    """Every non-empty *.md under `folder`, sorted by path. Blocking."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    articles = [parse_markdown(path) for path in sorted(folder.rglob("*.md"))]
    return [a for a in articles if a[2]]


_SECTION_HEADING = re.compile(r"^#{2,6}\s+(.+?)\s*#*\s*$")


def split_sections(title: str, body: str) -> list[tuple[str, str]]:
    """(heading, text) per section: the text before the first `##` heading is titled by the
    article; a section over CHUNK_CHARS is cut at paragraph boundaries."""
    sections: list[tuple[str, list[str]]] = [(title, [])]
    for line in body.split("\n"):
        match = _SECTION_HEADING.match(line)
        if match:
            sections.append((f"{title}: {match.group(1)}", []))
        else:
            sections[-1][1].append(line)
    chunks: list[tuple[str, str]] = []
    for heading, lines in sections:
        text = "\n".join(lines).strip()
        if not text:
            continue
        piece: list[str] = []
        size = 0
        for paragraph in (p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()):
            if piece and size + len(paragraph) > CHUNK_CHARS:
                chunks.append((heading, "\n\n".join(piece)))
                piece, size = [], 0
            piece.append(paragraph)
            size += len(paragraph) + 2
        if piece:
            chunks.append((heading, "\n\n".join(piece)))
    if not chunks:
        chunks.append((title, title))
    return chunks


def embed_sections(embedder: Embedder, title: str, body: str) -> tuple[list[tuple[str, str, bytes]], bytes]:
    """(heading, text, stored vector) per chunk of an article, and the stored vector of the whole
    article (its title and every section: the context the vector ranking judges a section in).
    Blocking."""
    sections = split_sections(title, body)
    whole = title + "\n" + "\n".join(text for _, text in sections)
    vectors = embedder.embed([f"{heading}\n{text}" for heading, text in sections] + [whole])
    chunks = [(heading, text, to_bytes(v)) for (heading, text), v in zip(sections, vectors[:-1], strict=True)]
    return chunks, to_bytes(vectors[-1])


async def index_article(
    conn: asyncpg.Connection, embedder: Embedder, article_id: uuid.UUID, title: str, body: str
) -> None:
    """Re-chunk and re-embed one article (inside the caller's transaction)."""
    chunks, article_vector = await asyncio.get_running_loop().run_in_executor(
        None, embed_sections, embedder, title, body
    )
    await kb_db.replace_chunks(conn, article_id, chunks, embedder.model_name, article_vector)


async def store_articles(
    pool: asyncpg.Pool,
    articles: list[ParsedArticle],
    *,
    prune: bool = False,
    embedder: Embedder | None = None,
) -> dict[str, int]:
    """Upsert articles by slug in one transaction, re-indexing the changed ones; with `prune`,
    delete every other article."""
    embedder = embedder or RetrievalEmbedder()
    counts = {"inserted": 0, "updated": 0, "unchanged": 0, "deleted": 0}
    async with pool.acquire() as conn, conn.transaction():
        for article in articles:
            outcome, article_id = await kb_db.upsert_article(
                conn, article.slug, article.title, article.body, article.url
            )
            counts[outcome] += 1
            if article_id is not None:
                await index_article(conn, embedder, article_id, article.title, article.body)
        if prune:
            counts["deleted"] = await kb_db.delete_articles_except(conn, [a[0] for a in articles])
    return counts


SAMPLE_LOADED_FLAG = "kb_sample_loaded"


async def load_sample_once(pool: asyncpg.Pool, folder: Path, embedder: Embedder) -> int | None:
    """Load the sample articles of `folder` into an empty knowledge base, once per database: the
    flag is set in the same transaction, so an admin who deletes them does not see them come
    back, and of several instances starting together only one loads. Returns the number of
    articles loaded, or None when it had been done (or the knowledge base was not empty)."""
    articles = await asyncio.get_running_loop().run_in_executor(None, read_kb_dir, folder)
    async with pool.acquire() as conn, conn.transaction():
        if not await kb_db.set_flag(conn, SAMPLE_LOADED_FLAG) or await kb_db.count_articles(conn):
            return None
        for article in articles:
            _, article_id = await kb_db.upsert_article(conn, article.slug, article.title, article.body, article.url)
            if article_id is not None:
                await index_article(conn, embedder, article_id, article.title, article.body)
    return len(articles)


@dataclass
class _Index:
    version: int = -1
    ids: list[int] = field(default_factory=list)
    matrix: Vectors = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    chunks: dict[int, Chunk] = field(default_factory=dict)
    # One row per article (its title and whole text), and each chunk's article's row.
    articles: Vectors = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    article_of: npt.NDArray[np.intp] = field(default_factory=lambda: np.zeros(0, dtype=np.intp))


class KnowledgeBase:
    """Hybrid search over the chunks. One per app instance: it holds every chunk's vector (640
    float32 each with MiniLM: 2.5 MB per thousand chunks) and reloads them when the stored
    version moves."""

    def __init__(self, pool: asyncpg.Pool, embedder: RetrievalEmbedder, *, skip_minilm_when_sure: bool = True) -> None:
        self.pool = pool
        self.embedder = embedder
        # When full text and WordLlama agree on the best article, rank without MiniLM (below).
        self.skip_minilm_when_sure = skip_minilm_when_sure
        self._index = _Index()
        self._lock = asyncio.Lock()

    async def search(self, question: str, limit: int, context: str = "") -> list[Article]:
        """The `limit` best articles for `question`, best first; [] when nothing is relevant.
        `context` (a ticket's subject) is added to the full-text query only: the vector is the
        question's, so a subject such as "Shop" cannot outvote "how do I return my tent?"."""
        if not question.strip() or limit <= 0:
            return []
        question = question[:2000]
        context = context[:300] if context.strip() and context.strip() != question.strip() else ""
        text = f"{question}\n{context}" if context else question
        query = question
        vector = self.embedder.cached(query)
        quick = self.embedder.quick_query(query) if vector is None and self.skip_minilm_when_sure else None
        if quick is not None:
            # MiniLM costs ~1 ms of CPU per token before the Groq request. When the full-text
            # ranking's best section and WordLlama's belong to the same article, the question is
            # a plain one and the ranking WordLlama gives is kept; MiniLM runs only when they
            # disagree (docs/ai.md, "Hybrid retrieval").
            version, fts_ids = await kb_db.search_chunks(self.pool, text, CANDIDATES)
            await self.refresh(version)
            if self._agree(fts_ids, quick):
                return self.rank(fts_ids, quick, limit)
            return self.rank(fts_ids, await self.embedder.embed_query(query), limit)
        if vector is not None:
            version, fts_ids = await kb_db.search_chunks(self.pool, text, CANDIDATES)
        else:
            # The question is embedded (in the executor) while PostgreSQL runs the full-text query.
            async with asyncio.TaskGroup() as group:
                fts = group.create_task(kb_db.search_chunks(self.pool, text, CANDIDATES))
                embedded = group.create_task(self.embedder.embed_query(query))
            (version, fts_ids), vector = fts.result(), embedded.result()
        await self.refresh(version)
        return self.rank(fts_ids, vector, limit)

    async def refresh(self, version: int | None = None) -> None:
        """Reload the vectors unless they are already at `version` (None: read it first). Any
        difference reloads, not only a newer version: a restored or re-created database starts
        its count again."""
        if version is None:
            version = await kb_db.kb_version(self.pool)
        if self._index.version == version:
            return
        async with self._lock:
            if self._index.version == version:
                return
            await self._index_missing()
            loaded, rows = await kb_db.load_chunks(self.pool)
            self._index = await asyncio.get_running_loop().run_in_executor(
                None, _build_index, loaded, rows, self.embedder.dimensions
            )

    async def _index_missing(self) -> None:
        """Chunk and embed articles stored without chunks (before migration 0008) or with another
        model's vectors. Any instance may do it; the article row lock makes them take turns."""
        for row in await kb_db.articles_to_index(self.pool, self.embedder.model_name):
            async with self.pool.acquire() as conn, conn.transaction():
                current = await kb_db.lock_article(conn, row["id"])
                if current is not None:
                    await index_article(conn, self.embedder, row["id"], current["title"], current["body"])

    def _agree(self, fts_ids: list[int], vector: Vectors) -> bool:
        """Whether the full-text ranking's best section and the vector's nearest section belong
        to the same article."""
        index = self._index
        first = next((chunk_id for chunk_id in fts_ids if chunk_id in index.chunks), None)
        if first is None or not index.ids or not vector.any():
            return False
        nearest = index.ids[int(np.argmax(index.matrix @ vector))]
        return index.chunks[nearest].article_id == index.chunks[first].article_id

    def rank(self, fts_ids: list[int], vector: Vectors, limit: int) -> list[Article]:
        """Reciprocal rank fusion of the full-text and the vector rankings of chunks, then
        articles ordered by their best chunk."""
        index = self._index
        scores: dict[int, float] = defaultdict(float)
        for rank, chunk_id in enumerate(fts_ids):
            if chunk_id in index.chunks:
                scores[chunk_id] += FTS_WEIGHT / (RRF_K + rank + 1)
        if index.ids and vector.any():
            similarities = index.matrix @ vector
            in_context = similarities + ARTICLE_WEIGHT * (index.articles @ vector)[index.article_of]
            ranked = [i for i in np.argsort(-in_context) if similarities[i] >= VECTOR_FLOOR]
            for rank, i in enumerate(ranked[:CANDIDATES]):
                scores[index.ids[i]] += 1 / (RRF_K + rank + 1)
        by_article: dict[str, list[tuple[float, Chunk]]] = defaultdict(list)
        for chunk_id, score in scores.items():
            chunk = index.chunks[chunk_id]
            by_article[chunk.article_id].append((score, chunk))
        ranked = sorted(
            by_article.values(),
            key=lambda hits: (-max(s for s, _ in hits), -sum(s for s, _ in hits), hits[0][1].slug),
        )
        articles = []
        for hits in ranked[:limit]:
            best = sorted(hits, key=lambda h: -h[0])[:CHUNKS_PER_ARTICLE]
            chunks = sorted((c for _, c in best), key=lambda c: c.position)
            first = chunks[0]
            articles.append(
                Article(
                    id=first.article_id,
                    slug=first.slug,
                    title=first.title,
                    body="\n\n".join(c.body for c in chunks),
                    rank=max(s for s, _ in hits),
                    sections=tuple(dict.fromkeys(c.heading for c in chunks)),
                    url=first.url,
                )
            )
        return articles


def _build_index(version: int, rows: list[asyncpg.Record], dimensions: int) -> _Index:
    """The in-memory index from stored chunks and their articles' stored vectors. Blocking (numpy).
    Chunks whose vectors are of another size are left out: another instance running another model
    (a rolling upgrade, or one without MiniLM installed) wrote them, and they cannot be compared."""
    rows = [r for r in rows if len(r["embedding"]) == dimensions * 4]
    chunks = {
        r["id"]: Chunk(
            r["id"], str(r["article_id"]), r["slug"], r["title"], r["position"], r["heading"], r["body"], r["url"]
        )
        for r in rows
    }
    ids = [r["id"] for r in rows]
    if not rows:
        return _Index(version=version)
    matrix = np.stack([from_bytes(r["embedding"]) for r in rows])
    order: dict[str, int] = {}
    article_vectors: list[Vectors] = []
    for r in rows:
        if str(r["article_id"]) not in order:
            order[str(r["article_id"])] = len(order)
            article_vectors.append(_article_vector(r, dimensions))
    article_of = np.array([order[chunks[i].article_id] for i in ids], dtype=np.intp)
    articles = np.stack(article_vectors)
    return _Index(version=version, ids=ids, matrix=matrix, chunks=chunks, articles=articles, article_of=article_of)


def _article_vector(row: asyncpg.Record, dimensions: int) -> Vectors:
    """The article's stored vector; zero (no context) if it is missing or of another size (written
    by an instance running another model, or an older version: the next reload re-indexes it)."""
    stored = row["article_embedding"]
    vector = from_bytes(stored) if stored is not None else None
    return vector if vector is not None and vector.shape[0] == dimensions else np.zeros(dimensions, np.float32)


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
