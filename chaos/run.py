"""The chaos run: start the cluster, then for each fault a phase of fresh rooms and clients, the
fault, the recovery, a settle period and the invariant checks (checks.py); one table row each.

    python -m chaos [--short] [--faults sigkill,redis-restart,...] [--seed N] [--rooms N] [--keep]

Exit status 0 only when every phase held every invariant.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import bcrypt

from chatserver.db.migrate import apply_migrations
from chatserver.security import issue_token

from .checks import Findings, LogFindings, Room, check_rooms, scan_log
from .clients import Participant, fresh_join
from .procs import SECRET_KEY, FakeGroq, Instance, Postgres, Redis, Supervisor, pg_bin_dir, server_env

# Both instances must be ready and serving this soon after a fault ends (issue #11).
RECOVERY_LIMIT = 15.0
TOKEN_TTL = 6 * 3600


# ---- the cluster -------------------------------------------------------------------------


class Cluster:
    def __init__(self, sup: Supervisor) -> None:
        bin_dir = pg_bin_dir()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL binaries (neither /usr/lib/postgresql/15/bin nor pgserver's)")
        self.sup = sup
        self.pg = Postgres(sup, bin_dir)
        self.redis = Redis(sup)
        self.groq = FakeGroq(sup)
        self.instances: list[Instance] = []

    def start(self) -> None:
        self.pg.init()
        self.pg.start()
        apply_migrations(self.pg.url)
        self.redis.start()
        self.groq.start()
        env = server_env(self.pg.url, self.redis.url, self.groq.url)
        self.instances = [Instance(self.sup, name, env) for name in ("a", "b")]
        for instance in self.instances:
            instance.start(wait=False)
        for instance in self.instances:
            instance.start_wait()


# ---- seeding -----------------------------------------------------------------------------

_USERS = """
INSERT INTO users (email, password_hash, role, display_name)
SELECT $1 || g || '@chaos.example.com', $2, $3, $4 || g FROM generate_series(1, $5) AS g
RETURNING id
"""
_TICKET = "INSERT INTO tickets (customer_id, subject, ai_enabled) VALUES ($1, $2, $3) RETURNING id"


@dataclass
class User:
    id: uuid.UUID
    role: str
    token: str


async def make_users(url: str, role: str, count: int) -> list[User]:
    # Seeded rows and tokens signed with the instances' SECRET_KEY: nobody logs in, so no bcrypt
    # hash per user, only one of a password nobody knows.
    unused = bcrypt.hashpw(uuid.uuid4().bytes, bcrypt.gensalt(4)).decode()
    conn = await asyncpg.connect(url, timeout=10)
    try:
        tag = uuid.uuid4().hex[:8]
        rows = await conn.fetch(_USERS, f"{role}-{tag}-", unused, role, f"Chaos {role} ", count)
    finally:
        await conn.close()
    return [User(r["id"], role, issue_token(SECRET_KEY, r["id"], role, TOKEN_TTL)) for r in rows]


async def make_ticket(url: str, customer: User, ai: bool) -> uuid.UUID:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        ticket_id: uuid.UUID = await conn.fetchval(_TICKET, customer.id, "Chaos ticket", ai)
    finally:
        await conn.close()
    return ticket_id


# ---- a phase -----------------------------------------------------------------------------


@dataclass
class Phase:
    cluster: Cluster
    rng: random.Random
    session: aiohttp.ClientSession
    rooms: list[Room] = field(default_factory=list)
    slow: list[Participant] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    background: set[asyncio.Task[None]] = field(default_factory=set)
    inflight_statuses: Counter[int] = field(default_factory=Counter)

    @property
    def participants(self) -> list[Participant]:
        return [p for room in self.rooms for p in room.participants]

    def start_inflight_reads(self, per_instance: int) -> None:
        """Fire history reads at both instances without waiting for them (they may never end)."""
        for instance in self.cluster.instances:
            for n in range(per_instance):
                room = self.rooms[n % len(self.rooms)]
                task = asyncio.create_task(self._read_history(instance, room))
                self.background.add(task)
                task.add_done_callback(self.background.discard)

    async def _read_history(self, instance: Instance, room: Room) -> None:
        token = room.participants[0].token
        with contextlib.suppress(TimeoutError, aiohttp.ClientError, OSError):
            async with self.session.get(
                f"{instance.base}/tickets/{room.ticket_id}/messages",
                headers={"Authorization": f"Bearer {token}"},
                timeout=aiohttp.ClientTimeout(total=30),
            ) as resp:
                self.inflight_statuses[resp.status] += 1

    async def cancel_background(self) -> None:
        for task in list(self.background):
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)

    def quiet_ai(self) -> None:
        """AI customers stop asking: the question in flight must be answered on its own."""
        for room in self.rooms:
            if room.ai:
                for p in room.participants:
                    p.sending = False


FaultFn = Callable[[Phase], Awaitable[None]]


@dataclass(frozen=True)
class Fault:
    name: str
    what: str
    inject: FaultFn
    ai: bool = False
    slow: bool = False


async def _restart_instance(instance: Instance, down: float) -> None:
    """The fault ends when the new process is started: its start-up counts into the recovery."""
    await asyncio.to_thread(instance.sigkill)
    await asyncio.sleep(down)
    await asyncio.to_thread(instance.start, False)


async def sigkill(ph: Phase) -> None:
    await _restart_instance(ph.cluster.instances[1], 1.0)


async def sigstop(ph: Phase) -> None:
    instance = ph.cluster.instances[1]
    instance.sigstop()
    await asyncio.sleep(6)
    instance.sigcont()


async def redis_restart(ph: Phase) -> None:
    await asyncio.to_thread(ph.cluster.redis.stop)
    await asyncio.sleep(3)
    await asyncio.to_thread(ph.cluster.redis.start)


async def _pg_restart(ph: Phase, sig: int) -> None:
    """Shut PostgreSQL down while every instance has queries waiting on it: the harness holds a
    lock on `messages`, so the history reads it fires (and the clients' sends and joins) sit in
    their pool connections when the server goes away."""
    conn = await asyncpg.connect(ph.cluster.pg.url, timeout=5)
    await conn.execute("BEGIN; LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
    # Twice DB_POOL_MAX per instance: every connection of each pool is checked out and waiting.
    ph.start_inflight_reads(per_instance=12)
    await asyncio.sleep(1.0)
    await asyncio.to_thread(ph.cluster.pg.stop, sig)
    conn.terminate()
    await asyncio.sleep(2)
    await asyncio.to_thread(ph.cluster.pg.start)


async def pg_fast(ph: Phase) -> None:
    await _pg_restart(ph, signal.SIGINT)


async def pg_immediate(ph: Phase) -> None:
    await _pg_restart(ph, signal.SIGQUIT)


async def aborts(ph: Phase, seconds: float = 6.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for p in ph.participants:
            if p not in ph.slow and ph.rng.random() < 0.3:
                p.abort_transport()
        await asyncio.sleep(0.4)


async def slow_consumer(ph: Phase, seconds: float = 8.0) -> None:
    for p in ph.slow:
        p.reading.clear()
    await asyncio.sleep(seconds)
    for p in ph.slow:
        p.reading.set()


async def ai_sigkill(ph: Phase) -> None:
    """Kill the instance generating a reply while it streams (the customer's instance)."""
    customers = [p for room in ph.rooms if room.ai for p in room.participants if p.role == "customer"]
    deadline = time.monotonic() + 15
    target: int | None = None
    while target is None and time.monotonic() < deadline:
        for p in customers:
            if p.streaming and p.connected_to is not None:
                target = p.connected_to
                break
        else:
            await asyncio.sleep(0.05)
    if target is None:
        ph.notes.append("no reply was streaming: killed instance a anyway")
        target = 0
    ph.quiet_ai()
    await _restart_instance(ph.cluster.instances[target], 1.0)


async def combined(ph: Phase) -> None:
    a, b = ph.cluster.instances

    async def later(delay: float, fn: Callable[[], Awaitable[None]]) -> None:
        await asyncio.sleep(delay)
        await fn()

    async def stop_b() -> None:
        b.sigstop()
        await asyncio.sleep(4)
        b.sigcont()

    await asyncio.gather(
        _restart_instance(a, 1.5),
        aborts(ph, 8),
        slow_consumer(ph, 8),
        later(3, lambda: redis_restart(ph)),
        later(7, lambda: pg_fast(ph)),
        later(11, stop_b),
    )


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault("sigkill", "SIGKILL instance b, restart it 1 s later", sigkill),
        Fault("sigstop", "SIGSTOP instance b for 6 s, then SIGCONT", sigstop),
        Fault("redis-restart", "stop Redis for 3 s, start it again", redis_restart),
        Fault("pg-fast", "PostgreSQL fast shutdown with queries in flight, down 2 s", pg_fast),
        Fault("pg-immediate", "PostgreSQL immediate shutdown (crash recovery), down 2 s", pg_immediate),
        Fault("abort", "clients cut their TCP connections at random for 6 s", aborts),
        Fault("slow-consumer", "one agent per busy room stops reading for 8 s", slow_consumer, slow=True),
        Fault("ai-sigkill", "SIGKILL the instance streaming an AI reply, restart 1 s later", ai_sigkill, ai=True),
        Fault("combined", "all of the above overlapping, AI rooms included", combined, ai=True, slow=True),
    )
}
SHORT = ("sigkill", "redis-restart", "pg-fast", "ai-sigkill")


@dataclass
class Row:
    fault: str
    found: Findings
    logs: LogFindings
    recovery: float | None
    early_acks: int
    closes: Counter[str]
    notes: list[str]

    def violations(self) -> list[str]:
        f = self.found
        checks = {
            "acked messages missing from the database": f.lost,
            "acked messages stored twice": f.duplicated,
            "clients whose view differs from the database": f.divergent,
            "messages never acked after the fault": f.unacked,
            "questions neither answered nor handed off": f.unanswered,
            "replies still listed in joined.streams": f.ghosts,
            "500 responses": self.logs.errors_500,
            "tracebacks in the logs": self.logs.tracebacks,
            "acks that arrived before their message.created": self.early_acks,
        }
        found = [f"{n} {what}" for what, n in checks.items() if n]
        if self.recovery is None or self.recovery > RECOVERY_LIMIT:
            found.append(f"instances not ready and serving within {RECOVERY_LIMIT:g} s")
        return found

    @property
    def ok(self) -> bool:
        return not self.violations()


@dataclass
class Options:
    rooms: int = 4
    ai_rooms: int = 2
    warmup: float = 2.0
    after: float = 3.0
    settle: float = 15.0
    # AI rooms in every phase, not only in the AI faults' ones.
    ai_everywhere: bool = False


class Runner:
    def __init__(
        self,
        cluster: Cluster,
        session: aiohttp.ClientSession,
        slow_session: aiohttp.ClientSession,
        seed: int,
        options: Options,
    ) -> None:
        self.cluster = cluster
        self.session = session
        self.slow_session = slow_session
        self.rng = random.Random(seed)
        self.options = options
        self.agents: list[User] = []

    @property
    def bases(self) -> list[str]:
        return [i.ws_base for i in self.cluster.instances]

    async def setup(self) -> None:
        self.agents = await make_users(self.cluster.pg.url, "agent", 3)

    def _participant(self, user: User, ticket: uuid.UUID, name: str, home: int, **kwargs: Any) -> Participant:
        session = kwargs.pop("session", self.session)
        return Participant(
            name=name,
            role=user.role,
            user_id=str(user.id),
            token=user.token,
            ticket_id=ticket,
            instances=self.bases,
            home=home,
            rng=random.Random(self.rng.getrandbits(64)),
            session=session,
            **kwargs,
        )

    async def build(self, fault: Fault) -> Phase:
        ph = Phase(self.cluster, random.Random(self.rng.getrandbits(64)), self.session)
        url = self.cluster.pg.url
        with_ai = fault.ai or self.options.ai_everywhere
        n_ai = self.options.ai_rooms if with_ai else 0
        n_slow = 1 if fault.slow else 0
        customers = await make_users(url, "customer", self.options.rooms + n_ai + n_slow)
        agent1, agent2, agent3 = self.agents
        for i in range(self.options.rooms):
            cust = customers[i]
            ticket = await make_ticket(url, cust, ai=False)
            room = Room(ticket, ai=False)
            room.participants = [
                self._participant(cust, ticket, f"c{i}", i % 2),
                self._participant(agent1, ticket, f"a1-{i}", 0, internal_share=0.3),
                self._participant(agent2, ticket, f"a2-{i}", 1, internal_share=0.3),
            ]
            ph.rooms.append(room)
        for j in range(n_ai):
            cust = customers[self.options.rooms + j]
            ticket = await make_ticket(url, cust, ai=True)
            room = Room(ticket, ai=True)
            # Agents only write internal notes here: a public agent message would take the AI over.
            room.participants = [
                self._participant(cust, ticket, f"q{j}", j % 2, question=True, send_interval=(3.0, 4.5)),
                self._participant(agent1, ticket, f"n{j}", (j + 1) % 2, internal_share=1.0, send_interval=(2.0, 4.0)),
            ]
            ph.rooms.append(room)
        for k in range(n_slow):
            cust = customers[self.options.rooms + n_ai + k]
            ticket = await make_ticket(url, cust, ai=False)
            room = Room(ticket, ai=False)
            # About 1 MB/s into the room: enough to fill the kernel's buffers and the server's
            # queue for the socket that stopped reading well before the heartbeat would cut it.
            big = {"send_interval": (0.02, 0.05), "body_chars": (8000, 9800)}
            # No heartbeat: a client that does not read cannot answer pongs, and must be cut by the server.
            slow = self._participant(agent3, ticket, f"slow{k}", 1, session=self.slow_session, heartbeat=None)
            slow.sending = False
            room.participants = [
                self._participant(cust, ticket, f"s{k}", 0, **big),
                self._participant(agent1, ticket, f"sb{k}", 0, **big),
                self._participant(agent2, ticket, f"sa{k}", 1, **big),
                slow,
            ]
            ph.slow.append(slow)
            ph.rooms.append(room)
        return ph

    async def phase(self, fault: Fault) -> Row:
        await self.ensure_ready()
        offsets = [i.log_size() for i in self.cluster.instances]
        ph = await self.build(fault)
        try:
            recovery, found = await self._drive(ph, fault)
        finally:
            # Also on failure and Ctrl-C: no client may outlive its phase (or the HTTP session).
            for p in ph.participants:
                await p.stop()
            await ph.cancel_background()
        if ph.inflight_statuses:
            ph.notes.append(f"reads in flight at the shutdown answered {dict(ph.inflight_statuses)}")
        for p in ph.slow:
            room = next(r for r in ph.rooms if p in r.participants)
            sent = {q.name: len(q.sent_ids) for q in room.participants if q is not p}
            ph.notes.append(f"slow consumer {p.name} saw {dict(p.stats.closes)}; its room's senders sent {sent}")
        logs = LogFindings()
        for instance, start in zip(self.cluster.instances, offsets, strict=True):
            part = scan_log(instance.log, start)
            logs.errors_500 += part.errors_500
            logs.tracebacks += part.tracebacks
            logs.samples.extend(part.samples)
        closes: Counter[str] = Counter()
        early = 0
        for p in ph.participants:
            closes.update(p.stats.closes)
            closes.update({f"refused:{k}": v for k, v in p.stats.refused.items()})
            closes.update({f"error:{k}": v for k, v in p.stats.errors.items()})
            early += p.stats.early_acks
            if p.stats.pages:
                ph.notes.append(f"{p.name} resumed past the 500-message snapshot: {p.stats.pages} REST page(s)")
            found.details.extend(p.stats.rejected[:3])
        return Row(fault.name, found, logs, recovery, early, closes, ph.notes)

    async def _drive(self, ph: Phase, fault: Fault) -> tuple[float | None, Findings]:
        for p in ph.participants:
            p.start()
        await self._wait_joined(ph)
        await asyncio.sleep(self.options.warmup)
        await fault.inject(ph)
        recovery = await self.recovery_time()
        if recovery is None:
            ph.notes.append(f"not ready and serving {RECOVERY_LIMIT:g} s after the fault: instances restarted")
            await self.restart_unready()
        await asyncio.sleep(self.options.after)
        for p in ph.participants:
            p.sending = False
        settle = self.options.settle + (6.0 if any(room.ai for room in ph.rooms) else 0.0)
        found = await self.settle(ph, settle)
        crashed = {p.name: why for p in ph.participants if (why := p.crashed()) is not None}
        if crashed:
            raise RuntimeError(f"chaos clients crashed (a bug in the harness): {crashed}")
        return recovery, found

    async def _wait_joined(self, ph: Phase) -> None:
        deadline = time.monotonic() + 15
        while any(p.last_seq is None for p in ph.participants):
            if time.monotonic() > deadline:
                raise RuntimeError("clients could not join before the fault")
            await asyncio.sleep(0.05)

    async def settle(self, ph: Phase, seconds: float) -> Findings:
        """Check until every invariant holds or `seconds` pass; the last check is the verdict."""
        deadline = time.monotonic() + seconds
        while True:
            last = time.monotonic() >= deadline
            try:
                found = await check_rooms(self.cluster.pg.url, ph.rooms, with_details=last)
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                if last:
                    raise RuntimeError(f"the database could not be read: {exc}") from exc
                await asyncio.sleep(0.5)
                continue
            if found.delivery_ok or last:
                found.ghosts = await self.ghost_streams(ph)
                if not found.ghosts or last:
                    return found
            await asyncio.sleep(0.5)

    async def ghost_streams(self, ph: Phase) -> int:
        """Replies a fresh socket is told are streaming, on either instance, once all is quiet."""
        ghosts = 0
        agent = self.agents[0]
        for room in ph.rooms:
            if not room.ai:
                continue
            for base in self.bases:
                joined = await fresh_join(self.session, base, room.ticket_id, agent.token)
                if joined is not None and joined.get("type") == "joined":
                    ghosts += len(joined.get("streams") or [])
        return ghosts

    async def probe(self, instance: Instance) -> bool:
        """Ready (/readyz 200) and serving (an authenticated read answers 200)."""
        timeout = aiohttp.ClientTimeout(total=2)
        try:
            async with self.session.get(f"{instance.base}/readyz", timeout=timeout) as resp:
                if resp.status != 200:
                    return False
            headers = {"Authorization": f"Bearer {self.agents[0].token}"}
            async with self.session.get(f"{instance.base}/tickets?limit=1", headers=headers, timeout=timeout) as resp:
                return resp.status == 200
        except (TimeoutError, aiohttp.ClientError, OSError):
            return False

    async def recovery_time(self) -> float | None:
        started = time.monotonic()
        pending = list(self.cluster.instances)
        while pending:
            if time.monotonic() - started > RECOVERY_LIMIT:
                return None
            results = await asyncio.gather(*(self.probe(i) for i in pending))
            pending = [i for i, ok in zip(pending, results, strict=True) if not ok]
            if pending:
                await asyncio.sleep(0.1)
        return round(time.monotonic() - started, 1)

    async def ensure_ready(self) -> None:
        if await self.recovery_time() is None:
            await self.restart_unready()

    async def restart_unready(self) -> None:
        """Isolate the next phase from a wedged instance: restart whatever is not serving."""
        for instance in self.cluster.instances:
            if not await self.probe(instance):
                instance.sigcont()
                await asyncio.to_thread(instance.sigkill)
                await asyncio.to_thread(instance.start)
        deadline = time.monotonic() + 60
        for instance in self.cluster.instances:
            while not await self.probe(instance):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"instance {instance.name} is not serving even after a restart")
                await asyncio.sleep(0.2)


# ---- the report --------------------------------------------------------------------------

COLUMNS = (
    "fault", "sent", "acked", "stored", "lost", "dup", "divergent", "unacked",
    "unanswered", "ghosts", "recovery_s", "500s", "tracebacks", "early_acks", "verdict",
)  # fmt: skip


def row_values(row: Row) -> list[str]:
    f = row.found
    recovery = "wedged" if row.recovery is None else f"{row.recovery:.1f}"
    values = [
        row.fault, f.sent, f.acked, f.stored, f.lost, f.duplicated, f.divergent, f.unacked, f.unanswered,
        f.ghosts, recovery, row.logs.errors_500, row.logs.tracebacks, row.early_acks,
        "ok" if row.ok else "FAIL",
    ]  # fmt: skip
    return [str(v) for v in values]


def print_table(rows: list[Row]) -> None:
    table = [list(COLUMNS), *[row_values(r) for r in rows]]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    for n, line in enumerate(table):
        print("  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(line, widths, strict=True))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def print_row_details(row: Row) -> None:
    for violation in row.violations():
        print(f"  {row.fault}: VIOLATION: {violation}")
    print(f"  {row.fault}: closes/errors seen by clients: {dict(sorted(row.closes.items()))}")
    for note in row.notes:
        print(f"  {row.fault}: {note}")
    for detail in row.found.details[:8]:
        print(f"  {row.fault}: {detail}")
    for sample in row.logs.samples[:5]:
        print(f"  {row.fault}: log: {sample}")


def row_json(row: Row) -> dict[str, Any]:
    return dict(zip(COLUMNS, row_values(row), strict=True)) | {
        "closes": dict(row.closes),
        "notes": row.notes,
        "details": row.found.details,
        "log_samples": row.logs.samples,
    }


# ---- entry point -------------------------------------------------------------------------


def _slow_socket(addr_info: Any) -> Any:
    """A client socket with a tiny receive buffer, set before connecting so the advertised TCP
    window stays small: a client that stops reading then backs up into the server at once."""
    import socket

    family, type_, proto, _, _ = addr_info
    sock = socket.socket(family, type_, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock


async def run(faults: list[Fault], seed: int, options: Options, keep: bool) -> list[Row]:
    sup = Supervisor(keep=keep)
    rows: list[Row] = []
    try:
        started = time.monotonic()
        cluster = Cluster(sup)
        await asyncio.to_thread(cluster.start)
        print(f"cluster up in {time.monotonic() - started:.1f} s ({sup.dir}); seed {seed}", flush=True)
        startup_logs = [scan_log(i.log, 0) for i in cluster.instances]
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, socket_factory=_slow_socket)) as slow,
        ):
            runner = Runner(cluster, session, slow, seed, options)
            await runner.setup()
            await runner.ensure_ready()
            for log in startup_logs:
                for sample in log.samples:
                    print(f"startup: log: {sample}")
            for fault in faults:
                t0 = time.monotonic()
                print(f"-- {fault.name}: {fault.what}", flush=True)
                row = await runner.phase(fault)
                rows.append(row)
                print(f"   {'ok' if row.ok else 'FAIL'} in {time.monotonic() - t0:.0f} s", flush=True)
                print_row_details(row)
        print()
        print_table(rows)
    finally:
        sup.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--short", action="store_true", help=f"only {', '.join(SHORT)} (the CI run)")
    parser.add_argument("--faults", help=f"comma-separated, from: {', '.join(FAULTS)}")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--rooms", type=int, default=4, help="messaging rooms per phase (3 clients each)")
    parser.add_argument("--settle", type=float, default=15.0, help="seconds to wait for the invariants to hold")
    parser.add_argument(
        "--ai-everywhere",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="AI rooms in every phase (default: yes for the full run, no for --short)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs) afterwards")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    if args.faults:
        unknown = [f for f in args.faults.split(",") if f not in FAULTS]
        if unknown:
            parser.error(f"unknown fault(s): {', '.join(unknown)}")
        names = args.faults.split(",")
    else:
        names = list(SHORT if args.short else FAULTS)
    ai_everywhere = not args.short if args.ai_everywhere is None else args.ai_everywhere
    options = Options(rooms=args.rooms, settle=args.settle, ai_everywhere=ai_everywhere)
    try:
        rows = asyncio.run(run([FAULTS[n] for n in names], args.seed, options, args.keep))
    except KeyboardInterrupt:
        print("interrupted: every process started was stopped", file=sys.stderr)
        return 130
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([row_json(r) for r in rows], fh, indent=2)
    failed = [r.fault for r in rows if not r.ok]
    if failed:
        print(f"\nFAILED: {', '.join(failed)}")
        return 1
    print("\nall invariants held")
    return 0
