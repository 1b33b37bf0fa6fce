"""Knowledge-base retrieval cost, the step a reply waits for before its Groq request: the old
full-text search over whole articles against the hybrid search (full-text over chunks + the
question's embedding in an executor + numpy over every chunk vector + fusion), on the sample
knowledge base and on a larger one (the sample repeated with varied titles, --copies).

    python -m bench.kb_search [--copies 60] [--questions 400]
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np

from chatserver.ai.embedding import RetrievalEmbedder
from chatserver.ai.knowledge import CANDIDATES, KnowledgeBase, ParsedArticle, read_kb_dir, store_articles
from chatserver.db import kb as kb_db
from chatserver.db.pool import create_pool

from .common import base_parser, bench_database, emit, header, latency_summary, print_rows

SAMPLE = Path(__file__).resolve().parent.parent / "kb"
# The search before migration 0008 (still runnable: kb_articles keeps its tsvector).
OLD_SEARCH = """
WITH q AS (
    SELECT to_tsquery('english', replace(plainto_tsquery('english', $1)::text, ' & ', ' | ')) AS query
)
SELECT a.id, a.slug, a.title, a.body, ts_rank_cd(a.search, q.query) AS rank
FROM kb_articles a, q WHERE a.search @@ q.query ORDER BY rank DESC, a.title LIMIT $2
"""
WORDS = ["tent", "pack", "stove", "order", "refund", "return", "size", "warranty", "zip", "pole", "delivery"]


def questions(n: int) -> list[str]:
    """Distinct questions (so the embedding cache never hits), made of shop words."""
    rng = np.random.default_rng(7)
    return [" ".join(rng.choice(WORDS, size=6)) + f" {i}" for i in range(n)]


async def _done(value: Any) -> Any:
    return value


async def timed(fn: Any, items: list[str]) -> list[float]:
    out = []
    for item in items:
        began = time.perf_counter()
        await fn(item)
        out.append((time.perf_counter() - began) * 1000)
    return out


async def measure(url: str, copies: int, n: int) -> list[dict[str, Any]]:
    pool = await create_pool(url, 2, 4)
    rows: list[dict[str, Any]] = []
    try:
        embedder = RetrievalEmbedder()
        await embedder.load()
        sample = read_kb_dir(SAMPLE)
        for size, articles in (("sample", sample), (f"sample x{copies}", None)):
            if articles is None:
                articles = [
                    ParsedArticle(f"{a.slug}-{i}", f"{a.title} ({i})", a.body, a.url)
                    for i in range(copies)
                    for a in sample
                ]
            await pool.execute("DELETE FROM kb_articles")
            await store_articles(pool, articles, embedder=embedder)
            kb = KnowledgeBase(pool, embedder)
            await kb.refresh()
            chunks = await pool.fetchval("SELECT count(*) FROM kb_chunks")
            qs = questions(n)
            old = await timed(lambda q: pool.fetch(OLD_SEARCH, q, 3), qs)
            search = kb.search
            new = await timed(lambda q, search=search: search(q, 3), questions(n)[::-1])
            cached = await timed(lambda q, search=search: search(q, 3), qs[: n // 2])
            fts = await timed(lambda q: kb_db.search_chunks(pool, q, CANDIDATES), qs)
            vector = await embedder.embed_query("warm")
            rank = kb.rank
            ranking = await timed(lambda _, rank=rank, vector=vector: _done(rank([], vector, 3)), qs)
            embed = await timed(lambda q: embedder.embed_many([q + " x"]), qs)
            for what, values in (
                ("full-text over articles (before)", old),
                ("hybrid search (after)", new),
                ("hybrid search, question cached", cached),
                ("  full-text over chunks", fts),
                ("  embed one question (executor)", embed),
                ("  vector ranking + fusion (numpy)", ranking),
            ):
                rows.append({"kb": size, "chunks": chunks, "step": what, **latency_summary(values)})
    finally:
        await pool.close()
    return rows


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--copies", type=int, default=60)
    parser.add_argument("--questions", type=int, default=400)
    args = parser.parse_args()
    header("knowledge-base search")
    with bench_database(args.database_url) as url:
        rows = asyncio.run(measure(url, args.copies, args.questions))
    print_rows(rows, ["kb", "chunks", "step", "p50_ms", "p90_ms", "p99_ms"])
    emit("kb_search", {"rows": rows}, args.json)


if __name__ == "__main__":
    main()
