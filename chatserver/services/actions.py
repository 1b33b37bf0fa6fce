"""AI actions as admins configure them (/admin/actions): checking a definition (its JSON Schema,
URL template, label and headers), storing its headers encrypted, and turning a model's
arguments into the HTTP request the action makes. Running calls is chatserver/ai/tools.py.

Header values may be credentials: they are encrypted at rest (Fernet, keyed by
ACTIONS_SECRET_KEY) and never leave the server again: views show header names only.
"""

from __future__ import annotations

import base64
import hashlib
import re
import string
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import asyncpg
import orjson
from cryptography.fernet import Fernet, InvalidToken
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing.exceptions import Unresolvable as ReferencingError

from ..ai.handoff import HANDOFF_TOOL_NAME
from ..db import actions as actions_db
from ..errors import ApiError, conflict, not_found, validation_error
from .outbound import TargetGuard, TargetRefused

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Methods whose arguments not in the URL go in a JSON body (the others: the query string).
BODY_METHODS = ("POST", "PUT", "PATCH")
MAX_URL_CHARS = 2000
MAX_SCHEMA_BYTES = 16 * 1024
MAX_HEADERS = 20
MAX_HEADER_VALUE_CHARS = 4000
MAX_ACTIONS_LISTED = 500
# Headers the HTTP client sets itself; an admin's value would confuse the request.
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
LABEL_CHARS = 200


class SecretBox:
    """Encrypts and decrypts action headers with a key derived from ACTIONS_SECRET_KEY."""

    def __init__(self, secret: str) -> None:
        key = base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest())
        self._fernet = Fernet(key)

    def seal(self, headers: Mapping[str, str]) -> bytes | None:
        if not headers:
            return None
        return self._fernet.encrypt(orjson.dumps(dict(headers)))

    def open(self, sealed: bytes | None) -> dict[str, str]:
        """The headers; {} for none. Raises ValueError when they were sealed under another key."""
        if not sealed:
            return {}
        try:
            data = orjson.loads(self._fernet.decrypt(bytes(sealed)))
        except InvalidToken:
            raise ValueError("the action's headers were encrypted with another ACTIONS_SECRET_KEY") from None
        return {str(k): str(v) for k, v in data.items()}


def action_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """What admins see: never a header value."""
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "parameters": row["parameters"],
        "method": row["method"],
        "url_template": row["url_template"],
        "label": row["label"],
        "header_names": list(row["header_names"]),
        "timeout_seconds": round(float(row["timeout_seconds"]), 3),
        "mutating": row["mutating"],
        "customer_confirmation": row["customer_confirmation"],
        "enabled": row["enabled"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _fail(field: str, problem: str) -> ApiError:
    return validation_error(f"Invalid request: {field} {problem}", details={"fields": {field: problem}})


def placeholders(template: str) -> list[str]:
    """The {names} of a template; raises ValueError for a malformed one ("{", "{0}", "{a.b}")."""
    names = []
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if not NAME_RE.match(name) or name.isdigit() or spec or conversion:
            raise ValueError(f"{{{name}}} is not a parameter placeholder")
        names.append(name)
    return names


def check_parameters(schema: Any) -> None:
    if not isinstance(schema, dict):
        raise _fail("parameters", "must be a JSON Schema object")
    if len(orjson.dumps(schema)) > MAX_SCHEMA_BYTES:
        raise _fail("parameters", f"must be at most {MAX_SCHEMA_BYTES} bytes of JSON")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise _fail("parameters", f"is not a valid JSON Schema: {exc.message}") from None
    if schema.get("type") != "object" or not isinstance(schema.get("properties", {}), dict):
        raise _fail("parameters", 'must be an object schema ("type": "object" with "properties")')
    outside = _outside_refs(schema)
    if outside:
        # Nothing is ever fetched: a reference must point inside the schema ("#/$defs/…").
        raise _fail("parameters", f"may only reference its own definitions, not {outside[:200]!r}")


def _outside_refs(node: Any) -> str | None:
    """The first $ref (or $dynamicRef) that does not point inside the schema, if any."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and not (isinstance(value, str) and value.startswith("#")):
                return str(value)
            found = _outside_refs(value)
            if found is not None:
                return found
    elif isinstance(node, list):
        for item in node:
            found = _outside_refs(item)
            if found is not None:
                return found
    return None


def check_template(guard: TargetGuard, template: str, properties: Mapping[str, Any]) -> None:
    if len(template) > MAX_URL_CHARS:
        raise _fail("url_template", f"must be at most {MAX_URL_CHARS} characters")
    try:
        names = placeholders(template)
    except ValueError as exc:
        raise _fail("url_template", str(exc)) from None
    unknown = sorted(set(names) - set(properties))
    if unknown:
        raise _fail("url_template", f"names parameters the schema does not have: {', '.join(unknown)}")
    # The scheme, host and port are the admin's alone: a model's argument may only fill the path
    # and the query, so it can never redirect the call to another host.
    parts = urlsplit(template)
    if "{" in parts.scheme or "{" in parts.netloc:
        raise _fail("url_template", "may have placeholders only in its path and query")
    try:
        guard.check_url(template.format_map({n: "x" for n in names}))
    except TargetRefused as exc:
        raise _fail("url_template", f"is not allowed: {exc}") from None


def check_label(label: str, properties: Mapping[str, Any]) -> None:
    try:
        names = placeholders(label)
    except ValueError as exc:
        raise _fail("label", str(exc)) from None
    unknown = sorted(set(names) - set(properties))
    if unknown:
        raise _fail("label", f"names parameters the schema does not have: {', '.join(unknown)}")


def check_headers(headers: Any) -> dict[str, str]:
    if not isinstance(headers, dict):
        raise _fail("headers", "must be an object of header names to values")
    if len(headers) > MAX_HEADERS:
        raise _fail("headers", f"must have at most {MAX_HEADERS} entries")
    clean: dict[str, str] = {}
    for name, value in headers.items():
        if not HEADER_NAME_RE.match(name) or name.lower() in RESERVED_HEADERS:
            raise _fail("headers", f"{name[:100]!r} is not a header name an action may set")
        if not isinstance(value, str) or len(value) > MAX_HEADER_VALUE_CHARS or any(c in value for c in "\r\n\x00"):
            raise _fail("headers", f"the value of {name} must be a one-line string")
        clean[name] = value
    return clean


def check_timeout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.1 <= value <= 60:
        raise _fail("timeout_seconds", "must be a number from 0.1 to 60")
    return float(value)


def check_definition(guard: TargetGuard, fields: dict[str, Any], current: Mapping[str, Any] | None) -> None:
    """Check the fields of a new action (current None) or a change to `current`, as a whole."""
    merged = {**(dict(current) if current is not None else {}), **fields}
    if "name" in fields and (not NAME_RE.match(fields["name"]) or fields["name"] == HANDOFF_TOOL_NAME):
        raise _fail("name", "must be 1 to 64 letters, digits, '_' or '-', and not a built-in tool's name")
    if "parameters" in fields:
        check_parameters(fields["parameters"])
    properties = merged["parameters"].get("properties", {})
    if "url_template" in fields or "parameters" in fields:
        check_template(guard, merged["url_template"], properties)
    if "label" in fields or "parameters" in fields:
        check_label(merged.get("label") or "", properties)
    if merged.get("customer_confirmation") and not merged.get("mutating"):
        raise _fail("customer_confirmation", "applies only to mutating actions")


def _storable(box: SecretBox, fields: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in fields.items() if k != "headers"}
    if "headers" in fields:
        out["headers_encrypted"] = box.seal(fields["headers"])
        out["header_names"] = sorted(fields["headers"])
    return out


async def create_action(
    pool: asyncpg.Pool, guard: TargetGuard, box: SecretBox, fields: dict[str, Any]
) -> dict[str, Any]:
    check_definition(guard, fields, None)
    row = await actions_db.insert_action(pool, _storable(box, fields))
    if row is None:
        raise conflict(f"An action named {fields['name']} exists already")
    return action_view(row)


async def list_actions(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [action_view(r) for r in await actions_db.list_actions(pool, MAX_ACTIONS_LISTED)]


async def get_action(pool: asyncpg.Pool, action_id: uuid.UUID) -> dict[str, Any]:
    row = await actions_db.get_action(pool, action_id)
    if row is None:
        raise not_found("Action")
    return action_view(row)


async def update_action(
    pool: asyncpg.Pool, guard: TargetGuard, box: SecretBox, action_id: uuid.UUID, changes: dict[str, Any]
) -> dict[str, Any]:
    current = await actions_db.get_action(pool, action_id)
    if current is None:
        raise not_found("Action")
    check_definition(guard, changes, current)
    if not changes:
        return action_view(current)
    try:
        row = await actions_db.update_action(pool, action_id, _storable(box, changes))
    except asyncpg.UniqueViolationError:
        raise conflict(f"An action named {changes.get('name')} exists already") from None
    if row is None:
        raise not_found("Action")
    return action_view(row)


async def delete_action(pool: asyncpg.Pool, action_id: uuid.UUID) -> None:
    if not await actions_db.delete_action(pool, action_id):
        raise not_found("Action")


# ---- running (for chatserver/ai/tools.py) -----------------------------------------------------


@dataclass(frozen=True)
class Action:
    """An enabled action as a reply uses it: its definition and its decrypted headers."""

    id: uuid.UUID
    name: str
    description: str
    parameters: dict[str, Any]
    method: str
    url_template: str
    label: str
    headers: dict[str, str]
    timeout: float
    mutating: bool
    customer_confirmation: bool

    def tool(self) -> dict[str, Any]:
        """The Groq tool definition the model is offered."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def argument_problems(self, arguments: Any) -> list[str]:
        """Why `arguments` do not fit the schema (empty: they do)."""
        validator = Draft202012Validator(self.parameters)
        problems = []
        try:
            errors = sorted(validator.iter_errors(arguments), key=lambda e: [str(p) for p in e.path])
        except ReferencingError:
            # A reference inside the schema that leads nowhere ("#/$defs/missing"): the call
            # cannot be checked, so it is not made.
            return ["the action's schema could not be applied (a broken $ref); tell an agent"]
        for error in errors:
            where = "/".join(str(p) for p in error.path)
            problems.append(f"{where}: {error.message}" if where else error.message)
        return problems[:10]

    def human_label(self, arguments: Mapping[str, Any]) -> str:
        """What the room reads while the call runs: the admin's label with the arguments in it."""
        values = {k: _short(v) for k, v in arguments.items()}
        try:
            text = self.label.format_map(_Defaulting(values)) if self.label else ""
        except (ValueError, KeyError, IndexError, AttributeError):
            text = ""
        return (text or f"Running {self.name}")[:LABEL_CHARS]

    def request(self, arguments: Mapping[str, Any]) -> tuple[str, str, bytes | None]:
        """(method, URL, JSON body): placeholders filled URL-encoded, the other arguments in the
        query string (GET, DELETE) or the JSON body (POST, PUT, PATCH)."""
        used = set(placeholders(self.url_template))
        url = self.url_template.format_map({n: quote(_text(arguments.get(n, "")), safe="") for n in used})
        rest = {k: v for k, v in arguments.items() if k not in used}
        body = None
        if self.method in BODY_METHODS:
            body = orjson.dumps(rest)
        elif rest:
            query = urlencode([(k, _text(v)) for k, v in rest.items()])
            url += ("&" if urlsplit(url).query else "?") + query
        return self.method, url, body


def action_from_row(row: Mapping[str, Any], box: SecretBox) -> Action:
    return Action(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        parameters=row["parameters"],
        method=row["method"],
        url_template=row["url_template"],
        label=row["label"],
        headers=box.open(row["headers_encrypted"]),
        timeout=float(row["timeout_seconds"]),
        mutating=row["mutating"],
        customer_confirmation=row["customer_confirmation"],
    )


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _short(value: Any) -> str:
    return _text(value)[:60]


class _Defaulting(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""
