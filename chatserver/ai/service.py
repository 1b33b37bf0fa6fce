"""Reply orchestration: when the AI answers, one generation per ticket across instances, the
events a reply streams as, what is stored, and how takeovers, handoffs and budgets stop it.

The rules (docs/ai.md explains them for operators):
- A public customer message in a ticket whose AI is on starts a reply. A newer customer message
  while a reply streams cancels it ("superseded") and starts one that sees both messages.
- An agent's public message, a takeover (PATCH ai_enabled=false, the socket's ai.takeover) or a
  handoff cancels the reply in flight at once: locally by cancelling the task, on other instances
  through the ticket.updated event their hub observer sees (and, as a backstop, through the
  generation claim they find gone at their next heartbeat).
- Failures keep the text so far (stored, metadata.incomplete) and end with ai.failed.
- Budgets and rate limits hand the ticket to a human with a system message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from groq import AsyncGroq

from ..db import ai as ai_db
from ..db import events as events_db
from ..db import messages as messages_db
from ..db import tickets as tickets_db
from ..db.pool import is_unavailable
from ..errors import conflict, forbidden
from ..realtime import events
from ..realtime.events import Event
from ..realtime.publisher import Publisher
from ..security import Identity
from ..services import demo_shop
from ..services import tickets as ticket_service
from ..services.activity import publish_ticket_change
from ..settings import Settings
from ..views import message_view, ticket_view
from . import handoff, limits, offline
from .embedding import Embedder, RetrievalEmbedder
from .groq_client import GenerationError
from .handoff import HandoffDetector
from .knowledge import Article, KnowledgeBase
from .prompts import Prompt, PromptBuilder
from .stream import DeltaBatcher, StreamOutcome, stream_chat
from .tools import CallBudget, ToolRunner
from .tracker import ReplyTracker, TrackedReply, Watch

log = logging.getLogger(__name__)

REPLY = "reply"
COPILOT = "copilot"
# Messages read for a prompt before trimming to the token budget.
HISTORY_FETCH = 200
# How long a takeover waits for the local reply task to wind down before it goes on anyway.
CANCEL_WAIT = 2.0
# A reply stream (SSE) that hears nothing for this long checks the database itself: the reply
# may run on an instance whose events do not reach this one.
FOLLOW_POLL = 1.0
KEEPALIVE_EVERY = 15.0
# Why the database refused a reply before it started (ai_db.start_generation), and what the
# customer is told when the ticket goes to a human for it.
# Attempts at one reply whose instances died before a person takes the ticket: a reply that
# keeps taking its instance down (a poison prompt) is not generated a third time.
MAX_ATTEMPTS = 2
REFUSED_TEXTS = {
    "reply_budget": handoff.REPLY_BUDGET_SPENT,
    "token_budget": handoff.REPLY_BUDGET_SPENT,
    "rate_limit": handoff.RATE_LIMITED,
    limits.ADDRESS_LIMIT: handoff.RATE_LIMITED,
    limits.INSTANCE_LIMIT: handoff.AI_BUSY,
}
# Failures where Groq answered with an HTTP error before generating anything: no tokens were
# spent. Every other failure, and every cancellation, after the request went out is charged the
# prompt and the text received (estimated: Groq reports usage only at the end of a stream).
UNCHARGED_FAILURES = frozenset({"rate_limited", "ai_unavailable", "ai_auth_failed", "ai_request_rejected"})


@dataclass(eq=False)
class Generation:
    """One reply (or copilot suggestion) being generated on this instance."""

    ticket_id: uuid.UUID
    kind: str
    in_reply_to: int | None
    # Claim even when another reply holds the ticket (a newer customer message supersedes).
    supersede: bool
    # What the knowledge base is searched for; known when the generation starts (_kb_query), so
    # the search need not wait for the history.
    kb_query: tuple[str, str]
    previous: Generation | None = None
    # Which attempt at answering `in_reply_to` this is: 2 and more after an orphaned reply was
    # taken over (chatserver/ai/orphans.py); an orphaned attempt MAX_ATTEMPTS goes to a person.
    attempt: int = 1
    # Who asked (request.remote), for the per-address limit; None when unknown (socket ai.retry).
    client_address: str | None = None
    reply_id: uuid.UUID = field(default_factory=uuid.uuid4)
    task: asyncio.Task[None] | None = None
    cancel_reason: str | None = None
    started: bool = False
    # Past the point of no return: its final event is out (or it is handing the ticket off).
    settled: bool = False
    parts: list[str] = field(default_factory=list)
    batcher: DeltaBatcher | None = None
    # The prompt sent to Groq (set when the request goes out): what a failed or cancelled reply
    # is charged for.
    prompt: Prompt | None = None

    def add(self, text: str) -> None:
        self.parts.append(text)
        if self.batcher is not None:
            self.batcher.add(text)

    @property
    def text(self) -> str:
        if len(self.parts) > 1:
            self.parts = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""

    def cancel(self, reason: str) -> None:
        """Stop now: from this call on, nothing more of this reply is published."""
        if self.settled:
            return  # finished already; it only tidies up
        if self.cancel_reason is None:
            self.cancel_reason = reason
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def wait(self, timeout: float | None = None) -> None:
        if self.task is not None and not self.task.done():
            await asyncio.wait({self.task}, timeout=timeout)


class AiService:
    """The AI layer of one app instance. app[AI] and app[MESSAGE_HOOK] point here."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        settings: Settings,
        publisher: Callable[[], Publisher],
        groq: AsyncGroq | None,
        instance_id: str | None = None,
        embedder: Embedder | None = None,
        retrieval_embedder: RetrievalEmbedder | None = None,
    ) -> None:
        self.pool = pool
        # WordLlama alone for the handoff detector (its thresholds are WordLlama's); WordLlama and
        # MiniLM for retrieval (embedding.py).
        self.embedder = embedder or Embedder()
        self.knowledge = KnowledgeBase(
            pool, retrieval_embedder or RetrievalEmbedder(minilm=settings.ai_retrieval_minilm)
        )
        self.handoff = HandoffDetector(self.embedder)
        self.settings = settings
        self._publisher = publisher
        self.groq = groq
        self.instance_id = instance_id or uuid.uuid4().hex
        self.prompts = PromptBuilder(
            product_name=settings.ai_product_name, history_token_budget=settings.ai_history_token_budget
        )
        self.budget = ai_db.Budget(
            max_replies=settings.ai_max_replies_per_ticket,
            max_tokens=settings.ai_max_tokens_per_ticket,
            user_replies=settings.ai_user_replies_per_window,
            user_window_seconds=settings.ai_user_window_seconds,
        )
        self.limits = limits.ReplyLimits(
            per_address=settings.ai_address_replies_per_window,
            per_instance=settings.ai_instance_replies_per_window,
            window_seconds=settings.ai_user_window_seconds,
        )
        self.tracker = ReplyTracker()
        # The admin-configured actions the model may call, and the calls waiting for approval.
        self.tools = ToolRunner(pool, settings, self._publish, self.instance_id)
        # Set by ai_ctx: the background task that loads MiniLM and the sample knowledge base.
        self.knowledge_ready: asyncio.Task[None] | None = None
        # Set when no hub observer feeds the tracker: the service feeds it what it publishes.
        self.feed_tracker_directly = True
        # Run after every handoff (the ticket's id): automatic assignment plugs in here
        # (services/routing.py, installed by app.availability_ctx).
        self.after_handoff: Callable[[uuid.UUID], Awaitable[None]] | None = None
        self.generations: dict[tuple[str, str], Generation] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def offline(self) -> bool:
        return self.groq is None

    # ---- entry points ----------------------------------------------------------------------

    async def on_message(
        self, message: dict[str, Any], ticket: asyncpg.Record, who: Identity, *, client_address: str | None = None
    ) -> None:
        """MESSAGE_HOOK: runs after a message is stored and published. Never waits for Groq."""
        if message["visibility"] != "public":
            return  # internal notes neither start nor stop the AI
        if message["author_kind"] == "agent":
            if ticket["ai_enabled"]:
                await self.take_over(ticket["id"], who)
            return
        if message["author_kind"] != "customer" or not ticket["ai_enabled"]:
            return
        if await self.handoff.wants_human(message["body"]):
            await self.hand_off(ticket["id"], "customer_asked", handoff.CUSTOMER_ASKED)
            return
        self._spawn(ticket, REPLY, message, supersede=True, client_address=client_address)

    async def retry(self, ticket: asyncpg.Record, who: Identity) -> None:
        """The socket's ai.retry (AiControl)."""
        await self.request_retry(ticket, who)

    async def copilot(self, ticket: asyncpg.Record, who: Identity) -> None:
        """The socket's copilot.request (AiControl)."""
        await self.request_copilot(ticket, who)

    async def request_retry(
        self, ticket: asyncpg.Record, who: Identity, *, client_address: str | None = None
    ) -> dict[str, Any]:
        """Generate the reply to the latest customer message again (after a failure, typically).
        `ticket` was loaded as visible to `who` (the customer who owns it, or staff)."""
        if not ticket["ai_enabled"]:
            raise conflict("AI replies are off for this ticket")
        latest = await ai_db.latest_customer_message(self.pool, ticket["id"])
        if latest is None:
            raise conflict("There is no customer message to reply to")
        await self._ensure_idle(ticket["id"], REPLY, "A reply is already being generated for this ticket")
        gen = self._spawn(ticket, REPLY, latest, supersede=False, client_address=client_address)
        return {"reply_id": str(gen.reply_id), "in_reply_to": latest["seq"]}

    async def request_copilot(self, ticket: asyncpg.Record, who: Identity) -> dict[str, Any]:
        """Stream a suggested reply to the agents of the room (staff_only events, not stored)."""
        if not who.is_staff:
            raise forbidden("Only agents can ask the copilot")
        await self._ensure_idle(ticket["id"], COPILOT, "A suggestion is already being written for this ticket")
        latest = await ai_db.latest_customer_message(self.pool, ticket["id"])
        gen = self._spawn(ticket, COPILOT, latest, supersede=False)
        return {"reply_id": str(gen.reply_id), "in_reply_to": gen.in_reply_to}

    async def take_over(self, ticket_id: uuid.UUID, who: Identity) -> None:
        """An agent speaks: the AI goes off for this ticket and its reply in flight stops."""
        await self._stop_reply(ticket_id, "takeover")
        await ticket_service.update_ticket(self.pool, self._publisher(), who, ticket_id, {"ai_enabled": False})

    async def hand_off(
        self, ticket_id: uuid.UUID, reason: str, text: str, *, current: Generation | None = None
    ) -> None:
        """Give the ticket to a human: AI off, waiting_for_agent on (it shows in the inbox), and
        a system message telling the customer."""
        await self._stop_reply(ticket_id, "handoff", keep=current)
        publisher = self._publisher()
        row = await tickets_db.get_ticket(self.pool, ticket_id)
        if row is None:
            return
        wanted = {"ai_enabled": False, "waiting_for_agent": True}
        changes = {k: v for k, v in wanted.items() if row[k] != v}
        if changes:
            row = await tickets_db.update_ticket(self.pool, ticket_id, changes)
            if row is None:
                return
            await publish_ticket_change(publisher, row, sorted(changes), None)
        stored = await messages_db.insert_message(
            self.pool,
            ticket_id=ticket_id,
            author_id=None,
            author_kind="system",
            body=text,
            client_id=None,
            metadata={"handoff": reason},
            # The outbox event integrators see for a handoff, stored with its notice.
            event=events_db.TICKET_HANDOFF,
            event_fields={"reason": reason},
        )
        if stored is not None:
            message = message_view(stored[0])
            await publisher.publish(events.message_created(message))
            await publisher.publish(events.inbox_message_created(message))
        log.info("ticket %s handed to a human (%s)", ticket_id, reason)
        if self.after_handoff is not None:
            try:
                await self.after_handoff(ticket_id)
            except Exception as exc:
                # The handoff itself is done; the routing sweep assigns the ticket later.
                if is_unavailable(exc):
                    log.warning("could not route handed-off ticket %s: database unavailable", ticket_id)
                else:
                    log.exception("could not route handed-off ticket %s", ticket_id)

    def observe(self, event: Event) -> None:
        """Hub observer: every event this instance receives, from any instance. Synchronous."""
        self.tracker.observe(event)
        frame = event.frame
        kind = frame.get("type")
        if kind == "ticket.updated":
            ticket = frame["ticket"]
            if "ai_enabled" in frame.get("changes", ()) and not ticket["ai_enabled"]:
                gen = self.generations.get((str(ticket["id"]), REPLY))
                if gen is not None:
                    gen.cancel("takeover")
        elif kind == "message.created":
            message = frame["message"]
            if message["author_kind"] == "customer" and message["visibility"] == "public":
                gen = self.generations.get((str(message["ticket_id"]), REPLY))
                if gen is not None and gen.in_reply_to is not None and message["seq"] > gen.in_reply_to:
                    gen.cancel("superseded")
        elif kind == "ai.tool_call":
            self.tools.observe(frame)
        elif kind == "ai.started" and frame.get("kind") == REPLY:
            # Another instance started a newer reply for this ticket: ours is stale.
            ticket_id = event.channel.split(":", 1)[1]
            gen = self.generations.get((ticket_id, REPLY))
            if gen is not None and gen.started and str(gen.reply_id) != str(frame["reply_id"]):
                gen.cancel("superseded")

    async def close(self) -> None:
        """Shutdown: cancel every generation and wait for them (they publish ai.cancelled)."""
        for gen in list(self.generations.values()):
            gen.cancel("shutdown")
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=5)
        await self.tools.close()

    # ---- generations -----------------------------------------------------------------------

    async def follow_up_orphan(self, ticket_id: uuid.UUID, in_reply_to: int | None, attempt: int) -> None:
        """A reply whose instance died was ended (orphans.py): the ticket's latest customer message
        is answered again, or handed to a person when this was its last attempt. Nothing happens
        when a person has the ticket already, or the latest message has a complete reply."""
        if (str(ticket_id), REPLY) in self.generations:
            return  # a reply for the ticket is starting here already (a newer message's)
        ticket = await tickets_db.get_ticket(self.pool, ticket_id)
        if ticket is None or not ticket["ai_enabled"]:
            return
        latest = await ai_db.latest_customer_message(self.pool, ticket_id)
        if latest is None:
            return
        stored = await ai_db.reply_to(self.pool, ticket_id, latest["seq"])
        if stored is not None and not stored["metadata"].get("incomplete"):
            return
        # A newer message than the orphan answered had no generation of its own (its instance
        # died before claiming one): it gets a first attempt.
        attempt = attempt + 1 if latest["seq"] == in_reply_to else 1
        if attempt > MAX_ATTEMPTS:
            await self.hand_off(ticket_id, "instance_lost", handoff.AI_UNAVAILABLE)
            return
        log.info(
            "AI reply to message %s of ticket %s: attempt %d after its instance died", latest["seq"], ticket_id, attempt
        )
        self._spawn(ticket, REPLY, latest, supersede=False, attempt=attempt)

    async def publish_event(self, event: Event, *, track: bool = True) -> None:
        """Publish for another part of the AI layer (the orphan sweeper)."""
        if track:
            await self._publish(event)
        else:
            await self._publisher().publish(event)

    def _spawn(
        self,
        ticket: Mapping[str, Any],
        kind: str,
        answering: Mapping[str, Any] | None,
        *,
        supersede: bool,
        attempt: int = 1,
        client_address: str | None = None,
    ) -> Generation:
        """Generate a reply to the customer message `answering` (for the copilot: a suggestion
        after it, or None when the customer has not written yet)."""
        ticket_id = ticket["id"]
        key = (str(ticket_id), kind)
        previous = self.generations.get(key)
        if previous is not None:
            previous.cancel("superseded")
        in_reply_to = answering["seq"] if answering is not None else None
        gen = Generation(
            ticket_id, kind, in_reply_to, supersede, _kb_query(ticket, answering), previous, attempt, client_address
        )
        self.generations[key] = gen
        task = asyncio.get_running_loop().create_task(self._run(gen), name=f"ai-{kind}-{ticket_id}")
        gen.task = task
        self.tasks.add(task)
        task.add_done_callback(lambda t: self._finished(gen, t))
        return gen

    def _finished(self, gen: Generation, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        key = (str(gen.ticket_id), gen.kind)
        if self.generations.get(key) is gen:
            del self.generations[key]

    async def _ensure_idle(self, ticket_id: uuid.UUID, kind: str, message: str) -> None:
        gen = self.generations.get((str(ticket_id), kind))
        if gen is not None and not gen.settled:
            raise conflict(message)
        claim = await ai_db.get_claim(self.pool, ticket_id, kind)
        if claim is not None and claim["live"]:
            raise conflict(message)

    async def _stop_reply(self, ticket_id: uuid.UUID, reason: str, keep: Generation | None = None) -> None:
        """Cancel the reply in flight for a ticket: here at once, elsewhere through its claim."""
        gen = self.generations.get((str(ticket_id), REPLY))
        if gen is not None and gen is not keep:
            gen.cancel(reason)
            await gen.wait(CANCEL_WAIT)
        if keep is None:
            await ai_db.drop_claim(self.pool, ticket_id, REPLY)

    async def _run(self, gen: Generation) -> None:
        try:
            if gen.previous is not None:
                await gen.previous.wait()
                gen.previous = None
            if gen.kind == REPLY:
                # In-process counters: no database round trip before the Groq request (limits.py).
                refused = self.limits.hit(gen.client_address)
                if refused is not None:
                    gen.settled = True  # the handoff's own ticket.updated must not cancel it
                    log.warning(
                        "AI reply for ticket %s refused (%s, address %s)", gen.ticket_id, refused, gen.client_address
                    )
                    await self.hand_off(gen.ticket_id, refused, REFUSED_TEXTS[refused], current=gen)
                    return
            try:
                start, history, articles = await self._prepare(gen)
            except BaseException:
                # The claim may be ours already: a read beside it failed, or we were cancelled.
                with contextlib.suppress(Exception):
                    await ai_db.release_claim(self.pool, gen.ticket_id, gen.kind, gen.reply_id)
                raise
            if not start.claimed:
                log.info("AI %s for ticket %s is already running elsewhere", gen.kind, gen.ticket_id)
                return
            heartbeat = asyncio.get_running_loop().create_task(self._heartbeat(gen))
            try:
                await self._generate(gen, start, history, articles)
            finally:
                heartbeat.cancel()
                await asyncio.wait({heartbeat})
                await ai_db.release_claim(self.pool, gen.ticket_id, gen.kind, gen.reply_id)
        except asyncio.CancelledError:
            if gen.batcher is not None:
                await gen.batcher.abort()
            if gen.started and not gen.settled:
                reason = gen.cancel_reason or "shutdown"
                with contextlib.suppress(Exception):
                    await self._publish(events.ai_cancelled(gen.ticket_id, str(gen.reply_id), gen.kind, reason))
                with contextlib.suppress(Exception):
                    await self._charge_unfinished(gen)
                with contextlib.suppress(Exception):
                    await self.tools.abandon(gen.reply_id, reason)
                log.info("AI %s %s for ticket %s cancelled (%s)", gen.kind, gen.reply_id, gen.ticket_id, reason)
            raise
        except Exception as exc:
            # A bug or the database failing: the room must not be left with a stream that never ends.
            if is_unavailable(exc):
                # An outage, already logged once by the pool's health (db/pool.py): no traceback. A
                # claim left behind expires and the sweeper answers the question again (docs/ai.md).
                log.warning(
                    "AI %s %s for ticket %s stopped: database unavailable (%s)",
                    gen.kind,
                    gen.reply_id,
                    gen.ticket_id,
                    type(exc).__name__,
                )
            else:
                log.exception("AI %s %s for ticket %s crashed", gen.kind, gen.reply_id, gen.ticket_id)
            if gen.batcher is not None:
                await gen.batcher.abort()
            with contextlib.suppress(Exception):
                await self.tools.abandon(gen.reply_id, "failed")
            if gen.started and not gen.settled:
                with contextlib.suppress(Exception):
                    await self._publish(
                        events.ai_failed(
                            gen.ticket_id,
                            str(gen.reply_id),
                            gen.kind,
                            "ai_error",
                            "The AI reply failed unexpectedly; try again.",
                            True,
                            None,
                        )
                    )

    async def _settle(self, gen: Generation) -> None:
        """The outcome is decided: no more cancelling, and the ticket is free for the next
        generation before anyone hears of this one's end (so a retry right after works)."""
        gen.settled = True
        await ai_db.release_claim(self.pool, gen.ticket_id, gen.kind, gen.reply_id)

    async def _prepare(self, gen: Generation) -> tuple[ai_db.GenerationStart, list[dict[str, Any]], list[Article]]:
        """The database work before the Groq request: three queries at once, each on its own pool
        connection, since none needs another's result: the claim with the ticket, its customer
        and the budget (one statement, the only commit), the history, and the knowledge-base
        search. The reads are wasted when the claim or the budget says no; they are cheap."""
        settings = self.settings
        # A reply answers one customer message (later ones supersede it); the copilot drafts the
        # agent's next message, so it reads everything up to now. Customer-facing replies never
        # read internal notes, not even to trim them.
        visibility = "public" if gen.kind == REPLY else None
        if gen.kind == REPLY and gen.in_reply_to is not None:
            history = messages_db.list_before(self.pool, gen.ticket_id, gen.in_reply_to + 1, visibility, HISTORY_FETCH)
        else:
            history = messages_db.list_latest(self.pool, gen.ticket_id, visibility, HISTORY_FETCH)
        async with asyncio.TaskGroup() as group:
            started = group.create_task(
                ai_db.start_generation(
                    self.pool,
                    gen.ticket_id,
                    gen.kind,
                    gen.reply_id,
                    self.instance_id,
                    gen.in_reply_to,
                    settings.ai_claim_lease_seconds,
                    supersede=gen.supersede,
                    budget=self.budget if gen.kind == REPLY else None,
                    attempt=gen.attempt,
                )
            )
            rows = group.create_task(history)
            articles = group.create_task(
                self.knowledge.search(gen.kb_query[0], settings.ai_kb_articles, context=gen.kb_query[1])
            )
        return started.result(), [message_view(r) for r in rows.result()], articles.result()

    async def _heartbeat(self, gen: Generation) -> None:
        """Extend the lease while streaming; a claim that is gone means someone stopped us."""
        interval = self.settings.ai_claim_heartbeat_seconds
        lease = self.settings.ai_claim_lease_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                ours = await ai_db.extend_claim(self.pool, gen.ticket_id, gen.kind, gen.reply_id, lease)
                if ours:
                    continue
                claim = await ai_db.get_claim(self.pool, gen.ticket_id, gen.kind)
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("could not extend the AI claim of ticket %s: %s", gen.ticket_id, exc)
                continue
            gen.cancel("superseded" if claim is not None else "takeover")
            return

    async def _generate(
        self,
        gen: Generation,
        start: ai_db.GenerationStart,
        history: list[dict[str, Any]],
        articles: list[Article],
    ) -> None:
        ticket = start.ticket
        if ticket is None:
            return
        if gen.kind == REPLY:
            if not ticket["ai_enabled"]:
                return
            if start.refused is not None:
                await self._settle(gen)
                await self.hand_off(gen.ticket_id, start.refused, REFUSED_TEXTS[start.refused], current=gen)
                return
        prompt = self._prompt(gen, ticket, start.customer_name, history, articles)
        gen.prompt = prompt
        settings = self.settings
        gen.batcher = DeltaBatcher(
            lambda offset, text: self._send_delta(gen, offset, text),
            window=settings.ai_delta_window_ms / 1000,
            max_chars=settings.ai_delta_max_chars,
        )
        await self._publish(events.ai_started(gen.ticket_id, str(gen.reply_id), gen.kind, gen.in_reply_to))
        gen.started = True
        gen.batcher.start()
        began = time.monotonic()
        try:
            if self.groq is not None:
                outcome = await self._converse(gen, prompt)
            else:
                text = await self._offline_action(gen, prompt) if gen.kind == REPLY else None
                outcome = await offline.stream_text(text or self._offline_text(gen, prompt), gen.add)
            model_handoff = handoff.handoff_call(outcome.tool_calls) if gen.kind == REPLY else None
            if model_handoff is None and not gen.text.strip():
                raise GenerationError(
                    "ai_empty_reply", "The AI service sent an empty reply; try again.", retryable=True
                )
        except GenerationError as err:
            await gen.batcher.finish()
            await self._fail(gen, err, prompt)
            return
        await gen.batcher.finish()
        if model_handoff is not None:
            await self._model_handoff(gen, outcome, prompt, model_handoff, time.monotonic() - began)
            return
        await self._complete(gen, outcome, prompt, time.monotonic() - began)

    async def _converse(self, gen: Generation, prompt: Prompt) -> StreamOutcome:
        """Stream the model's answer. A customer-facing reply offers it the handoff tool and the
        enabled actions: when it calls actions, they run (tools.py) and the conversation goes
        on with their results, until it answers in words (or hands off). The text of every round
        is the one reply; the usage of all rounds is summed."""
        assert self.groq is not None  # only called with a Groq client
        settings = self.settings
        actions = await self.tools.actions() if gen.kind == REPLY else []
        tools = [handoff.HANDOFF_TOOL, *(a.tool() for a in actions)] if gen.kind == REPLY else None
        budget = CallBudget(settings.ai_actions_max_calls_per_reply)
        messages: list[dict[str, Any]] = list(prompt.messages)
        usage: dict[str, int] = {}
        rounds = 0
        while True:
            rounds += 1
            before = len(gen.text)
            separate = before > 0 and not gen.text[-1].isspace()

            def on_text(piece: str) -> None:
                nonlocal separate
                if separate:
                    separate = False
                    gen.add("\n\n")
                gen.add(piece)

            outcome = await stream_chat(
                self.groq,
                model=settings.groq_model,
                messages=messages,
                max_tokens=settings.ai_max_reply_tokens,
                temperature=settings.ai_temperature,
                on_text=on_text,
                tools=tools,
                # Out of calls: the model must answer with what it has.
                tool_choice="none" if tools and budget.left <= 0 else "auto",
            )
            for name, value in (outcome.usage or {}).items():
                if isinstance(value, int):
                    usage[name] = usage.get(name, 0) + value
            calls = [c for c in outcome.tool_calls if c["name"] != handoff.HANDOFF_TOOL_NAME]
            if (
                gen.kind != REPLY
                or not calls
                or handoff.handoff_call(outcome.tool_calls) is not None
                or rounds > settings.ai_actions_max_calls_per_reply + 1
            ):
                break
            for i, call in enumerate(calls):
                call["id"] = call["id"] or f"call_{gen.reply_id.hex[:8]}_{rounds}_{i}"
            results = await self.tools.run(gen.ticket_id, gen.reply_id, calls, actions, budget)
            messages.append(
                {
                    "role": "assistant",
                    "content": gen.text[before:].strip() or None,
                    "tool_calls": [
                        {
                            "id": c["id"],
                            "type": "function",
                            "function": {"name": c["name"], "arguments": c["arguments"]},
                        }
                        for c in calls
                    ],
                }
            )
            messages.extend(results)
        if rounds > 1 and usage:
            outcome.usage = {**(outcome.usage or {}), **usage}
        return outcome

    async def _model_handoff(
        self, gen: Generation, outcome: StreamOutcome, prompt: Prompt, reason: str, seconds: float
    ) -> None:
        """The model called handoff_to_human: what it said first (if anything) is stored as its
        reply, an empty reply is cancelled, and the ticket goes to a person."""
        if gen.text.strip():
            await self._complete(gen, outcome, prompt, seconds)
        else:
            usage = outcome.usage or {}
            if usage:
                await ai_db.add_usage(
                    self.pool,
                    gen.ticket_id,
                    replies=0,
                    prompt_tokens=int(usage.get("prompt_tokens") or 0),
                    completion_tokens=int(usage.get("completion_tokens") or 0),
                    total_tokens=int(usage.get("total_tokens") or 0),
                )
            await self._settle(gen)
            await self._publish(events.ai_cancelled(gen.ticket_id, str(gen.reply_id), REPLY, "handoff"))
        log.info("AI reply %s for ticket %s: the model handed off (%s)", gen.reply_id, gen.ticket_id, reason)
        await self.hand_off(gen.ticket_id, "ai_decided", handoff.AI_DECIDED, current=gen)

    async def _send_delta(self, gen: Generation, offset: int, text: str) -> None:
        if gen.cancel_reason is not None:
            return  # cancelled: not one more character reaches the room
        await self._publish(events.ai_delta(gen.ticket_id, str(gen.reply_id), gen.kind, offset, text))

    async def _publish(self, event: Event) -> None:
        if self.feed_tracker_directly:
            self.tracker.observe(event)
        await self._publisher().publish(event)

    def _prompt(
        self,
        gen: Generation,
        ticket: Mapping[str, Any],
        customer_name: str,
        history: list[dict[str, Any]],
        articles: list[Article],
    ) -> Prompt:
        customer = {"name": customer_name}
        view = ticket_view(ticket)
        if gen.kind == REPLY:
            return self.prompts.reply(view, customer, history, articles)
        return self.prompts.copilot(view, customer, history, articles)

    async def _offline_action(self, gen: Generation, prompt: Prompt) -> str | None:
        """The demo's offline path (DEMO_SHOP, no Groq key): a question naming an order is looked
        up with the demo action, through the same runner (events, log, guard) a model's call
        takes. None when it does not apply; the knowledge-base answer is given instead."""
        if not self.settings.demo_shop:
            return None
        question = next((m["content"] for m in reversed(prompt.messages) if m["role"] == "user"), "")
        match = demo_shop.ORDER_QUESTION.search(question)
        actions = [a for a in await self.tools.actions() if a.name == demo_shop.DEMO_ACTION_NAME and not a.mutating]
        if match is None or not actions:
            return None
        arguments = orjson.dumps({"order_id": match.group(1)}).decode()
        call = {"id": f"offline_{gen.reply_id.hex[:12]}", "name": demo_shop.DEMO_ACTION_NAME, "arguments": arguments}
        [result] = await self.tools.run(gen.ticket_id, gen.reply_id, [call], actions, CallBudget(1))
        return offline.compose_action_reply(demo_shop.describe_order_result(result["content"]))

    def _offline_text(self, gen: Generation, prompt: Prompt) -> str:
        question = next((m["content"] for m in reversed(prompt.messages) if m["role"] == "user"), "")
        if gen.kind == COPILOT:
            return offline.compose_suggestion(prompt.articles, question)
        return offline.compose_reply(prompt.articles, question)

    def _metadata(self, gen: Generation, prompt: Prompt) -> dict[str, Any]:
        return {
            "reply_id": str(gen.reply_id),
            "in_reply_to": gen.in_reply_to,
            "offline": self.offline,
            "citations": prompt.citations,
            "prompt": {"estimated_tokens": prompt.estimated_tokens, "trimmed_messages": prompt.trimmed},
        }

    async def _complete(self, gen: Generation, outcome: StreamOutcome, prompt: Prompt, seconds: float) -> None:
        text = gen.text
        usage = outcome.usage or {}
        if gen.kind == COPILOT:
            await self._settle(gen)
            await self._publish(events.ai_completed(gen.ticket_id, str(gen.reply_id), COPILOT, None, text))
            return
        metadata = {
            **self._metadata(gen, prompt),
            **outcome.metadata(),
            "incomplete": False,
            "truncated": outcome.finish_reason == "length",
        }
        message = await self._store(gen, text, metadata, completed=True)
        if usage:
            await ai_db.add_usage(
                self.pool,
                gen.ticket_id,
                replies=0,
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
                total_tokens=int(usage.get("total_tokens") or 0),
            )
        if message is None:
            return
        await self._settle(gen)
        await self._publish(events.ai_completed(gen.ticket_id, str(gen.reply_id), REPLY, message, text))
        await self._publisher().publish(events.inbox_message_created(message))
        log.info(
            "AI reply %s for ticket %s: %d chars in %.2fs (%s, %s)",
            gen.reply_id,
            gen.ticket_id,
            len(text),
            seconds,
            outcome.model,
            outcome.finish_reason,
        )

    async def _charge_unfinished(self, gen: Generation) -> None:
        """A reply that failed or was cancelled after its request went to Groq still used tokens:
        the ticket's budget is charged the prompt and the text received, estimated as the prompt
        builder does (~4 characters a token). The copilot and the offline responder cost none."""
        if gen.kind != REPLY or self.groq is None or gen.prompt is None:
            return
        prompt_tokens = gen.prompt.estimated_tokens
        completion_tokens = (len(gen.text) + 3) // 4
        await ai_db.add_usage(
            self.pool,
            gen.ticket_id,
            replies=0,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        )

    async def _fail(self, gen: Generation, err: GenerationError, prompt: Prompt) -> None:
        if err.code not in UNCHARGED_FAILURES:
            await self._charge_unfinished(gen)
        text = gen.text
        partial = None
        if text and gen.kind == REPLY:
            metadata = {
                **self._metadata(gen, prompt),
                "model": self.settings.groq_model if self.groq else offline.OFFLINE_MODEL,
                "incomplete": True,
                "error": err.code,
            }
            partial = await self._store(gen, text, metadata)
        await self._settle(gen)
        await self._publish(
            events.ai_failed(
                gen.ticket_id,
                str(gen.reply_id),
                gen.kind,
                err.code,
                err.message,
                err.retryable,
                partial,
                retry_after=err.retry_after,
            )
        )
        if err.detail:
            await self._publish(
                events.ai_failure_detail(gen.ticket_id, str(gen.reply_id), gen.kind, err.code, err.detail)
            )
        if partial is not None:
            await self._publisher().publish(events.inbox_message_created(partial))
        log.warning(
            "AI %s %s for ticket %s failed: %s (%s)",
            gen.kind,
            gen.reply_id,
            gen.ticket_id,
            err.code,
            err.detail or err.message,
        )
        if gen.kind == REPLY and not err.retryable:
            # Asking again will not help (bad credentials, content filter): a person takes over.
            await self.hand_off(gen.ticket_id, err.code, handoff.AI_UNAVAILABLE, current=gen)

    async def _store(
        self, gen: Generation, text: str, metadata: dict[str, Any], *, completed: bool = False
    ) -> dict[str, Any] | None:
        """Store the reply; a completed one records ai.reply.completed in the same statement."""
        stored = await messages_db.insert_message(
            self.pool,
            ticket_id=gen.ticket_id,
            author_id=None,
            author_kind="ai",
            body=text,
            client_id=None,
            metadata=metadata,
            event=events_db.AI_REPLY_COMPLETED if completed else None,
            event_fields={"reply_id": str(gen.reply_id)} if completed else None,
        )
        return message_view(stored[0]) if stored is not None else None

    # ---- following a reply (the SSE endpoint) ----------------------------------------------

    async def open_reply_stream(self, ticket: asyncpg.Record, *, client_address: str | None = None) -> ReplyStream:
        """Follow the reply to the ticket's latest customer message: attach to it when it is being
        generated (here or elsewhere), return it when it is stored, else start it. Raises the
        ApiError to answer with before any stream begins."""
        ticket_id = ticket["id"]
        latest = await ai_db.latest_customer_message(self.pool, ticket_id)
        if latest is None:
            raise conflict("There is no customer message to reply to")
        seq = latest["seq"]
        watch = self.tracker.watch(str(ticket_id), REPLY)
        try:
            current = next((r for r in self.tracker.active(str(ticket_id), REPLY) if r.in_reply_to == seq), None)
            if current is not None:
                return ReplyStream(self, watch, ticket_id, seq, snapshot=current)
            stored = await ai_db.reply_to(self.pool, ticket_id, seq)
            if stored is not None and not stored["metadata"].get("incomplete"):
                return ReplyStream(self, watch, ticket_id, seq, stored=message_view(stored))
            local = self.generations.get((str(ticket_id), REPLY))
            claim = await ai_db.get_claim(self.pool, ticket_id, REPLY)
            if (local is not None and not local.settled and local.in_reply_to == seq) or (
                claim is not None and claim["live"]
            ):
                return ReplyStream(self, watch, ticket_id, seq)  # it is starting; wait for it
            fresh = await tickets_db.get_ticket(self.pool, ticket_id)
            if fresh is None or not fresh["ai_enabled"]:
                raise conflict("AI replies are off for this ticket")
            gen = self._spawn(fresh, REPLY, latest, supersede=False, client_address=client_address)
            return ReplyStream(self, watch, ticket_id, seq, own=gen)
        except BaseException:
            watch.close()
            raise


class ReplyStream:
    """The events of one reply as (SSE event name, data): started, delta..., then one of
    completed / failed / cancelled. An empty name is a keep-alive."""

    def __init__(
        self,
        service: AiService,
        watch: Watch,
        ticket_id: uuid.UUID,
        in_reply_to: int,
        *,
        snapshot: TrackedReply | None = None,
        stored: dict[str, Any] | None = None,
        own: Generation | None = None,
    ) -> None:
        self.service = service
        self.watch = watch
        self.ticket_id = ticket_id
        self.in_reply_to = in_reply_to
        self.snapshot = snapshot
        self.stored = stored
        self.own = own

    def close(self) -> None:
        self.watch.close()

    async def events(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        try:
            async for item in self._events():
                yield item
        finally:
            self.close()

    async def _events(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        if self.stored is not None:
            yield "completed", _completed_data(self.stored)
            return
        reply_id: str | None = None
        sent = 0
        if self.snapshot is not None:
            reply_id = self.snapshot.reply_id
            yield "started", {"reply_id": reply_id, "kind": REPLY, "in_reply_to": self.in_reply_to}
            text = self.snapshot.text
            if text:
                yield "delta", {"reply_id": reply_id, "offset": 0, "text": text}
                sent = len(text)
        quiet = 0.0
        while True:
            try:
                async with asyncio.timeout(FOLLOW_POLL):
                    frame = await self.watch.queue.get()
            except TimeoutError:
                quiet += FOLLOW_POLL
                final = await self._check_database(reply_id)
                if final is not None:
                    yield final
                    return
                if quiet >= KEEPALIVE_EVERY:
                    quiet = 0.0
                    yield "", {}
                continue
            quiet = 0.0
            kind = frame["type"]
            if kind == "ai.started":
                if reply_id is None and frame.get("in_reply_to") == self.in_reply_to:
                    reply_id = str(frame["reply_id"])
                    yield "started", {"reply_id": reply_id, "kind": REPLY, "in_reply_to": self.in_reply_to}
                continue
            if reply_id is None or str(frame["reply_id"]) != reply_id:
                continue
            if kind == "ai.delta":
                offset, text = frame["offset"], frame["text"]
                if offset + len(text) <= sent or offset > sent:
                    continue
                text = text[sent - offset :]
                yield "delta", {"reply_id": reply_id, "offset": sent, "text": text}
                sent += len(text)
            elif kind == "ai.completed":
                yield "completed", {k: frame[k] for k in ("reply_id", "kind", "message", "text")}
                return
            elif kind == "ai.failed":
                yield "failed", {k: v for k, v in frame.items() if k != "type"}
                return
            elif kind == "ai.cancelled":
                yield "cancelled", {k: v for k, v in frame.items() if k != "type"}
                return

    async def _check_database(self, reply_id: str | None) -> tuple[str, dict[str, Any]] | None:
        """Nothing heard for a while: is the reply stored already, or is nobody generating it?"""
        service = self.service
        stored = await ai_db.reply_to(service.pool, self.ticket_id, self.in_reply_to)
        if stored is not None and (reply_id is None or stored["metadata"].get("reply_id") == reply_id):
            message = message_view(stored)
            if message["metadata"].get("incomplete"):
                return "failed", {
                    "reply_id": message["metadata"].get("reply_id"),
                    "kind": REPLY,
                    "code": message["metadata"].get("error", "ai_error"),
                    "message": "The reply did not finish.",
                    "retryable": True,
                    "partial": message,
                }
            return "completed", _completed_data(message)
        if (str(self.ticket_id), REPLY) in service.generations:
            return None
        claim = await ai_db.get_claim(service.pool, self.ticket_id, REPLY)
        if claim is not None and claim["live"]:
            return None
        # Nobody is generating and nothing is stored: the AI was turned off, or handed off.
        ticket = await tickets_db.get_ticket(service.pool, self.ticket_id)
        reason = "ai_disabled" if ticket is None or not ticket["ai_enabled"] else "no_reply"
        return "cancelled", {"reply_id": reply_id, "kind": REPLY, "reason": reason}


def _kb_query(ticket: Mapping[str, Any], answering: Mapping[str, Any] | None) -> tuple[str, str]:
    """The knowledge-base search for a generation: the customer message it answers (the subject
    when there is none yet), and the ticket's subject as its context."""
    subject = str(ticket["subject"])
    question = answering["body"] if answering is not None else subject
    return str(question), subject


def _completed_data(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "reply_id": message["metadata"].get("reply_id"),
        "kind": REPLY,
        "message": message,
        "text": message["body"],
    }
