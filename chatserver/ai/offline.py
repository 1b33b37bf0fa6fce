"""The offline responder: with no GROQ_API_KEY, answer from the best-matching knowledge-base
article, clearly labelled as an automatic help-center answer, through the same event flow."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from .knowledge import Article, excerpt
from .stream import StreamOutcome, split_tokens

OFFLINE_MODEL = "offline-kb"
EXCERPT_CHARS = 900
LABEL = "[Automatic answer from our help center: no AI assistant is connected right now.]"
# Pieces handed on per event-loop turn: the text streams like a model's would, without delay.
PIECES_PER_TURN = 16


def compose_reply(articles: Sequence[Article], question: str) -> str:
    if not articles:
        return (
            f"{LABEL}\n\nI couldn't find a help-center article about this. "
            'Write "talk to a person" and a human agent will take over.'
        )
    best = articles[0]
    return (
        f"{LABEL}\n\nThis article looks relevant: **{best.title}**\n\n"
        f"{excerpt(best.body, question, EXCERPT_CHARS)}\n\n"
        'If this doesn\'t solve it, write "talk to a person" and a human agent will take over.'
    )


def compose_action_reply(result: str) -> str:
    """What an action looked up (the demo's order status), labelled like every offline answer."""
    return f"{LABEL}\n\n{result}"


def compose_suggestion(articles: Sequence[Article], question: str) -> str:
    if not articles:
        return "[Offline suggestion: no help-center article matched this conversation.]"
    best = articles[0]
    return (
        f'[Offline suggestion from the help-center article "{best.title}"]\n\n'
        f"Hi! {excerpt(best.body, question, EXCERPT_CHARS)}\n\nLet me know if that helps."
    )


async def stream_text(text: str, on_text: Callable[[str], None]) -> StreamOutcome:
    """Hand `text` on piece by piece, yielding to the loop now and then, like a model stream."""
    for i, piece in enumerate(split_tokens(text), 1):
        on_text(piece)
        if i % PIECES_PER_TURN == 0:
            await asyncio.sleep(0)
    return StreamOutcome(finish_reason="stop", model=OFFLINE_MODEL)
