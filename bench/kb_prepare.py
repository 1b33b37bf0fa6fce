"""What the knowledge-base search adds to a reply's time to first token, measured in pairs: the
database work a reply waits for before its Groq request (`AiService._prepare`: the claim
statement and the history query at once) with and without the search beside them (embedding the
question in the executor, full text over sections, the vector ranking and fusion), alternating
one after the other so that both see the same machine. On a shared machine whose load swamps
bench.ttft's 5 ms resolution, the paired difference still shows the step's cost.

    python -m bench.kb_prepare [--pairs 400] [--minilm adaptive|always|off]

The questions are the 217 of eval-ai's held-out paraphrase sets, in turn, with the question cache
off (each is embedded as if asked for the first time). --minilm: adaptive (the default, as
served: MiniLM only when full text and WordLlama disagree on the best article), always (every
question through MiniLM), off (WordLlama alone, AI_RETRIEVAL_MINILM=false).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import numpy as np

from chatserver.ai.embedding import RetrievalEmbedder
from chatserver.ai.evaluate import load_set
from chatserver.ai.knowledge import KnowledgeBase, read_kb_dir, store_articles
from chatserver.db import ai as ai_db
from chatserver.db import messages as messages_db
from chatserver.db.pool import create_pool
from chatserver.settings import SAMPLE_KB_DIR

from .common import base_parser, bench_database, emit, header, latency_summary, print_rows, seed

HISTORY_FETCH = 200  # as chatserver/ai/service.py
LEASE_SECONDS = 30.0


def questions() -> list[str]:
    sets = ("retrieval_heldout", "retrieval_fresh", "retrieval_unseen", "retrieval_round3", "retrieval_round4")
    return [q for name in sets for q, _ in load_set(name)["cases"]]


async def measure(url: str, ticket_id: uuid.UUID, pairs: int, minilm: str) -> tuple[dict[str, list[float]], int]:
    """The timings of each case, and how many questions were embedded in full."""
    pool = await create_pool(url, 4, 8)
    try:
        # No question cache: every question is embedded as if for the first time.
        embedder = RetrievalEmbedder(cache_size=0, minilm=minilm != "off")
        await embedder.load()
        await store_articles(pool, read_kb_dir(SAMPLE_KB_DIR), embedder=embedder)
        kb = KnowledgeBase(pool, embedder, skip_minilm_when_sure=minilm == "adaptive")
        asked = questions()
        await kb.refresh()
        instance = uuid.uuid4().hex

        async def prepare(question: str | None) -> float:
            start = time.perf_counter()
            async with asyncio.TaskGroup() as group:
                group.create_task(
                    ai_db.start_generation(
                        pool,
                        ticket_id,
                        "copilot",
                        uuid.uuid4(),
                        instance,
                        None,
                        LEASE_SECONDS,
                        supersede=True,
                        budget=None,
                    )
                )
                group.create_task(messages_db.list_latest(pool, ticket_id, "public", HISTORY_FETCH))
                if question is not None:
                    group.create_task(kb.search(question, 3, context="Where is my parcel?"))
            return (time.perf_counter() - start) * 1000

        times: dict[str, list[float]] = {"without": [], "with": [], "difference": []}
        for i in range(pairs):
            question = asked[i % len(asked)]
            if i % 2:
                with_search, without = await prepare(question), await prepare(None)
            else:
                without, with_search = await prepare(None), await prepare(question)
            times["without"].append(without)
            times["with"].append(with_search)
            times["difference"].append(with_search - without)
        return times, embedder.questions_embedded
    finally:
        await pool.close()


def run(args: Any) -> dict[str, Any]:
    models = {
        "adaptive": "WordLlama + all-MiniLM-L6-v2 when they disagree",
        "always": "WordLlama + all-MiniLM-L6-v2",
        "off": "WordLlama alone",
    }[args.minilm]
    header(f"Knowledge-base search in a reply's preparation: {args.pairs} pairs, sample knowledge base, {models}")
    with bench_database(args.database_url) as url:
        customers, _ = seed(url, customers=1, tickets_each=1)
        times, embedded = asyncio.run(measure(url, customers[0].tickets[0], args.pairs, args.minilm))
    rows = []
    for case in ("without", "with"):
        rows.append({"case": f"claim + history {case} the search", **latency_summary(times[case])})
    diff = np.array(times["difference"])
    rows.append(
        {
            "case": "paired difference (with - without)",
            "n": len(diff),
            "p50_ms": round(float(np.percentile(diff, 50)), 2),
            "p90_ms": round(float(np.percentile(diff, 90)), 2),
            "p99_ms": round(float(np.percentile(diff, 99)), 2),
        }
    )
    print_rows(rows)
    print(f"questions embedded in full (through MiniLM unless off): {embedded} of {args.pairs}")
    result = {"pairs": args.pairs, "models": models, "embedded_in_full": embedded, "cases": rows}
    emit("kb_prepare", result, args.json)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--minilm", choices=("adaptive", "always", "off"), default="adaptive")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
