"""Scenario 5, message throughput: customers in 256 rooms (AI off) send `message.send` over
WebSocket at a fixed total rate; each message is stored, acked and broadcast to the room (the
customer and an agent). Steps up the rate and reports the highest one held with ack p99 <= 50 ms,
then a closed-loop run (each customer sends its next message when the previous one is acked).

    python -m bench.throughput [--rooms 256] [--rates 1000 2000 2500 3000 4000 5000 6000] [--duration 10]
                               [--pool 10] [--workers 2] [--closed-duration 10] [--webhooks 3]
                               [--uploads 4 --upload-kib 1024 --upload-mib-per-s 0]

--webhooks N registers N webhook endpoints for message.created (a sink process answering 204) so
webhook delivery runs during the measurement (issue 16: delivery must not slow the message path);
add --webhook-worker NICE to deliver from a `webhook-worker` process at that niceness instead of
the server (WEBHOOK_DELIVERY=off there; the sink runs at the same niceness).

--nice-clients N runs the load generators below the server's CPU priority, so on a small shared
machine a slowdown measured is the server's and not the load generator's own.

With --uploads N, every step runs twice: as usual, then with N clients uploading files
(POST /tickets/{id}/attachments, one after another each) beside the messages; the rows' `uploads`
column says which, and the summary prints the ack p99 of both (docs/performance.md, "Attachments
beside the message path").

Latency: the sender stamps the send time into client_id; "ack" is send -> ack at the sender,
"delivery" is send -> message.created at the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import orjson

from .common import (
    HOST,
    SECRET_KEY,
    SERVER_ROOT,
    Agent,
    CpuMeter,
    Customer,
    ServerProcess,
    backend_pids,
    base_parser,
    bench_database,
    emit,
    free_port,
    header,
    install_signal_handlers,
    latency_summary,
    print_rows,
    processes,
    seed,
    wait_for_port,
)
from .workers import (
    Participant,
    Worker,
    WorkerPool,
    close_all,
    connect_all,
    merge,
    raise_fd_limit,
    split,
    stamp,
    stamped_ms,
)

ACK_P99_TARGET_MS = 50.0
# A step counts as held when the acks per second reach this share of the offered rate.
HELD_SHARE = 0.97
BODY = "Hello, I have a question about my order (benchmark message)."
# Messaging load must not trip the per-connection send limit (5/s by default): it is a policy
# against one abusive client, not a capacity limit, and a room here sends ~10/s.
SERVER_ENV = {"AI_DEFAULT_ENABLED": "false", "WS_SEND_RATE": 10_000, "WS_SEND_BURST": 10_000}


class UploadLoad:
    """`concurrency` clients uploading `size`-byte PDFs into the customers' tickets, one upload
    after another each, from a thread of this process (the message load runs in the workers)."""

    def __init__(
        self, base_url: str, customers: list[Customer], concurrency: int, size: int, mib_per_s: float = 0.0
    ) -> None:
        self.base_url = base_url
        # 0: as fast as loopback allows; else each client paces itself to its share of this.
        self.seconds_per_upload = concurrency * size / (mib_per_s * 2**20) if mib_per_s > 0 else 0.0
        self.customers = customers
        self.concurrency = concurrency
        # Random bytes behind a PDF header: the server sniffs a PDF, and nothing compresses.
        self.payload = b"%PDF-1.4\n" + os.urandom(max(0, size - 9))
        self.done = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    def start(self) -> None:
        self.done = self.errors = 0
        self._stop.clear()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="uploads", daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
        elapsed = max(1e-9, time.monotonic() - self._started)
        return {
            "uploads_per_s": round(self.done / elapsed, 1),
            "upload_mib_per_s": round(self.done * len(self.payload) / elapsed / 2**20, 1),
            "upload_errors": self.errors,
        }

    async def _main(self) -> None:
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(self._client(session, i) for i in range(self.concurrency)))

    async def _client(self, session: aiohttp.ClientSession, n: int) -> None:
        i = n
        while not self._stop.is_set():
            customer = self.customers[i % len(self.customers)]
            i += self.concurrency
            began = time.monotonic()
            form = aiohttp.FormData()
            form.add_field("file", self.payload, filename="bench.pdf", content_type="application/pdf")
            try:
                async with session.post(
                    f"{self.base_url}/tickets/{customer.tickets[0]}/attachments",
                    data=form,
                    headers={"Authorization": f"Bearer {customer.token}"},
                ) as resp:
                    await resp.read()
                    if resp.status == 201:
                        self.done += 1
                    else:
                        self.errors += 1
            except aiohttp.ClientError:
                self.errors += 1
            pause = self.seconds_per_upload - (time.monotonic() - began)
            if pause > 0:
                await asyncio.sleep(pause)


def room_plan(
    customers: list[Customer],
    agents: list[Agent],
    urls: tuple[str, str],
    agents_per_room: int,
    alternate: bool = False,
) -> list[dict[str, Any]]:
    """One room per customer ticket: the customer on urls[0], its agents on urls[1]; with
    `alternate`, every other room the other way round (customers spread over both servers)."""
    plan = []
    for i, cust in enumerate(customers):
        ticket = str(cust.tickets[0])
        customer_url, agent_url = urls[::-1] if alternate and i % 2 else urls
        plan.append(
            {
                "room": i,
                "ticket": ticket,
                "customer": (cust.token, f"{customer_url}/tickets/{ticket}/ws"),
                "agents": [
                    (agents[j % len(agents)].token, f"{agent_url}/tickets/{ticket}/ws") for j in range(agents_per_room)
                ],
            }
        )
    return plan


class MessagingWorker(Worker):
    """Customers send, everyone in the room receives; acks and deliveries are timed."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.rooms: list[dict[str, Any]] = config["rooms"]
        self.customers: list[Participant] = []
        self.everyone: list[Participant] = []
        self.session: aiohttp.ClientSession | None = None
        self.window_start_ns = 0
        self.acks: list[float] = []
        self.deliveries: list[float] = []
        self.errors: dict[str, int] = {}
        self.waiters: dict[str, asyncio.Future[None]] = {}

    async def setup(self, params: dict[str, Any]) -> dict[str, Any]:
        raise_fd_limit()
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=False))
        for room in self.rooms:
            token, url = room["customer"]
            cust = Participant(room["room"], room["ticket"], token, "customer", url)
            self.customers.append(cust)
            self.everyone.append(cust)
            for token, url in room["agents"]:
                self.everyone.append(Participant(room["room"], room["ticket"], token, "agent", url))
        return await connect_all(self.session, self.everyone, self.on_frame)

    def on_frame(self, p: Participant, frame: dict[str, Any], now: int) -> None:
        kind = frame.get("type")
        if kind == "ack" and p.role == "customer":
            client_id = frame.get("client_id")
            waiter = self.waiters.pop(client_id, None) if client_id else None
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            if client_id and int(client_id.rpartition(":")[2]) >= self.window_start_ns:
                ms = stamped_ms(client_id, now)
                if ms is not None:
                    self.acks.append(ms)
        elif kind == "message.created" and p.role == "agent":
            client_id = frame["message"].get("client_id")
            if client_id and int(client_id.rpartition(":")[2]) >= self.window_start_ns:
                ms = stamped_ms(client_id, now)
                if ms is not None:
                    self.deliveries.append(ms)
        elif kind == "error":
            code = str(frame.get("code"))
            self.errors[code] = self.errors.get(code, 0) + 1

    async def _send(self, cust: Participant, client_id: str) -> None:
        assert cust.ws is not None
        frame = {"type": "message.send", "client_id": client_id, "body": BODY}
        await cust.ws.send_str(orjson.dumps(frame).decode())

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        self.acks, self.deliveries, self.errors = [], [], {}
        warmup, duration = params["warmup"], params["duration"]
        start = time.monotonic_ns()
        self.window_start_ns = start + int(warmup * 1e9)
        window_end_ns = self.window_start_ns + int(duration * 1e9)
        if params["mode"] == "open":
            sent, lateness = await self._open_loop(params["rate"], start, window_end_ns)
        else:
            sent, lateness = await self._closed_loop(window_end_ns), 0.0
        # Let the last acks and deliveries arrive.
        await asyncio.sleep(params.get("drain", 2.0))
        self.window_start_ns = 1 << 62  # ignore stragglers from here on
        return {
            "acks": self.acks,
            "deliveries": self.deliveries,
            "sent_in_window": sent,
            "errors": self.errors,
            "send_lateness_ms": lateness,
            "open_sockets": sum(1 for p in self.everyone if p.ws is not None and not p.ws.closed),
        }

    async def _open_loop(self, rate: float, start_ns: int, end_ns: int) -> tuple[int, float]:
        """Send at `rate` msg/s, spread over the rooms round-robin, on a fixed schedule."""
        interval_ns = 1e9 / rate
        sent = in_window = 0
        worst_late = 0.0
        customers = [c for c in self.customers if c.ws is not None and not c.ws.closed]
        while True:
            now = time.monotonic_ns()
            if now >= end_ns:
                break
            due = int((now - start_ns) / interval_ns) + 1
            if due > sent:
                worst_late = max(worst_late, (now - (start_ns + sent * interval_ns)) / 1e6)
            while sent < due:
                cust = customers[sent % len(customers)]
                client_id = stamp(f"c{cust.room}-{sent}")
                await self._send(cust, client_id)
                if time.monotonic_ns() >= self.window_start_ns:
                    in_window += 1
                sent += 1
            next_at = start_ns + sent * interval_ns
            await asyncio.sleep(max(0.0, (next_at - time.monotonic_ns()) / 1e9))
        return in_window, worst_late

    async def _closed_loop(self, end_ns: int) -> int:
        """Every customer sends its next message as soon as the previous one is acked."""
        loop = asyncio.get_running_loop()
        counts = [0]

        async def customer_loop(cust: Participant) -> None:
            n = 0
            while time.monotonic_ns() < end_ns and cust.ws is not None and not cust.ws.closed:
                client_id = stamp(f"c{cust.room}-k{n}")
                waiter = loop.create_future()
                self.waiters[client_id] = waiter
                await self._send(cust, client_id)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter, 10)
                if int(client_id.rpartition(":")[2]) >= self.window_start_ns:
                    counts[0] += 1
                n += 1

        await asyncio.gather(*(customer_loop(c) for c in self.customers))
        return counts[0]

    async def stop(self) -> None:
        await close_all(self.everyone)
        if self.session is not None:
            await self.session.close()


def measure_step(
    pool: WorkerPool,
    meter_groups: dict[str, list[Any]],
    *,
    mode: str,
    rate: float,
    duration: float,
    warmup: float,
) -> dict[str, Any]:
    """One load step across all workers; the CPU window matches the measured window roughly
    (it includes the warm-up, whose per-message cost is the same)."""
    workers = len(pool.pids)
    meter = CpuMeter({**meter_groups, "clients": pool.handles}).start()
    results = pool.call(
        "run",
        {"mode": mode, "rate": rate / workers, "duration": duration, "warmup": warmup},
        timeout=duration + warmup + 60,
    )
    meter.stop()
    acks = merge(results, "acks")
    deliveries = merge(results, "deliveries")
    errors: dict[str, int] = {}
    for r in results:
        for code, n in r["errors"].items():
            errors[code] = errors.get(code, 0) + n
    achieved = len(acks) / duration
    total_sent = sum(r["sent_in_window"] for r in results)
    server_cpu = sum(v for k, v in meter.seconds.items() if k.startswith("server"))
    row: dict[str, Any] = {
        "mode": mode,
        "offered_per_s": round(rate) if mode == "open" else "-",
        "acked_per_s": round(achieved),
        **latency_summary(acks, "ack_"),
        **{k: v for k, v in latency_summary(deliveries, "delivery_").items() if not k.endswith("_n")},
        "errors": sum(errors.values()),
        "server_us_per_msg": round(1e6 * server_cpu / max(1, achieved * meter.elapsed), 1),
        **meter.summary(),
        "send_late_ms": round(max(r["send_lateness_ms"] for r in results), 1),
        "open_sockets": sum(r["open_sockets"] for r in results),
    }
    row.pop("ack_n", None)
    row["held"] = (
        mode == "open"
        and row["ack_p99_ms"] <= ACK_P99_TARGET_MS
        and achieved >= HELD_SHARE * rate
        and not errors
        and total_sent > 0
    )
    return row


def run(args: Any) -> dict[str, Any]:
    header(
        f"Message throughput: {args.rooms} rooms x (customer + {args.agents_per_room} agent), AI off, "
        f"pool {args.pool}, {args.duration}s per step"
    )
    rows: list[dict[str, Any]] = []
    with bench_database(args.database_url) as url:
        customers, agents = seed(url, customers=args.rooms, tickets_each=1, agents=max(1, args.agents_per_room))
        if args.drop_index:
            # An experiment, on the throwaway database only: what does each index on tickets cost
            # a message (every message bumps last_activity_at, which several indexes carry)?
            drop_indexes(url, args.drop_index)
        env = {**SERVER_ENV, "DB_POOL_MIN": args.pool, "DB_POOL_MAX": args.pool}
        if args.uploads:
            # Bandwidth, not the per-user upload policy, is what this measures.
            env |= {"ATTACHMENT_UPLOADS_PER_WINDOW": 1_000_000, "ATTACHMENT_MAX_BYTES": args.upload_kib * 1024 + 1024}
        sink_stack = contextlib.ExitStack()
        worker: subprocess.Popen[bytes] | None = None
        if args.webhooks:
            niceness = args.webhook_worker if args.webhook_worker is not None else 0
            sink_url = sink_stack.enter_context(webhook_sink(niceness))
            register_webhooks(url, sink_url, args.webhooks)
            env["WEBHOOK_ALLOW_PRIVATE_NETWORKS"] = "127.0.0.0/8"
            if args.webhook_worker is not None:
                env["WEBHOOK_DELIVERY"] = "off"
                worker = sink_stack.enter_context(webhook_worker(url, env, niceness))
        with sink_stack, ServerProcess(url, **env) as server:
            if args.nice_clients:
                # From here on this process (the upload thread) and the client workers it spawns
                # run below the server: on a shared machine they stand in for clients elsewhere.
                os.nice(args.nice_clients)
                print(f"load generators at nice {args.nice_clients}, the server at its own", flush=True)
            plan = room_plan(customers, agents, (server.ws_base, server.ws_base), args.agents_per_room)
            configs = [{"rooms": part} for part in split(plan, args.workers)]
            with WorkerPool(MessagingWorker, configs) as pool:
                connected = pool.call("setup", timeout=120)
                print(f"connected {sum(r['connected'] for r in connected)} sockets", flush=True)
                assert server.ps is not None
                groups = {"server": [server.ps], "postgres": processes(backend_pids(url))}
                if worker is not None:
                    groups["webhook_worker"] = processes([worker.pid])
                best = 0.0
                uploads = UploadLoad(
                    server.base_url, customers, args.uploads, args.upload_kib * 1024, args.upload_mib_per_s
                )
                for rate in args.rates:
                    row = measure_step(pool, groups, mode="open", rate=rate, duration=args.duration, warmup=args.warmup)
                    rows.append({"uploads": 0, **row})
                    print_rows([rows[-1]])
                    if args.uploads:
                        uploads.start()
                        try:
                            loaded = measure_step(
                                pool, groups, mode="open", rate=rate, duration=args.duration, warmup=args.warmup
                            )
                        finally:
                            upload_stats = uploads.stop()
                        rows.append({"uploads": args.uploads, **loaded, **upload_stats})
                        print_rows([rows[-1]])
                        print(
                            f"{rate:,.0f} msg/s: ack p99 {row['ack_p99_ms']} ms without uploads, "
                            f"{loaded['ack_p99_ms']} ms with {args.uploads} uploading "
                            f"({upload_stats['upload_mib_per_s']} MiB/s, {upload_stats['upload_errors']} errors)",
                            flush=True,
                        )
                    if row["held"]:
                        best = max(best, rate)
                    elif args.stop_early:
                        break
                if args.closed_duration > 0:
                    row = measure_step(
                        pool, groups, mode="closed", rate=0, duration=args.closed_duration, warmup=args.warmup
                    )
                    rows.append(row)
                    print_rows([row])
            warnings = server.warnings()
            if args.webhooks:
                print(f"webhook deliveries: {delivery_counts(url)}", flush=True)
    print(f"highest rate held (ack p99 <= {ACK_P99_TARGET_MS:.0f} ms): {best:,.0f} msg/s   target: >= 2,500 msg/s")
    if warnings:
        print(f"server logged {len(warnings)} warning(s), e.g.: {warnings[0][:200]}")
    result = {"pool": args.pool, "rooms": args.rooms, "best_held_per_s": best, "steps": rows}
    emit("throughput", result, args.json)
    return result


def niced(niceness: int) -> Callable[[], None] | None:
    """A child's pre-exec step lowering its CPU priority, or None for none."""
    if not niceness:
        return None

    def lower_priority() -> None:
        os.nice(niceness)

    return lower_priority


@contextlib.contextmanager
def webhook_sink(niceness: int = 0) -> Iterator[str]:
    """bench/webhook_sink.py in a process of its own (standing in for receivers on other
    machines: as nice as the worker, when there is one); yields its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.webhook_sink", "--port", str(port)], preexec_fn=niced(niceness)
    )
    try:
        wait_for_port(port, proc=proc)
        yield f"http://{HOST}:{port}/hook"
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def webhook_worker(url: str, env: dict[str, Any], niceness: int) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m chatserver webhook-worker` at `niceness`, delivering for a server run with
    WEBHOOK_DELIVERY=off (docs/integrations.md, "Delivery workers")."""
    settings = {k: str(v) for k, v in env.items() if k.startswith("WEBHOOK_")}
    worker_env = {**os.environ, **settings, "DATABASE_URL": url, "SECRET_KEY": SECRET_KEY, "LOG_LEVEL": "WARNING"}
    worker_env.pop("WEBHOOK_DELIVERY", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatserver", "webhook-worker"],
        cwd=SERVER_ROOT,  # the code under test, like the server's (BENCH_SERVER_ROOT)
        env=worker_env,
        preexec_fn=niced(niceness),
    )
    print(f"webhook delivery in a worker process (nice {niceness}), not in the server", flush=True)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(20)


def register_webhooks(url: str, sink_url: str, count: int) -> None:
    """`count` active endpoints for message.created, straight into the benchmark database."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for i in range(count):
            conn.execute(
                "INSERT INTO webhook_endpoints (url, event_types, secret) VALUES (%s, %s, %s)",
                (f"{sink_url}?n={i}", ["message.created"], "whsec_" + "A" * 44),
            )
    print(f"{count} webhook endpoint(s) for message.created -> {sink_url}")


def delivery_counts(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT status, count(*) FROM webhook_deliveries GROUP BY status").fetchall()
        undispatched = conn.execute(
            "SELECT count(*) FROM events e, event_positions p WHERE (e.xid, e.id) > (p.dispatched_xid, p.dispatched_id)"
        ).fetchone()
    counts = {str(status): int(n) for status, n in rows}
    counts["events_not_fanned_out"] = int(undispatched[0]) if undispatched else 0
    return counts


def drop_indexes(url: str, names: list[str]) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for name in names:
            if not name.replace("_", "").isalnum():
                raise SystemExit(f"not an index name: {name!r}")
            conn.execute(f'DROP INDEX "{name}"')
    print(f"dropped for this run: {', '.join(names)}")


def add_arguments(parser: Any) -> None:
    parser.add_argument("--rooms", type=int, default=256)
    parser.add_argument("--agents-per-room", type=int, default=1)
    parser.add_argument(
        "--rates", type=float, nargs="+", default=[1000, 2000, 2500, 3000, 4000, 5000, 6000], help="msg/s steps"
    )
    parser.add_argument("--duration", type=float, default=10, help="measured seconds per step")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of load before each measured window")
    parser.add_argument("--closed-duration", type=float, default=10, help="closed-loop run (0 skips it)")
    parser.add_argument("--pool", type=int, default=10, help="the server's DB_POOL_MAX")
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    parser.add_argument("--stop-early", action="store_true", help="stop stepping at the first rate not held")
    parser.add_argument("--webhooks", type=int, default=0, help="webhook endpoints delivering message.created")
    parser.add_argument(
        "--webhook-worker",
        type=int,
        metavar="NICE",
        help="deliver from a webhook-worker process at this niceness (0-19), the server with WEBHOOK_DELIVERY=off",
    )
    parser.add_argument(
        "--uploads", type=int, default=0, help="also run each step with this many clients uploading files beside it"
    )
    parser.add_argument("--upload-kib", type=int, default=1024, help="size of each uploaded file (KiB)")
    parser.add_argument(
        "--upload-mib-per-s", type=float, default=0.0, help="total upload bandwidth (0: as fast as loopback allows)"
    )
    parser.add_argument(
        "--nice-clients",
        type=int,
        default=0,
        metavar="N",
        help="run the load generators (message workers, upload thread) at niceness N, below the server",
    )
    parser.add_argument(
        "--drop-index",
        nargs="*",
        default=[],
        metavar="NAME",
        help="experiment: drop these indexes in the benchmark database first (e.g. tickets_status_activity_idx)",
    )


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n")[0])
    add_arguments(parser)
    install_signal_handlers()
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
