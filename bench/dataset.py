"""A large, realistic support dataset built inside PostgreSQL (generate_series, no rows through
Python), for the search and reports benchmarks: N tickets and about M messages over the last 90
days, customers with names and emails (a fifth of them widget visitors identified by the host
site), agents, statuses, priorities, assignees, AI and human replies. No ratings.

    python -m bench.dataset [--tickets 100000] [--messages 1000000] [--keep]

Use from another benchmark:

    from bench.dataset import DatasetSpec, dataset_database
    with dataset_database(base_url, DatasetSpec(tickets=100_000, messages=1_000_000)) as info:
        info.url, info.spec, info.agent_ids, ...

`dataset_database` keeps the database between runs (named after the spec and the migrations), so
a second run starts in seconds; `--fresh` rebuilds it, `drop_dataset_databases()` removes them.
A million messages take about three minutes to build on two cores (most of it the indexes).

What the rows look like (all deterministic for a given `seed`):
- users: `agents` agents ("Agent 1".., agent1@bench.example.com), `customers` customers with
  first/last names from a small en/fr/de/es list and emails first.last<n>@<domain>; every fifth
  customer is a widget visitor (visitor-...@visitors.invalid) with a widget_identities row
  carrying the real email and an external id "ext-<n>".
- tickets: created uniformly over the last `days` days; status open 12%, pending 8%, resolved
  50%, closed 30%; priority low 10%, normal 70%, high 15%, urgent 5%; 85% assigned to an agent;
  a subject made of a topic ("Refund for order A-000123"); waiting_for_agent on 5% of the open ones.
- messages: 1 to 2*M/N-1 per ticket (mean M/N), alternating customer / (ai or agent), 1% internal
  notes; bodies of 8-30 words: common words (Zipf-like), support topics, and rare product words;
  the ticket's order number ("A-000123") in its first message; created a few minutes apart from the
  ticket's creation; the ticket's last_seq and last_activity_at match its last message.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from chatserver.db import search as search_db
from chatserver.db.migrate import MIGRATIONS_DIR, apply_migrations

from .common import DEFAULT_DATABASE_URL, _with_database


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST_NAMES = _words(
    "alice bob camille david emma felix gabriel hanna ines jonas karin lucas marie noah olivia pablo "
    "quentin rosa sofia thomas ursula victor wiebke xavier yasmin zoe lena mateo chloe lukas"
)
LAST_NAMES = _words(
    "martin bernard dubois schmidt muller garcia lopez rossi smith jones weber fischer moreau "
    "fernandez gonzalez leroy wagner becker hoffmann sanchez roux petit brown taylor wilson"
)
DOMAINS = ("example.com", "mail.example", "shop.example", "corp.example", "post.example")
# Words that appear in most conversations (no stop words in the `simple` configuration).
COMMON = _words(
    "hello hi thanks thank you please the a my is it for to and in of on with i we can not this that "
    "have has be was will would could help need still bonjour merci hallo danke hola gracias por "
    "favor"
)
# What support conversations are about: each appears in a few percent of messages.
TOPICS = _words(
    "order refund delivery parcel invoice payment password account login shipping return exchange "
    "warranty broken damaged missing late tracking address cancel subscription discount coupon size "
    "colour battery charger screen update install error crash sync export import billing receipt "
    "commande remboursement livraison facture paiement compte bestellung rückerstattung lieferung "
    "rechnung zahlung konto pedido reembolso entrega factura pago cuenta"
)
# Rare words: product names (each in well under 0.1% of messages).
PRODUCTS = [
    f"{a}{b}"
    for a in ("kettle", "toaster", "blender", "lamp", "drone", "router", "camera", "watch")
    for b in _words("100 200 300 400 500 600 700 800 900 pro max mini lite plus neo air")
]
TOPIC_SUBJECTS = (
    "Refund for order",
    "Where is my parcel",
    "Cannot log in",
    "Invoice question",
    "Broken item in order",
    "Change delivery address",
    "Cancel my subscription",
    "Payment failed",
)


@dataclass(frozen=True)
class DatasetSpec:
    tickets: int = 100_000
    messages: int = 1_000_000
    customers: int = 20_000
    agents: int = 20
    days: int = 90
    seed: float = 0.42

    def name(self) -> str:
        """The database's name: the spec, the migrations and the SQL it was built with (a change to
        any of them builds a new one)."""
        migrations = b"".join(p.read_bytes() for p in sorted(MIGRATIONS_DIR.glob("*.sql")))
        raw = f"{self}|{build_statements(self)}".encode() + migrations
        return f"chatserver_dataset_{self.tickets}_{self.messages}_{hashlib.sha256(raw).hexdigest()[:8]}"


@dataclass
class DatasetInfo:
    url: str
    spec: DatasetSpec
    built_seconds: float | None  # None: reused
    agent_ids: list[uuid.UUID] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def _sql_array(words: tuple[str, ...] | list[str]) -> str:
    # Our own constant word lists (lower-case letters and digits), never input.
    return "ARRAY[" + ",".join(f"'{w}'" for w in words) + "]::text[]"


def build_statements(spec: DatasetSpec) -> list[str]:
    """The SQL that fills an empty, migrated database (in this order, one transaction)."""
    n_t, n_c, n_a = spec.tickets, spec.customers, spec.agents
    per_ticket = max(1.0, spec.messages / spec.tickets)
    max_extra = max(0, round(2 * per_ticket) - 2)  # 1 + [0, max_extra]: mean ~ per_ticket
    first, last, domains = _sql_array(FIRST_NAMES), _sql_array(LAST_NAMES), _sql_array(list(DOMAINS))
    common, topics, products = _sql_array(COMMON), _sql_array(TOPICS), _sql_array(PRODUCTS)
    subjects = "ARRAY[" + ",".join(f"'{s}'" for s in TOPIC_SUBJECTS) + "]::text[]"
    return [
        f"SELECT setseed({spec.seed})",
        # Staff: a bcrypt hash nobody can log in with (benchmarks sign tokens themselves).
        f"""INSERT INTO users (email, password_hash, role, display_name)
            SELECT 'agent' || g || '@bench.example.com', 'x', 'agent', 'Agent ' || g
            FROM generate_series(1, {n_a}) g""",
        f"""CREATE TEMP TABLE bench_customers AS
            SELECT g,
                   ({first})[1 + (g * 7) % {len(FIRST_NAMES)}] AS fn,
                   ({last})[1 + (g * 13) % {len(LAST_NAMES)}] AS ln,
                   ({domains})[1 + g % {len(DOMAINS)}] AS dom
            FROM generate_series(1, {n_c}) g""",
        """INSERT INTO users (email, password_hash, role, display_name)
            SELECT CASE WHEN g % 5 = 0 THEN 'visitor-' || md5(g::text) || '@visitors.invalid'
                        ELSE fn || '.' || ln || g || '@' || dom END,
                   'x', 'customer', initcap(fn) || ' ' || initcap(ln)
            FROM bench_customers""",
        """INSERT INTO widget_identities (external_id, user_id, email)
            SELECT 'ext-' || c.g, u.id, c.fn || '.' || c.ln || c.g || '@' || c.dom
            FROM bench_customers c JOIN users u ON u.email = 'visitor-' || md5(c.g::text) || '@visitors.invalid'""",
        """CREATE TEMP TABLE bench_people AS
            SELECT id, role, row_number() OVER (PARTITION BY role ORDER BY email) AS n FROM users""",
        # One row per ticket with its shape; the message count is decided here.
        f"""CREATE TEMP TABLE bench_tickets AS
            SELECT g,
                   gen_random_uuid() AS id,
                   1 + floor(random() * {n_c})::int AS customer_n,
                   CASE WHEN random() < 0.85 THEN 1 + floor(random() * {n_a})::int END AS agent_n,
                   now() - random() * interval '{spec.days} days' AS created_at,
                   random() AS r_status, random() AS r_priority,
                   1 + floor(random() * ({max_extra} + 1))::int AS n_messages
            FROM generate_series(1, {n_t}) g""",
        f"""INSERT INTO tickets (id, customer_id, subject, description, status, priority, assignee_id,
                                 ai_enabled, waiting_for_agent, last_seq, last_activity_at, created_at, updated_at)
            SELECT t.id, c.id,
                   ({subjects})[1 + t.g % {len(TOPIC_SUBJECTS)}] || ' A-' || lpad(t.g::text, 6, '0'),
                   '',
                   CASE WHEN t.r_status < 0.12 THEN 'open' WHEN t.r_status < 0.20 THEN 'pending'
                        WHEN t.r_status < 0.70 THEN 'resolved' ELSE 'closed' END,
                   CASE WHEN t.r_priority < 0.10 THEN 'low' WHEN t.r_priority < 0.80 THEN 'normal'
                        WHEN t.r_priority < 0.95 THEN 'high' ELSE 'urgent' END,
                   a.id,
                   t.agent_n IS NULL,
                   t.r_status < 0.006,
                   t.n_messages,
                   least(now(), t.created_at + t.n_messages * interval '7 minutes'),
                   t.created_at,
                   least(now(), t.created_at + t.n_messages * interval '7 minutes')
            FROM bench_tickets t
            JOIN bench_people c ON c.role = 'customer' AND c.n = t.customer_n
            LEFT JOIN bench_people a ON a.role = 'agent' AND a.n = t.agent_n""",
        # Bodies: the word picks depend on the row (s.seq, t.g), so PostgreSQL evaluates the
        # subquery per message instead of once.
        f"""INSERT INTO messages (ticket_id, seq, author_id, author_kind, body, visibility, created_at)
            SELECT t.id, s.seq,
                   CASE WHEN s.seq % 2 = 1 THEN c.id WHEN t.agent_n IS NOT NULL THEN a.id END,
                   CASE WHEN s.seq % 2 = 1 THEN 'customer' WHEN t.agent_n IS NULL THEN 'ai' ELSE 'agent' END,
                   CASE WHEN s.seq = 1 THEN 'Order A-' || lpad(t.g::text, 6, '0') || ': ' ELSE '' END
                   || array_to_string(ARRAY(
                        SELECT CASE WHEN r < 0.84 THEN ({common})[1 + floor(power(random(), 2) * {len(COMMON)})::int]
                                    WHEN r < 0.98 THEN ({topics})[1 + floor(power(random(), 1.2) * {len(TOPICS)})::int]
                                    ELSE ({products})[1 + floor(random() * {len(PRODUCTS)})::int] END
                        FROM (SELECT random() AS r, w FROM generate_series(1, 8 + (s.seq * 7 + t.g) % 23) w) picks
                      ), ' '),
                   CASE WHEN s.seq % 2 = 0 AND t.agent_n IS NOT NULL AND random() < 0.02 THEN 'internal'
                        ELSE 'public' END,
                   least(now(), t.created_at + s.seq * interval '7 minutes')
            FROM bench_tickets t
            CROSS JOIN LATERAL generate_series(1, t.n_messages) AS s(seq)
            JOIN bench_people c ON c.role = 'customer' AND c.n = t.customer_n
            LEFT JOIN bench_people a ON a.role = 'agent' AND a.n = t.agent_n
            ORDER BY 7""",
        # Each ticket's search documents (migration 0019): the search indexer's own statement,
        # over every ticket at once, as a live server's indexer would have kept them.
        search_db.INDEX_EVERYTHING,
        search_db.MARK_CAUGHT_UP,
        # Reports' reply bookkeeping on each ticket (migration 0018): the server's statements keep
        # it as they store messages; a bulk load computes it once after.
        "SELECT tickets_recount_replies(NULL)",
    ]


def build(url: str, spec: DatasetSpec, *, quiet: bool = False) -> float:
    """Fill the migrated, empty database at `url`; seconds taken."""
    began = time.monotonic()
    with psycopg.connect(url) as conn:
        conn.execute("SET maintenance_work_mem = '256MB'")
        conn.execute("SET work_mem = '64MB'")
        for statement in build_statements(spec):
            step = time.monotonic()
            conn.execute(statement)  # type: ignore[arg-type]  # our own SQL, built from constants
            if not quiet:
                print(f"  {time.monotonic() - step:6.1f} s  {' '.join(statement.split())[:70]}", flush=True)
        conn.commit()
    # What autovacuum does to a live database, done now: without it the first reads of every page
    # set hint bits and write the page back (a benchmark measuring that measures the bulk load),
    # and ANALYZE gives the planner the statistics of the search columns.
    step = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
    if not quiet:
        print(f"  {time.monotonic() - step:6.1f} s  VACUUM (ANALYZE)", flush=True)
    return time.monotonic() - began


def _counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        out = {}
        for table in ("users", "tickets", "messages"):
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # type: ignore[arg-type]
            out[table] = int(row[0]) if row else 0
        return out


def _agent_ids(url: str) -> list[uuid.UUID]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM users WHERE role = 'agent' ORDER BY email").fetchall()]


@contextlib.contextmanager
def dataset_database(
    base_url: str = DEFAULT_DATABASE_URL, spec: DatasetSpec | None = None, *, fresh: bool = False, keep: bool = True
) -> Iterator[DatasetInfo]:
    """A database on the (loopback) server of `base_url` holding the dataset of `spec`: reused when
    a complete one exists, else built. `keep=False` drops it afterwards."""
    spec = spec or DatasetSpec()
    name = spec.name()
    admin_url = _with_database(base_url, "postgres")
    url = _with_database(base_url, name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None
        if exists and fresh:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')  # type: ignore[arg-type]
            exists = False
    complete = False
    if exists:
        with psycopg.connect(url) as conn:
            complete = conn.execute("SELECT to_regclass('bench_dataset_complete') IS NOT NULL").fetchone() == (True,)
        if not complete:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')  # type: ignore[arg-type]
    built: float | None = None
    if not complete:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        apply_migrations(url)
        built = build(url, spec)
        with psycopg.connect(url, autocommit=True) as conn:
            # Marks a finished build: an interrupted one is rebuilt next time.
            conn.execute("CREATE TABLE bench_dataset_complete (built_at timestamptz DEFAULT now())")
    try:
        yield DatasetInfo(url, spec, built, _agent_ids(url), _counts(url))
    finally:
        if not keep:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def drop_dataset_databases(base_url: str = DEFAULT_DATABASE_URL) -> list[str]:
    """Remove every kept dataset database; their names."""
    with psycopg.connect(_with_database(base_url, "postgres"), autocommit=True) as conn:
        found = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'chatserver_dataset_%'")
        names = [r[0] for r in found.fetchall()]
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
    return names


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--tickets", type=int, default=DatasetSpec.tickets)
    parser.add_argument("--messages", type=int, default=DatasetSpec.messages)
    parser.add_argument("--customers", type=int, default=DatasetSpec.customers)
    parser.add_argument("--fresh", action="store_true", help="rebuild even if a complete copy exists")
    parser.add_argument("--drop", action="store_true", help="drop every kept dataset database and exit")
    args = parser.parse_args(argv)
    if args.drop:
        print("dropped:", ", ".join(drop_dataset_databases(args.database_url)) or "nothing")
        return
    spec = DatasetSpec(tickets=args.tickets, messages=args.messages, customers=args.customers)
    with dataset_database(args.database_url, spec, fresh=args.fresh) as info:
        how = "reused" if info.built_seconds is None else f"built in {info.built_seconds:.0f} s"
        print(f"{Path(info.url).name}: {info.counts} ({how})")


if __name__ == "__main__":
    main()
