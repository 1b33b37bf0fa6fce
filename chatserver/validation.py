"""Small, strict validators for JSON bodies and query strings (check first, then act).

A schema is a dict of field name -> Field. Unknown fields, wrong types and out-of-range
values are refused with a 422 that names every offending field.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from .errors import ApiError, bad_request, validation_error
from .http_limits import body_deadline

_MISSING: Any = object()


@dataclass(frozen=True)
class Field:
    kind: str  # "str", "int", "bool", "uuid", "choice", "dict"
    required: bool = True
    nullable: bool = False
    min_len: int = 0
    max_len: int = 10_000
    max_bytes: int | None = None
    lo: int | None = None
    hi: int | None = None
    choices: tuple[str, ...] = ()
    strip: bool = True


def Str(
    *,
    required: bool = True,
    nullable: bool = False,
    min_len: int = 1,
    max_len: int = 10_000,
    max_bytes: int | None = None,
    strip: bool = True,
) -> Field:
    return Field("str", required, nullable, min_len, max_len, max_bytes, strip=strip)


def Int(*, required: bool = True, lo: int | None = None, hi: int | None = None) -> Field:
    return Field("int", required, lo=lo, hi=hi)


def Bool(*, required: bool = True) -> Field:
    return Field("bool", required)


def Uuid(*, required: bool = True, nullable: bool = False) -> Field:
    return Field("uuid", required, nullable)


def Choice(*choices: str, required: bool = True) -> Field:
    return Field("choice", required, choices=choices)


def Obj(*, required: bool = False) -> Field:
    return Field("dict", required)


def _check(name: str, spec: Field, value: Any) -> tuple[Any, str | None]:
    if value is None:
        return (None, None) if spec.nullable else (None, "must not be null")
    if spec.kind == "str":
        if not isinstance(value, str):
            return None, "must be a string"
        text = value.strip() if spec.strip else value
        if len(text) < spec.min_len:
            return None, "must not be empty" if spec.min_len == 1 else f"must be at least {spec.min_len} characters"
        # The text as sent, white space included: what the OpenAPI maxLength says.
        if len(value) > spec.max_len:
            return None, f"must be at most {spec.max_len} characters"
        if spec.max_bytes is not None and len(text.encode()) > spec.max_bytes:
            return None, f"must be at most {spec.max_bytes} bytes"
        if "\x00" in text:
            return None, "must not contain NUL characters"
        return text, None
    if spec.kind == "int":
        # JSON Schema's "integer" (what the OpenAPI spec says) includes 4.0; 4.5 is no integer.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            return None, "must be an integer"
        if spec.lo is not None and value < spec.lo:
            return None, f"must be at least {spec.lo}"
        if spec.hi is not None and value > spec.hi:
            return None, f"must be at most {spec.hi}"
        return value, None
    if spec.kind == "bool":
        return (value, None) if isinstance(value, bool) else (None, "must be true or false")
    if spec.kind == "uuid":
        if not isinstance(value, str):
            return None, "must be a UUID string"
        try:
            return uuid.UUID(value), None
        except ValueError:
            return None, "must be a UUID"
    if spec.kind == "choice":
        if value not in spec.choices:
            return None, f"must be one of {', '.join(spec.choices)}"
        return value, None
    if spec.kind == "dict":
        return (value, None) if isinstance(value, dict) else (None, "must be an object")
    raise AssertionError(f"unknown field kind {spec.kind}")  # programming error, not input


def validate(data: Any, schema: Mapping[str, Field]) -> dict[str, Any]:
    """Return the cleaned fields present in `data`; raise a 422 naming every bad field."""
    if not isinstance(data, dict):
        raise validation_error("Request body must be a JSON object")
    problems: dict[str, str] = {}
    for key in data:
        if key not in schema:
            problems[key] = "unknown field"
    clean: dict[str, Any] = {}
    for name, spec in schema.items():
        value = data.get(name, _MISSING)
        if value is _MISSING:
            if spec.required:
                problems[name] = "is required"
            continue
        checked, problem = _check(name, spec, value)
        if problem:
            problems[name] = problem
        else:
            clean[name] = checked
    if problems:
        summary = "; ".join(f"{k} {v}" for k, v in problems.items())
        raise validation_error(f"Invalid request: {summary}", details={"fields": problems})
    return clean


async def read_raw_body(request: web.Request) -> bytes:
    """The whole body, bounded by MAX_BODY_BYTES (aiohttp answers 413 beyond it), or a 400 when it
    cannot be read: a broken chunked or gzip/deflate encoding, or a client that hangs up before
    sending the Content-Length it announced. Without this, each of those was a 500 and a traceback."""
    try:
        async with body_deadline(request):
            return await request.read()
    except web.RequestPayloadError:
        raise bad_request("The request body could not be read: its transfer or content encoding is broken") from None
    except ConnectionError:
        # The client went away mid-body. Nobody reads this answer; it keeps the log to one line.
        raise bad_request("The request body ended before its Content-Length") from None


async def read_json(request: web.Request) -> Any:
    """Parse the request body as JSON with clear 4xx errors: 415 for another content type, 400 for
    an empty, unreadable or malformed body (invalid UTF-8, NaN/Infinity, numbers beyond a double,
    nesting deeper than orjson's 1024 levels), 413 via aiohttp. Whether it is an object is for
    validate() (422). A repeated key keeps its last value, as JSON.parse and orjson do."""
    ctype = request.content_type
    if ctype != "application/json":
        raise ApiError(415, "unsupported_media_type", "Send the body as application/json")
    raw = await read_raw_body(request)
    if not raw:
        raise bad_request("Request body is empty; send a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"Malformed JSON: {exc}") from None


FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# Our forms have at most three fields; this bounds what a crafted body makes us parse.
MAX_FORM_FIELDS = 20


async def read_form(request: web.Request) -> MultiDictProxy[str]:
    """Parse an HTML form post (application/x-www-form-urlencoded, UTF-8) with 4xx errors.

    Our pages' forms are all url-encoded, so nothing else is accepted: multipart would spool file
    parts to disk for a login form, and aiohttp's request.post() answered a multipart body without
    a boundary, an unknown charset or invalid UTF-8 with a 500. Wrong content type: 415; a charset
    other than UTF-8, bytes that are not UTF-8 or too many fields: 400; too large: 413."""
    if request.content_type != FORM_CONTENT_TYPE:
        raise ApiError(415, "unsupported_media_type", f"Send the form as {FORM_CONTENT_TYPE}")
    charset = (request.charset or "utf-8").lower()
    if charset not in ("utf-8", "utf8", "us-ascii", "ascii"):
        raise bad_request("Send the form in UTF-8")
    raw = await read_raw_body(request)
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FORM_FIELDS)
    except UnicodeDecodeError:
        raise bad_request("The form is not valid UTF-8") from None
    except ValueError:
        raise bad_request(f"The form has more than {MAX_FORM_FIELDS} fields") from None
    return MultiDictProxy(MultiDict(pairs))


async def read_body(request: web.Request, schema: Mapping[str, Field]) -> dict[str, Any]:
    return validate(await read_json(request), schema)


def parse_uuid(raw: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ApiError(404, "not_found", f"{what} not found") from None


_INTEGER = re.compile(r"-?[0-9]+")


def query_int(request: web.Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    # int() alone would also take " 7", "1_000" and other scripts' digits, and refuses more than
    # 4,300 digits with a ValueError of its own: only ASCII digits, and no more than any bound needs.
    if not _INTEGER.fullmatch(raw):
        raise validation_error(
            f"Query parameter {name} must be an integer", details={"fields": {name: "must be an integer"}}
        )
    value = int(raw) if len(raw) <= 40 else (lo - 1 if raw.startswith("-") else hi + 1)
    if not lo <= value <= hi:
        raise validation_error(
            f"Query parameter {name} must be between {lo} and {hi}",
            details={"fields": {name: f"must be between {lo} and {hi}"}},
        )
    return value


def query_choice(request: web.Request, name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        raise validation_error(
            f"Query parameter {name} must be one of {', '.join(choices)}",
            details={"fields": {name: f"must be one of {', '.join(choices)}"}},
        )
    return raw


def reject_unknown_query(request: web.Request, allowed: tuple[str, ...]) -> None:
    unknown = [k for k in request.query if k not in allowed]
    if unknown:
        raise validation_error(
            f"Unknown query parameter(s): {', '.join(unknown)}",
            details={"fields": {k: "unknown parameter" for k in unknown}},
        )
