"""`python -m chatserver eval-ai`: the shipped evaluation sets (chatserver/ai/evalsets/), scored:
retrieval (hit@1, hit@3, MRR) on the sample knowledge base, and the local handoff detector
(recall on requests for a human, false-positive rate on look-alikes), each on a set written
alongside the system and on held-out paraphrase sets; with a Groq key, the model's answers
(grounded, cited, offering a person when the articles do not answer). Thresholds live in
evalsets/thresholds.json."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from groq import AsyncGroq

from ..settings import Settings
from . import handoff
from .embedding import Embedder, RetrievalEmbedder
from .groq_client import groq_client
from .handoff import HandoffDetector
from .knowledge import KnowledgeBase, read_kb_dir, store_articles
from .prompts import PromptBuilder
from .stream import CHAT_COMPLETIONS_PATH, stream_chat

EVALSETS = Path(__file__).resolve().parent / "evalsets"


def load_set(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVALSETS / f"{name}.json").read_text(encoding="utf-8"))
    return data


def thresholds() -> dict[str, dict[str, float]]:
    data: dict[str, dict[str, float]] = load_set("thresholds")["minimum"]
    return data


@dataclass(frozen=True)
class AnswerTarget:
    """Where the answer checks send their questions: Groq (GROQ_BASE_URL, or Groq's own), or any
    server that speaks OpenAI's chat-completions API, streamed (`--base-url`, which, as OpenAI's
    clients expect, includes the version: requests go to <base-url>/chat/completions)."""

    api_key: str | None
    key_name: str
    model: str
    base_url: str | None = None
    path: str = CHAT_COMPLETIONS_PATH

    @classmethod
    def from_args(
        cls, settings: Settings, base_url: str | None, model: str | None, key_env: str = "GROQ_API_KEY"
    ) -> AnswerTarget:
        key = settings.groq_api_key if key_env == "GROQ_API_KEY" else os.environ.get(key_env) or None
        if base_url:
            return cls(key, key_env, model or settings.groq_model, base_url.rstrip("/"), "/chat/completions")
        return cls(key, key_env, model or settings.groq_model, settings.groq_base_url)

    def describe(self) -> str:
        where = f"{self.base_url}{self.path}" if self.base_url else "Groq"
        return f"{where}, model {self.model}"


@dataclass
class Result:
    """One evaluation set's figures, and the cases it got wrong (for the report)."""

    name: str
    size: int
    metrics: dict[str, float]
    misses: list[str] = field(default_factory=list)

    def failures(self, limits: dict[str, dict[str, float]]) -> list[str]:
        """Metrics under their minimum (or, for *_max, over their maximum)."""
        failed = []
        for metric, bound in limits.get(self.name, {}).items():
            if metric.endswith("_max"):
                value = self.metrics[metric.removesuffix("_max")]
                if value > bound:
                    failed.append(f"{self.name}: {metric.removesuffix('_max')} {value:.1%} > {bound:.1%}")
            elif self.metrics[metric] < bound:
                failed.append(f"{self.name}: {metric} {self.metrics[metric]:.1%} < {bound:.1%}")
        return failed


async def evaluate_retrieval(kb: KnowledgeBase, name: str) -> Result:
    cases = load_set(name)["cases"]
    hit1 = hit3 = 0
    reciprocal = 0.0
    misses = []
    for question, slug in cases:
        found = [a.slug for a in await kb.search(question, 10)]
        rank = found.index(slug) + 1 if slug in found else None
        hit1 += rank == 1
        hit3 += rank is not None and rank <= 3
        reciprocal += 1 / rank if rank else 0.0
        if rank != 1:
            misses.append(f"{question!r}: expected {slug}, got {found[:3]}")
    n = len(cases)
    return Result(name, n, {"hit@1": hit1 / n, "hit@3": hit3 / n, "mrr": reciprocal / n}, misses)


async def evaluate_unanswerable(kb: KnowledgeBase, name: str = "unanswerable") -> Result:
    cases = load_set(name)["cases"]
    empty = 0
    misses = []
    for question in cases:
        found = await kb.search(question, 3)
        empty += not found
        if found:
            misses.append(f"{question!r}: found {[a.slug for a in found]}")
    return Result(name, len(cases), {"nothing_found": empty / len(cases)}, misses)


async def evaluate_shop_questions(detector: HandoffDetector, name: str = "retrieval_round4") -> Result:
    """False handoffs on ordinary shop questions (a retrieval set the handoff classifier is not
    trained on): what most customer messages are."""
    questions = [question for question, _ in load_set(name)["cases"]]
    misses = []
    for question in questions:
        decision = await detector.detect(question)
        if decision.handoff:
            misses.append(f"false handoff: {question!r} ({decision.reason})")
    rate = len(misses) / len(questions)
    return Result("handoff_shop_questions", len(questions), {"false_positive_rate": rate}, misses)


async def evaluate_handoff(detector: HandoffDetector, name: str) -> Result:
    data = load_set(name)
    handoff, other = data["handoff"], data["not_handoff"]
    caught = 0
    false = 0
    misses = []
    for text in handoff:
        if (await detector.detect(text)).handoff:
            caught += 1
        else:
            misses.append(f"missed: {text!r}")
    for text in other:
        decision = await detector.detect(text)
        if decision.handoff:
            false += 1
            misses.append(f"false handoff: {text!r} ({decision.reason})")
    return Result(
        name,
        len(handoff) + len(other),
        {"recall": caught / len(handoff), "false_positive_rate": false / len(other)},
        misses,
    )


async def evaluate_answers(
    kb: KnowledgeBase, client: AsyncGroq, settings: Settings, target: AnswerTarget, name: str = "answers"
) -> Result:
    """Ask the model each question with the prompt a real reply would have (no history but the
    question) and check its answer: grounded, cites the right article, offers a person when the
    articles do not answer."""
    data = load_set(name)
    builder = PromptBuilder(
        product_name=settings.ai_product_name, history_token_budget=settings.ai_history_token_budget
    )
    offers = [w.lower() for w in data["offers_human"]]
    misses: list[str] = []

    async def reply(question: str) -> tuple[str, list[dict[str, Any]], bool]:
        articles = await kb.search(question, settings.ai_kb_articles)
        ticket = {"subject": question[:80], "description": "", "status": "open", "priority": "normal"}
        message = {"author_kind": "customer", "visibility": "public", "body": question, "metadata": {}}
        prompt = builder.reply(ticket, {"name": "Customer"}, [message], articles)
        pieces: list[str] = []
        outcome = await stream_chat(
            client,
            model=target.model,
            messages=prompt.messages,
            max_tokens=settings.ai_max_reply_tokens,
            temperature=0.0,
            on_text=pieces.append,
            tools=[handoff.HANDOFF_TOOL],
            path=target.path,
        )
        return "".join(pieces), prompt.citations, handoff.handoff_call(outcome.tool_calls) is not None

    grounded = cited = offered = 0
    for case in data["answerable"]:
        text, citations, _ = await reply(case["question"])
        if any(f.lower() in text.lower() for f in case["facts"]):
            grounded += 1
        else:
            misses.append(f"not grounded: {case['question']!r}: {text[:120]!r}")
        if case["slug"] in [c["slug"] for c in citations]:
            cited += 1
        else:
            misses.append(f"wrong citations: {case['question']!r}: {[c['slug'] for c in citations]}")
    for question in data["unanswerable"]:
        text, _, called = await reply(question)
        if called or any(w in text.lower() for w in offers):
            offered += 1
        else:
            misses.append(f"no human offered: {question!r}: {text[:120]!r}")
    answerable, unanswerable = len(data["answerable"]), len(data["unanswerable"])
    metrics = {
        "grounded": grounded / answerable,
        "cites_right": cited / answerable,
        "offers_human": offered / unanswerable,
    }
    return Result(name, answerable + unanswerable, metrics, misses)


def format_table(results: list[Result]) -> str:
    rows = [("set", "cases", "metric", "value")]
    for r in results:
        for metric, value in r.metrics.items():
            rows.append((r.name, str(r.size), metric, f"{value:.3f}" if metric == "mrr" else f"{value:.1%}"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


async def run_offline_evals(kb: KnowledgeBase, detector: HandoffDetector) -> list[Result]:
    """Every evaluation that needs no Groq key, in report order."""
    results = [
        await evaluate_retrieval(kb, "retrieval"),
        await evaluate_retrieval(kb, "retrieval_dev"),
        await evaluate_retrieval(kb, "retrieval_heldout"),
        await evaluate_retrieval(kb, "retrieval_fresh"),
        await evaluate_retrieval(kb, "retrieval_unseen"),
        await evaluate_retrieval(kb, "retrieval_round3"),
        await evaluate_retrieval(kb, "retrieval_round4"),
        await evaluate_unanswerable(kb),
        await evaluate_handoff(detector, "handoff"),
        await evaluate_handoff(detector, "handoff_heldout"),
        await evaluate_handoff(detector, "handoff_round3"),
        await evaluate_handoff(detector, "handoff_round4"),
        await evaluate_handoff(detector, "handoff_round5"),
        await evaluate_handoff(detector, "handoff_round6"),
        await evaluate_shop_questions(detector),
    ]
    return results


def report(results: list[Result], out: Callable[[str], None], *, verbose: bool = False) -> list[str]:
    """Print the table (and the misses when verbose); returns the threshold failures."""
    out(format_table(results))
    limits = thresholds()
    failures = [f for r in results for f in r.failures(limits)]
    if verbose:
        for r in results:
            for miss in r.misses:
                out(f"  [{r.name}] {miss}")
    return failures


def run_evals(
    server_url: str,
    settings: Settings,
    out: Callable[[str], None],
    *,
    verbose: bool = False,
    answers: AnswerTarget | None = None,
) -> list[str]:
    """The offline evaluations on the sample knowledge base, in a scratch database on
    `server_url`'s server, and the answer checks when `answers` (default: Groq, from the
    settings) has a key. Blocking (runs its own event loop). Returns the threshold failures."""
    target = answers or AnswerTarget.from_args(settings, None, None)
    from ..db.migrate import apply_migrations
    from ..db.pool import create_pool
    from ..db.scratch import scratch_database
    from ..settings import SAMPLE_KB_DIR

    async def measure(url: str) -> list[Result]:
        pool = await create_pool(url, 1, 4)
        try:
            embedder = RetrievalEmbedder(minilm=settings.ai_retrieval_minilm)
            await store_articles(pool, read_kb_dir(SAMPLE_KB_DIR), embedder=embedder)
            kb = KnowledgeBase(pool, embedder)
            results = await run_offline_evals(kb, HandoffDetector(Embedder()))
            if target.api_key:
                client = groq_client(
                    api_key=target.api_key,
                    base_url=target.base_url,
                    timeout=settings.groq_timeout,
                    max_retries=settings.groq_max_retries,
                )
                try:
                    results.append(await evaluate_answers(kb, client, settings, target))
                finally:
                    await client.close()
            return results
        finally:
            await pool.close()

    with scratch_database(server_url) as url:
        apply_migrations(url)
        results = asyncio.run(measure(url))
    failures = report(results, out, verbose=verbose)
    if target.api_key:
        out(f"answer checks: against {target.describe()}")
    else:
        out(f"answer checks: skipped (no {target.key_name} set; they need a model to ask)")
    return failures
