"""Webhooks: endpoints (admin CRUD), and the delivery machinery every instance runs: fan-out of
outbox events into deliveries, then workers that claim due deliveries (SKIP LOCKED + a lease),
POST them signed in the Standard Webhooks style, and retry with backoff and jitter.

Guarantees (docs/integrations.md): at least once per event and endpoint, with the event id as
the idempotency key; a crashed instance's claims lapse and are sent again by another; one
ticket's events reach an endpoint in order; delivery never touches the message path (the only
cost there is the outbox insert in the message's own statement).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import random
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import asyncpg
import orjson

from ..db import events as events_db
from ..db import webhooks as webhooks_db
from ..db.pool import create_pool
from ..errors import not_found, validation_error
from .outbound import AddressRefused, TargetGuard, TargetRefused, guarded_connector
from .outbox import event_view

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)

# Types an endpoint may subscribe to: the outbox's (db/events.py).
EVENT_TYPES = events_db.EVENT_TYPES
SECRET_PREFIX = "whsec_"
# Response bodies are kept only as an excerpt of this many characters (they may hold anything).
EXCERPT_CHARS = 500
# Retries stop this long after the delivery was created; it is then failed.
DEFAULT_RETRY_FOR_SECONDS = 24 * 3600.0
# The backoff doubles from WEBHOOK_RETRY_BASE_SECONDS up to this.
MAX_BACKOFF_SECONDS = 3600.0
# A claim lasts the request's timeout plus this margin; past it, another instance may send again.
LEASE_MARGIN_SECONDS = 5.0
FAN_OUT_BATCH = 1000
# Idle workers look for work this often (new deliveries also wake them on this instance).
IDLE_POLL_SECONDS = 0.5
# How often blocked deliveries whose predecessor is settled are released, should the statement
# settling it have missed them (db/webhooks.py UNBLOCK_HEADS).
UNBLOCK_SWEEP_SECONDS = 5.0
MAX_URL_CHARS = 2000
MAX_ENDPOINTS_LISTED = 500
USER_AGENT = "chatserver-webhooks/1"
# The delivery machinery's own connections: fan-out, claims, batched outcomes, failures.
DELIVERY_POOL_SIZE = 4


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks: v1,base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")); the key is the
    secret's base64 part, decoded."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def backoff(attempts: int, base: float, rng: random.Random | None = None) -> float:
    """Delay before the next attempt: base doubling per attempt, capped, with "equal jitter" (half
    fixed, half random) so retries of many deliveries spread out."""
    delay = min(MAX_BACKOFF_SECONDS, base * 2 ** max(0, attempts - 1))
    return delay / 2 + (rng or random).uniform(0, delay / 2)


# ---- endpoints (admin REST) ------------------------------------------------------------------


def endpoint_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "url": row["url"],
        "event_types": list(row["event_types"]),
        "include_internal": row["include_internal"],
        "active": row["active"],
        "description": row["description"],
        "disabled_reason": row["disabled_reason"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def delivery_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "endpoint_id": row["endpoint_id"],
        "event_id": f"evt_{row['event_id']}" if row["event_id"] is not None else None,
        "test": row["event_id"] is None,
        "ticket_id": row["ticket_id"],
        "status": row["status"],
        "attempts": row["attempts"],
        "next_attempt_at": row["next_attempt_at"] if row["status"] == "pending" else None,
        "response_status": row["last_status_code"],
        "error": row["last_error"],
        "response_excerpt": row["response_excerpt"],
        "last_attempt_at": row["last_attempt_at"],
        "delivered_at": row["delivered_at"],
        "created_at": row["created_at"],
    }


def check_endpoint_fields(guard: TargetGuard, fields: dict[str, Any]) -> None:
    if "url" in fields:
        url = fields["url"]
        if len(url) > MAX_URL_CHARS:
            raise validation_error("url is too long", details={"fields": {"url": f"at most {MAX_URL_CHARS}"}})
        try:
            guard.check_url(url)
        except TargetRefused as exc:
            raise validation_error(f"url is not allowed: {exc}", details={"fields": {"url": str(exc)}}) from None
    if "event_types" in fields:
        types = fields["event_types"]
        unknown = sorted(set(types) - set(EVENT_TYPES))
        if not types or unknown:
            raise validation_error(
                f"event_types must be a non-empty list of {', '.join(EVENT_TYPES)}",
                details={"fields": {"event_types": f"unknown: {', '.join(unknown)}" if unknown else "empty"}},
            )


async def create_endpoint(pool: asyncpg.Pool, guard: TargetGuard, fields: dict[str, Any]) -> dict[str, Any]:
    """A new endpoint; its signing secret is in this answer only."""
    check_endpoint_fields(guard, fields)
    secret = new_secret()
    row = await webhooks_db.insert_endpoint(
        pool,
        fields["url"],
        sorted(set(fields["event_types"])),
        fields.get("include_internal", False),
        fields.get("active", True),
        secret,
        fields.get("description") or "",
    )
    return {**endpoint_view(row), "secret": secret}


async def list_endpoints(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [endpoint_view(r) for r in await webhooks_db.list_endpoints(pool, MAX_ENDPOINTS_LISTED)]


async def get_endpoint(pool: asyncpg.Pool, endpoint_id: uuid.UUID) -> dict[str, Any]:
    row = await webhooks_db.get_endpoint(pool, endpoint_id)
    if row is None:
        raise not_found("Webhook endpoint")
    return endpoint_view(row)


async def update_endpoint(
    pool: asyncpg.Pool, guard: TargetGuard, endpoint_id: uuid.UUID, changes: dict[str, Any]
) -> dict[str, Any]:
    check_endpoint_fields(guard, changes)
    if "event_types" in changes:
        changes = {**changes, "event_types": sorted(set(changes["event_types"]))}
    if "description" in changes:
        changes = {**changes, "description": changes["description"] or ""}
    row = (
        await webhooks_db.update_endpoint(pool, endpoint_id, changes)
        if changes
        else await webhooks_db.get_endpoint(pool, endpoint_id)
    )
    if row is None:
        raise not_found("Webhook endpoint")
    return endpoint_view(row)


async def delete_endpoint(pool: asyncpg.Pool, endpoint_id: uuid.UUID) -> None:
    if not await webhooks_db.delete_endpoint(pool, endpoint_id):
        raise not_found("Webhook endpoint")


async def list_deliveries(
    pool: asyncpg.Pool, endpoint_id: uuid.UUID, *, status: str | None, before: int | None, limit: int
) -> dict[str, Any]:
    await get_endpoint(pool, endpoint_id)
    rows = await webhooks_db.list_deliveries(pool, endpoint_id, status, before, limit + 1)
    page = rows[:limit]
    return {
        "deliveries": [delivery_view(r) for r in page],
        "next_before": page[-1]["id"] if len(rows) > limit else None,
    }


async def resend(pool: asyncpg.Pool, endpoint_id: uuid.UUID, delivery_id: int) -> dict[str, Any]:
    row = await webhooks_db.resend(pool, endpoint_id, delivery_id)
    if row is None:
        raise not_found("Delivery")
    return delivery_view(row)


async def send_test(pool: asyncpg.Pool, endpoint_id: uuid.UUID) -> dict[str, Any]:
    """Queue a `webhook.test` delivery (signed and retried like any other)."""
    await get_endpoint(pool, endpoint_id)
    payload = {
        "type": "webhook.test",
        "data": {"endpoint_id": str(endpoint_id), "message": "A test event from chatserver"},
    }
    return delivery_view(await webhooks_db.insert_test(pool, endpoint_id, payload))


# ---- delivery ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None
    error: str | None
    excerpt: str | None


async def delivery_pool(database_url: str) -> asyncpg.Pool:
    """The dispatcher's pool, apart from the one that serves requests, with commits that do not
    wait for their WAL flush. A flushed commit costs 1-5 ms of disk wait on a small machine and
    every claim and outcome is one; the message path's commits queue behind the same flushes.
    Losing the last fraction of a second of this bookkeeping in a database crash only means
    sending those deliveries again, which at-least-once delivery allows (same event ids). The
    one exception, disabling an endpoint and announcing it, commits durably (_record_failure)."""
    return await create_pool(database_url, 1, DELIVERY_POOL_SIZE, durable_commits=False)


class WebhookDispatcher:
    """Every instance runs one (unless WEBHOOK_DELIVERY is off there; then webhook-worker
    processes do, see services/webhook_worker.py): a fan-out loop (events -> deliveries; one
    process at a time, the others skip the position row's lock) and `workers` delivery tasks."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        guard: TargetGuard,
        *,
        retry_base: float,
        timeout: float,
        workers: int,
        retry_for: float = DEFAULT_RETRY_FOR_SECONDS,
    ) -> None:
        self.pool = pool
        self.guard = guard
        self.retry_base = retry_base
        self.timeout = timeout
        self.workers = workers
        self.retry_for = retry_for
        self.lease = timeout + LEASE_MARGIN_SECONDS
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        # (delivery id, attempt, status code, excerpt) of successes waiting to be recorded.
        self._delivered: list[tuple[int, int, int, str]] = []
        self._flushing: asyncio.Task[None] | None = None
        self.sent = 0  # attempts made by this instance (tests, metrics)

    @classmethod
    def from_settings(cls, pool: asyncpg.Pool, settings: Settings) -> WebhookDispatcher:
        return cls(
            pool,
            TargetGuard.from_cidrs(settings.webhook_allow_private_networks),
            retry_base=settings.webhook_retry_base_seconds,
            timeout=settings.webhook_timeout_seconds,
            workers=settings.webhook_workers,
            retry_for=settings.webhook_retry_for_seconds,
        )

    def start(self) -> None:
        connector = guarded_connector(self.guard, limit=max(10, self.workers * 2))
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout, sock_connect=min(self.timeout, 5.0)),
            headers={"User-Agent": USER_AGENT},
            auto_decompress=False,
        )
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._fan_out_loop(), name="webhook-fan-out"))
        self._tasks.append(loop.create_task(self._deliver_loop(), name="webhook-deliver"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def nudge(self) -> None:
        """New work may exist (an event was committed, a delivery queued): look now."""
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        # asyncio.timeout, not asyncio.wait_for: on Python 3.11, wait_for loses a cancellation that
        # arrives as the event is set (the wait returns normally), and this loop then ran on
        # forever, holding the app's shutdown (tests hung in teardown about one run in five).
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass
        self._wake.clear()

    async def _fan_out_loop(self) -> None:
        next_sweep = 0.0
        while True:
            try:
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + UNBLOCK_SWEEP_SECONDS
                    if await webhooks_db.unblock_heads(self.pool):
                        self._wake.set()
                row = await webhooks_db.fan_out(self.pool, FAN_OUT_BATCH)
                if row["deliveries"]:
                    self._wake.set()
                if row["events"] >= FAN_OUT_BATCH:
                    continue  # more waiting
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("webhook fan-out failed (%s); trying again", type(exc).__name__)
            await asyncio.sleep(IDLE_POLL_SECONDS)

    async def _deliver_loop(self) -> None:
        """Keeps up to `workers` deliveries in flight: claims more as soon as some finish."""
        in_flight: set[asyncio.Task[None]] = set()
        while True:
            room = self.workers - len(in_flight)
            claimed: list[asyncpg.Record] = []
            if room > 0:
                try:
                    claimed = await webhooks_db.claim_due(self.pool, room, self.lease)
                except (asyncpg.PostgresError, OSError) as exc:
                    log.warning("could not claim webhook deliveries (%s); trying again", type(exc).__name__)
            for row in claimed:
                task = asyncio.get_running_loop().create_task(self._deliver(row))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            if claimed and len(in_flight) < self.workers:
                continue  # there may be more due right now
            if in_flight:
                # Wait for a free slot, or for new work if every slot is busy only briefly.
                await asyncio.wait(set(in_flight), timeout=IDLE_POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED)
            else:
                await self._sleep(IDLE_POLL_SECONDS)

    async def _deliver(self, row: asyncpg.Record) -> None:
        if row["event_id"] is not None and row["type"] is None:
            # The event is past retention (a delivery far older than its retries): nothing to send.
            await self._record_failure(row, Outcome(False, None, "event past retention", None), give_up=True)
            return
        if row["event_id"] is not None:
            envelope = event_view(
                {"id": row["event_id"], "type": row["type"], "created_at": row["created_at"], "data": row["data"]}
            )
            message_id = envelope["id"]
        else:
            message_id = f"test_{row['id']}"
            envelope = {"id": message_id, "created_at": row["delivery_created_at"], **(row["payload"] or {})}
        body = orjson.dumps(envelope)
        outcome = await self.post(row["url"], row["secret"], message_id, body)
        self.sent += 1
        if outcome.ok:
            # Successes are recorded in batches, one statement for all that finish meanwhile.
            self._delivered.append((row["id"], row["attempts"], outcome.status or 0, outcome.excerpt or ""))
            if self._flushing is None:
                self._flushing = asyncio.get_running_loop().create_task(self._flush_delivered())
            return
        try:
            await self._record_failure(row, outcome)
        except (asyncpg.PostgresError, OSError) as exc:
            # The claim lapses and the delivery is sent again: at least once, same event id.
            log.warning("could not record webhook delivery %s (%s)", row["id"], type(exc).__name__)

    async def _flush_delivered(self) -> None:
        try:
            while self._delivered:
                batch, self._delivered = self._delivered, []
                try:
                    await webhooks_db.mark_delivered_many(self.pool, batch)
                except (asyncpg.PostgresError, OSError) as exc:
                    # Their claims lapse and they are sent again: at least once, same event ids.
                    log.warning("could not record %d webhook deliveries (%s)", len(batch), type(exc).__name__)
        finally:
            self._flushing = None

    async def post(self, url: str, secret: str, message_id: str, body: bytes) -> Outcome:
        """One signed POST; never follows redirects; keeps only an excerpt of the answer."""
        assert self._session is not None  # started
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, message_id, timestamp, body),
        }
        try:
            self.guard.check_url(url)
            async with self._session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                raw = await resp.content.read(EXCERPT_CHARS * 4)
                excerpt = raw.decode("utf-8", "replace")[:EXCERPT_CHARS]
                if 200 <= resp.status < 300:
                    return Outcome(True, resp.status, None, excerpt)
                return Outcome(False, resp.status, f"answered {resp.status}", excerpt)
        except TargetRefused as exc:
            return Outcome(False, None, f"refused: {exc}", None)
        except TimeoutError:
            return Outcome(False, None, "timed out", None)
        except aiohttp.ClientError as exc:
            if isinstance(exc.__cause__, AddressRefused):  # aiohttp wraps the resolver's error
                return Outcome(False, None, str(exc.__cause__), None)
            return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:EXCERPT_CHARS], None)
        except OSError as exc:
            return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:EXCERPT_CHARS], None)

    async def _record_failure(self, row: asyncpg.Record, outcome: Outcome, *, give_up: bool = False) -> None:
        attempt = row["attempts"]
        error = outcome.error or "failed"
        delay = backoff(attempt, self.retry_base)
        if not give_up and row["age_seconds"] + delay <= self.retry_for:
            await webhooks_db.mark_retry(self.pool, row["id"], attempt, outcome.status, error, delay, outcome.excerpt)
            return
        reason = f"deliveries kept failing for {self.retry_for:.0f} s (last: {error})"
        async with self.pool.acquire() as conn, conn.transaction():
            # Durable: the disabling is announced on the event feed, which never takes back
            # an event it has shown.
            await conn.execute("SET LOCAL synchronous_commit = on")
            disabled = await webhooks_db.mark_failed(
                conn, row["id"], attempt, outcome.status, error, outcome.excerpt, reason
            )
            if disabled is not None:
                # The notice to admins: a log line and an event on the feed (and to the webhooks
                # that subscribe to it).
                await events_db.record_event(
                    conn,
                    events_db.WEBHOOK_ENDPOINT_DISABLED,
                    {"endpoint": {"id": str(disabled["id"]), "url": disabled["url"]}, "reason": reason},
                )
        if disabled is not None:
            log.warning("webhook endpoint %s (%s) disabled: %s", disabled["id"], disabled["url"], reason)
