"""The local handoff detector: paraphrased requests for a human hand the ticket over with no
Groq key, in the widget's four languages; look-alikes and negated requests do not."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chatserver.ai import handoff, handoff_model
from chatserver.ai.embedding import Embedder
from chatserver.ai.handoff import HandoffDetector
from chatserver.settings import Settings

from .conftest import MakeUser, create_ticket
from .fake_groq import EventLog, _events_log, ai_settings  # noqa: F401  (_events_log: a fixture)

# The issue's own examples (#15), then paraphrases in French, German and Spanish.
REQUESTS = [
    "get me an agent",
    "connect me to customer service",
    "put me through to your support staff",
    "I'd like to chat with a support agent",
    "live chat with an employee please",
    "Je voudrais parler à un conseiller, s'il vous plaît",
    "Können Sie mich bitte mit einem Mitarbeiter verbinden?",
    "¿Me pasas con atención al cliente?",
    # Third round: asking to be called or answered back, put in touch, handed to a colleague,
    # whether anyone is there, escalation, and "not a bot" in the other languages.
    "could someone from your team call me back about order 1042",
    "can a member of staff look at this and get back to me",
    "please put me in touch with your customer care team",
    "can you hand me over to a colleague",
    "is anyone actually reading this?",
    "I want to escalate this",
    "un membre de votre équipe peut-il me rappeler ?",
    "Gibt es hier einen menschlichen Ansprechpartner?",
    "Ich will keinen Bot, sondern eine Person",
    "¿alguien de la tienda me puede llamar?",
    # Fourth round: preferring a person, someone to look at a case, a call from someone, a
    # supervisor, a misspelt "human", and "Mensch" (the German pattern once missed the singular).
    "I'd rather deal with a person, thanks",
    "could an advisor take a look at my case",
    "can I get a phone call from someone in your team",
    "talk to a huamn",
    "Mensch bitte",
    "Ich möchte Ihren Vorgesetzten sprechen",
    "Pouvez-vous me faire rappeler ?",
    "agente porfa",
    # A negation in one sentence does not cancel a request in the next.
    "That didn't help. Can I speak to someone please?",
]
LOOKALIKES = [
    "is this answer written by a real person?",
    "what's my user agent?",
    "our real estate agent needs the invoice",
    "I don't need a human, the article was enough",
    "how many people fit in the Ridgeline 2?",
    "combien de personnes dans la tente ?",
    "ich brauche keinen Mitarbeiter, danke",
    "mi agente inmobiliario necesita la factura",
    # Calls and people that are not a request for one of the shop's staff.
    "my delivery driver didn't call me",
    "can you email me the invoice?",
    "you should call me a fool for ordering two",
    "what's your phone number?",
    "Der Fahrer hat mich nicht angerufen",
    "the price escalated since last week",
    "is this chat AI or a person? just wondering",
    # A chat's opening line, answered by the assistant (who says it can bring in a person).
    "Is anyone there?",
    # Ordinary shop questions: the classifier once took short request-like ones for requests.
    "Can I get a refund?",
    "I want to return this",
    "can I get a replacement pole",
    "hi",
    # ... and short ones with "please", which the classifier alone took for requests: it decides
    # only for a message that mentions a person, a team, a bot or being contacted.
    "yes please",
    "Refund please",
    "Explain, please",
]


@pytest.fixture(scope="module")
def detector() -> HandoffDetector:
    return HandoffDetector(Embedder())


@pytest.mark.parametrize("text", REQUESTS)
async def test_paraphrased_requests_for_a_human_are_recognised(detector: HandoffDetector, text: str) -> None:
    assert (await detector.detect(text)).handoff


@pytest.mark.parametrize("text", LOOKALIKES)
async def test_lookalikes_and_negated_requests_are_not(detector: HandoffDetector, text: str) -> None:
    decision = await detector.detect(text)
    assert not decision.handoff, decision


@pytest.mark.parametrize(
    "text",
    ["I would much prefer a real conversation with your team", "hola, necesito que me atienda alguien de verdad"],
)
async def test_the_classifier_catches_requests_no_rule_names(detector: HandoffDetector, text: str) -> None:
    assert handoff.decide_by_rules(text) is None
    assert await detector.detect(text) == handoff.Decision(True, "classifier")


@pytest.mark.parametrize(
    "text",
    ["the people in the photo look happy", "how many staff work at the warehouse", "is your team based in the UK?"],
)
async def test_the_classifier_leaves_mentions_of_people_alone(detector: HandoffDetector, text: str) -> None:
    assert handoff.decide_by_rules(text) is None
    assert not (await detector.detect(text)).handoff


def test_the_classifier_generalises_to_a_set_it_was_not_trained_on() -> None:
    # Trained without handoff_round5, scored on it: the phrasing of a writer it never saw.
    held_out = handoff_model.TRAINING_SETS[-1]
    texts, labels = handoff_model.training_data(handoff_model.TRAINING_SETS[:-1])
    model = handoff_model.NgramClassifier.train([handoff.normalise(t) for t in texts], labels)
    requests, others = [], []
    for text, label in zip(*handoff_model.training_data((held_out,), ()), strict=True):
        (requests if label else others).append(model.probability(handoff.normalise(text)) >= handoff_model.THRESHOLD)
    assert sum(requests) / len(requests) >= 0.8
    assert sum(others) / len(others) <= 0.05


def test_training_is_deterministic() -> None:
    texts, labels = handoff_model.training_data(handoff_model.TRAINING_SETS[:2], handoff_model.QUESTION_SETS[:1])
    first = handoff_model.NgramClassifier.train([handoff.normalise(t) for t in texts], labels)
    second = handoff_model.NgramClassifier.train([handoff.normalise(t) for t in texts], labels)
    assert first.vocabulary == second.vocabulary and (first.weights == second.weights).all()


async def test_the_nearest_example_catches_what_no_rule_names(detector: HandoffDetector) -> None:
    # No rule's verb or noun pattern matches "real human needed", but a stored example does.
    assert handoff.decide_by_rules("real human needed!") is None or handoff.wants_human("real human needed!")
    decision = await detector.detect("real human needed!")
    assert decision.handoff


def test_the_rules_alone_work_without_an_embedder() -> None:
    assert handoff.wants_human("get me an agent")
    assert not handoff.wants_human("what's my user agent?")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return ai_settings(settings, None)


async def _system_messages(client: TestClient, headers: dict[str, str], ticket: dict[str, Any]) -> list[str]:
    body = await (await client.get(f"/tickets/{ticket['id']}/messages", headers=headers)).json()
    return [m["body"] for m in body["messages"] if m["author_kind"] == "system"]


async def test_an_issue_example_hands_the_ticket_over_without_a_groq_key(
    client: TestClient, make_user: MakeUser, events_log: EventLog
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer, "Order")
    resp = await client.post(
        f"/tickets/{ticket['id']}/messages",
        json={"body": "put me through to your support staff"},
        headers=customer.headers,
    )
    assert resp.status == 201
    await events_log.wait_for(
        lambda: any(f["message"]["author_kind"] == "system" for f in events_log.frames("message.created"))
    )
    after = (await (await client.get(f"/tickets/{ticket['id']}", headers=customer.headers)).json())["ticket"]
    assert (after["ai_enabled"], after["waiting_for_agent"]) == (False, True)
    assert await _system_messages(client, customer.headers, ticket) == [handoff.CUSTOMER_ASKED]


async def test_a_question_about_who_answers_gets_an_answer_not_a_handoff(
    client: TestClient, make_user: MakeUser, events_log: EventLog
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer, "Hmm")
    await client.post(
        f"/tickets/{ticket['id']}/messages",
        json={"body": "is this answer written by a real person?"},
        headers=customer.headers,
    )
    await events_log.wait_type("ai.completed")
    after = (await (await client.get(f"/tickets/{ticket['id']}", headers=customer.headers)).json())["ticket"]
    assert (after["ai_enabled"], after["waiting_for_agent"]) == (True, False)
    assert await _system_messages(client, customer.headers, ticket) == []
