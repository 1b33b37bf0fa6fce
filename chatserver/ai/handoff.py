"""Recognising a customer who asks for a human, and what the system tells them.

A local detector that needs no Groq key and answers in well under a millisecond, so an explicit
request hands off without waiting for a model. In order:
1. look-alikes are blanked out ("user agent", "real estate agent", "how many people") and
   questions about who is answering ("is this written by a real person?", "are you a bot?")
   are not requests;
2. a request that is negated ("I don't need a human") is not one;
3. rules: a verb of asking or connecting with a word for a person ("get me an agent", "put me
   through to your support staff"), in English, French, German and Spanish (the widget's
   languages);
4. a learned classifier (handoff_model.py: logistic regression over character n-grams, trained
   on the labelled sets) for what the rules leave undecided;
5. nearest examples by embedding (handoff_examples.json): a message very close to a known
   request (and closer to it than to any known look-alike) is one.
A false handoff costs an agent's attention, a missed one a second message from the customer:
eval-ai measures both (docs/ai.md).
"""

from __future__ import annotations

import asyncio
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .embedding import Embedder, Vectors
from .handoff_model import PERSON_CUE, THRESHOLD, NgramClassifier, default_classifier

EXAMPLES = Path(__file__).resolve().parent / "handoff_examples.json"
# Cosine to the nearest known request above which a message is one (WordLlama: near-duplicates
# score above 0.8, related but different questions 0.3 to 0.6), and the margin by which it must
# beat the nearest look-alike.
NEAREST_MIN = 0.82
NEAREST_MARGIN = 0.05

# Words for a person who works for the shop (accents stripped, lower case).
_HUMAN = (
    r"(?:humans?|humna|huamn|hooman|person|people|agents?|representatives?|reps?|operators?|"
    r"someone|somebody|anyone|anybody|advis[eo]rs?|consultants?|specialists?|(?:your|the) \w+ team|"
    r"staff(?: members?)?|members? of (?:staff|the team|your team)|employees?|team members?|managers?|supervisors?|"
    r"colleagues?|(?:someone|somebody|anyone|anybody) (?:from|on|in|at) (?:your|the) (?:team|shop|store|company)|"
    r"customer (?:service|support|care)|support(?: team| staff| agents?| people)?|service team|help ?desk|"
    r"live chat|real one|"
    r"humaine?s?|personnes?|conseill(?:er|ere)s?|operat(?:eur|rice)s?|quelqu'un|service (?:client|clientele)|"
    r"vraie? (?:personne|humain)|employee?s?|responsable|membres? de (?:votre|l'|la) ?equipe|collegues?|"
    r"mensch(?:en)?|mitarbeiter(?:in|innen)?|berater(?:in)?|kundenservice|kundendienst|jemand(?:em|en)?|personen|"
    r"vorgesetzten?|chef|"
    r"(?:menschlichen?|echten?) (?:ansprechpartner(?:in)?|mitarbeiter(?:in)?|person)|ansprechpartner(?:in)?|kollegen?|"
    r"humanos?|humanas?|personas?|agentes?|asesor(?:a|es)?|operador(?:a|es)?|alguien|atencion al cliente|"
    r"servicio al cliente|soporte|empleados?|encargad[oa]|companer[oa]s?|"
    r"alguien de (?:la tienda|su equipo|vuestro equipo))"
)
_DET = r"(?:(?:a|an|some|the|your|one|of|to|any|a real|a live|an actual|real|live|actual|un|une|le|la|les|du|de|des|"
_DET += r"vrai|vraie|ein|einem|einer|einen|eine|dem|der|den|echten|echtem|echte|richtigen|un|una|el|los|las|al|real|"
_DET += r"humain|humano|ihren|ihrem|ihre|votre|vos|su|sus|vuestro)\s+){0,3}"

_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        # "talk to a person", "speak with your staff", "chat with a support agent"
        ("talk_to", rf"\b(?:talk|speak|chat|talking|speaking|chatting)\s+(?:to|with)\s+{_DET}{_HUMAN}\b"),
        # "connect me to customer service", "put me through to your support staff", "escalate this to a person"
        (
            "connect_me",
            rf"\b(?:connect|transfer|put|pass|escalate|hand|forward|route|switch|get)\s+(?:me|this|it|us|my \w+)?\s*"
            rf"(?:through|over|on|in touch|in contact)?\s*(?:to|with)\s+{_DET}{_HUMAN}\b",
        ),
        # "I'd like this passed on to someone who can decide", "I'd prefer to deal with a person"
        (
            "pass_on",
            rf"\b(?:pass|passed|send|sent|refer|referred)\s+(?:\S+\s+){{0,2}}?on\s+to\s+{_DET}{_HUMAN}\b"
            rf"|\b(?:prefer|rather|like)(?: to)? (?:deal|talk|speak|chat) with\s+{_DET}{_HUMAN}\b",
        ),
        # "can a person look at my case", "I need someone to actually check this"
        (
            "look_at",
            rf"\b(?:can|could|would|will|need|want|get)\s+{_DET}{_HUMAN}\s+(?:to\s+)?(?:please\s+|actually\s+|just\s+)?"
            r"(?:look|check|review|handle|sort|deal|take a look|go over)\b",
        ),
        # "can I get a call from someone today"
        ("call_from", rf"\b(?:a|get a|have a)\s+(?:call|phone call|ring|email|e-mail)\s+from\s+{_DET}{_HUMAN}\b"),
        # "get me an agent", "give me a real person", "find me someone"
        ("get_me", rf"\b(?:get|give|find|bring|send)\s+me\s+{_DET}{_HUMAN}\b"),
        # "I want a human", "I need a manager", "can I get a real human on this"
        (
            "want_one",
            rf"\b(?:want|need|like|prefer|get|have|see|request)\s+(?:to\s+(?:talk|speak|chat)\s+(?:to|with)\s+)?"
            rf"(?:a|an|some|one|a real|a live|an actual)\s+(?:real\s+|live\s+|actual\s+)?{_HUMAN}\b",
        ),
        # "is there a human I can talk to", "can somebody from your team help me"
        (
            "is_there",
            rf"\b(?:is there|are there|can|could)\s+(?:a|an|any|some)?\s*{_HUMAN}\s+(?:i|from|at|who|that|here)\b",
        ),
        # "agent please", "human, now", the whole message "representative"
        (
            "please",
            rf"\b{_HUMAN}\s+(?:please|pls|plz|now|asap|svp|stp|s'il vous plait|bitte|por favor|porfa|xfa|pf)\b",
        ),
        ("alone", rf"^(?:{_DET}{_HUMAN})$"),
        # "a real person", "an actual human"
        ("real_person", r"\b(?:real|live|actual)\s+(?:person|human|people|agent|one)\b"),
        # "I don't want a bot", "stop the bot", "this bot is useless"
        (
            "not_a_bot",
            r"\b(?:don'?t|do not|no more|stop(?: the)?|not (?:a|the|this)|hate (?:the|this)|useless|"
            r"enough of (?:the|this))\s+"
            r"(?:want\s+)?(?:(?:a|an|the|to talk to a|this|talking to a)\s+)?(?:bot|robot|ai|machine|chatbot)\b"
            r"|\b(?:bot|robot|chatbot)\s+is\s+(?:useless|not helping|no help|stupid|dumb)\b"
            # "keinen Bot", "pas de robot", "no quiero un bot"
            r"|\b(?:keinen|kein|nicht mit (?:einem|dem))\s+(?:bot|roboter|chatbot|ki|computer)\b"
            r"|\b(?:bot|roboter|chatbot)\s+hilft\s+(?:mir\s+)?(?:nicht|kein)"
            r"|\b(?:pas|plus|ne veux pas)\s+(?:de |d'|un |une |avec un |a un |parler a un |parler avec un )?"
            r"(?:bot|robot|chatbot|machine|ia)\b"
            r"|\bno\s+(?:quiero\s+)?(?:hablar con\s+)?(?:un |una |el |la |con )?(?:bot|robot|chatbot|maquina|ia)\b",
        ),
        # Asking to be called or answered back, which only a person can do: "can someone ring me",
        # "could a member of staff get back to me", "call me back please", "give me a call".
        (
            "call_me",
            # Anyone who works there may call, write or get back; "you" (the assistant) only call,
            # since "can you email me the invoice" is a question the articles may answer.
            rf"\b{_HUMAN}\s+(?:\S+\s+){{0,6}}?(?:call|ring|phone|get back to|reach out to|email|e-mail|contact)\s+me\b"
            r"|\byou\s+(?:\S+\s+){0,3}?(?:call|ring|phone)\s+me\b(?!\s+an?\b)"
            r"|\b(?:call|ring|phone)\s+me\s+back\b|\bgive me a (?:call|ring)\b|\b(?:a|request a) call ?back\b",
        ),
        # "is anyone actually there?", "is somebody even reading this": not a plain "is anyone
        # there?", which opens many chats and is answered by the assistant.
        (
            "anyone_there",
            r"\b(?:is|are)\s+(?:there\s+)?(?:anyone|anybody|someone|somebody)\s+(?:actually|really|even)\s+"
            r"(?:there|here|around|available|reading (?:this|these)|listening|real)\b",
        ),
        # "please escalate this", "I want to escalate": escalation goes to a person
        ("escalate", r"\bescalate\b"),
        # French: "parler à un conseiller", "mettez-moi en relation avec le service client", "passez-moi un agent"
        ("fr_parler", rf"\b(?:parler|discuter|echanger|chatter)\s+(?:a|avec)\s+{_DET}{_HUMAN}\b"),
        (
            "fr_relation",
            rf"\b(?:mettez|mets|mettre|passez|passe|passer|transferez|transfere|transferer|connectez|redirigez)[\s-]*"
            rf"(?:moi|me)?\s*(?:en relation|en contact)?\s*(?:avec|a|au)?\s*{_DET}{_HUMAN}\b",
        ),
        (
            "fr_veux",
            rf"\b(?:je veux|je voudrais|j'aimerais|je souhaite|je souhaiterais|il me faut)\s+(?:parler a\s+)?"
            rf"{_DET}{_HUMAN}\b",
        ),
        # "est-ce que je peux avoir quelqu'un au téléphone", "un conseiller peut-il me rappeler",
        # "rappelez-moi"
        (
            "fr_rappel",
            rf"\b(?:avoir|joindre)\s+{_DET}{_HUMAN}\b|\b(?:me|m')\s*(?:rappeler|rappelle|appeler|appelle|telephoner)\b|"
            r"\b(?:rappelez|rappelle|appelez)[\s-]+moi\b|\bme faire (?:rappeler|appeler|recontacter|contacter)\b|"
            r"\b(?:qu'on|que l'on|qu'un \w+) me (?:recontacte|contacte|rappelle)\b|"
            rf"\btransmettre\s+(?:\S+\s+){{0,3}}?(?:a|au|aux)\s+{_DET}{_HUMAN}\b",
        ),
        # German: "mit einem Mitarbeiter sprechen", "verbinden Sie mich mit dem Kundenservice"
        (
            "de_sprechen",
            rf"\bmit\s+{_DET}{_HUMAN}\s+(?:\w+\s+)?(?:sprechen|reden|chatten|verbunden|verbinden|schreiben)\b",
        ),
        (
            "de_verbinden",
            rf"\b(?:verbinden|verbinde|weiterleiten|leiten)\s+(?:sie\s+)?(?:mich\s+)?(?:bitte\s+)?(?:mit|an|zu)\s+{_DET}{_HUMAN}\b",
        ),
        ("de_will", rf"\b(?:ich mochte|ich will|ich brauche|ich hatte gern|ich hatte gerne)\s+{_DET}{_HUMAN}\b"),
        # "gibt es hier einen Ansprechpartner", "kann mich jemand zurückrufen", "rufen Sie mich an"
        ("de_gibt_es", rf"\bgibt es\s+(?:(?:hier|da|auch|denn|bei ihnen)\s+){{0,2}}{_DET}{_HUMAN}\b"),
        # "Ich will Ihren Vorgesetzten sprechen", "leiten Sie mein Anliegen an den Kundenservice weiter",
        # "jemand soll sich bei mir melden"
        (
            "de_weiter",
            rf"\b(?:will|mochte|muss|moechte)\s+(?:\S+\s+){{0,2}}?{_DET}{_HUMAN}\s+sprechen\b"
            rf"|\b(?:leiten|leite|geben|gebe)\s+(?:\S+\s+){{0,4}}?an\s+{_DET}{_HUMAN}\s+weiter\b"
            rf"|\b{_HUMAN}\s+(?:\S+\s+){{0,2}}?(?:soll|moge|mochte|kann)\s+sich\s+(?:\S+\s+){{0,4}}?melden\b",
        ),
        (
            "de_anruf",
            r"\b(?:mich|uns)\s+(?:\S+\s+){0,5}?(?:zuruckrufen|anrufen)\b|"
            r"\brufen sie mich\s+(?:bitte\s+)?(?:zuruck|an)\b|\bruf mich\s+(?:bitte\s+)?(?:zuruck|an)\b|\bruckruf\b",
        ),
        # Spanish: "hablar con un agente", "pásame con atención al cliente", "quiero un humano"
        ("es_hablar", rf"\b(?:hablar|chatear|conversar|comunicarme)\s+con\s+{_DET}{_HUMAN}\b"),
        (
            "es_pasame",
            rf"\b(?:(?:pasame|paseme|pasenme|comunicame|comuniqueme|transfiereme|transfierame|conectame|conecteme|"
            rf"ponme|pongame)|me (?:pasas|pasa|pasan|comunicas|comunica|transfieres|transfiere|conectas|conecta|pones|"
            rf"pone))\s+(?:con\s+)?{_DET}{_HUMAN}\b",
        ),
        ("es_quiero", rf"\b(?:quiero|necesito|quisiera|me gustaria)\s+{_DET}{_HUMAN}\b"),
        # "¿alguien me puede llamar?", "llámenme", "que me llame un agente"
        (
            "es_llamar",
            r"\bme\s+(?:puede|pueden|podria|podrian|podeis|puedes)\s+(?:llamar|telefonear|contactar)\b|"
            r"\b(?:llamame|llamenme|llameme)\b|\bque me (?:llame|llamen|contacte|contacten)\b",
        ),
    )
)

# Phrases that contain a word for a person but are about something else: blanked out first.
_LOOKALIKES = re.compile(
    r"\buser[\s-]?agents?\b|\bagent strings?\b|\b(?:real[\s-]?estate|estate|travel|insurance|booking|letting|"
    r"secret|free|shipping|customs|cleaning|leasing|sales|property) agents?\b|\bagents? (?:immobilier|de voyage)s?\b|"
    r"\bagentes? (?:inmobiliari[oa]s?|de viajes?)\b|\bmakler\w*\b|"
    r"\bhow many (?:people|persons?)\b|\bcombien de personnes\b|\bwie viele? personen\b|\bcuantas personas\b|"
    r"\b(?:for|pour|fur|para) (?:a|an|un|une|eine?n?|una?) (?:tall|grande?|gro(?:ss|ß)e?n?|alta?o?) "
    r"(?:person|personne|person|persona)\b"
)
# Questions about who is answering, not requests to change it.
_WHO_ANSWERS = re.compile(
    r"\b(?:written|wrote|typed|sent|made|generated)\s+by\s+(?:a|an)?\s*(?:real\s+)?(?:person|human|bot|ai|robot)\b|"
    r"\bis (?:this|it|that)(?: chat| thing| assistant)? (?:a |an )?(?:real\s+)?(?:person|human|bot|robot|ai)\b|"
    r"\bare you (?:a|an)\s+(?:real\s+)?(?:human|person|bot|robot|ai|machine)\b|"
    r"\bam i (?:talking|speaking|chatting) (?:to|with) (?:a|an)\s+(?:real\s+)?(?:human|person|bot|robot|ai)\b|"
    r"\b(?:personne|humain) (?:a|qui a) ecrit\b|\bes-tu un\b|\betes-vous (?:un|une)\s+(?:robot|humain|personne)\b|"
    r"\bbist du ein\b|\bsind sie ein\b|\beres (?:un )?(?:humano|robot|bot)\b"
)
# A request for a person that is negated: "I don't need a human", "pas besoin d'un conseiller".
_NEGATED = re.compile(
    r"\b(?:don'?t|do not|doesn'?t|no need|not necessary|never|without|won'?t|not)\s+(?:\S+\s+){0,4}?"
    rf"{_DET}{_HUMAN}\b|"
    rf"\b(?:pas besoin|pas la peine|n'ai pas besoin|ne veux pas)\s+(?:\S+\s+){{0,3}}?{_DET}{_HUMAN}\b|"
    rf"\b(?:brauche|brauchen|will)\s+(?:keinen|keine|kein|nicht)\s+(?:\S+\s+){{0,2}}?{_HUMAN}\b|"
    rf"\b(?:no necesito|no hace falta|no quiero)\s+(?:\S+\s+){{0,3}}?{_DET}{_HUMAN}\b"
)

_PUNCTUATION = re.compile(r"[^\w\s'-]+")
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Lower case, accents and punctuation removed (so "à" and "a", "Pásame" and "pasame" match)."""
    text = unicodedata.normalize("NFKD", text.lower().replace("’", "'"))
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.replace("ß", "ss")
    return _SPACES.sub(" ", _PUNCTUATION.sub(" ", text)).strip(" -")


@dataclass(frozen=True)
class Decision:
    handoff: bool
    # Which step decided: a rule's name, "who_answers", "negated", "classifier", "nearest", "no_match".
    reason: str


_SENTENCE_END = re.compile(r"[.!?;¿¡]+(?:\s|$)|\n")


def _blank_lookalikes(clean: str) -> str:
    return _SPACES.sub(" ", _LOOKALIKES.sub(" ", clean)).strip()


def decide_by_rules(text: str) -> Decision | None:
    """Steps 1 to 3; None when the rules cannot tell."""
    clean = normalise(text)
    if _WHO_ANSWERS.search(clean):
        return Decision(False, "who_answers")
    clean = _blank_lookalikes(clean)
    # A negation covers its own sentence only: "Not helpful. Is there anybody I can talk to?"
    # asks for someone (punctuation, which normalise removes, is split on first).
    if any(_NEGATED.search(_blank_lookalikes(normalise(part))) for part in _SENTENCE_END.split(text)):
        return Decision(False, "negated")
    for name, pattern in _RULES:
        if pattern.search(clean):
            return Decision(True, name)
    return None


class HandoffDetector:
    """The local detector; with an embedder, the nearest-example step runs too."""

    def __init__(self, embedder: Embedder | None, examples: Path = EXAMPLES) -> None:
        self.embedder = embedder
        self._classifier: NgramClassifier | None = None
        self._loading = asyncio.Lock()
        self._loaded = False
        data = json.loads(examples.read_text(encoding="utf-8"))
        self._texts = [normalise(t) for t in data["handoff"]] + [normalise(t) for t in data["not_handoff"]]
        self._is_request = np.array([True] * len(data["handoff"]) + [False] * len(data["not_handoff"]))
        self._matrix: Vectors | None = None

    async def load(self) -> None:
        """Train the classifier and embed the examples, once (startup runs it in the background;
        a message arriving first waits for the same load)."""
        async with self._loading:
            if self._classifier is None:
                self._classifier = await asyncio.get_running_loop().run_in_executor(None, default_classifier)
            if self.embedder is not None and self._matrix is None:
                self._matrix = await self.embedder.embed_many(self._texts)
            self._loaded = True

    async def detect(self, text: str) -> Decision:
        decided = decide_by_rules(text)
        if decided is not None:
            return decided
        if not self._loaded:
            await self.load()
        assert self._classifier is not None  # load() set it
        clean = normalise(text)
        if PERSON_CUE.search(clean) and self._classifier.probability(clean) >= THRESHOLD:
            return Decision(True, "classifier")
        if self.embedder is None:
            return Decision(False, "no_match")
        assert self._matrix is not None  # load() just set it
        similarities = self._matrix @ await self.embedder.embed_query(clean)
        best_request = float(similarities[self._is_request].max(initial=-1.0))
        best_other = float(similarities[~self._is_request].max(initial=-1.0))
        if best_request >= NEAREST_MIN and best_request >= best_other + NEAREST_MARGIN:
            return Decision(True, "nearest")
        return Decision(False, "no_match")

    async def wants_human(self, text: str) -> bool:
        return (await self.detect(text)).handoff


def wants_human(text: str) -> bool:
    """The rules alone (no embedder): True when the customer asks for a person."""
    decided = decide_by_rules(text)
    return decided is not None and decided.handoff


# With a Groq key the model may decide too: it is offered this tool (Groq tool calling) on every
# customer-facing reply, and a call hands the ticket over (docs/ai.md).
HANDOFF_TOOL_NAME = "handoff_to_human"
HANDOFF_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": HANDOFF_TOOL_NAME,
        "description": (
            "Hand this conversation to a human support agent. Call it when the customer asks for a "
            "person in any words, or needs something only a person can do (a refund outside policy, "
            "a change to an order or account that the articles do not let them make), or is upset "
            "and not helped by your answers. Do not call it for questions about whether you are a "
            "bot: answer those."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "reason": {"type": "string", "description": "One short sentence for the agent: why a person is needed."}
            },
            "required": ["reason"],
        },
    },
}


def handoff_call(tool_calls: list[dict[str, str]]) -> str | None:
    """The reason given by the model's handoff_to_human call, if it made one ("" without a
    readable reason: a malformed argument does not stop the handoff the model asked for)."""
    for call in tool_calls:
        if call.get("name") != HANDOFF_TOOL_NAME:
            continue
        try:
            arguments = json.loads(call.get("arguments") or "{}")
        except ValueError:
            return ""
        reason = arguments.get("reason") if isinstance(arguments, dict) else None
        return reason[:500] if isinstance(reason, str) else ""
    return None


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
AI_DECIDED = (
    "I'm passing you to a human agent, who can help with this better than I can. They'll see everything "
    "we've discussed and reply here as soon as they can."
)
