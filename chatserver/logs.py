"""Logging setup: plain text or one JSON object per line, each line carrying the request id.

REQUEST_ID holds the id of the request being handled (set by middleware.request_middleware);
every record gets it as `request_id`. A record may carry structured fields in `extra={"fields":
{...}}` (the access log does): JSON lines include them as top-level keys.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import os
import sys
import time
from typing import Any

import orjson
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# Keys every JSON line has; structured fields never overwrite them.
_BASE_KEYS = frozenset({"ts", "level", "logger", "request_id", "msg", "exc"})


class RequestIdFilter(logging.Filter):
    """Stamp each record with the current request id, unless the caller passed one explicitly
    (the access logger does: it runs after the request's own context has been reset)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(getattr(record, "request_id", None), str):
            record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update({k: v for k, v in fields.items() if k not in _BASE_KEYS})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        # default=str: a log line must never fail because of an odd argument type.
        return orjson.dumps(entry, default=str).decode()


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class TextFormatter(logging.Formatter):
    """logging.Formatter(TEXT_FORMAT), with the time's text made once per second instead of once per
    line (strftime is ~1 µs, and every request writes an access-log line)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        # (second, its text) in one attribute: a thread that logs meanwhile sees a matching pair.
        self._second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        cached, text = self._second
        if cached != second:
            text = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = (second, text)
        # logging.Formatter's default_msec_format, "%s,%03d".
        return f"{text},{int(record.msecs):03d}"


class ClientFaultFilter(logging.Filter):
    """For aiohttp.server: a request the client broke is the client's fault, not ours.

    aiohttp logs a malformed request line or header, a broken chunked or gzip body, and a client
    that hangs up mid-body at ERROR with a stack trace (and answers the first two 400 itself).
    Anyone on the internet can send those, so they would bury real tracebacks: each becomes one
    INFO line naming the problem. Any other exception keeps its level and trace."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError | RequestPayloadError | ConnectionError):
            # On one line and bounded: it may quote the client's bytes (escaped, as b'...').
            detail = " ".join(str(exc).split())[:200]
            record.msg = f"{record.getMessage()}: {type(exc).__name__} {detail}".rstrip()
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.levelno = logging.INFO
            record.levelname = "INFO"
        return True


def log_format_from_environment() -> str:
    """LOG_FORMAT as set, before Settings validate it: for the lines logged while they load."""
    return "json" if os.environ.get("LOG_FORMAT", "").strip().lower() == "json" else "text"


def setup_logging(fmt: str = "text", level: str = "INFO") -> None:
    # Neither format prints the thread or the process: don't look them up for every record (the
    # "Optimization" section of the logging HOWTO).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    server_log = logging.getLogger("aiohttp.server")
    server_log.filters[:] = [f for f in server_log.filters if not isinstance(f, ClientFaultFilter)]
    server_log.addFilter(ClientFaultFilter())
    # pgserver narrates every initdb/pg_ctl call at INFO; its warnings and errors still show.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
