"""What the model sees: jinja2 templates (prompts/*.j2) filled with the ticket, the customer, the
recent history (trimmed to a token budget) and knowledge-base excerpts.

Customer-facing replies never see internal notes. The copilot (agents only) does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from .knowledge import Article, excerpt

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
# Without the model's tokenizer we estimate ~4 characters per token (English prose), plus a few
# tokens of per-message overhead; the budget leaves room for that error.
CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
EXCERPT_CHARS = 1200


def estimate_tokens(text: str) -> int:
    return len(text) // CHARS_PER_TOKEN + MESSAGE_OVERHEAD_TOKENS


@dataclass
class Prompt:
    messages: list[dict[str, str]]
    articles: list[Article]
    # History messages left out to fit the budget.
    trimmed: int = 0
    estimated_tokens: int = 0
    citations: list[dict[str, Any]] = field(default_factory=list)


class PromptBuilder:
    def __init__(self, *, product_name: str, history_token_budget: int, templates: Path = PROMPTS_DIR) -> None:
        self.product_name = product_name
        self.budget = history_token_budget
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(templates)),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # plain text for a model, not HTML
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )

    def render(self, name: str, **context: Any) -> str:
        return self.env.get_template(name).render(product_name=self.product_name, **context).strip()

    def _system(
        self,
        template: str,
        ticket: Mapping[str, Any],
        customer: Mapping[str, Any],
        articles: Sequence[Article],
        question: str,
        trimmed: int,
    ) -> str:
        return self.render(
            template,
            ticket=ticket,
            customer=customer,
            articles=[
                {"title": a.title, "slug": a.slug, "excerpt": excerpt(a.body, question, EXCERPT_CHARS)}
                for a in articles
            ],
            trimmed=trimmed,
        )

    def reply(
        self,
        ticket: Mapping[str, Any],
        customer: Mapping[str, Any],
        history: Sequence[Mapping[str, Any]],
        articles: Sequence[Article],
    ) -> Prompt:
        """Messages for a customer-facing reply. `history` is oldest first and ends with the
        customer message being answered; internal notes in it are dropped here too."""
        turns = [t for t in (_chat_turn(m) for m in history if m["visibility"] == "public") if t is not None]
        question = next((t["content"] for t in reversed(turns) if t["role"] == "user"), "")
        # The system prompt's size depends on the trimmed count only by a few characters.
        system = self._system("reply_system.j2", ticket, customer, articles, question, 0)
        kept, trimmed = _fit(turns, self.budget - estimate_tokens(system))
        if trimmed:
            system = self._system("reply_system.j2", ticket, customer, articles, question, trimmed)
        messages = [{"role": "system", "content": system}, *kept]
        return Prompt(
            messages=messages,
            articles=list(articles),
            trimmed=trimmed,
            estimated_tokens=sum(estimate_tokens(m["content"]) for m in messages),
            citations=[a.citation() for a in articles],
        )

    def copilot(
        self,
        ticket: Mapping[str, Any],
        customer: Mapping[str, Any],
        history: Sequence[Mapping[str, Any]],
        articles: Sequence[Article],
    ) -> Prompt:
        """Messages for an agent's suggested reply: the transcript, internal notes included."""
        lines = [line for line in (_transcript_line(m) for m in history) if line is not None]
        question = next((line["text"] for line in reversed(lines) if line["who"] == "Customer"), "")
        system = self._system("copilot_system.j2", ticket, customer, articles, question, 0)
        budget = self.budget - estimate_tokens(system)
        kept: list[dict[str, str]] = []
        for line in reversed(lines):
            cost = estimate_tokens(line["text"])
            if kept and cost > budget:
                break
            kept.append(line)
            budget -= cost
        kept.reverse()
        trimmed = len(lines) - len(kept)
        if trimmed:
            system = self._system("copilot_system.j2", ticket, customer, articles, question, trimmed)
        request = self.render("copilot_request.j2", transcript=kept)
        messages = [{"role": "system", "content": system}, {"role": "user", "content": request}]
        return Prompt(
            messages=messages,
            articles=list(articles),
            trimmed=trimmed,
            estimated_tokens=sum(estimate_tokens(m["content"]) for m in messages),
            citations=[a.citation() for a in articles],
        )


def _text(message: Mapping[str, Any]) -> str:
    """The message's text, naming the files sent with it: the model cannot see them, but should
    know they are there (a screenshot with no words is still a question)."""
    files = message.get("attachments") or []
    if not files:
        return str(message["body"])
    names = ", ".join(str(f.get("filename", "file")) for f in files)
    return f"{message['body']}\n[attached: {names}]".lstrip("\n")


def _chat_turn(message: Mapping[str, Any]) -> dict[str, str] | None:
    kind = message["author_kind"]
    meta = message.get("metadata") or {}
    if kind == "customer":
        return {"role": "user", "content": _text(message)}
    if kind == "ai":
        # A reply cut off by a failure would only confuse the next attempt.
        return None if meta.get("incomplete") else {"role": "assistant", "content": message["body"]}
    if kind == "agent":
        return {"role": "assistant", "content": f"(a human support agent wrote:) {message['body']}"}
    return None  # system notices (handoffs) are for the people in the room


def _transcript_line(message: Mapping[str, Any]) -> dict[str, str] | None:
    kind = message["author_kind"]
    if kind == "system":
        return None
    if message["visibility"] == "internal":
        return {"who": "Internal note (agents only)", "text": _text(message)}
    who = {"customer": "Customer", "ai": "AI assistant", "agent": "Agent"}.get(kind, kind)
    return {"who": who, "text": _text(message)}


def _fit(turns: list[dict[str, str]], budget: int) -> tuple[list[dict[str, str]], int]:
    """Keep the newest turns that fit `budget` tokens. The newest turn (the question) is always
    kept, cut from its start if it alone is too long."""
    if not turns:
        return [], 0
    kept: list[dict[str, str]] = []
    remaining = budget
    for turn in reversed(turns):
        cost = estimate_tokens(turn["content"])
        if cost > remaining:
            if not kept:
                chars = max(200, (remaining - MESSAGE_OVERHEAD_TOKENS) * CHARS_PER_TOKEN)
                kept.append({"role": turn["role"], "content": "…" + turn["content"][-chars:]})
            break
        kept.append(turn)
        remaining -= cost
    kept.reverse()
    # The conversation sent to the model starts with the customer (after the system prompt).
    while len(kept) > 1 and kept[0]["role"] != "user":
        kept.pop(0)
    return kept, len(turns) - len(kept)
