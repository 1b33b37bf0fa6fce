"""Settings: read once from the environment (and an optional .env), validated, then frozen."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ROLES = ("customer", "agent", "admin")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Attachment types accepted by default: images, PDF, plain text, common office formats. Never
# HTML or SVG (a browser would run their scripts): filetypes.KNOWN_TYPES has no entry for them,
# so no setting can allow them.
DEFAULT_ATTACHMENT_TYPES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "text/csv",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
)


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable and what is expected."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    production: bool = False
    data_dir: Path = Path(".chatserver")
    # None means "start the embedded PostgreSQL under data_dir".
    database_url: str | None = None
    db_pool_min: int = 2
    db_pool_max: int = 10
    # Longest wait for a pooled connection before answering database_unavailable (503).
    db_acquire_timeout: float = 5.0
    # /healthz fails once the pool has handed out no connection for this long while PostgreSQL
    # accepts a direct connection: the process cannot recover by itself.
    db_stuck_seconds: float = 30.0
    redis_url: str | None = None
    # Namespaces this deployment's Redis keys and channels (tests use one per run).
    redis_prefix: str = "chatserver"
    secret_key: str = field(default="", repr=False)
    access_token_ttl: int = 7 * 24 * 3600
    # Staff (agents, admins) hold the keys to every conversation: their tokens live a working day.
    staff_token_ttl: int = 12 * 3600
    # POST /widget/token renews a visitor's token, but never beyond this long after sign-in.
    visitor_session_max_age: int = 30 * 24 * 3600
    # How long an instance trusts what it read about an account (role, disabled, session
    # generation) before reading it again; changes also reach every instance at once over the
    # backplane. The accounts behind open sockets are re-read every account_recheck_seconds.
    account_cache_seconds: float = 5.0
    account_recheck_seconds: float = 30.0
    groq_api_key: str | None = field(default=None, repr=False)
    groq_model: str = "llama-3.3-70b-versatile"
    groq_base_url: str | None = None
    groq_timeout: float = 30.0
    groq_max_retries: int = 2
    ai_default_enabled: bool = True
    # AI replies (docs/ai.md): per-ticket budget and per-user rate limit (over, the ticket goes to
    # a human), prompt size, delta coalescing, and the cross-instance generation lease.
    ai_max_replies_per_ticket: int = 30
    ai_max_tokens_per_ticket: int = 100_000
    ai_user_replies_per_window: int = 30
    ai_user_window_seconds: int = 600
    ai_history_token_budget: int = 6000
    ai_max_reply_tokens: int = 1024
    ai_temperature: float = 0.3
    ai_kb_articles: int = 3
    # all-MiniLM-L6-v2 beside WordLlama for knowledge-base retrieval (docs/ai.md): better at
    # paraphrase, ~15-20 ms of CPU for the questions it is asked about; false: WordLlama alone.
    ai_retrieval_minilm: bool = True
    # Markdown folder loaded into an empty knowledge base once, at the first start (docs/ai.md,
    # "The sample knowledge base"); None: never. load_settings defaults it to kb/ in development.
    kb_sample_dir: Path | None = None
    ai_delta_window_ms: int = 20
    ai_delta_max_chars: int = 400
    ai_claim_lease_seconds: float = 30.0
    ai_claim_heartbeat_seconds: float = 1.0
    # How often every instance looks for generation claims whose lease ran out (their instance
    # died) and for reply streams it tracks whose claim is gone (docs/ai.md, "Orphaned replies").
    ai_sweep_interval_seconds: float = 5.0
    # AI replies per client address and per instance in each AI_USER_RATE_WINDOW_SECONDS window,
    # counted in-process on each instance (docs/ai.md, "Budgets and limits").
    ai_address_replies_per_window: int = 60
    ai_instance_replies_per_window: int = 3000
    ai_product_name: str = "our product"
    # Agent availability and routing (docs/web.md, "Never miss a customer"): new and handed-off
    # tickets go to an online agent, round robin, up to a number of open conversations each; an
    # agent idle in the console for the away delay is away; one whose last console closed longer
    # than the offline grace ago is offline; an instance silent for the presence TTL counts as
    # dead (its consoles with it). Every instance checks every third of the TTL.
    auto_assign: bool = True
    agent_max_open_conversations: int = 10
    agent_away_after_seconds: float = 300.0
    agent_offline_after_seconds: float = 15.0
    agent_presence_ttl_seconds: float = 30.0
    log_format: str = "text"
    log_level: str = "INFO"
    max_body_bytes: int = 1024 * 1024
    # Login throttling (docs/operations.md, "Limits"): failures inside the window that lock one
    # account out for one client address; failures from one address across all accounts; failures
    # on one account from addresses it has never signed in from.
    login_max_failures: int = 5
    login_window_seconds: int = 300
    login_address_max_failures: int = 50
    login_account_max_failures: int = 100
    # Sign-ups (each a new account, each a bcrypt hash) per client address per window.
    signup_limit_per_address: int = 20
    signup_window_seconds: int = 600
    # Tickets a customer may open per rolling hour, and may have open (open or pending) at once.
    tickets_per_customer_per_hour: int = 10
    open_tickets_per_customer: int = 20
    # WebSockets open at once on this instance per user and per client address.
    sockets_per_user: int = 20
    sockets_per_address: int = 200
    # A request's headers (and an idle keep-alive connection's next request) must arrive within
    # the first; its body within the second.
    http_header_timeout: float = 20.0
    http_body_timeout: float = 30.0
    allowed_origins: tuple[str, ...] = ()
    # Reverse proxies whose X-Forwarded-For (and X-Forwarded-Proto) we believe; empty: none, the
    # TCP peer is the client (middleware.py, client_address).
    trusted_proxies: tuple[IPNetwork, ...] = ()
    # WebSocket: ping interval (a peer that misses the pong is dropped), largest client frame,
    # per-user message-post rate (messages/s and burst; REST and sockets share it, per instance),
    # outgoing frames queued before a slow consumer is disconnected.
    ws_heartbeat: float = 30.0
    ws_max_msg_size: int = 64 * 1024
    ws_send_rate: float = 5.0
    ws_send_burst: int = 20
    ws_queue_limit: int = 512
    widget_identity_secret: str | None = field(default=None, repr=False)
    # Anonymous widget visitors (each one a new customer account) per client address per window.
    widget_visitors_per_window: int = 20
    widget_visitor_window_seconds: int = 600
    # Integrations (docs/integrations.md): event retention, webhook delivery, API-key limits.
    event_retention_days: float = 7.0
    # How often the search indexer looks for new messages to add to tickets' search documents
    # (docs/web.md "Search"); a search reads the ones it has not added yet, so this is a cost, not
    # a delay before a message is found.
    search_index_seconds: float = 1.0
    webhook_retry_base_seconds: float = 10.0
    # A delivery is retried for this long after its event, then failed.
    webhook_retry_for_seconds: float = 86400.0
    # CIDRs webhook targets may resolve into despite the private-address refusal (tests, local dev).
    webhook_allow_private_networks: tuple[str, ...] = ()
    webhook_timeout_seconds: float = 10.0
    webhook_workers: int = 16
    # Off: this instance only serves clients and a separate `python -m chatserver webhook-worker`
    # process delivers, so delivery never competes with the message path for its cores.
    webhook_delivery: bool = True
    # AI actions (docs/ai.md, "Acting"): the key their header secrets are encrypted with (derived
    # from SECRET_KEY unless ACTIONS_SECRET_KEY is set), the CIDRs their targets may resolve into
    # despite the private-address refusal, and per-reply limits.
    actions_secret_key: str = field(default="", repr=False)
    actions_allow_private_networks: tuple[str, ...] = ()
    ai_actions_max_calls_per_reply: int = 5
    ai_actions_max_response_bytes: int = 16 * 1024
    ai_actions_approval_timeout_seconds: float = 600.0
    # The demo shop's mock order API (GET /demo/api/orders/{id}) and its demo action: development only.
    demo_shop: bool = False
    api_key_rate: float = 20.0
    api_key_burst: int = 100
    # Attachments (docs/operations.md, "Attachments"): largest file, files per message, the
    # content types accepted (decided from the bytes: chatserver/services/filetypes.py), uploads
    # per user per window, how long one upload's body may take, and when an upload never attached
    # to a message is deleted (checked every attachment_cleanup_interval_seconds).
    attachment_max_bytes: int = 10 * 1024 * 1024
    attachments_per_message: int = 10
    attachment_allowed_types: tuple[str, ...] = DEFAULT_ATTACHMENT_TYPES
    attachment_uploads_per_window: int = 30
    attachment_upload_window_seconds: int = 300
    attachment_upload_timeout: float = 300.0
    # All uploads on one instance together read at most this many bytes per second (0: no limit).
    attachment_instance_bytes_per_second: int = 32 * 1024 * 1024
    attachment_orphan_seconds: int = 24 * 3600
    attachment_cleanup_interval_seconds: float = 3600.0
    # S3-compatible object storage for attachments (any S3 API: AWS, MinIO, R2); unset bucket:
    # files live under data_dir/attachments. Unset keys: botocore's usual credential chain.
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = field(default=None, repr=False)
    s3_secret_access_key: str | None = field(default=None, repr=False)
    s3_prefix: str = "attachments/"
    s3_addressing_style: str = "auto"
    # Email (docs/operations.md, "Email"): unset SMTP_URL means email is off and the widget asks
    # for no address. Links in emails start with public_base_url (default http://HOST:PORT).
    smtp_url: str | None = field(default=None, repr=False)
    mail_from: str = "Support <support@localhost>"
    public_base_url: str = "http://127.0.0.1:8080"
    smtp_timeout_seconds: float = 10.0
    # A visitor with no socket open on any instance for this long gets agent replies by email.
    visitor_away_minutes: float = 5.0
    # How long the "reopen the conversation" link in an email signs the visitor back in, and how long
    # an invitation link to the team works (services/invitations.py).
    mail_link_ttl_seconds: int = 7 * 24 * 3600
    # Failed sends are retried with a backoff doubling from this, then given up after
    # mail_max_attempts; idle workers look for due jobs every mail_poll_seconds.
    mail_retry_base_seconds: float = 30.0
    mail_max_attempts: int = 8
    mail_poll_seconds: float = 2.0
    # Admin widget settings are cached per instance this long at most (a change also reaches every
    # instance at once over the backplane).
    widget_settings_cache_seconds: float = 30.0

    @property
    def email_enabled(self) -> bool:
        return self.smtp_url is not None

    @property
    def embedded_db(self) -> bool:
        return self.database_url is None

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _cidrs(name: str, raw: str) -> tuple[str, ...]:
    out = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ConfigError(f"{name} must be comma-separated CIDRs like 127.0.0.0/8, got {part!r}") from None
    return tuple(out)


def _float(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    scheme = raw.split("://", 1)[0].lower() if "://" in raw else ""
    if scheme not in schemes:
        raise ConfigError(f"{name} must start with one of {', '.join(s + '://' for s in schemes)}")
    return raw


def _smtp_url(env: Mapping[str, str]) -> str | None:
    url = _url(env, "SMTP_URL", ("smtp", "smtps"))
    if url is None:
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ConfigError("SMTP_URL must look like smtp://user:password@host:587 (or smtps:// for TLS)") from None
    if not parts.hostname:
        raise ConfigError("SMTP_URL must name a host, like smtp://user:password@host:587")
    return url


def _mail_from(env: Mapping[str, str]) -> str:
    from email.utils import parseaddr

    raw = env.get("MAIL_FROM", "").strip() or "Support <support@localhost>"
    if "@" not in parseaddr(raw)[1] or "\n" in raw or "\r" in raw:
        raise ConfigError(f"MAIL_FROM must be an address like 'Support <support@example.com>', got {raw!r}")
    return raw


def _public_base_url(env: Mapping[str, str], host: str, port: int) -> str:
    url = _url(env, "PUBLIC_BASE_URL", ("http", "https"))
    return (url or f"http://{host}:{port}").rstrip("/")


def _redis_prefix(env: Mapping[str, str]) -> str:
    prefix = env.get("REDIS_PREFIX", "chatserver").strip() or "chatserver"
    if not all(c.isalnum() or c in "-_." for c in prefix):
        raise ConfigError("REDIS_PREFIX may contain only letters, digits, '-', '_' and '.'")
    return prefix


def _trusted_proxies(env: Mapping[str, str]) -> tuple[IPNetwork, ...]:
    networks = []
    for item in env.get("TRUSTED_PROXIES", "").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            # strict=False: 10.0.0.7/8 means 10.0.0.0/8, as operators tend to write it.
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                f"TRUSTED_PROXIES must be comma-separated addresses or CIDR blocks like 10.0.0.0/8, got {item!r}"
            ) from None
    return tuple(networks)


def _ai_lease(env: Mapping[str, str]) -> float:
    lease = _float(env, "AI_CLAIM_LEASE_SECONDS", 30.0, 2.0, 3600.0)
    if _float(env, "AI_CLAIM_HEARTBEAT_SECONDS", 1.0, 0.05, 60.0) * 2 > lease:
        raise ConfigError("AI_CLAIM_HEARTBEAT_SECONDS must be at most half of AI_CLAIM_LEASE_SECONDS")
    return lease


def _staff_token_ttl(env: Mapping[str, str], access_ttl: int) -> int:
    if not env.get("STAFF_TOKEN_TTL_SECONDS", "").strip():
        return min(12 * 3600, access_ttl)
    ttl = _int(env, "STAFF_TOKEN_TTL_SECONDS", 12 * 3600, 60, 90 * 24 * 3600)
    if ttl > access_ttl:
        raise ConfigError("STAFF_TOKEN_TTL_SECONDS must not exceed ACCESS_TOKEN_TTL_SECONDS")
    return ttl


_MAKE_A_KEY = "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"


def _attachment_types(env: Mapping[str, str]) -> tuple[str, ...]:
    from .services.filetypes import KNOWN_TYPES

    raw = env.get("ATTACHMENT_ALLOWED_TYPES", "").strip()
    if not raw:
        return DEFAULT_ATTACHMENT_TYPES
    types = tuple(dict.fromkeys(t.strip().lower() for t in raw.split(",") if t.strip()))
    for kind in types:
        if kind not in KNOWN_TYPES:
            raise ConfigError(
                f"ATTACHMENT_ALLOWED_TYPES: {kind!r} is not a type the server can recognise from a file's "
                f"bytes (known: {', '.join(sorted(KNOWN_TYPES))})"
            )
    return types


def _s3_addressing(env: Mapping[str, str]) -> str:
    style = env.get("S3_ADDRESSING_STYLE", "auto").strip().lower() or "auto"
    if style not in ("auto", "path", "virtual"):
        raise ConfigError("S3_ADDRESSING_STYLE must be auto, path or virtual")
    return style


def _s3_prefix(env: Mapping[str, str]) -> str:
    prefix = env.get("S3_PREFIX", "attachments/").strip()
    if prefix.startswith("/") or ".." in prefix:
        raise ConfigError("S3_PREFIX must be a relative key prefix like attachments/")
    return prefix


def _secret_key(env: Mapping[str, str], data_dir: Path, production: bool) -> str:
    key = env.get("SECRET_KEY", "").strip()
    if key:
        if len(key) < 32:
            raise ConfigError(f"SECRET_KEY must be at least 32 characters long (it has {len(key)}); {_MAKE_A_KEY}")
        return key
    if production:
        raise ConfigError(f"SECRET_KEY is required when CHATSERVER_ENV=production; {_MAKE_A_KEY}")
    # Development: generate one key and keep it, so tokens survive restarts.
    path = data_dir / "secret_key"
    if not path.exists():
        _create_key_file(path)
    key = path.read_text().strip()
    # An empty or truncated file would sign tokens with a guessable key (or none at all).
    if len(key) < 32:
        raise ConfigError(f"SECRET_KEY is not set and {path} holds no usable key: delete the file or set SECRET_KEY")
    return key


def _create_key_file(path: Path) -> None:
    """Write a new key to `path` (mode 0600) all at once: it is written to a private temporary
    file and hard-linked into place, so no process ever reads a half-written key, and when two
    start together the first link wins and both use its key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(48))
    try:
        os.link(tmp, path)
        log.warning("SECRET_KEY is not set: generated a development key in %s", path)
    except FileExistsError:
        pass  # another process made it first; we use theirs
    finally:
        tmp.unlink()


# Development: the demo's own address (the mock shop API the demo action calls) is reachable.
DEV_ACTION_NETWORKS = "127.0.0.1/32,::1/128"


def _actions_secret_key(env: Mapping[str, str], secret_key: str) -> str:
    """ACTIONS_SECRET_KEY, or one derived from SECRET_KEY (its own key: an HMAC of a label), so a
    development setup needs nothing more. Set it in production to rotate SECRET_KEY (signing
    out everyone) without losing the action headers stored under the derived key."""
    key = env.get("ACTIONS_SECRET_KEY", "").strip()
    if key:
        if len(key) < 32:
            raise ConfigError(f"ACTIONS_SECRET_KEY must be at least 32 characters long; {_MAKE_A_KEY}")
        return key
    return hmac.new(secret_key.encode(), b"chatserver ai-actions headers v1", hashlib.sha256).hexdigest()


# The sample knowledge base shipped next to the package (a source checkout or the Docker image).
SAMPLE_KB_DIR = Path(__file__).resolve().parent.parent / "kb"


def _kb_sample_dir(env: Mapping[str, str], environment: str) -> Path | None:
    """KB_SAMPLE_DIR: a folder, or empty for none; unset: kb/ in development, none otherwise."""
    value = env.get("KB_SAMPLE_DIR")
    if value is None:
        return SAMPLE_KB_DIR if environment == "development" else None
    return Path(value.strip()).expanduser() if value.strip() else None


def load_settings(env: Mapping[str, str] | None = None, *, read_dotenv: bool = True) -> Settings:
    """Build Settings from `env` (default: os.environ plus ./.env, environment winning)."""
    if env is None:
        merged: dict[str, str] = {}
        if read_dotenv and Path(".env").is_file():
            from dotenv import dotenv_values

            merged.update({k: v for k, v in dotenv_values(".env").items() if v is not None})
        merged.update(os.environ)
        env = merged

    environment = env.get("CHATSERVER_ENV", "development").strip().lower()
    if environment not in ("development", "production", "test"):
        raise ConfigError("CHATSERVER_ENV must be development, production or test")
    production = environment == "production"
    data_dir = Path(env.get("CHATSERVER_DATA_DIR", ".chatserver")).expanduser()

    log_format = env.get("LOG_FORMAT", "text").strip().lower()
    if log_format not in ("text", "json"):
        raise ConfigError("LOG_FORMAT must be text or json")
    log_level = env.get("LOG_LEVEL", "INFO").strip().upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")

    pool_min = _int(env, "DB_POOL_MIN", 2, 1, 200)
    pool_max = _int(env, "DB_POOL_MAX", 10, 1, 200)
    if pool_min > pool_max:
        raise ConfigError("DB_POOL_MIN must not exceed DB_POOL_MAX")

    origins = tuple(o.strip().rstrip("/") for o in env.get("ALLOWED_ORIGINS", "").split(",") if o.strip())
    for origin in origins:
        if origin != "*" and "://" not in origin:
            raise ConfigError(f"ALLOWED_ORIGINS entries must be origins like https://example.com, got {origin!r}")

    access_ttl = _int(env, "ACCESS_TOKEN_TTL_SECONDS", 7 * 24 * 3600, 60, 90 * 24 * 3600)
    host = env.get("HOST", "127.0.0.1").strip() or "127.0.0.1"
    port = _int(env, "PORT", 8080, 0, 65535)
    secret_key = _secret_key(env, data_dir, production)
    return Settings(
        host=host,
        port=port,
        production=production,
        data_dir=data_dir,
        database_url=_url(env, "DATABASE_URL", ("postgres", "postgresql")),
        db_pool_min=pool_min,
        db_pool_max=pool_max,
        db_acquire_timeout=_float(env, "DB_ACQUIRE_TIMEOUT", 5.0, 0.1, 300.0),
        db_stuck_seconds=_float(env, "DB_STUCK_SECONDS", 30.0, 1.0, 3600.0),
        redis_url=_url(env, "REDIS_URL", ("redis", "rediss", "unix")),
        redis_prefix=_redis_prefix(env),
        ws_heartbeat=_float(env, "WS_HEARTBEAT_SECONDS", 30.0, 1.0, 600.0),
        ws_max_msg_size=_int(env, "WS_MAX_MESSAGE_BYTES", 64 * 1024, 1024, 16 * 1024 * 1024),
        ws_send_rate=_float(env, "WS_SEND_RATE", 5.0, 0.1, 10_000.0),
        ws_send_burst=_int(env, "WS_SEND_BURST", 20, 1, 100_000),
        ws_queue_limit=_int(env, "WS_QUEUE_LIMIT", 512, 8, 1_000_000),
        secret_key=secret_key,
        access_token_ttl=access_ttl,
        staff_token_ttl=_staff_token_ttl(env, access_ttl),
        visitor_session_max_age=_int(env, "VISITOR_SESSION_MAX_SECONDS", 30 * 24 * 3600, 60, 365 * 24 * 3600),
        account_cache_seconds=_float(env, "ACCOUNT_CACHE_SECONDS", 5.0, 0.0, 300.0),
        account_recheck_seconds=_float(env, "ACCOUNT_RECHECK_SECONDS", 30.0, 1.0, 3600.0),
        groq_api_key=env.get("GROQ_API_KEY", "").strip() or None,
        groq_model=env.get("GROQ_MODEL", "").strip() or "llama-3.3-70b-versatile",
        groq_base_url=_url(env, "GROQ_BASE_URL", ("http", "https")),
        groq_timeout=_float(env, "GROQ_TIMEOUT_SECONDS", 30.0, 1.0, 600.0),
        groq_max_retries=_int(env, "GROQ_MAX_RETRIES", 2, 0, 10),
        ai_default_enabled=_bool(env, "AI_DEFAULT_ENABLED", True),
        ai_max_replies_per_ticket=_int(env, "AI_MAX_REPLIES_PER_TICKET", 30, 1, 100_000),
        ai_max_tokens_per_ticket=_int(env, "AI_MAX_TOKENS_PER_TICKET", 100_000, 100, 100_000_000),
        ai_user_replies_per_window=_int(env, "AI_USER_RATE_LIMIT", 30, 1, 100_000),
        ai_user_window_seconds=_int(env, "AI_USER_RATE_WINDOW_SECONDS", 600, 1, 86_400),
        ai_history_token_budget=_int(env, "AI_HISTORY_TOKEN_BUDGET", 6000, 500, 1_000_000),
        ai_max_reply_tokens=_int(env, "AI_MAX_REPLY_TOKENS", 1024, 16, 32_768),
        ai_temperature=_float(env, "AI_TEMPERATURE", 0.3, 0.0, 2.0),
        ai_kb_articles=_int(env, "AI_KB_ARTICLES", 3, 0, 20),
        ai_retrieval_minilm=_bool(env, "AI_RETRIEVAL_MINILM", True),
        kb_sample_dir=_kb_sample_dir(env, environment),
        ai_delta_window_ms=_int(env, "AI_DELTA_WINDOW_MS", 20, 1, 2000),
        ai_delta_max_chars=_int(env, "AI_DELTA_MAX_CHARS", 400, 1, 100_000),
        ai_claim_lease_seconds=_ai_lease(env),
        ai_claim_heartbeat_seconds=_float(env, "AI_CLAIM_HEARTBEAT_SECONDS", 1.0, 0.05, 60.0),
        ai_sweep_interval_seconds=_float(env, "AI_SWEEP_INTERVAL_SECONDS", 5.0, 0.05, 600.0),
        ai_address_replies_per_window=_int(env, "AI_ADDRESS_RATE_LIMIT", 60, 1, 1_000_000),
        ai_instance_replies_per_window=_int(env, "AI_INSTANCE_RATE_LIMIT", 3000, 1, 100_000_000),
        ai_product_name=env.get("AI_PRODUCT_NAME", "").strip() or "our product",
        auto_assign=_bool(env, "AUTO_ASSIGN", True),
        agent_max_open_conversations=_int(env, "AGENT_MAX_OPEN_CONVERSATIONS", 10, 1, 100_000),
        agent_away_after_seconds=_float(env, "AGENT_AWAY_AFTER_SECONDS", 300.0, 1.0, 86_400.0),
        agent_offline_after_seconds=_float(env, "AGENT_OFFLINE_AFTER_SECONDS", 15.0, 0.0, 3600.0),
        agent_presence_ttl_seconds=_float(env, "AGENT_PRESENCE_TTL_SECONDS", 30.0, 0.3, 3600.0),
        log_format=log_format,
        log_level=log_level,
        max_body_bytes=_int(env, "MAX_BODY_BYTES", 1024 * 1024, 1024, 64 * 1024 * 1024),
        login_max_failures=_int(env, "LOGIN_MAX_FAILURES", 5, 1, 1000),
        login_window_seconds=_int(env, "LOGIN_WINDOW_SECONDS", 300, 1, 86400),
        login_address_max_failures=_int(env, "LOGIN_ADDRESS_MAX_FAILURES", 50, 1, 1_000_000),
        login_account_max_failures=_int(env, "LOGIN_ACCOUNT_MAX_FAILURES", 100, 1, 1_000_000),
        signup_limit_per_address=_int(env, "SIGNUP_LIMIT_PER_ADDRESS", 20, 1, 1_000_000),
        signup_window_seconds=_int(env, "SIGNUP_WINDOW_SECONDS", 600, 1, 86_400),
        tickets_per_customer_per_hour=_int(env, "TICKETS_PER_CUSTOMER_PER_HOUR", 10, 1, 1_000_000),
        open_tickets_per_customer=_int(env, "OPEN_TICKETS_PER_CUSTOMER", 20, 1, 1_000_000),
        sockets_per_user=_int(env, "SOCKETS_PER_USER", 20, 1, 1_000_000),
        sockets_per_address=_int(env, "SOCKETS_PER_ADDRESS", 200, 1, 10_000_000),
        http_header_timeout=_float(env, "HTTP_HEADER_TIMEOUT_SECONDS", 20.0, 0.1, 3600.0),
        http_body_timeout=_float(env, "HTTP_BODY_TIMEOUT_SECONDS", 30.0, 0.1, 3600.0),
        allowed_origins=origins,
        trusted_proxies=_trusted_proxies(env),
        widget_identity_secret=env.get("WIDGET_IDENTITY_SECRET", "").strip() or None,
        widget_visitors_per_window=_int(env, "WIDGET_VISITORS_PER_WINDOW", 20, 1, 1_000_000),
        widget_visitor_window_seconds=_int(env, "WIDGET_VISITOR_WINDOW_SECONDS", 600, 1, 86_400),
        event_retention_days=_float(env, "EVENT_RETENTION_DAYS", 7.0, 1.0, 3650.0),
        search_index_seconds=_float(env, "SEARCH_INDEX_SECONDS", 1.0, 0.05, 3600.0),
        webhook_retry_base_seconds=_float(env, "WEBHOOK_RETRY_BASE_SECONDS", 10.0, 0.01, 3600.0),
        webhook_retry_for_seconds=_float(env, "WEBHOOK_RETRY_FOR_SECONDS", 86400.0, 1.0, 30 * 86400.0),
        webhook_allow_private_networks=_cidrs(
            "WEBHOOK_ALLOW_PRIVATE_NETWORKS", env.get("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "")
        ),
        webhook_timeout_seconds=_float(env, "WEBHOOK_TIMEOUT_SECONDS", 10.0, 0.1, 120.0),
        webhook_workers=_int(env, "WEBHOOK_WORKERS", 16, 1, 256),
        webhook_delivery=_bool(env, "WEBHOOK_DELIVERY", True),
        actions_secret_key=_actions_secret_key(env, secret_key),
        actions_allow_private_networks=_cidrs(
            "ACTIONS_ALLOW_PRIVATE_NETWORKS",
            env.get("ACTIONS_ALLOW_PRIVATE_NETWORKS", DEV_ACTION_NETWORKS if environment == "development" else ""),
        ),
        ai_actions_max_calls_per_reply=_int(env, "AI_ACTIONS_MAX_CALLS_PER_REPLY", 5, 0, 50),
        ai_actions_max_response_bytes=_int(env, "AI_ACTIONS_MAX_RESPONSE_BYTES", 16 * 1024, 256, 1024 * 1024),
        ai_actions_approval_timeout_seconds=_float(env, "AI_ACTIONS_APPROVAL_TIMEOUT_SECONDS", 600.0, 1.0, 86_400.0),
        demo_shop=_bool(env, "DEMO_SHOP", environment == "development"),
        api_key_rate=_float(env, "API_KEY_RATE", 20.0, 0.1, 100_000.0),
        api_key_burst=_int(env, "API_KEY_BURST", 100, 1, 1_000_000),
        attachment_max_bytes=_int(env, "ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024, 1, 5 * 1024**3),
        attachments_per_message=_int(env, "ATTACHMENTS_PER_MESSAGE", 10, 1, 100),
        attachment_allowed_types=_attachment_types(env),
        attachment_uploads_per_window=_int(env, "ATTACHMENT_UPLOADS_PER_WINDOW", 30, 1, 1_000_000),
        attachment_upload_window_seconds=_int(env, "ATTACHMENT_UPLOAD_WINDOW_SECONDS", 300, 1, 86_400),
        attachment_upload_timeout=_float(env, "ATTACHMENT_UPLOAD_TIMEOUT_SECONDS", 300.0, 1.0, 86_400.0),
        attachment_instance_bytes_per_second=_int(
            env, "ATTACHMENT_INSTANCE_BYTES_PER_SECOND", 32 * 1024 * 1024, 0, 100 * 1024**3
        ),
        attachment_orphan_seconds=_int(env, "ATTACHMENT_ORPHAN_SECONDS", 24 * 3600, 60, 365 * 24 * 3600),
        attachment_cleanup_interval_seconds=_float(env, "ATTACHMENT_CLEANUP_INTERVAL_SECONDS", 3600.0, 1.0, 86_400.0),
        s3_bucket=env.get("S3_BUCKET", "").strip() or None,
        s3_endpoint_url=_url(env, "S3_ENDPOINT_URL", ("http", "https")),
        s3_region=env.get("S3_REGION", "").strip() or "us-east-1",
        s3_access_key_id=env.get("S3_ACCESS_KEY_ID", "").strip() or None,
        s3_secret_access_key=env.get("S3_SECRET_ACCESS_KEY", "").strip() or None,
        s3_prefix=_s3_prefix(env),
        s3_addressing_style=_s3_addressing(env),
        smtp_url=_smtp_url(env),
        mail_from=_mail_from(env),
        public_base_url=_public_base_url(env, host, port),
        smtp_timeout_seconds=_float(env, "SMTP_TIMEOUT_SECONDS", 10.0, 0.1, 300.0),
        visitor_away_minutes=_float(env, "VISITOR_AWAY_MINUTES", 5.0, 0.0, 7 * 24 * 60.0),
        mail_link_ttl_seconds=_int(env, "MAIL_LINK_TTL_SECONDS", 7 * 24 * 3600, 60, 90 * 24 * 3600),
        mail_retry_base_seconds=_float(env, "MAIL_RETRY_BASE_SECONDS", 30.0, 0.01, 3600.0),
        mail_max_attempts=_int(env, "MAIL_MAX_ATTEMPTS", 8, 1, 100),
        mail_poll_seconds=_float(env, "MAIL_POLL_SECONDS", 2.0, 0.05, 600.0),
        widget_settings_cache_seconds=_float(env, "WIDGET_SETTINGS_CACHE_SECONDS", 30.0, 0.0, 3600.0),
    )
