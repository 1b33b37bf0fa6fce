"""Recognising a customer who asks for a human, and what the system tells them.

Deliberately a short list of explicit phrasings (matched case-insensitively, punctuation ignored):
a false positive costs an agent's attention, a false negative only one more message from the
customer. docs/ai.md lists them.
"""

from __future__ import annotations

import re

_WHO = r"(?:(?:a|an|some|the|your|one|of|to)\s+)*(?:real\s+|live\s+|actual\s+|human\s+)?"
_HUMAN = r"(?:person|human|humans|agent|agents|representative|rep|operator|someone|somebody|people|staff|manager)"

HANDOFF_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        # "talk to a person", "speak with a live agent", "chat with someone real"
        rf"\b(?:talk|speak|chat|talking|speaking)\s+(?:to|with)\s+{_WHO}{_HUMAN}\b",
        # "agent please", "human, please", "a real person please"
        rf"\b{_HUMAN}\s+(?:please|pls|plz|now)\b",
        # "real person", "live agent", "actual human"
        r"\b(?:real|live|actual)\s+(?:person|human|agent|people)\b",
        # "connect me to an agent", "transfer me to a human", "put me through to someone"
        rf"\b(?:connect|transfer|put|escalate|pass|hand)\s+(?:me|this|it)\s+(?:through\s+)?(?:to|with)\s+{_WHO}{_HUMAN}\b",
        # "I want a human", "I need an agent", "can I get a representative"
        r"\b(?:want|need|like|get|have|see)\s+(?:to\s+(?:talk|speak)\s+to\s+)?(?:a|an)\s+(?:real\s+|live\s+)?"
        r"(?:human|person|agent|representative|operator)\b",
        # "I don't want a bot", "stop the bot", "no more AI"
        r"\b(?:don'?t|do not|dont|no more|stop(?: the)?|not (?:a|the|this))\s+(?:want\s+)?"
        r"(?:(?:a|an|the|to talk to a)\s+)?"
        r"(?:bot|robot|ai|machine|chatbot)\b",
        # French, which the widget ships strings for: "parler à un humain", "un vrai conseiller svp"
        r"\b(?:parler|discuter)\s+(?:a|à|avec)\s+(?:quelqu'un|(?:un|une)\s+(?:vrai\s+|vraie\s+)?"
        r"(?:humain|humaine|personne|conseiller|conseillère|agent|opérateur))\b",
        r"\b(?:vrai|vraie|un|une)\s+(?:humain|humaine|personne|conseiller|conseillère|agent|opérateur)\b"
        r"(?:\s+(?:svp|s'il vous plaît|s'il vous plait|stp))",
        # The whole message is just "agent" / "human" / "representative".
        r"^(?:agent|human|person|representative|operator|live agent|human agent)$",
    )
)

_PUNCTUATION = re.compile(r"[^\w\s']+")
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    return _SPACES.sub(" ", _PUNCTUATION.sub(" ", text.lower().replace("’", "'"))).strip()


def wants_human(text: str) -> bool:
    """True when the customer asks for a person rather than the AI."""
    clean = normalise(text)
    return any(p.search(clean) for p in HANDOFF_PATTERNS)


CUSTOMER_ASKED = (
    "I'm passing you to a human agent now. They'll see everything we've discussed and reply here as soon as they can."
)
REPLY_BUDGET_SPENT = (
    "I've answered as much as I can automatically in this conversation, so I'm handing it to a human "
    "agent, who will reply here as soon as they can."
)
RATE_LIMITED = (
    "You've sent a lot of messages in a short time, so I'm handing this conversation to a human agent, "
    "who will reply here as soon as they can."
)
AI_BUSY = (
    "Our automatic assistant is very busy right now, so I'm handing this conversation to a human agent, "
    "who will reply here as soon as they can."
)
AI_UNAVAILABLE = (
    "I can't answer automatically right now, so I'm handing this conversation to a human agent, who "
    "will reply here as soon as they can."
)
