"""Command line: serve (default), webhook-worker, migrate, create-user, set-role, disable-user,
enable-user, load-kb, eval-ai, check-config."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from contextlib import ExitStack

from .settings import ROLES, ConfigError, Settings, load_settings

log = logging.getLogger("chatserver")


def _database_url(settings: Settings, stack: ExitStack) -> str:
    if settings.database_url:
        return settings.database_url
    from .db.embedded import embedded_postgres

    return stack.enter_context(embedded_postgres(settings.data_dir))


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from aiohttp import web

    from .app import create_app
    from .http_limits import raise_fd_limit
    from .middleware import AccessLogger

    try:
        import uvloop

        uvloop.install()
    except ImportError:  # Windows, or uvloop not installed: the default loop works too
        pass
    from . import __version__

    log.info("starting chatserver %s (%s)", __version__, "production" if settings.production else "development")
    before, after = raise_fd_limit()
    if after != before:
        log.info("open-file limit raised from %d to %d", before, after)
    app = create_app(settings)

    def listening(_banner: str) -> None:
        # run_app calls this once every site is bound, after start-up (database, migrations,
        # Redis) is done: only now can clients connect.
        log.info("listening on http://%s:%d", settings.host, settings.port)

    # AccessLogger: aiohttp's default access log writes query strings, and so any token in them.
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        print=listening,
        shutdown_timeout=10,
        access_log_class=AccessLogger,
        # aiohttp has no header-read timeout of its own, but its keep-alive timer also runs from
        # the moment a connection opens and closes it if no complete request has arrived by then:
        # so this bounds how long headers may dribble in (slowloris) as well as idle keep-alive.
        keepalive_timeout=settings.http_header_timeout,
    )
    log.info("chatserver stopped")
    return 0


def cmd_webhook_worker(settings: Settings, args: argparse.Namespace) -> int:
    """Deliver webhooks only (services/webhook_worker.py), beside instances run with
    WEBHOOK_DELIVERY=off."""
    from .db.migrate import apply_migrations
    from .services.webhook_worker import run_webhook_worker

    if not settings.database_url:
        # The embedded PostgreSQL belongs to one `serve` process; a worker shares a real one.
        log.error("webhook-worker needs DATABASE_URL: the database the serving instances use")
        return 2
    apply_migrations(settings.database_url)  # a no-op when the instances have applied them
    asyncio.run(run_webhook_worker(settings, settings.database_url))
    return 0


def cmd_check_config(settings: Settings, args: argparse.Namespace) -> int:
    """Settings were loaded and validated before we got here; say so. docker-compose.yml runs this
    once before the app, so a configuration error stops there instead of in a restart loop."""
    log.info("configuration ok")
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from .db.migrate import apply_migrations, rollback_migrations

    with ExitStack() as stack:
        url = _database_url(settings, stack)
        if args.rollback:
            count = rollback_migrations(url, args.rollback)
            print(f"rolled back {count} migration(s)")
        else:
            count = apply_migrations(url)
            print(f"applied {count} migration(s)")
    return 0


def cmd_create_user(settings: Settings, args: argparse.Namespace) -> int:
    from .db.migrate import apply_migrations
    from .db.pool import create_pool
    from .errors import ApiError
    from .services.auth import create_user

    password = args.password
    if password is None:
        if not sys.stdin.isatty():
            print("error: --password is required when not running on a terminal", file=sys.stderr)
            return 2
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Repeat password: "):
            print("error: passwords do not match", file=sys.stderr)
            return 2

    async def run(url: str) -> None:
        pool = await create_pool(url, 1, 2)
        try:
            user = await create_user(
                pool, email=args.email, password=password, role=args.role, name=args.name or "", bcrypt_rounds=12
            )
        finally:
            await pool.close()
        print(f"created {user['role']} {user['email']} ({user['id']})")

    with ExitStack() as stack:
        url = _database_url(settings, stack)
        apply_migrations(url)
        try:
            asyncio.run(run(url))
        except ApiError as err:
            print(f"error: {err.message}", file=sys.stderr)
            return 1
    return 0


def cmd_account_change(settings: Settings, args: argparse.Namespace) -> int:
    """set-role, disable-user, enable-user: change an account (by email) in the database, then tell
    the running servers over Redis (when REDIS_URL is set), which apply it at once; without Redis a
    running server applies it within ACCOUNT_CACHE_SECONDS (requests) and ACCOUNT_RECHECK_SECONDS
    (open sockets)."""
    from .db.migrate import apply_migrations
    from .db.pool import create_pool
    from .errors import ApiError
    from .realtime.publisher import OneShotPublisher
    from .services import users as users_service

    publisher = OneShotPublisher(settings.redis_url, settings.redis_prefix)

    async def run(url: str) -> dict[str, object]:
        pool = await create_pool(url, 1, 2)
        try:
            user_id = await users_service.account_id_by_email(pool, args.email)
            if args.command == "set-role":
                return await users_service.set_role(pool, publisher, user_id, args.role)
            if args.command == "disable-user":
                return await users_service.disable(pool, publisher, user_id)
            return await users_service.enable(pool, publisher, user_id)
        finally:
            await pool.close()

    with ExitStack() as stack:
        url = _database_url(settings, stack)
        apply_migrations(url)
        try:
            user = asyncio.run(run(url))
        except ApiError as err:
            print(f"error: {err.message}", file=sys.stderr)
            return 1
    state = "disabled" if user["disabled"] else "enabled"
    print(f"{user['email']} ({user['id']}): {user['role']}, {state}")
    return 0


def cmd_load_kb(settings: Settings, args: argparse.Namespace) -> int:
    """Load (upsert by file name) the Markdown articles of a folder into the knowledge base."""
    from pathlib import Path

    from .ai.embedding import RetrievalEmbedder
    from .ai.knowledge import read_kb_dir, store_articles
    from .db.migrate import apply_migrations
    from .db.pool import create_pool

    folder = Path(args.folder)
    if not folder.is_dir():
        print(f"error: {folder} is not a folder", file=sys.stderr)
        return 2

    try:
        articles = read_kb_dir(folder)
    except ValueError as err:  # a malformed front matter: name the file, load nothing
        print(f"error: {err}", file=sys.stderr)
        return 2

    async def run(url: str) -> dict[str, int]:
        pool = await create_pool(url, 1, 2)
        try:
            embedder = RetrievalEmbedder(minilm=settings.ai_retrieval_minilm)
            return await store_articles(pool, articles, prune=args.prune, embedder=embedder)
        finally:
            await pool.close()

    with ExitStack() as stack:
        url = _database_url(settings, stack)
        apply_migrations(url)
        counts = asyncio.run(run(url))
    print(", ".join(f"{n} {what}" for what, n in counts.items()) + f" (from {folder})")
    return 0


def cmd_eval_ai(settings: Settings, args: argparse.Namespace) -> int:
    """Score retrieval and handoff detection on the shipped evaluation sets (docs/ai.md), in a
    scratch database on the configured server; non-zero when a figure is under its threshold."""
    from .ai.evaluate import AnswerTarget, run_evals

    with ExitStack() as stack:
        failures = run_evals(
            _database_url(settings, stack),
            settings,
            print,
            verbose=args.verbose,
            answers=AnswerTarget.from_args(settings, args.base_url, args.model, args.api_key_env),
        )
    for failure in failures:
        print(f"below threshold: {failure}", file=sys.stderr)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chatserver", description="Customer-support chat server")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the server (default)")
    sub.add_parser("webhook-worker", help="only deliver webhooks (beside instances run with WEBHOOK_DELIVERY=off)")
    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--rollback", type=int, metavar="N", help="roll back the newest N migrations instead")
    create = sub.add_parser("create-user", help="create an account (how the first agents and admins are made)")
    create.add_argument("--role", choices=ROLES, required=True)
    create.add_argument("--email", required=True)
    create.add_argument("--password", help="prompted for when omitted on a terminal")
    create.add_argument("--name", default="")
    set_role = sub.add_parser("set-role", help="change an account's role (its sessions end)")
    set_role.add_argument("--email", required=True)
    set_role.add_argument("--role", choices=ROLES, required=True)
    disable = sub.add_parser("disable-user", help="disable an account: no sign-in, every session ends")
    disable.add_argument("--email", required=True)
    enable = sub.add_parser("enable-user", help="let a disabled account sign in again")
    enable.add_argument("--email", required=True)
    load_kb = sub.add_parser("load-kb", help="load Markdown knowledge-base articles from a folder")
    load_kb.add_argument("folder", help="a folder of *.md files (e.g. kb/); each file is one article")
    load_kb.add_argument("--prune", action="store_true", help="also delete articles whose file is gone")
    eval_ai = sub.add_parser("eval-ai", help="score retrieval and handoff detection on the shipped evaluation sets")
    eval_ai.add_argument("--verbose", action="store_true", help="also list every case it got wrong")
    eval_ai.add_argument(
        "--base-url",
        help="answer checks against this OpenAI-compatible API (e.g. http://127.0.0.1:8000/v1: requests go to "
        "<base-url>/chat/completions) instead of Groq (GROQ_BASE_URL)",
    )
    eval_ai.add_argument("--model", help="the model for the answer checks (default: GROQ_MODEL)")
    eval_ai.add_argument(
        "--api-key-env",
        default="GROQ_API_KEY",
        help="the environment variable holding the API key for the answer checks (default: GROQ_API_KEY)",
    )
    sub.add_parser("check-config", help="validate the settings (environment and .env), start nothing")
    args = parser.parse_args(argv)

    from .logs import log_format_from_environment, setup_logging

    # Loading settings may log (a generated development key): use the asked-for format already.
    setup_logging(log_format_from_environment())
    try:
        settings = load_settings()
    except ConfigError as err:
        # Exit code 2: a restart cannot fix this, only a changed setting can (docs/operations.md).
        log.error("configuration error: %s", err)
        return 2
    setup_logging(settings.log_format, settings.log_level)
    handlers = {
        "serve": cmd_serve,
        "webhook-worker": cmd_webhook_worker,
        "migrate": cmd_migrate,
        "create-user": cmd_create_user,
        "set-role": cmd_account_change,
        "disable-user": cmd_account_change,
        "enable-user": cmd_account_change,
        "load-kb": cmd_load_kb,
        "eval-ai": cmd_eval_ai,
        "check-config": cmd_check_config,
    }
    return handlers[args.command or "serve"](settings, args)


if __name__ == "__main__":
    sys.exit(main())
