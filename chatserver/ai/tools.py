"""Running the actions the model calls during a reply (docs/ai.md, "Acting").

A reply offers the model every enabled action as a Groq tool, beside `handoff_to_human`. For
each call the model makes, `ToolRunner.run` checks it (a known action, JSON arguments that fit
the action's schema, the per-reply limit), logs it in ai_tool_calls, tells the room
(`ai.tool_call` with a human label; agents also get `ai.tool_call_detail`), waits for a person's
approval when the action changes something, makes the HTTP request through the SSRF guard, and
returns what the model is told: the answer, bounded, or why the call failed. A failure is
never the customer's error: it is the tool's result, and the model answers with it in mind.

Approvals follow the reply's single-generation rules: a decision is taken only while the reply
still holds the ticket's generation claim (db/actions.py DECIDE_CALL), so a takeover, a
cancellation or a lost instance (which all end the claim) leave nothing to approve; the calls a
reply leaves open are marked cancelled (`abandon`, and the orphan sweeper for a dead instance).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import orjson

from ..db import actions as actions_db
from ..errors import conflict, forbidden, not_found
from ..realtime import events
from ..realtime.events import Event
from ..security import Identity
from ..services.actions import Action, SecretBox, action_from_row
from ..services.outbound import AddressRefused, TargetGuard, TargetRefused, guarded_connector
from ..settings import Settings

log = logging.getLogger(__name__)

USER_AGENT = "chatserver-actions/1"
# Enabled actions are read at most this often per instance (every reply needs them); a change
# made on this instance applies at once (invalidate).
ACTIONS_CACHE_SECONDS = 2.0
MAX_ACTIONS_OFFERED = 100
# How often a call waiting for approval reads its row, should the decision's event not reach
# this instance (the backplane was away).
DECISION_POLL_SECONDS = 1.0
# Characters of an answer kept for agents (the model gets up to AI_ACTIONS_MAX_RESPONSE_BYTES).
EXCERPT_CHARS = 500
MAX_CALLS_LISTED = 500
# Header values shorter than this are not searched for in answers (too likely to match by chance).
REDACT_MIN_CHARS = 6
REDACT_WORD_CHARS = 12
REDACTED = "[redacted]"
DECISIONS = ("approved", "refused")


def call_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """A logged call as agents see it (REST and ai.tool_call_detail)."""
    return {
        "id": row["id"],
        "ticket_id": row["ticket_id"],
        "reply_id": row["reply_id"],
        "name": row["name"],
        "action_id": row["action_id"],
        "arguments": row["arguments"],
        "label": row["label"],
        "mutating": row["mutating"],
        "confirm_by": row["confirm_by"],
        "status": row["status"],
        "decided_by": row["decided_by"],
        "decided_at": row["decided_at"],
        "http_status": row["http_status"],
        "error": row["error"],
        "result_excerpt": row["result_excerpt"],
        "created_at": row["created_at"],
        "finished_at": row["finished_at"],
    }


def customer_call_view(call: Mapping[str, Any]) -> dict[str, Any]:
    """A call as its customer may see it: what the room hears of it."""
    return {k: call[k] for k in ("id", "reply_id", "name", "label", "status", "confirm_by")}


@dataclass(frozen=True)
class HttpOutcome:
    ok: bool
    status: int | None
    error: str | None
    body: str = ""
    truncated: bool = False

    def for_model(self) -> str:
        """The tool message's content: JSON the model reads."""
        result: dict[str, Any] = {"ok": self.ok}
        if self.status is not None:
            result["status"] = self.status
        if self.error:
            result["error"] = self.error
        if self.body:
            parsed: Any = self.body
            if not self.truncated:
                with contextlib.suppress(ValueError):
                    parsed = orjson.loads(self.body)
            result["body"] = parsed
        if self.truncated:
            result["truncated"] = True
        return orjson.dumps(result).decode()


def failure(error: str) -> str:
    """A tool result for a call that did not run."""
    return orjson.dumps({"ok": False, "error": error}).decode()


def redact(text: str, secrets: Mapping[str, str]) -> str:
    """Header values (and their long words: the token of "Bearer <token>") replaced wherever an
    answer echoes them, so the model, and through it the customer, never reads them."""
    for value in secrets.values():
        if len(value) >= REDACT_MIN_CHARS and value in text:
            text = text.replace(value, REDACTED)
        for word in value.split():
            if len(word) >= REDACT_WORD_CHARS and word in text:
                text = text.replace(word, REDACTED)
    return text


@dataclass
class CallBudget:
    """The calls one reply may still make (AI_ACTIONS_MAX_CALLS_PER_REPLY)."""

    left: int


class ToolRunner:
    """One per AI service (instance): the actions cache, the HTTP session, and the calls of this
    instance's replies that wait for a decision."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        publish: Callable[[Event], Awaitable[None]],
        instance_id: str,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self._publish = publish
        self.instance_id = instance_id
        self.guard = TargetGuard.from_cidrs(settings.actions_allow_private_networks)
        self.box = SecretBox(settings.actions_secret_key)
        self._session: aiohttp.ClientSession | None = None
        self._cache: tuple[float, list[Action]] | None = None
        # call id -> the decision, set by the hub observer when ai.tool_call says approved/refused.
        self._waiting: dict[str, asyncio.Future[str]] = {}

    # ---- lifecycle ---------------------------------------------------------------------------

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=guarded_connector(self.guard, limit=100),
                headers={"User-Agent": USER_AGENT},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ---- the actions offered -------------------------------------------------------------------

    def invalidate(self) -> None:
        self._cache = None

    async def actions(self) -> list[Action]:
        """The enabled actions (cached ACTIONS_CACHE_SECONDS). One whose headers cannot be
        decrypted (ACTIONS_SECRET_KEY changed) is left out, with a warning."""
        if self.settings.ai_actions_max_calls_per_reply == 0:
            return []
        now = time.monotonic()
        if self._cache is not None and now - self._cache[0] < ACTIONS_CACHE_SECONDS:
            return self._cache[1]
        found = []
        for row in await actions_db.enabled_actions(self.pool, MAX_ACTIONS_OFFERED):
            try:
                found.append(action_from_row(row, self.box))
            except ValueError as exc:
                log.warning("AI action %s is not offered: %s", row["name"], exc)
        self._cache = (now, found)
        return found

    # ---- running calls -------------------------------------------------------------------------

    async def run(
        self,
        ticket_id: uuid.UUID,
        reply_id: uuid.UUID,
        calls: list[dict[str, str]],
        actions: list[Action],
        budget: CallBudget,
    ) -> list[dict[str, Any]]:
        """Run the model's calls one after the other; returns the follow-up's `tool` messages."""
        by_name = {a.name: a for a in actions}
        messages = []
        for call in calls:
            content = await self._one(ticket_id, reply_id, call, by_name.get(call["name"]), budget)
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": content})
        return messages

    async def _one(
        self,
        ticket_id: uuid.UUID,
        reply_id: uuid.UUID,
        call: dict[str, str],
        action: Action | None,
        budget: CallBudget,
    ) -> str:
        name = call["name"][:100]

        async def refuse(error: str, arguments: Any = None, label: str = "") -> str:
            row = await actions_db.insert_call(
                self.pool,
                ticket_id=ticket_id,
                reply_id=reply_id,
                model_call_id=call["id"][:100],
                action_id=action.id if action is not None else None,
                name=name,
                arguments=arguments,
                label=label,
                mutating=action.mutating if action is not None else False,
                confirm_by=None,
                status="failed",
                instance_id=self.instance_id,
                error=error,
            )
            # Agents only: the room does not hear of a call that never ran.
            await self._publish(events.ai_tool_call_detail(call_view(row)))
            log.info("AI tool call %s for ticket %s not run: %s", name, ticket_id, error)
            return failure(error)

        if budget.left <= 0:
            return await refuse(
                f"limit reached: at most {self.settings.ai_actions_max_calls_per_reply} calls per reply; "
                "answer with what you know"
            )
        budget.left -= 1
        if action is None:
            return await refuse(f"unknown tool {name!r}: there is no such action")
        try:
            arguments = orjson.loads(call["arguments"] or "{}")
        except orjson.JSONDecodeError:
            return await refuse("the arguments are not valid JSON", {"raw": call["arguments"][:1000]})
        if not isinstance(arguments, dict):
            return await refuse("the arguments must be a JSON object", {"raw": call["arguments"][:1000]})
        problems = action.argument_problems(arguments)
        if problems:
            return await refuse("the arguments do not match the schema: " + "; ".join(problems), arguments)

        label = action.human_label(arguments)
        common: dict[str, Any] = {
            "ticket_id": ticket_id,
            "reply_id": reply_id,
            "model_call_id": call["id"][:100],
            "action_id": action.id,
            "name": name,
            "arguments": arguments,
            "label": label,
            "mutating": action.mutating,
            "instance_id": self.instance_id,
        }
        if action.mutating:
            confirm_by = "customer" if action.customer_confirmation else "agent"
            row = await actions_db.insert_call(self.pool, **common, confirm_by=confirm_by, status="awaiting_approval")
            await self._announce(row)
            decision = await self._await_decision(row["id"])
            if decision != "approved":
                return failure(decision)
        else:
            row = await actions_db.insert_call(self.pool, **common, confirm_by=None, status="running")
            await self._announce(row)

        outcome = await self.request(action, arguments)
        finished = await actions_db.finish_call(
            self.pool,
            row["id"],
            "succeeded" if outcome.ok else "failed",
            outcome.status,
            outcome.error,
            outcome.body[:EXCERPT_CHARS] or None,
        )
        if finished is not None:
            await self._announce(finished)
        log.info(
            "AI action %s for ticket %s: %s",
            name,
            ticket_id,
            f"HTTP {outcome.status}" if outcome.ok else outcome.error,
        )
        return outcome.for_model()

    async def _announce(self, row: Mapping[str, Any]) -> None:
        view = call_view(row)
        await self._publish(events.ai_tool_call(view))
        await self._publish(events.ai_tool_call_detail(view))

    async def _await_decision(self, call_id: uuid.UUID) -> str:
        """Wait for a person to approve or refuse (the event, or the row as a backstop); gives
        up after AI_ACTIONS_APPROVAL_TIMEOUT_SECONDS. Returns "approved", or what the model is
        told about why not."""
        key = str(call_id)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        deadline = time.monotonic() + self.settings.ai_actions_approval_timeout_seconds
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    expired = await actions_db.expire_call(self.pool, call_id, "not approved in time")
                    if expired is not None:
                        await self._announce(expired)
                        return "nobody approved this action in time; it was not done"
                    # Decided at the last moment: read what.
                else:
                    await asyncio.wait({future}, timeout=min(remaining, DECISION_POLL_SECONDS))
                status = future.result() if future.done() else None
                if status is None:
                    row = await actions_db.get_call(self.pool, call_id)
                    status = row["status"] if row is not None else "cancelled"
                if status == "approved":
                    return "approved"
                if status == "refused":
                    return "a person refused this action; it was not done: do not try it again"
                if status != "awaiting_approval":
                    return "the action was cancelled"
        finally:
            self._waiting.pop(key, None)

    def observe(self, frame: Mapping[str, Any]) -> None:
        """Hub observer (via AiService.observe): a decision taken on any instance."""
        if frame.get("status") not in DECISIONS:
            return
        future = self._waiting.get(str(frame.get("call_id")))
        if future is not None and not future.done():
            future.set_result(str(frame["status"]))

    async def abandon(self, reply_id: uuid.UUID, reason: str) -> None:
        """A reply ended (cancelled, crashed, its instance lost) with calls still open: they are
        cancelled, and the room told."""
        for row in await actions_db.cancel_open_calls(self.pool, reply_id, reason):
            await self._announce(row)

    # ---- decisions (REST and the socket) -------------------------------------------------------

    async def decide(
        self, ticket: Mapping[str, Any], who: Identity, call_id: uuid.UUID, approve: bool
    ) -> dict[str, Any]:
        """Approve or refuse a call that waits. Agents always may; the ticket's customer only
        where the action allows customer confirmation. `ticket` is visible to `who`."""
        row = await actions_db.get_call(self.pool, call_id)
        if row is None or row["ticket_id"] != ticket["id"]:
            raise not_found("Tool call")
        if not who.is_staff and row["confirm_by"] != "customer":
            raise forbidden("Only an agent can approve this action")
        if row["status"] != "awaiting_approval":
            raise conflict("This action is not waiting for approval")
        decided = await actions_db.decide_call(
            self.pool, call_id, ticket["id"], "approved" if approve else "refused", who.user_id
        )
        if decided is None:
            raise conflict("This action is not waiting for approval")
        await self._announce(decided)
        log.info("AI action %s for ticket %s %s by %s", row["name"], ticket["id"], decided["status"], who.user_id)
        return call_view(decided)

    async def list_calls(self, ticket_id: uuid.UUID) -> list[dict[str, Any]]:
        return [call_view(r) for r in await actions_db.list_calls(self.pool, ticket_id, MAX_CALLS_LISTED)]

    # ---- the HTTP request ----------------------------------------------------------------------

    async def request(self, action: Action, arguments: Mapping[str, Any]) -> HttpOutcome:
        """Make the action's request: guarded target, no redirects, connect and total timeouts,
        at most AI_ACTIONS_MAX_RESPONSE_BYTES read. Header values are redacted from what is
        returned. Never raises for the target's failures."""
        method, url, body = action.request(arguments)
        headers = {"Accept": "application/json", **action.headers}
        if body is not None:
            headers.setdefault("Content-Type", "application/json")
        limit = self.settings.ai_actions_max_response_bytes
        timeout = aiohttp.ClientTimeout(total=action.timeout, sock_connect=min(action.timeout, 5.0))
        try:
            self.guard.check_url(url)
            async with self.session().request(
                method, url, data=body, headers=headers, allow_redirects=False, timeout=timeout
            ) as resp:
                raw = await _read_at_most(resp, limit + 1)
                truncated = len(raw) > limit
                text = redact(raw[:limit].decode("utf-8", "replace"), action.headers)
                if 200 <= resp.status < 300:
                    return HttpOutcome(True, resp.status, None, text, truncated)
                if 300 <= resp.status < 400:
                    return HttpOutcome(False, resp.status, "the API answered with a redirect, which is not followed")
                return HttpOutcome(False, resp.status, f"the API answered {resp.status}", text, truncated)
        except TargetRefused as exc:
            return HttpOutcome(False, None, f"refused: {exc}")
        except TimeoutError:
            return HttpOutcome(False, None, f"timed out after {action.timeout:g} s")
        except aiohttp.ClientError as exc:
            if isinstance(exc.__cause__, AddressRefused):  # aiohttp wraps the resolver's error
                return HttpOutcome(False, None, f"refused: {exc.__cause__}")
            return HttpOutcome(False, None, f"could not reach the API ({type(exc).__name__})")
        except OSError as exc:
            return HttpOutcome(False, None, f"could not reach the API ({type(exc).__name__})")


async def _read_at_most(resp: aiohttp.ClientResponse, size: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < size:
        chunk = await resp.content.read(size - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)
