"""The OpenAPI 3.1 description of the HTTP API, written by hand, served at GET /openapi.json.

EVERY NEW ROUTE NEEDS AN ENTRY HERE. When you add a route in routes.py, add its path to PATHS
below (one dict per path, one operation per method, built with `operation(...)`). A route on one of
the CRUD-style resources (USERS, API_KEYS, WEBHOOKS, KB_ARTICLES, LABELS, CANNED, ACTIONS ...) is
one call on its `Resource`, e.g. `USERS.action("adminInviteUser", "Invite ...", USERS.returns_one(...))`:
tag, access note, id parameter and the 401/403/404 responses come from the resource.
tests/test_openapi.py fails for any route (method + path template, HEAD and static routes
excepted) that the spec does not describe, and checks the spec against the OpenAPI 3.1 schema.

Request body schemas are generated from the handlers' own validation schemas
(validation.Field), so what is documented is what is enforced. Response schemas mirror
views.py; the tests validate real responses against them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import __version__
from .db.events import EVENT_TYPES
from .handlers import admin as admin_handlers
from .handlers import admin_actions as admin_actions_handlers
from .handlers import admin_api_keys as api_key_handlers
from .handlers import admin_kb as admin_kb_handlers
from .handlers import admin_webhooks as webhook_handlers
from .handlers import auth as auth_handlers
from .handlers import availability as availability_handlers
from .handlers import canned as canned_handlers
from .handlers import kb_suggestions as kb_suggestion_handlers
from .handlers import labels as label_handlers
from .handlers import ratings as rating_handlers
from .handlers import ticket_mail as ticket_mail_handlers
from .handlers import tickets as ticket_handlers
from .handlers import widget as widget_handlers
from .handlers.pages import ADMIN_SECTIONS
from .security import PASSWORD_MIN_CHARS
from .services import actions as actions_service
from .services import api_keys as api_key_service
from .services import customer_panel as panel_service
from .services import invitations as invitations_service
from .services import labels as label_service
from .services import messages as message_service
from .services import search as search_service
from .services import tickets as ticket_service
from .services import widget_settings as widget_settings_service
from .settings import ROLES
from .validation import Field

Schema = dict[str, Any]

JSON = "application/json"


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """`schema` or null (OpenAPI 3.1 / JSON Schema 2020-12 style)."""
    if "$ref" in schema:
        return {"oneOf": [schema, {"type": "null"}]}
    out = dict(schema)
    out["type"] = [schema["type"], "null"]
    return out


def obj(properties: Mapping[str, Schema], *, required: list[str] | None = None, description: str = "") -> Schema:
    """A closed object: every listed property, no others. All properties are required unless
    `required` says otherwise."""
    schema: Schema = {"type": "object", "properties": dict(properties), "additionalProperties": False}
    required = list(properties) if required is None else required
    if required:  # OpenAPI 3.0 (the Swagger UI copy) refuses an empty list
        schema["required"] = required
    if description:
        schema["description"] = description
    return schema


def array_of(name: str, description: str = "") -> Schema:
    """An array of the `name` component schema."""
    schema: Schema = {"type": "array", "items": ref(name)}
    if description:
        schema["description"] = description
    return schema


UUID: Schema = {"type": "string", "format": "uuid"}
UUID_PATTERN = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
TIMESTAMP: Schema = {"type": "string", "format": "date-time"}
SEARCH_TERMS: Schema = {
    "type": "array",
    "items": {"type": "string"},
    "description": "With q only: the words searched for, as the index spells them (lower case).",
}
# Printable text: the visitor context refuses control characters.
_NO_CONTROL = "^[^\\u0000-\\u001f\\u007f]*$"
VISITOR_CONTEXT_REQUEST: Schema = obj(
    {
        "page_url": {"type": "string", "maxLength": panel_service.MAX_URL_CHARS, "pattern": _NO_CONTROL},
        "referrer": {"type": "string", "maxLength": panel_service.MAX_URL_CHARS, "pattern": _NO_CONTROL},
        "user_agent": {
            "type": "string",
            "maxLength": panel_service.MAX_USER_AGENT_CHARS,
            "pattern": _NO_CONTROL,
        },
        "language": {"type": "string", "maxLength": 35, "pattern": f"^({panel_service.LANGUAGE.pattern})?$"},
        "time_zone": {"type": "string", "maxLength": 64, "pattern": f"^({panel_service.TIME_ZONE.pattern})?$"},
    },
    required=[],
    description="What the widget knows about the visitor, shown to agents in the customer panel.",
)


# What str.strip() removes (str.isspace()), spelled out: regex engines differ on what \s means.
SPACE_CHARS = (
    "\\t\\n\\u000b\\f\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
)
NO_NUL = "^[^\\u0000]*$"
# Some character that is neither NUL nor white space: what a field that is stripped and must not
# be empty needs.
NOT_BLANK = f"^[^\\u0000]*[^\\u0000{SPACE_CHARS}][^\\u0000]*$"


def field_schema(field: Field) -> Schema:
    """The JSON schema of one validation.Field."""
    schema: Schema
    if field.kind == "str":
        schema = {"type": "string", "minLength": field.min_len, "maxLength": field.max_len}
        # validation refuses NUL (PostgreSQL text cannot hold it) and, for stripped fields, text
        # that is only white space.
        schema["pattern"] = NOT_BLANK if field.strip and field.min_len > 0 else NO_NUL
        if field.max_bytes is not None:
            schema["description"] = f"At most {field.max_bytes} bytes of UTF-8."
    elif field.kind == "int":
        schema = {"type": "integer"}
        if field.lo is not None:
            schema["minimum"] = field.lo
        if field.hi is not None:
            schema["maximum"] = field.hi
    elif field.kind == "bool":
        schema = {"type": "boolean"}
    elif field.kind == "uuid":
        schema = dict(UUID)
    elif field.kind == "choice":
        schema = {"type": "string", "enum": list(field.choices)}
    elif field.kind == "dict":
        schema = {"type": "object"}
    else:  # a new Field kind must be taught here
        raise ValueError(f"no JSON schema for field kind {field.kind!r}")
    return nullable(schema) if field.nullable else schema


def request_schema(fields: Mapping[str, Field], descriptions: Mapping[str, str] | None = None) -> Schema:
    """The body schema for a handler's validation schema: unknown fields are refused (422)."""
    properties: dict[str, Schema] = {}
    for name, field in fields.items():
        prop = field_schema(field)
        if descriptions and name in descriptions:
            prop["description"] = descriptions[name]
        properties[name] = prop
    return obj(properties, required=[n for n, f in fields.items() if f.required])


def with_properties(schema: Schema, **changes: Schema) -> Schema:
    """`schema` with more keywords on some of its properties (what a service checks beyond the
    handler's validation.Field, such as an email's form)."""
    for name, keywords in changes.items():
        schema["properties"][name].update(keywords)
    return schema


# services/auth.py EMAIL_RE, on the text as sent (it is stripped first), and without NUL.
_EMAIL_PART = f"[^@{SPACE_CHARS}\\u0000]"
EMAIL_PATTERN: Schema = {
    "pattern": f"^[{SPACE_CHARS}]*{_EMAIL_PART}+@{_EMAIL_PART}+\\.{_EMAIL_PART}+[{SPACE_CHARS}]*$",
    "description": "An email address: something@domain.tld.",
}


# ---- components ---------------------------------------------------------------------------

SCHEMAS: dict[str, Schema] = {
    "Error": obj(
        {
            "error": obj(
                {
                    "code": {
                        "type": "string",
                        "description": "Stable machine-readable code, e.g. validation_error, not_found.",
                    },
                    "message": {"type": "string", "description": "Human-readable explanation."},
                    "details": {
                        "description": "Optional extra data: `fields` (field -> problem) for validation "
                        "errors, `retry_after` (seconds) for rate limits."
                    },
                },
                required=["code", "message"],
            )
        },
        description="The one error shape every endpoint uses.",
    ),
    "User": obj(
        {
            "id": UUID,
            "email": {"type": "string"},
            "role": {
                "type": "string",
                "enum": [*ROLES, "integration"],
                "description": "integration: the account an API key acts as (docs/integrations.md).",
            },
            "name": {"type": "string"},
            "created_at": TIMESTAMP,
        }
    ),
    "UserResponse": obj({"user": ref("User")}),
    "TokenResponse": obj(
        {
            "access_token": {"type": "string", "description": "A JWT; send it as Authorization: Bearer <token>."},
            "token_type": {"type": "string", "enum": ["bearer"]},
            "expires_in": {"type": "integer", "description": "Seconds until the token expires."},
            "user": ref("User"),
        }
    ),
    "Ticket": obj(
        {
            "id": UUID,
            "customer_id": UUID,
            "subject": {"type": "string"},
            "description": {"type": "string"},
            "status": {"type": "string", "enum": list(ticket_service.STATUSES)},
            "priority": {"type": "string", "enum": list(ticket_service.PRIORITIES)},
            "assignee_id": nullable(UUID),
            "ai_enabled": {"type": "boolean"},
            "waiting_for_agent": {"type": "boolean"},
            "last_seq": {"type": "integer", "description": "The highest message seq handed out in this ticket."},
            "last_activity_at": TIMESTAMP,
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
            "rating": nullable(
                {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 5,
                    "description": "The customer's rating (1 bad - 5 great) once given; POST /tickets/{id}/rating.",
                }
            ),
            "rating_comment": nullable({"type": "string", "description": "The comment given with the rating."}),
            "rated_at": nullable(TIMESTAMP),
            "match": {**nullable(ref("SearchMatch")), "description": "In GET /tickets?q= results only."},
            "labels": {
                "type": "array",
                "items": ref("TicketLabel"),
                "description": "Sorted by name. Agents and admins only: absent for customers.",
            },
            "contact_email": nullable(
                {"type": "string", "description": "The address the visitor gave for replies and transcripts."}
            ),
        },
        required=[
            "id",
            "customer_id",
            "subject",
            "description",
            "status",
            "priority",
            "assignee_id",
            "ai_enabled",
            "waiting_for_agent",
            "last_seq",
            "last_activity_at",
            "created_at",
            "updated_at",
        ],
    ),
    "Rating": obj(
        {
            "ticket_id": UUID,
            "score": {"type": "integer", "minimum": 1, "maximum": 5, "description": "1 (bad) to 5 (great)."},
            "comment": nullable({"type": "string"}),
            "created_at": TIMESTAMP,
        }
    ),
    "RatingRequest": request_schema(
        rating_handlers.RATING_SCHEMA,
        {"score": "1 (bad) to 5 (great).", "comment": "Optional; empty or null means none."},
    ),
    "RatedTicket": obj({"rating": ref("Rating"), "ticket": ref("Ticket")}),
    "Conversation": obj({"ticket": ref("Ticket"), "last_message": nullable(ref("Message"))}),
    "ConversationPage": obj(
        {
            "conversations": array_of("Conversation"),
            "next_cursor": nullable({"type": "string", "description": "Pass as ?cursor= for the next page."}),
        }
    ),
    "TicketLabel": obj({"id": UUID, "name": {"type": "string"}, "color": {"type": "string"}}),
    "TicketResponse": obj({"ticket": ref("Ticket")}),
    "TicketPage": obj(
        {
            "tickets": array_of("Ticket"),
            "next_cursor": nullable(
                {"type": "string", "description": "Pass as ?cursor= for the next page; null on the last page."}
            ),
            "terms": SEARCH_TERMS,
        },
        required=["tickets", "next_cursor"],
    ),
    "SearchMatch": obj(
        {
            "field": {
                "type": "string",
                "enum": ["message", "subject", "description", "customer"],
                "description": "Where the query matched: the newest message with every word first, else the "
                "subject, the description, the customer's name or email (staff only), else (the words spread "
                "over several messages) the newest message with any of them.",
            },
            "snippet": {
                "type": "string",
                "description": "Up to ~180 characters of that text around the first match, white space "
                "flattened, '…' where it was cut. Plain text: render it as text.",
            },
            "highlights": {
                "type": "array",
                "items": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 2, "maxItems": 2},
                "description": "[start, end) ranges of snippet to highlight, in Unicode code points (not UTF-16 "
                "units: in JavaScript index Array.from(snippet)).",
            },
            "message_id": {**UUID, "description": "field message: the message that matched."},
            "seq": {"type": "integer", "description": "field message: its seq."},
            "visibility": {"type": "string", "enum": ["public", "internal"], "description": "field message."},
        },
        required=["field", "snippet", "highlights"],
    ),
    "CreatedTicket": obj({"ticket": ref("Ticket"), "message": nullable(ref("Message"))}),
    "Message": obj(
        {
            "id": UUID,
            "ticket_id": UUID,
            "seq": {"type": "integer", "description": "Increases by one per message within a ticket."},
            "author_id": nullable(UUID),
            "author_kind": {"type": "string", "enum": ["customer", "agent", "ai", "system", "integration"]},
            "body": {"type": "string"},
            "client_id": nullable({"type": "string"}),
            "visibility": {
                "type": "string",
                "enum": ["public", "internal"],
                "description": "internal notes are shown to agents and admins only.",
            },
            "metadata": {"type": "object"},
            "attachments": {
                "type": "array",
                "items": ref("AttachmentSummary"),
                "description": "Files sent with the message, in the order referenced; empty for most messages.",
            },
            "created_at": TIMESTAMP,
        }
    ),
    "AttachmentSummary": obj(
        {
            "id": UUID,
            "filename": {"type": "string", "description": "The uploaded file's name (display only)."},
            "content_type": {
                "type": "string",
                "description": "Decided by the server from the file's bytes, not the name or declared type.",
            },
            "size": {"type": "integer", "description": "Bytes."},
            "url": {"type": "string", "description": "GET it with the caller's credentials: /attachments/{id}."},
        }
    ),
    "Attachment": obj(
        {
            "id": UUID,
            "filename": {"type": "string"},
            "content_type": {"type": "string"},
            "size": {"type": "integer"},
            "url": {"type": "string"},
            "ticket_id": UUID,
            "message_id": nullable({**UUID, "description": "null until a message references it."}),
            "created_at": TIMESTAMP,
        }
    ),
    "AttachmentResponse": obj({"attachment": ref("Attachment")}),
    "PostedMessage": obj(
        {
            "message": ref("Message"),
            "created": {"type": "boolean", "description": "false when this was a retry of a stored client_id."},
        }
    ),
    "MessagePage": obj(
        {
            "messages": array_of("Message", "Oldest first."),
            "has_more": {"type": "boolean", "description": "More messages exist in the direction asked for."},
            "last_seq": {"type": "integer"},
        }
    ),
    "AiRequestAccepted": obj(
        {
            "reply_id": {"type": "string", "format": "uuid", "description": "The reply_id of its ai.* events."},
            "in_reply_to": nullable({"type": "integer", "description": "The seq of the customer message."}),
        }
    ),
    "Health": obj({"status": {"type": "string", "enum": ["ok"]}}),
    "Ready": obj({"status": {"type": "string", "enum": ["ready"]}, "database": {"type": "string"}}),
    "SignupRequest": with_properties(
        request_schema(auth_handlers.SIGNUP_SCHEMA, {"password": "At least 8 characters and at most 72 bytes."}),
        email=EMAIL_PATTERN,
        password={"minLength": PASSWORD_MIN_CHARS},
    ),
    "LoginRequest": request_schema(auth_handlers.LOGIN_SCHEMA),
    "CreateTicketRequest": with_properties(
        request_schema(
            ticket_handlers.CREATE_SCHEMA,
            {
                "message": "Optional first message, stored with seq 1.",
                "client_id": "Idempotency key of the first message.",
            },
        ),
        context=VISITOR_CONTEXT_REQUEST,
    ),
    "UpdateTicketRequest": request_schema(
        ticket_handlers.UPDATE_SCHEMA,
        {
            "status": "Customers may only set closed, on their own ticket.",
            "assignee_id": "An agent or admin; null unassigns.",
        },
    ),
    "PostMessageRequest": request_schema(
        ticket_handlers.MESSAGE_SCHEMA,
        {
            "client_id": (
                f"Idempotency key (1-{message_service.MAX_CLIENT_ID_CHARS} characters): a retry with the same "
                "client_id returns the stored message with 200 instead of storing it twice."
            ),
            "internal": "Agents and admins only: an internal note, never shown to customers.",
        },
    ),
    # The web front ends (docs/web.md).
    "VisitorRequest": request_schema(
        widget_handlers.VISITOR_SCHEMA, {"name": "Optional display name; agents see 'Visitor' otherwise."}
    ),
    "IdentifyRequest": with_properties(
        request_schema(
            widget_handlers.IDENTIFY_SCHEMA,
            {
                "external_id": "The host site's own user id.",
                "signature": "Hex HMAC-SHA256 of external_id with WIDGET_IDENTITY_SECRET, made on the host's server.",
                "email": "Shown to agents. Not covered by the signature, so it never selects an account.",
            },
        ),
        email={"pattern": f"^$|{EMAIL_PATTERN['pattern']}"},
    ),
    "Customer": obj(
        {
            "id": UUID,
            "name": {"type": "string"},
            "email": nullable({"type": "string"}),
            "external_id": nullable({"type": "string", "description": "The host site's user id (widget)."}),
            "anonymous": {"type": "boolean", "description": "An anonymous widget visitor."},
        }
    ),
    "InboxRow": obj(
        {
            "ticket": ref("Ticket"),
            "customer": nullable(ref("Customer")),
            "last_message": nullable(ref("Message")),
            "match": {**nullable(ref("SearchMatch")), "description": "With q only: why the ticket was found."},
        },
        required=["ticket", "customer", "last_message"],
    ),
    "InboxPage": obj(
        {
            "tickets": array_of("InboxRow"),
            "next_cursor": nullable({"type": "string", "description": "Pass as ?cursor= for the next page."}),
            "terms": SEARCH_TERMS,
        },
        required=["tickets", "next_cursor"],
    ),
    "VisitorContext": obj(
        {
            "page_url": nullable({"type": "string", "description": "The page the visitor wrote from, as sent."}),
            "page_url_is_web": {"type": "boolean", "description": "http(s) with a host: safe to render as a link."},
            "referrer": nullable({"type": "string"}),
            "referrer_is_web": {"type": "boolean"},
            "user_agent": nullable({"type": "string"}),
            "browser": nullable({"type": "string", "description": "Parsed from user_agent: 'Chrome 120 on macOS'."}),
            "language": nullable({"type": "string", "description": "BCP 47 tag, e.g. fr-CA."}),
            "time_zone": nullable({"type": "string", "description": "IANA name, e.g. Europe/Paris."}),
        }
    ),
    "CustomerPanel": obj(
        {
            "customer": nullable(ref("Customer")),
            "context": nullable(ref("VisitorContext")),
            "other_tickets": {
                "type": "array",
                "description": f"The customer's other tickets, newest activity first (at most "
                f"{panel_service.OTHER_TICKETS}).",
                "items": obj(
                    {
                        "id": UUID,
                        "subject": {"type": "string"},
                        "status": {"type": "string", "enum": list(ticket_service.STATUSES)},
                        "created_at": TIMESTAMP,
                        "last_activity_at": TIMESTAMP,
                    }
                ),
            },
            "other_total": {"type": "integer", "description": "How many other tickets the customer has."},
        }
    ),
    "StaffList": obj(
        {
            "agents": {
                "type": "array",
                "items": obj(
                    {
                        "id": UUID,
                        "name": {"type": "string"},
                        "email": {"type": "string"},
                        "role": {"type": "string", "enum": ["agent", "admin"]},
                    }
                ),
            }
        }
    ),
}


def error_response(description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": ref("Error")}}}


RESPONSES: dict[str, Schema] = {
    "BadRequest": error_response("Malformed JSON or an empty body."),
    "Unauthorized": {
        **error_response(
            "Missing, invalid or expired bearer token; a deleted account; or a session that has ended "
            "(session_ended: logout, role change, disable or password reset since the token was issued)."
        ),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    "Forbidden": error_response("Not allowed to do this; account_disabled when the caller's account is disabled."),
    "NotFound": error_response("No such resource, or not visible to the caller."),
    "Conflict": error_response("Conflicts with existing data."),
    "PayloadTooLarge": error_response("The body exceeds MAX_BODY_BYTES."),
    "RequestTimeout": error_response("The body did not fully arrive within HTTP_BODY_TIMEOUT_SECONDS."),
    "UnsupportedMediaType": error_response("The body is not application/json."),
    "ValidationError": error_response("Wrong types, unknown fields or values out of range; details.fields says which."),
    "RateLimited": {
        **error_response("Too many attempts; retry after the given number of seconds."),
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    },
    "NotReady": error_response("A dependency (the database) is not reachable."),
    "NotAnUpgrade": error_response("Not a WebSocket upgrade request."),
    "FormBadRequest": error_response("The form could not be read: not UTF-8, or too many fields."),
    "FormUnsupportedMediaType": error_response("The body is not application/x-www-form-urlencoded."),
    "Gone": error_response("cursor_expired: the events after this cursor are past retention; resync."),
}

# What a form post (validation.read_form) answers when it cannot read the body.
FORM_ERRORS: Schema = {
    "400": {"$ref": "#/components/responses/FormBadRequest"},
    "413": {"$ref": "#/components/responses/PayloadTooLarge"},
    "415": {"$ref": "#/components/responses/FormUnsupportedMediaType"},
}


def form_post(summary: str, operation_id: str, fields: Sequence[str], responses: Mapping[str, Schema]) -> Schema:
    """A console HTML form post (validation.read_form): every field a string, all required; no
    bearer token (the session cookie and the form's csrf_token); FORM_ERRORS added."""
    form = obj({name: {"type": "string"} for name in fields})
    return {
        "summary": summary,
        "operationId": operation_id,
        "tags": ["web"],
        "security": [],
        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": form}}},
        "responses": {**responses, **FORM_ERRORS},
    }


# Responses every JSON-body endpoint can give, and every authenticated one.
BODY_ERRORS = ("BadRequest", "RequestTimeout", "PayloadTooLarge", "UnsupportedMediaType", "ValidationError")
# Forbidden: any authenticated request of a disabled account is refused (docs/security.md).
AUTH_ERRORS = ("Unauthorized", "Forbidden")
STATUS_OF = {
    "BadRequest": "400",
    "Unauthorized": "401",
    "Forbidden": "403",
    "NotFound": "404",
    "RequestTimeout": "408",
    "Conflict": "409",
    "PayloadTooLarge": "413",
    "UnsupportedMediaType": "415",
    "ValidationError": "422",
    "Gone": "410",
    "RateLimited": "429",
    "NotReady": "503",
    "NotAnUpgrade": "400",
}


def json_content(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def returns(schema: str, description: str, status: str = "200") -> dict[str, Schema]:
    """The `ok` of an operation that answers one JSON document of the `schema` component."""
    return {status: json_content(ref(schema), description)}


def web_page(summary: str, **more: Any) -> Schema:
    """An operation of the web front ends: the web tag and no bearer token (a page that needs a
    login reads the console session cookie)."""
    return operation(summary, tag="web", auth=False, **more)


def operation(
    summary: str,
    *,
    tag: str,
    operation_id: str,
    ok: Mapping[str, Schema],
    auth: bool = True,
    body: str | None = None,
    errors: tuple[str, ...] = (),
    params: list[Schema] | None = None,
    description: str = "",
) -> Schema:
    """One operation. `ok` maps success status codes to responses (see json_content); `body`
    names a request schema in SCHEMAS; `errors` names entries of RESPONSES. Authenticated
    operations get 401 added, body-taking ones 400/413/415/422."""
    op: Schema = {"summary": summary, "operationId": operation_id, "tags": [tag]}
    if description:
        op["description"] = description
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": ref(body)}}}
    all_errors = list(errors)
    if auth:
        all_errors += AUTH_ERRORS
    if body is not None:
        all_errors += BODY_ERRORS
    responses: Schema = dict(ok)
    for name in sorted(set(all_errors), key=STATUS_OF.__getitem__):
        responses[STATUS_OF[name]] = {"$ref": f"#/components/responses/{name}"}
    op["responses"] = responses
    op["security"] = [{"bearerAuth": []}] if auth else []
    return op


def query_param(name: str, schema: Schema, description: str) -> Schema:
    # allowEmptyValue: the handlers read `?name=` as if the parameter were absent.
    return {
        "name": name,
        "in": "query",
        "required": False,
        "allowEmptyValue": True,
        "schema": schema,
        "description": description,
    }


def path_param(name: str, schema: Schema = UUID) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def limit_param(maximum: int, default: int) -> Schema:
    return query_param("limit", {"type": "integer", "minimum": 1, "maximum": maximum, "default": default}, "Page size.")


def html(description: str = "An HTML page.") -> Schema:
    """A response that is an HTML page."""
    return {"description": description, "content": {"text/html": {}}}


def console_page(page: str, forbidden: str = "A customer's session.") -> Schema:
    """The responses of a console page that needs the session cookie: the page, the login
    redirect without a session, and a 403 page for a session of the wrong role."""
    return {
        "200": html(page),
        "303": {"description": "Not logged in: to /console/login."},
        "403": html(forbidden),
    }


@dataclass(frozen=True)
class Resource:
    """The operations on one kind of resource (list, create, get, update, delete, and actions on
    one of them) share a tag, an access rule, an id path parameter and the schema of one item:
    said once here, so each operation's entry says only what is its own.

    Operation ids are built from the verb and the noun: `admin` + Get + `User` (adminGetUser), or,
    without op_prefix, get + `Webhook` (getWebhook). Descriptions are the note, then `extra`;
    `note=` replaces the resource's note for one operation whose access rule differs. The CRUD
    methods pass their other keywords on to `action`."""

    tag: str
    noun: str  # in operation ids; its plural (list) adds an s
    id_name: str  # the path parameter naming one item (a UUID)
    note: str
    op_prefix: str = ""
    one_schema: str = ""  # the response schema of one item; by default noun + "Response"
    errors: tuple[str, ...] = ("Forbidden",)

    @property
    def one(self) -> str:
        return self.one_schema or f"{self.noun}Response"

    @property
    def id_param(self) -> Schema:
        return path_param(self.id_name)

    def operation_id(self, verb: str, noun: str) -> str:
        return f"{self.op_prefix}{verb.capitalize()}{noun}" if self.op_prefix else f"{verb}{noun}"

    def returns_one(self, description: str, status: str = "200") -> dict[str, Schema]:
        return returns(self.one, description, status)

    def action(
        self,
        operation_id: str,
        summary: str,
        ok: Mapping[str, Schema],
        *,
        one: bool = True,
        params: Sequence[Schema] = (),
        body: str | None = None,
        errors: tuple[str, ...] = (),
        extra: str = "",
        note: str | None = None,
    ) -> Schema:
        """Any operation of the resource; on `one` item (its id first in the path, 404 when there
        is no such item) unless one=False."""
        note = self.note if note is None else note
        return operation(
            summary,
            tag=self.tag,
            operation_id=operation_id,
            params=[self.id_param, *params] if one else list(params),
            body=body,
            ok=ok,
            errors=(*self.errors, *(("NotFound",) if one else ()), *errors),
            description=" ".join(part for part in (note, extra) if part),
        )

    def list(self, summary: str, schema: str, ok_description: str, **more: Any) -> Schema:
        """GET on the collection; query parameters bring their 422."""
        ok = returns(schema, ok_description)
        errors = ("ValidationError",) if more.get("params") else ()
        return self.action(self.operation_id("list", self.noun + "s"), summary, ok, one=False, errors=errors, **more)

    def create(self, summary: str, body: str, ok_description: str, schema: str = "", **more: Any) -> Schema:
        """POST on the collection: 201 with the new item (`schema`, when it is not `one`)."""
        ok = returns(schema or self.one, ok_description, "201")
        return self.action(self.operation_id("create", self.noun), summary, ok, one=False, body=body, **more)

    def get(self, summary: str, ok_description: str, **more: Any) -> Schema:
        return self.action(self.operation_id("get", self.noun), summary, self.returns_one(ok_description), **more)

    def update(self, summary: str, body: str, ok_description: str, operation_id: str = "", **more: Any) -> Schema:
        operation_id = operation_id or self.operation_id("update", self.noun)
        return self.action(operation_id, summary, self.returns_one(ok_description), body=body, **more)

    def delete(self, summary: str, ok_description: str, **more: Any) -> Schema:
        ok = {"204": {"description": ok_description}}
        return self.action(self.operation_id("delete", self.noun), summary, ok, **more)


TICKET_ID_PARAM: Schema = path_param("ticket_id")

# The handlers refuse query parameters they do not know: tests check these lists match theirs.
LIST_TICKET_PARAMS = [
    query_param("status", {"type": "string", "enum": list(ticket_service.STATUSES)}, "Only tickets in this status."),
    query_param(
        "priority", {"type": "string", "enum": list(ticket_service.PRIORITIES)}, "Only tickets of this priority."
    ),
    query_param(
        "assignee",
        {"type": "string", "pattern": f"^(me|none|{UUID_PATTERN})$"},
        "`me` (assigned to the caller), `none` (unassigned) or an agent's user id. Staff filter.",
    ),
    query_param("waiting", {"type": "boolean"}, "Only tickets that are (or are not) waiting for an agent."),
    query_param(
        "q",
        {"type": "string", "maxLength": search_service.MAX_QUERY_CHARS},
        "Search: only tickets whose subject, description, messages (between them; internal notes: staff "
        "only) or, for staff, the customer's name or email contain every word of q (by word prefix, any "
        "case). A message is found as soon as it is stored. Each "
        f"ticket then carries a `match`. At most {search_service.MAX_QUERY_CHARS} characters and "
        f"{search_service.MAX_TERMS} words, with at least one word (letters or digits): else a 422 naming q. "
        "Blank: no search. Combines with the other filters and the cursor.",
    ),
    query_param(
        "label",
        {"type": "string", "maxLength": 100},
        "Only tickets carrying this label (its id, or its name in any case; an unknown name is a 422). "
        "Agents and admins only (403 for customers).",
    ),
    query_param(
        "cursor",
        {"type": "string", "pattern": "^[A-Za-z0-9_-]*$"},
        "next_cursor from the previous page (opaque; anything else is a 422).",
    ),
    limit_param(100, 20),
]

MESSAGE_PARAMS = [
    query_param(
        "after_seq",
        {"type": "integer", "minimum": 0, "maximum": ticket_handlers.MAX_SEQ},
        "Messages with seq greater than this, oldest first (default: from the start).",
    ),
    query_param(
        "before_seq",
        {"type": "integer", "minimum": 1, "maximum": ticket_handlers.MAX_SEQ},
        "The newest messages with seq less than this (for scrolling back); not with after_seq.",
    ),
    limit_param(200, 50),
]


# ---- the AI reply's Server-Sent Events --------------------------------------------------

JSON_TEXT = "One line of JSON."


def sse_event(name: str, data: Schema, description: str) -> Schema:
    """One Server-Sent Event as SSE parsers (and schemathesis) read it: its `event` name and its
    `data` text, which is JSON of the `contentSchema` shape."""
    return obj(
        {
            "event": {"type": "string", "enum": [name]},
            "data": {
                "type": "string",
                "contentMediaType": JSON,
                "contentSchema": data,
                "description": JSON_TEXT,
            },
        },
        description=description,
    )


REPLY_ID: Schema = nullable({"type": "string", "description": "The reply_id of the reply's ai.* room events."})
REPLY_KIND: Schema = {"type": "string", "enum": ["reply"]}

AI_STREAM_EVENT: Schema = {
    "oneOf": [
        sse_event(
            "started",
            obj({"reply_id": {"type": "string"}, "kind": REPLY_KIND, "in_reply_to": {"type": "integer"}}),
            "The reply began; in_reply_to is the seq of the customer message it answers.",
        ),
        sse_event(
            "delta",
            obj(
                {
                    "reply_id": {"type": "string"},
                    "offset": {"type": "integer", "minimum": 0},
                    "text": {"type": "string"},
                }
            ),
            "More text: `offset` is where `text` starts in the whole reply, in code points.",
        ),
        sse_event(
            "completed",
            obj(
                {
                    "reply_id": REPLY_ID,
                    "kind": REPLY_KIND,
                    "message": nullable(ref("Message")),
                    "text": {"type": "string"},
                }
            ),
            "The stored reply; the stream ends.",
        ),
        sse_event(
            "failed",
            {
                **obj(
                    {
                        "reply_id": REPLY_ID,
                        "kind": REPLY_KIND,
                        "code": {"type": "string"},
                        "message": {"type": "string", "description": "For people."},
                        "retryable": {"type": "boolean"},
                        "retry_after": nullable({"type": "number", "description": "Seconds, when known."}),
                        "partial": nullable(ref("Message")),
                    },
                    required=["reply_id", "kind", "code", "message", "retryable"],
                ),
                # The ai.failed room event's fields (docs/ai.md): it may gain more.
                "additionalProperties": True,
            },
            "The reply failed; `partial` is the stored incomplete message, if any text arrived. The stream ends.",
        ),
        sse_event(
            "cancelled",
            obj({"reply_id": REPLY_ID, "kind": REPLY_KIND, "reason": {"type": "string"}}),
            "No reply will come (the AI was turned off, or an agent took over). The stream ends.",
        ),
        sse_event(
            "revoked",
            obj({"code": {"type": "string", "enum": ["access_revoked"]}, "message": {"type": "string"}}),
            "The caller's access was revoked meanwhile (account disabled, role changed, password reset, "
            "logged out): sign in again. The stream ends; the reply goes on for everyone else.",
        ),
    ]
}


# ---- paths: one dict per path, one operation per method ----------------------------------

# attachment_ids is read before the schema (handlers/tickets.py): a message with files may have
# an empty body.
SCHEMAS["PostMessageRequest"]["properties"]["attachment_ids"] = nullable(
    {
        "type": "array",
        "items": UUID,
        "description": "Uploads (POST /tickets/{id}/attachments) by the caller into this ticket, not yet sent; "
        "at most ATTACHMENTS_PER_MESSAGE (422 too_many_attachments). Unknown, foreign or already sent ids: 422 "
        "attachment_unavailable. With attachments, body may be empty; null is the same as none.",
    }
)
SCHEMAS["PostMessageRequest"]["properties"]["body"].pop("minLength", None)

UPLOAD_OPERATION = operation(
    "Upload a file into a ticket",
    tag="attachments",
    operation_id="uploadAttachment",
    params=[TICKET_ID_PARAM],
    ok=returns("AttachmentResponse", "Stored; reference its id in a message's attachment_ids.", "201"),
    errors=(
        "BadRequest",
        "NotFound",
        "RequestTimeout",
        "PayloadTooLarge",
        "UnsupportedMediaType",
        "ValidationError",
        "RateLimited",
        "NotReady",
    ),
    description="multipart/form-data with the file in a field named `file`, streamed to storage. 413 "
    "attachment_too_large over ATTACHMENT_MAX_BYTES; 415 attachment_type_not_allowed when the file's bytes are "
    "not an allowed type (ATTACHMENT_ALLOWED_TYPES; a file named or declared as an image must be one; never "
    "HTML or SVG); 429 over ATTACHMENT_UPLOADS_PER_WINDOW; 503 storage_unavailable when storage fails. "
    "Uploads never sent in a message are deleted after ATTACHMENT_ORPHAN_SECONDS.",
)
UPLOAD_OPERATION["requestBody"] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        }
    },
}

CONSOLE_PAGE = console_page("An HTML page (agents and admins).")
ADMIN_PAGE_RESPONSES = console_page("An HTML page (admins).", "An agent's or a customer's session.")
ADMIN_SECTION_PARAM: Schema = {
    "name": "section",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "enum": [slug for slug, _ in ADMIN_SECTIONS]},
    "description": 'One of the admin sections (docs/web.md, "Admin pages").',
}

PATHS: dict[str, dict[str, Schema]] = {
    "/auth/signup": {
        "post": operation(
            "Create a customer account and sign in",
            tag="auth",
            operation_id="signup",
            auth=False,
            body="SignupRequest",
            ok=returns("TokenResponse", "Account created; a token for it.", "201"),
            errors=("Conflict", "RateLimited"),
            description="Attempts per client address are limited (SIGNUP_LIMIT_PER_ADDRESS per 10 minutes, "
            "failed ones included): 429 with Retry-After.",
        )
    },
    "/auth/login": {
        "post": operation(
            "Exchange email and password for a bearer token",
            tag="auth",
            operation_id="login",
            auth=False,
            body="LoginRequest",
            ok=returns("TokenResponse", "Signed in."),
            errors=("Unauthorized", "RateLimited"),
            description="Repeated failures for one account from one address, from one address, or for one "
            "account from addresses it has not signed in from are throttled (429 with Retry-After).",
        )
    },
    "/auth/me": {
        "get": operation(
            "The caller's account",
            tag="auth",
            operation_id="me",
            ok=returns("UserResponse", "The account the token belongs to."),
        )
    },
    "/tickets": {
        "get": operation(
            "List tickets, newest activity first",
            tag="tickets",
            operation_id="listTickets",
            params=LIST_TICKET_PARAMS,
            ok=returns("TicketPage", "One page of tickets."),
            errors=("ValidationError",),
            description="Customers see their own tickets; agents and admins see all. Keyset pagination: "
            "follow next_cursor until it is null.",
        ),
        "post": operation(
            "Open a ticket (customers)",
            tag="tickets",
            operation_id="createTicket",
            body="CreateTicketRequest",
            ok=returns("CreatedTicket", "The new ticket and its first message, if one was sent.", "201"),
            errors=("Forbidden", "RateLimited"),
            description="429 `rate_limited` past TICKETS_PER_CUSTOMER_PER_HOUR, 429 `too_many_open_tickets` "
            "past OPEN_TICKETS_PER_CUSTOMER; both with Retry-After.",
        ),
    },
    "/tickets/{ticket_id}": {
        "get": operation(
            "One ticket",
            tag="tickets",
            operation_id="getTicket",
            params=[TICKET_ID_PARAM],
            ok=returns("TicketResponse", "The ticket."),
            errors=("NotFound",),
            description="Another customer's ticket is 404, not 403, so ticket ids cannot be probed.",
        ),
        "patch": operation(
            "Change status, priority, assignee or AI replies",
            tag="tickets",
            operation_id="updateTicket",
            params=[TICKET_ID_PARAM],
            body="UpdateTicketRequest",
            ok=returns("TicketResponse", "The ticket after the change."),
            errors=("Forbidden", "NotFound"),
            description="Agents and admins may change anything; a customer may only close their own ticket.",
        ),
    },
    "/tickets/{ticket_id}/rating": {
        "post": operation(
            "Rate a resolved or closed ticket (its customer, once)",
            tag="tickets",
            operation_id="rateTicket",
            params=[TICKET_ID_PARAM],
            body="RatingRequest",
            ok=returns("RatedTicket", "Stored; the room gets ticket.updated (changes [rating]).", "201"),
            errors=("NotFound", "Conflict"),
            description="Only the ticket's customer may rate it (403 for staff; another customer's ticket is 404). "
            "409 `ticket_not_closed` while the ticket is open or pending; 409 `already_rated` for a second "
            "rating. Records the `rating.created` event (docs/integrations.md).",
        )
    },
    "/tickets/{ticket_id}/customer": {
        "get": operation(
            "The customer panel: who wrote, from where, and their other tickets (agents and admins)",
            tag="tickets",
            operation_id="getTicketCustomer",
            params=[TICKET_ID_PARAM],
            ok=returns("CustomerPanel", "The customer, the visitor context, other tickets."),
            errors=("Forbidden", "NotFound"),
            description="403 for customers, whatever the ticket. Render page_url and referrer as text, and as "
            "a link only when *_is_web is true.",
        )
    },
    "/tickets/{ticket_id}/messages": {
        "get": operation(
            "Message history",
            tag="messages",
            operation_id="listMessages",
            params=[TICKET_ID_PARAM, *MESSAGE_PARAMS],
            ok=returns("MessagePage", "One page of messages, oldest first."),
            errors=("NotFound", "ValidationError"),
            description="Internal notes are included for agents and admins only.",
        ),
        "post": operation(
            "Post a message",
            tag="messages",
            operation_id="postMessage",
            params=[TICKET_ID_PARAM],
            body="PostMessageRequest",
            ok={
                "201": json_content(ref("PostedMessage"), "Stored."),
                "200": json_content(ref("PostedMessage"), "A retry: the message stored earlier with this client_id."),
            },
            errors=("Forbidden", "NotFound", "RateLimited"),
            description="A customer writing on a resolved or closed ticket reopens it. Posts share one per-user "
            "budget with message.send on the user's sockets (WS_SEND_RATE, WS_SEND_BURST): 429 with Retry-After.",
        ),
    },
    "/tickets/{ticket_id}/attachments": {"post": UPLOAD_OPERATION},
    "/attachments/{attachment_id}": {
        "get": operation(
            "Download an attachment",
            tag="attachments",
            operation_id="getAttachment",
            params=[path_param("attachment_id")],
            ok={
                "200": {
                    "description": "The file's bytes, with Content-Disposition (inline for checked images, "
                    "attachment otherwise), X-Content-Type-Options: nosniff and a sandboxing CSP.",
                    "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                }
            },
            errors=("NotFound",),
            description="For the ticket's customer and agents once sent in a message (an internal note's files: "
            "agents only); before that, for its uploader only. Anyone else: 404.",
        )
    },
    "/tickets/{ticket_id}/ai-response": {
        "get": operation(
            "The AI reply to the latest customer message, as Server-Sent Events",
            tag="ai",
            operation_id="aiResponse",
            params=[TICKET_ID_PARAM],
            ok={
                "200": {
                    "description": "text/event-stream: `started`, `delta`... then one final `completed`, "
                    "`failed` or `cancelled` event (docs/ai.md), each an `event:` line naming it and one "
                    "`data:` line holding a JSON object; `: keep-alive` comments come between them. A reply "
                    "already streaming is joined (the text so far first); a stored reply is sent at once as "
                    "`completed`. The schema describes one event, as OpenAPI 3.1 tools read it.",
                    "content": {"text/event-stream": {"schema": AI_STREAM_EVENT}},
                }
            },
            errors=("NotFound", "Conflict"),
            description="409 when the ticket has no customer message, or its AI is off and no reply exists.",
        )
    },
    "/tickets/{ticket_id}/ai/retry": {
        "post": operation(
            "Generate the AI reply to the latest customer message again",
            tag="ai",
            operation_id="retryAiReply",
            params=[TICKET_ID_PARAM],
            ok=returns("AiRequestAccepted", "Started; it streams as ai.* room events.", "202"),
            errors=("NotFound", "Conflict"),
            description="The ticket's customer, or an agent. 409 when the AI is off for the ticket, there is "
            "no customer message, or a reply is already being generated.",
        )
    },
    "/tickets/{ticket_id}/copilot": {
        "post": operation(
            "Ask the copilot for a suggested reply (agents)",
            tag="ai",
            operation_id="requestCopilot",
            params=[TICKET_ID_PARAM],
            ok=returns(
                "AiRequestAccepted",
                "Started; the suggestion streams to agents only as ai.* events with kind copilot.",
                "202",
            ),
            errors=("Forbidden", "NotFound", "Conflict"),
            description="The suggestion is not stored: the agent edits it and sends it as their own message.",
        )
    },
    "/tickets/{ticket_id}/ws": {
        "get": operation(
            "Join the ticket's room over WebSocket",
            tag="realtime",
            operation_id="ticketSocket",
            params=[
                TICKET_ID_PARAM,
                query_param(
                    "after_seq",
                    {"type": "integer", "minimum": 0, "maximum": ticket_handlers.MAX_SEQ},
                    "Resume: the last seq the client has.",
                ),
                query_param("ticket", {"type": "string"}, "A single-use ticket from POST /ws/tickets (browsers)."),
            ],
            ok={"101": {"description": "Switching to WebSocket; the frames are described in docs/protocol.md."}},
            errors=("NotAnUpgrade", "Forbidden", "NotFound", "ValidationError", "RateLimited"),
            description="Authenticate with the Authorization header, a ?ticket= or the console session. 429 "
            "when the user or the client address already holds SOCKETS_PER_USER / SOCKETS_PER_ADDRESS sockets.",
        )
    },
    "/ws/tickets": {
        "post": operation(
            "A single-use ticket to put on a WebSocket URL",
            tag="realtime",
            operation_id="createWsTicket",
            ok={
                "201": json_content(
                    obj({"ticket": {"type": "string"}, "expires_in": {"type": "integer"}}),
                    "Use it as ?ticket= once, before it expires.",
                )
            },
            description="Browsers cannot set headers on WebSocket requests; a short-lived ticket keeps the "
            "long-lived token out of URLs and logs.",
        )
    },
    "/ws/inbox": {
        "get": operation(
            "The agents' live inbox over WebSocket",
            tag="realtime",
            operation_id="inboxSocket",
            params=[query_param("ticket", {"type": "string"}, "A single-use ticket from POST /ws/tickets.")],
            ok={"101": {"description": "Switching to WebSocket; the frames are described in docs/protocol.md."}},
            errors=("NotAnUpgrade", "Forbidden", "RateLimited"),
        )
    },
    "/healthz": {
        "get": operation(
            "Liveness probe",
            tag="operations",
            operation_id="healthz",
            auth=False,
            ok=returns("Health", "The process is serving requests."),
        )
    },
    "/readyz": {
        "get": operation(
            "Readiness probe",
            tag="operations",
            operation_id="readyz",
            auth=False,
            ok=returns("Ready", "The database answers."),
            errors=("NotReady",),
        )
    },
    "/metrics": {
        "get": operation(
            "Prometheus metrics",
            tag="operations",
            operation_id="metrics",
            auth=False,
            ok={"200": {"description": "Prometheus text exposition format.", "content": {"text/plain": {}}}},
        )
    },
    "/openapi.json": {
        "get": operation(
            "This document",
            tag="operations",
            operation_id="openapi",
            auth=False,
            ok={"200": json_content({"type": "object"}, "The OpenAPI 3.1 description of this API.")},
        )
    },
    "/docs": {
        "get": operation(
            "Interactive API documentation (Swagger UI, served offline)",
            tag="operations",
            operation_id="docs",
            auth=False,
            ok={"200": html()},
        )
    },
    # ---- the web front ends (docs/web.md) ----
    "/widget.js": {
        "get": operation(
            "The widget loader script that sites embed",
            tag="widget",
            operation_id="widgetLoader",
            auth=False,
            ok={"200": {"description": "JavaScript.", "content": {"text/javascript": {}}}},
        )
    },
    "/widget/frame": {
        "get": operation(
            "The widget's chat panel (framed by the loader)",
            tag="widget",
            operation_id="widgetFrame",
            auth=False,
            ok={"200": html()},
            description="Only the server's own origin and ALLOWED_ORIGINS may frame it (CSP frame-ancestors).",
        )
    },
    "/widget/visitors": {
        "post": operation(
            "A new anonymous widget visitor and their token",
            tag="widget",
            operation_id="createVisitor",
            auth=False,
            body="VisitorRequest",
            ok=returns("TokenResponse", "A customer account made for this visitor.", "201"),
            errors=("Forbidden", "RateLimited"),
            description="Rate-limited per client address (WIDGET_VISITORS_PER_WINDOW). 403 for a browser "
            "Origin that is neither this server nor in ALLOWED_ORIGINS.",
        )
    },
    "/widget/identify": {
        "post": operation(
            "Sign in a visitor the host site identified (HMAC-signed external id)",
            tag="widget",
            operation_id="identifyVisitor",
            auth=False,
            body="IdentifyRequest",
            ok=returns("TokenResponse", "The customer linked to external_id (made on first use)."),
            errors=("Forbidden",),
            description="403 identity_unverified for a wrong signature, or when WIDGET_IDENTITY_SECRET is unset.",
        )
    },
    "/widget/token": {
        "post": operation(
            "Exchange a widget visitor's valid token for a fresh one",
            tag="widget",
            operation_id="refreshVisitorToken",
            ok=returns("TokenResponse", "A new token for the same account."),
            errors=("Forbidden",),
            description="Only widget visitors' tokens are renewed (403 renewal_refused for staff and signed-up "
            "customers), and never past VISITOR_SESSION_MAX_SECONDS after the visitor's sign-in (401 "
            "session_expired); the new token expires no later than that.",
        )
    },
    "/widget/conversations": {
        "get": operation(
            "The visitor's conversations, newest activity first, each with its newest public message",
            tag="widget",
            operation_id="listConversations",
            params=[
                LIST_TICKET_PARAMS[4],
                limit_param(50, 20),
            ],
            ok=returns("ConversationPage", "One page of the caller's own tickets."),
            errors=("ValidationError",),
            description="Customers only (403 for staff): the widget's history list. Internal notes are never "
            "a preview.",
        )
    },
    "/": {
        "get": web_page(
            "The home page: links to the demo, the console, these docs and the health probes",
            operation_id="homePage",
            ok={"200": html()},
        )
    },
    "/demo": {
        "get": web_page(
            "A sample site with the widget embedded",
            operation_id="demoPage",
            params=[
                query_param(
                    "user",
                    {"type": "string"},
                    "Play a signed-in shop user `demo-<user>` (needs the secret; only the demo namespace is signed).",
                ),
                query_param("name", {"type": "string"}, "That user's name."),
                query_param("email", {"type": "string"}, "That user's email."),
            ],
            ok={"200": html()},
            errors=("NotFound",),
            description="Not served in production (404).",
        )
    },
    "/console": {
        "get": web_page(
            "The agent console: inbox",
            operation_id="consolePage",
            ok=CONSOLE_PAGE,
            description="Authenticated by the console session cookie.",
        )
    },
    "/console/tickets/{ticket_id}": {
        "get": web_page(
            "The agent console: one ticket",
            operation_id="consoleTicketPage",
            params=[TICKET_ID_PARAM],
            ok=CONSOLE_PAGE,
            errors=("NotFound",),
            description="404 for a ticket id that is not a UUID.",
        )
    },
    "/console/admin": {
        "get": web_page(
            "The console's admin pages (first section)",
            operation_id="consoleAdminPage",
            ok=ADMIN_PAGE_RESPONSES,
            description="Authenticated by the console session cookie; admins only.",
        )
    },
    "/console/admin/{section}": {
        "get": web_page(
            "One of the console's admin pages",
            operation_id="consoleAdminSectionPage",
            params=[ADMIN_SECTION_PARAM],
            ok=ADMIN_PAGE_RESPONSES,
            errors=("NotFound",),
            description="Authenticated by the console session cookie; admins only.",
        )
    },
    "/console/login": {
        "get": web_page(
            "The console login form",
            operation_id="consoleLoginPage",
            ok={
                "200": html("An HTML form with a CSRF token."),
                "303": {"description": "Already logged in: to /console."},
            },
        ),
        "post": form_post(
            "Log in to the console (HTML form)",
            "consoleLogin",
            ["email", "password", "csrf_token"],
            {
                "303": {"description": "Logged in: to /console, with the session cookie."},
                "401": html("Wrong email or password (the form again)."),
                "403": html("Bad CSRF token, or a customer account."),
                "422": html("Email or password missing (the form again)."),
                "429": html("Too many failed attempts."),
            },
        ),
    },
    "/console/logout": {
        "post": form_post(
            "Log out of the console (HTML form)",
            "consoleLogout",
            ["csrf_token"],
            {
                "303": {"description": "Logged out: to /console/login."},
                "403": {"$ref": "#/components/responses/Forbidden"},
            },
        )
    },
    "/console/api/token": {
        "post": operation(
            "A short-lived API token for the logged-in console session",
            tag="console",
            operation_id="consoleToken",
            auth=False,
            params=[
                {
                    "name": "X-CSRF-Token",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "The page's CSRF token.",
                }
            ],
            ok=returns("TokenResponse", "A bearer token valid for 15 minutes."),
            errors=("Unauthorized", "Forbidden"),
            description="Authenticated by the console session cookie; 403 without a matching CSRF token.",
        )
    },
    "/console/api/inbox": {
        "get": operation(
            "Inbox rows: tickets with their customer and newest message (agents)",
            tag="console",
            operation_id="consoleInbox",
            params=[
                *LIST_TICKET_PARAMS[:-1],
                limit_param(100, 30),
            ],
            ok=returns("InboxPage", "One page, newest activity first."),
            errors=("Forbidden", "ValidationError"),
        )
    },
    "/console/api/inbox/{ticket_id}": {
        "get": operation(
            "One inbox row (agents)",
            tag="console",
            operation_id="consoleInboxItem",
            params=[TICKET_ID_PARAM],
            ok=returns("InboxRow", "The ticket, its customer and newest message."),
            errors=("Forbidden", "NotFound"),
        )
    },
    "/console/api/agents": {
        "get": operation(
            "Agents and admins, for the assignee picker",
            tag="console",
            operation_id="consoleAgents",
            ok=returns("StaffList", "Every agent and admin."),
            errors=("Forbidden",),
        )
    },
}


# ---- account management (admins) ---------------------------------------------------------

SCHEMAS.update(
    {
        "AdminUser": obj(
            {
                "id": UUID,
                "email": {"type": "string"},
                "role": {"type": "string", "enum": list(ROLES)},
                "name": {"type": "string"},
                "created_at": TIMESTAMP,
                "disabled": {"type": "boolean"},
                "disabled_at": nullable(TIMESTAMP),
                "invited_at": nullable({**TIMESTAMP, "description": "Invited and no password of its own yet."}),
                "status": {"type": "string", "enum": ["active", "invited", "disabled"]},
            },
            description="An account as admins see it.",
        ),
        "AdminUserResponse": obj({"user": ref("AdminUser")}),
        "AdminUserPage": obj(
            {
                "users": array_of("AdminUser"),
                "next_after": nullable({**UUID, "description": "Pass as ?after= for the next page."}),
            }
        ),
        "AdminCreateUserRequest": request_schema(admin_handlers.CREATE_SCHEMA),
        "AdminRoleRequest": request_schema(admin_handlers.ROLE_SCHEMA),
        "AdminPasswordRequest": request_schema(admin_handlers.PASSWORD_SCHEMA),
    }
)

LIST_USER_PARAMS = [
    query_param("role", {"type": "string", "enum": list(ROLES)}, "Only accounts of this role."),
    query_param("email", {"type": "string"}, "Only accounts whose email starts with this (any case)."),
    query_param("disabled", {"type": "boolean"}, "Only disabled (or enabled) accounts."),
    query_param("invited", {"type": "boolean"}, "Only invited accounts that have not set a password (or the others)."),
    query_param("after", UUID, "next_after from the previous page."),
    limit_param(200, 50),
]
ADMIN_NOTE = "Admins only (403 for anyone else)."
ENDS_SESSIONS = (
    "Every token and console session of the account ends, and its open sockets are closed with 4003, "
    "on every instance within seconds."
)
LAST_ADMIN = "409 last_admin when it would leave no enabled admin."
USERS = Resource(
    tag="admin", noun="User", id_name="user_id", note=ADMIN_NOTE, op_prefix="admin", one_schema="AdminUserResponse"
)

PATHS.update(
    {
        "/admin/users": {
            "get": USERS.list(
                "List accounts, newest first", "AdminUserPage", "One page of accounts.", params=LIST_USER_PARAMS
            ),
            "post": USERS.create(
                "Create an account of any role", "AdminCreateUserRequest", "The new account.", errors=("Conflict",)
            ),
        },
        "/admin/users/{user_id}": {"get": USERS.get("One account", "The account.")},
        "/admin/users/{user_id}/role": {
            "post": USERS.action(
                "adminSetRole",
                "Change an account's role",
                USERS.returns_one("The account with its new role."),
                body="AdminRoleRequest",
                errors=("Conflict",),
                extra=f"{ENDS_SESSIONS} {LAST_ADMIN}",
            )
        },
        "/admin/users/{user_id}/disable": {
            "post": USERS.action(
                "adminDisableUser",
                "Disable an account",
                USERS.returns_one("The disabled account."),
                errors=("Conflict",),
                extra=f"It can no longer sign in. {ENDS_SESSIONS} {LAST_ADMIN}",
            )
        },
        "/admin/users/{user_id}/enable": {
            "post": USERS.action(
                "adminEnableUser",
                "Enable a disabled account",
                USERS.returns_one("The account, enabled."),
                extra="It signs in again; sessions ended by the disable stay ended.",
            )
        },
        "/admin/users/{user_id}/password": {
            "post": USERS.action(
                "adminResetPassword",
                "Set a new password for an account",
                USERS.returns_one("The account."),
                body="AdminPasswordRequest",
                extra=ENDS_SESSIONS,
            )
        },
    }
)


# ---- invitations (docs/web.md, "Agents"; services/invitations.py) ---------------------------------

SCHEMAS.update(
    {
        "AdminInviteRequest": request_schema(admin_handlers.INVITE_SCHEMA),
        "Invitation": {
            "oneOf": [
                obj(
                    {
                        "delivery": {"type": "string", "enum": ["email"]},
                        "email": {"type": "string"},
                        "queued_at": TIMESTAMP,
                    },
                    description="Email is on: the link goes to the invitee only.",
                ),
                obj(
                    {
                        "delivery": {"type": "string", "enum": ["link"]},
                        "link": {"type": "string", "description": "/console/invite#token=...; works once."},
                        "expires_at": TIMESTAMP,
                    },
                    description="Email is off (no SMTP_URL): nobody was emailed; the admin passes the link on.",
                ),
            ]
        },
        "AdminInvitationResponse": obj({"user": ref("AdminUser"), "invitation": ref("Invitation")}),
        "AcceptInvitationRequest": request_schema(auth_handlers.INVITATION_SCHEMA),
    }
)
INVITATION_REFUSED: Schema = error_response(
    "invitation_expired, invitation_used (the password is set: sign in), or invitation_revoked (a newer "
    "invitation was sent, or the account was disabled since)."
)


def _invitation_operations() -> dict[str, Schema]:
    accept = operation(
        "Accept an invitation: set the first password and sign in",
        tag="auth",
        operation_id="acceptInvitation",
        auth=False,
        body="AcceptInvitationRequest",
        ok={"200": json_content(ref("TokenResponse"), "The account is active; a token for it, as a login gives.")},
        errors=("Forbidden",),
        description="token: from the invitation link's fragment. The link works once: a second use, a newer "
        "invitation, the account disabled or its password set another way refuse it. 400 invitation_invalid "
        "for a token that is not a genuine invitation link; 403 account_disabled; 422 for a password that "
        "breaks the rules of POST /auth/password.",
    )
    accept["responses"]["410"] = INVITATION_REFUSED
    accept_form = form_post(
        "Accept an invitation (HTML form)",
        "consoleAcceptInvitation",
        ["csrf_token", "token", "new_password", "repeat_password"],
        {"303": {"description": "Accepted: signed in, to /console."}},
    )
    accept_form["responses"].update(
        {
            "403": {"description": "CSRF token, or a disabled account: the page, with the reason."},
            "410": {"description": "The link expired, was used or replaced: the page says so."},
            "422": {"description": "A password too short, or not repeated alike: the form again."},
        }
    )
    return {
        "/admin/invitations": {
            "post": USERS.action(
                "adminInviteUser",
                "Invite an agent or admin by email",
                returns("AdminInvitationResponse", "The invited account and its invitation.", "201"),
                one=False,
                body="AdminInviteRequest",
                errors=("Conflict",),
                extra="The account exists at once with status invited and cannot sign in until its owner sets "
                "a password through the link. With email on, the link is emailed (mail jobs); without "
                "SMTP_URL, the answer carries it for the admin to pass on.",
            )
        },
        "/admin/users/{user_id}/invitation": {
            "post": USERS.action(
                "adminResendInvitation",
                "Re-send an invitation",
                returns("AdminInvitationResponse", "The account and its new invitation."),
                errors=("Conflict", "RateLimited"),
                extra="Every earlier link stops working. 409 not_invited (the password is set) or "
                f"account_disabled; 429 past {invitations_service.INVITATIONS_PER_HOUR} invitation emails to "
                "the account in an hour.",
            )
        },
        "/auth/invitation": {"post": accept},
        "/console/invite": {
            "get": web_page(
                "The invitation page: choose your password",
                operation_id="consoleInvitePage",
                ok={"200": html("An HTML page; its script reads #token=.")},
            ),
            "post": accept_form,
        },
    }


PATHS.update(_invitation_operations())


# ---- integrations: API keys, webhooks, the event feed (docs/integrations.md) -------------------

KEY_NOTE = f"{ADMIN_NOTE} An API key with the admin scope may call it too."
SCOPES_SCHEMA: Schema = {
    "type": "array",
    "items": {"type": "string", "enum": list(api_key_service.SCOPES)},
    "minItems": 1,
}
EVENT_TYPE_SCHEMA: Schema = {"type": "string", "enum": list(EVENT_TYPES)}
SCHEMAS.update(
    {
        "ApiKey": obj(
            {
                "id": UUID,
                "name": {"type": "string"},
                "prefix": {"type": "string", "description": "The key's first characters, to tell keys apart."},
                "scopes": SCOPES_SCHEMA,
                "integration_user_id": {**UUID, "description": "The account the key acts as (author of its posts)."},
                "expires_at": nullable(TIMESTAMP),
                "revoked_at": nullable(TIMESTAMP),
                "last_used_at": nullable(
                    {**TIMESTAMP, "description": "Recorded at most once a minute per key and instance."}
                ),
                "created_by": nullable(UUID),
                "created_at": TIMESTAMP,
            }
        ),
        "ApiKeyResponse": obj({"api_key": ref("ApiKey")}),
        "ApiKeyList": obj(
            {
                "api_keys": array_of("ApiKey"),
                "available_scopes": {"type": "array", "items": SCOPES_SCHEMA["items"]},
            }
        ),
        "CreateApiKeyRequest": {
            **request_schema(api_key_handlers.CREATE_SCHEMA),
            "properties": {
                **request_schema(api_key_handlers.CREATE_SCHEMA)["properties"],
                "scopes": SCOPES_SCHEMA,
                "expires_at": nullable({**TIMESTAMP, "description": "ISO 8601 with an offset; null: never."}),
            },
            "required": ["name", "scopes"],
        },
        "Webhook": obj(
            {
                "id": UUID,
                "url": {"type": "string", "format": "uri"},
                "event_types": {"type": "array", "items": EVENT_TYPE_SCHEMA},
                "include_internal": {"type": "boolean", "description": "Deliver message.created for internal notes."},
                "active": {"type": "boolean"},
                "description": {"type": "string"},
                "disabled_reason": nullable({"type": "string", "description": "Why it was disabled automatically."}),
                "created_at": TIMESTAMP,
                "updated_at": TIMESTAMP,
            }
        ),
        "WebhookResponse": obj({"webhook": ref("Webhook")}),
        "WebhookList": obj(
            {
                "webhooks": array_of("Webhook"),
                "available_event_types": {"type": "array", "items": EVENT_TYPE_SCHEMA},
            }
        ),
        "CreateWebhookRequest": {
            **request_schema(webhook_handlers.CREATE_SCHEMA),
            "properties": {
                **request_schema(webhook_handlers.CREATE_SCHEMA)["properties"],
                "event_types": {"type": "array", "items": EVENT_TYPE_SCHEMA, "minItems": 1},
            },
            "required": ["url", "event_types"],
        },
        "UpdateWebhookRequest": {
            **request_schema(webhook_handlers.UPDATE_SCHEMA),
            "properties": {
                **request_schema(webhook_handlers.UPDATE_SCHEMA)["properties"],
                "event_types": {"type": "array", "items": EVENT_TYPE_SCHEMA, "minItems": 1},
            },
        },
        "Delivery": obj(
            {
                "id": {"type": "integer"},
                "endpoint_id": UUID,
                "event_id": nullable({"type": "string", "description": "evt_...; null for a test delivery."}),
                "test": {"type": "boolean"},
                "ticket_id": nullable(UUID),
                "status": {"type": "string", "enum": list(webhook_handlers.DELIVERY_STATUSES)},
                "attempts": {"type": "integer"},
                "next_attempt_at": nullable(TIMESTAMP),
                "response_status": nullable({"type": "integer"}),
                "error": nullable({"type": "string"}),
                "response_excerpt": nullable({"type": "string", "description": "At most 500 characters."}),
                "last_attempt_at": nullable(TIMESTAMP),
                "delivered_at": nullable(TIMESTAMP),
                "created_at": TIMESTAMP,
            }
        ),
        "DeliveryResponse": obj({"delivery": ref("Delivery")}),
        "DeliveryPage": obj(
            {
                "deliveries": array_of("Delivery", "Newest first."),
                "next_before": nullable({"type": "integer", "description": "Pass as ?before= for older ones."}),
            }
        ),
        "Event": obj(
            {
                "id": {"type": "string", "description": "evt_<n>: also the webhook-id, the idempotency key."},
                "type": EVENT_TYPE_SCHEMA,
                "created_at": TIMESTAMP,
                "data": {"type": "object", "description": "The objects as REST shows them (docs/integrations.md)."},
            }
        ),
        "EventPage": obj(
            {
                "events": array_of("Event", "In order."),
                "next_cursor": {"type": "string", "description": "Pass as ?after= to continue."},
            }
        ),
    }
)
# The answers that show a secret once: the object plus that secret.
SCHEMAS["CreatedApiKey"] = obj(
    {
        "api_key": obj(
            {
                **SCHEMAS["ApiKey"]["properties"],
                "key": {"type": "string", "description": "The key itself (csk_...): shown only here."},
            }
        )
    }
)
SCHEMAS["CreatedWebhook"] = obj(
    {
        "webhook": obj(
            {
                **SCHEMAS["Webhook"]["properties"],
                "secret": {"type": "string", "description": "The signing secret (whsec_...): shown only here."},
            }
        )
    }
)
API_KEYS = Resource(tag="integrations", noun="ApiKey", id_name="key_id", note=KEY_NOTE)
WEBHOOKS = Resource(tag="integrations", noun="Webhook", id_name="endpoint_id", note=KEY_NOTE)

PATHS.update(
    {
        "/admin/api-keys": {
            "get": API_KEYS.list("List API keys (never the keys themselves)", "ApiKeyList", "Every key, newest first."),
            "post": API_KEYS.create(
                "Create an API key",
                "CreateApiKeyRequest",
                "The key, with `key` shown this once.",
                schema="CreatedApiKey",
                extra="The key acts as an integration account named after it.",
            ),
        },
        "/admin/api-keys/{key_id}": {"get": API_KEYS.get("One API key", "The key.")},
        "/admin/api-keys/{key_id}/revoke": {
            "post": API_KEYS.action(
                "revokeApiKey",
                "Revoke an API key",
                API_KEYS.returns_one("The revoked key."),
                extra="Refused on every instance at once; its sockets are closed with 4003.",
            )
        },
        "/admin/webhooks": {
            "get": WEBHOOKS.list("List webhook endpoints", "WebhookList", "Every endpoint, newest first."),
            "post": WEBHOOKS.create(
                "Register a webhook endpoint",
                "CreateWebhookRequest",
                "The endpoint, with its signing `secret` shown once.",
                schema="CreatedWebhook",
                extra="Only http(s); private, loopback and link-local targets are refused "
                "unless WEBHOOK_ALLOW_PRIVATE_NETWORKS allows them.",
            ),
        },
        "/admin/webhooks/{endpoint_id}": {
            "get": WEBHOOKS.get("One webhook endpoint", "The endpoint."),
            "patch": WEBHOOKS.update(
                "Change a webhook endpoint",
                "UpdateWebhookRequest",
                "The endpoint.",
                extra="active: true re-enables an endpoint disabled for failing.",
            ),
            "delete": WEBHOOKS.delete("Delete a webhook endpoint and its delivery log", "Deleted."),
        },
        "/admin/webhooks/{endpoint_id}/deliveries": {
            "get": WEBHOOKS.action(
                "listWebhookDeliveries",
                "An endpoint's delivery log",
                returns("DeliveryPage", "Deliveries, newest first."),
                params=[
                    query_param(
                        "status",
                        {"type": "string", "enum": list(webhook_handlers.DELIVERY_STATUSES)},
                        "Only deliveries in this status.",
                    ),
                    query_param("before", {"type": "integer"}, "next_before from the previous page."),
                    limit_param(200, 50),
                ],
                errors=("ValidationError",),
            )
        },
        "/admin/webhooks/{endpoint_id}/deliveries/{delivery_id}/resend": {
            "post": WEBHOOKS.action(
                "resendWebhookDelivery",
                "Send a delivery's event again",
                returns("DeliveryResponse", "The new delivery (same event id), queued.", "202"),
                params=[path_param("delivery_id", {"type": "integer"})],
                errors=("ValidationError",),
            )
        },
        "/admin/webhooks/{endpoint_id}/test": {
            "post": WEBHOOKS.action(
                "testWebhook",
                "Send a test event",
                returns("DeliveryResponse", "A signed webhook.test delivery, queued.", "202"),
            )
        },
        "/events": {
            "get": operation(
                "The event feed",
                tag="integrations",
                operation_id="listEvents",
                params=[
                    query_param(
                        "after",
                        {"type": "string"},
                        "next_cursor of a previous page; `latest` to start from now; absent: the oldest kept.",
                    ),
                    query_param("types", {"type": "string"}, "Comma-separated event types to return."),
                    query_param("include_internal", {"type": "boolean"}, "Include internal notes' message.created."),
                    limit_param(500, 100),
                    query_param(
                        "wait", {"type": "integer", "minimum": 0, "maximum": 30, "default": 30}, "Long-poll seconds."
                    ),
                ],
                ok=returns("EventPage", "Events after the cursor, in order."),
                errors=("Forbidden", "ValidationError", "Gone", "RateLimited"),
                description="Agents, admins, and API keys with events:read. Waits up to `wait` seconds when "
                "nothing is new. 410 cursor_expired: resync.",
            )
        },
    }
)

# ---- knowledge base (admins) ----------------------------------------------------------------

KB_URL: Schema = nullable(
    {
        "type": "string",
        "format": "uri",
        "description": "The article's public page (http or https); AI citations link it.",
    }
)

# services/kb.py check_article_url (knowledge.check_url) on the text as sent (it is stripped first).
KB_URL_PATTERN: Schema = {
    "pattern": f"^[{SPACE_CHARS}]*[Hh][Tt][Tt][Pp][Ss]?://[^{SPACE_CHARS}\\u0000]+[{SPACE_CHARS}]*$",
    "description": "The article's public page: an http:// or https:// address (null: none).",
}

# services/kb.py SLUG, on the text as sent (it is stripped first).
KB_SLUG_PATTERN: Schema = {
    "pattern": f"^[{SPACE_CHARS}]*[a-z0-9][a-z0-9_-]{{0,199}}[{SPACE_CHARS}]*$",
}

SCHEMAS.update(
    {
        "KbArticleSummary": obj(
            {
                "id": UUID,
                "slug": {"type": "string"},
                "title": {"type": "string"},
                "url": KB_URL,
                "created_at": TIMESTAMP,
                "updated_at": TIMESTAMP,
            }
        ),
        "KbArticle": obj(
            {
                "id": UUID,
                "slug": {"type": "string"},
                "title": {"type": "string"},
                "body": {"type": "string", "description": "Markdown; `##` headings split it into sections."},
                "url": KB_URL,
                "created_at": TIMESTAMP,
                "updated_at": TIMESTAMP,
            }
        ),
        "KbArticleResponse": obj({"article": ref("KbArticle")}),
        "KbArticlePage": obj(
            {
                "articles": array_of("KbArticleSummary"),
                "total": {"type": "integer"},
            }
        ),
        "KbCreateArticleRequest": with_properties(
            request_schema(admin_kb_handlers.CREATE_SCHEMA, {"slug": "Default: made from the title."}),
            url=KB_URL_PATTERN,
            slug=KB_SLUG_PATTERN,
        ),
        "KbUpdateArticleRequest": with_properties(
            request_schema(admin_kb_handlers.UPDATE_SCHEMA), url=KB_URL_PATTERN, slug=KB_SLUG_PATTERN
        ),
        "KbSuggestion": obj(
            {
                "id": UUID,
                "article": nullable(
                    obj(
                        {"id": UUID, "slug": {"type": "string"}, "title": {"type": "string"}},
                        description="The article whose new text this is; null for a new article.",
                    )
                ),
                "title": {"type": "string"},
                "body": {"type": "string", "description": "Markdown, as for an article."},
                "url": KB_URL,
                "note": {"type": "string", "description": "The author's note to the admins ('' for none)."},
                "author": nullable(obj({"id": UUID, "name": {"type": "string"}})),
                "created_at": TIMESTAMP,
            }
        ),
        "KbSuggestionResponse": obj({"suggestion": ref("KbSuggestion")}),
        "KbSuggestionList": obj({"suggestions": array_of("KbSuggestion")}),
        "KbSuggestRequest": with_properties(
            request_schema(
                kb_suggestion_handlers.SUGGEST_SCHEMA,
                {"article_id": "The article this is a new text for; omit or null for a new article."},
            ),
            url=KB_URL_PATTERN,
        ),
        "KbPublishRequest": with_properties(
            request_schema(
                admin_kb_handlers.PUBLISH_SCHEMA,
                {"slug": "Default: the article's, or for a new article one made from the title."},
            ),
            url=KB_URL_PATTERN,
            slug=KB_SLUG_PATTERN,
        ),
    }
)

STAFF_KB_NOTE = "Agents and admins (403 for customers; API keys cannot use it)."
REINDEX_NOTE = (
    "Saving splits the article into sections and embeds them in the same transaction; every instance "
    "uses the change from its next search."
)
KB_PAGE_PARAMS = [
    limit_param(200, 50),
    query_param("offset", {"type": "integer", "minimum": 0, "maximum": 1_000_000, "default": 0}, "Articles to skip."),
]
KB_PAGE_OK = ("KbArticlePage", "One page of articles (without bodies).")
ADMIN_KB_ARTICLES = Resource(tag="admin", noun="KbArticle", id_name="article_id", note=ADMIN_NOTE, op_prefix="admin")
KB_ARTICLES = Resource(tag="kb", noun="KbArticle", id_name="article_id", note=STAFF_KB_NOTE)
KB_SUGGESTIONS = Resource(tag="kb", noun="KbSuggestion", id_name="suggestion_id", note=STAFF_KB_NOTE)

PATHS.update(
    {
        "/admin/kb/articles": {
            "get": ADMIN_KB_ARTICLES.list("List knowledge-base articles, by title", *KB_PAGE_OK, params=KB_PAGE_PARAMS),
            "post": ADMIN_KB_ARTICLES.create(
                "Create a knowledge-base article",
                "KbCreateArticleRequest",
                "The new article.",
                errors=("Conflict",),
                extra=f"{REINDEX_NOTE} 409 when the slug is taken.",
            ),
        },
        "/admin/kb/articles/{article_id}": {
            "get": ADMIN_KB_ARTICLES.get("One knowledge-base article", "The article."),
            "patch": ADMIN_KB_ARTICLES.update(
                "Edit a knowledge-base article",
                "KbUpdateArticleRequest",
                "The article as saved.",
                errors=("Conflict",),
                extra=REINDEX_NOTE,
            ),
            "delete": ADMIN_KB_ARTICLES.delete("Delete a knowledge-base article", "Deleted, with its sections."),
        },
    }
)

# ---- agent availability and routing (docs/web.md, "Never miss a customer") ------------------

SCHEMAS.update(
    {
        "AgentAvailability": obj(
            {
                "id": UUID,
                "name": {"type": "string"},
                "role": {"type": "string", "enum": ["agent", "admin"]},
                "status": {
                    "type": "string",
                    "enum": ["online", "away", "offline"],
                    "description": "offline: no console open on any instance; away: chosen, or no "
                    "activity for AGENT_AWAY_AFTER_SECONDS; else online.",
                },
                "away": {"type": "boolean", "description": "The agent chose away."},
                "since": nullable({**TIMESTAMP, "description": "When this status was announced."}),
            },
            description="An agent's availability (also the agent.availability inbox frame's `agent`).",
        ),
        "AvailabilityOverview": obj(
            {
                "me": ref("AgentAvailability"),
                "agents": array_of("AgentAvailability"),
                "auto_assign": {
                    "type": "boolean",
                    "description": "AUTO_ASSIGN: new and handed-off tickets are routed.",
                },
                "away_after_seconds": {"type": "number", "description": "AGENT_AWAY_AFTER_SECONDS."},
            }
        ),
        "AvailabilityRequest": request_schema(availability_handlers.SET_SCHEMA),
        "AvailabilityResponse": obj({"me": ref("AgentAvailability")}),
        "AgentQueue": obj(
            {
                "assigned": {
                    "type": "array",
                    "items": UUID,
                    "description": "The caller's open and pending tickets, newest activity first (at most 500).",
                },
                "waiting": {
                    "type": "array",
                    "items": UUID,
                    "description": "Those of them awaiting a person's reply: handed off by the AI, or "
                    "with the AI off and the customer having written last.",
                },
            }
        ),
    }
)

AVAILABILITY_NOTE = "Agents and admins only (403 for customers)."

PATHS.update(
    {
        "/console/api/availability": {
            "get": operation(
                "Every agent's availability, the caller's, and whether routing is on",
                tag="console",
                operation_id="consoleAvailability",
                ok=returns("AvailabilityOverview", "Agents and admins, by name."),
                description=AVAILABILITY_NOTE,
            ),
            "put": operation(
                "Choose online or away",
                tag="console",
                operation_id="consoleSetAvailability",
                body="AvailabilityRequest",
                ok=returns("AvailabilityResponse", "The caller's availability now."),
                description=AVAILABILITY_NOTE
                + " Away agents get no new tickets; choosing online also counts as activity. Offline is "
                "not a choice: it is having no console open.",
            ),
        },
        "/console/api/queue": {
            "get": operation(
                "The caller's open conversations and those awaiting their reply",
                tag="console",
                operation_id="consoleQueue",
                ok=returns("AgentQueue", "Ticket ids."),
                description=AVAILABILITY_NOTE + " The console's tab title counts `waiting`.",
            ),
        },
    }
)


# ---- reports and your own account (docs/web.md, "Reports" and "Account") ------------------------

NUMBER_OR_NULL: Schema = {"type": ["number", "null"]}
SCHEMAS.update(
    {
        "ChangePasswordRequest": request_schema(
            auth_handlers.PASSWORD_SCHEMA,
            {
                "current_password": "Your password now.",
                "new_password": f"At least {PASSWORD_MIN_CHARS} characters, different from the current one.",
            },
        ),
        "ReportPeriod": obj(
            {
                "from": {"type": "string", "format": "date"},
                "to": {"type": "string", "format": "date"},
                "tz": {"type": "string"},
                "start": {"type": "string", "format": "date-time", "description": "from, 00:00 in tz"},
                "end": {"type": "string", "format": "date-time", "description": "to + 1 day, 00:00 in tz (excluded)"},
            }
        ),
        "ReportTiming": obj(
            {
                "count": {"type": "integer", "description": "How many conversations the times are taken over."},
                "median_seconds": NUMBER_OR_NULL,
                "p90_seconds": NUMBER_OR_NULL,
            },
            description="Median and 90th percentile (linear interpolation between the nearest values, as "
            "PostgreSQL's percentile_cont); null when count is 0.",
        ),
        "ReportRating": obj(
            {"ratings": {"type": "integer"}, "average": NUMBER_OR_NULL},
            description="The ratings given in the period (by rated_at) to the tickets counted; average is "
            "null when there are none.",
        ),
        "OverviewReport": obj(
            {
                "period": ref("ReportPeriod"),
                "conversations": obj(
                    {
                        "opened": {"type": "integer"},
                        "resolved": {"type": "integer"},
                        "responded": {"type": "integer"},
                        "human_responded": {"type": "integer"},
                    }
                ),
                "first_response": ref("ReportTiming"),
                "first_human_response": ref("ReportTiming"),
                "resolution": ref("ReportTiming"),
                "ai": obj(
                    {
                        "resolved_without_human": {"type": "integer"},
                        "resolved_without_human_share": NUMBER_OR_NULL,
                    }
                ),
                "handoffs": obj(
                    {
                        "conversations": {"type": "integer"},
                        "rate": NUMBER_OR_NULL,
                        "reasons": {
                            "type": "array",
                            "items": obj({"reason": {"type": "string"}, "count": {"type": "integer"}}),
                        },
                    }
                ),
                "satisfaction": obj(
                    {
                        "ratings": {"type": "integer"},
                        "average": NUMBER_OR_NULL,
                        "satisfied_share": NUMBER_OR_NULL,
                        "distribution": obj(
                            {str(n): {"type": "integer"} for n in range(1, 6)},
                            description="Ratings given per number of stars.",
                        ),
                    },
                    description="Ratings given in the period (by rated_at); average and satisfied_share "
                    "(rated 4 or 5) are null when there are none.",
                ),
                "daily": {
                    "type": "array",
                    "items": obj(
                        {
                            "date": {"type": "string", "format": "date"},
                            "opened": {"type": "integer"},
                            "resolved": {"type": "integer"},
                        }
                    ),
                },
            }
        ),
        "AgentsReport": obj(
            {
                "period": ref("ReportPeriod"),
                "agents": {
                    "type": "array",
                    "items": obj(
                        {
                            "id": UUID,
                            "name": {"type": "string"},
                            "email": {"type": "string"},
                            "role": {"type": "string", "enum": ["agent", "admin"]},
                            "disabled": {"type": "boolean"},
                            "replies": {"type": "integer"},
                            "conversations": {"type": "integer"},
                            "first_response": ref("ReportTiming"),
                            "resolved": {"type": "integer"},
                            "resolution": ref("ReportTiming"),
                            "satisfaction": ref("ReportRating"),
                        }
                    ),
                },
            }
        ),
        "LabelsReport": obj(
            {
                "period": ref("ReportPeriod"),
                "labels": {
                    "type": "array",
                    "items": obj(
                        {
                            "id": UUID,
                            "name": {"type": "string"},
                            "opened": {"type": "integer"},
                            "handoffs": {"type": "integer"},
                            "first_response": ref("ReportTiming"),
                            "resolved": {"type": "integer"},
                            "resolved_without_human": {"type": "integer"},
                            "resolution": ref("ReportTiming"),
                            "satisfaction": ref("ReportRating"),
                        }
                    ),
                },
            }
        ),
        "BusiestHoursReport": obj(
            {
                "period": ref("ReportPeriod"),
                "weekdays": {"type": "array", "items": {"type": "string"}, "minItems": 7, "maxItems": 7},
                "cells": {
                    "type": "array",
                    "minItems": 168,
                    "maxItems": 168,
                    "items": obj(
                        {
                            "weekday": {"type": "integer", "minimum": 1, "maximum": 7, "description": "1 Monday"},
                            "hour": {"type": "integer", "minimum": 0, "maximum": 23},
                            "conversations": {"type": "integer"},
                            "customer_messages": {"type": "integer"},
                        }
                    ),
                },
            }
        ),
    }
)

REPORT_PARAMS = [
    query_param("from", {"type": "string", "format": "date"}, "First day (YYYY-MM-DD); default: six days before to."),
    query_param(
        "to", {"type": "string", "format": "date"}, "Last day, included; default: today in tz. At most 366 days."
    ),
    query_param("tz", {"type": "string", "default": "UTC"}, "IANA time zone the days and hours are counted in."),
    query_param(
        "format",
        {"type": "string", "enum": ["json", "csv"]},
        "csv for CSV; without it, Accept: text/csv does the same.",
    ),
]
REPORT_NOTE = (
    "Agents and admins (403 for customers; API keys are refused). The definitions of every figure are in "
    'docs/web.md, "Reports". 422 for a malformed or reversed period, one over 366 days, or an unknown time zone.'
)


def report_operation(name: str, summary: str, schema: str, csv_rows: str) -> Schema:
    op = operation(
        summary,
        tag="reports",
        operation_id=f"report{schema.removesuffix('Report')}",
        params=REPORT_PARAMS,
        ok=returns(schema, "The report."),
        errors=("ValidationError",),
        description=f"{REPORT_NOTE} CSV: {csv_rows}",
    )
    op["responses"]["200"]["content"]["text/csv"] = {"schema": {"type": "string"}}
    return op


PATHS.update(
    {
        "/auth/password": {
            "post": operation(
                "Change your own password",
                tag="auth",
                operation_id="changePassword",
                body="ChangePasswordRequest",
                ok=returns("TokenResponse", "Changed; a fresh token for the caller."),
                errors=("Forbidden", "RateLimited"),
                description="Every other session and token of the account ends (the token sent ends too: use "
                "the one returned). 403 invalid_credentials when current_password is wrong; failures are "
                "throttled as logins are (429 with Retry-After). API keys have no password (403).",
            )
        },
        "/reports/overview": {
            "get": report_operation(
                "overview",
                "Volume, response and resolution times, AI-only resolutions, handoffs, satisfaction, per day",
                "OverviewReport",
                "metric,value rows, then opened_on_<day> and resolved_on_<day>.",
            )
        },
        "/reports/agents": {
            "get": report_operation("agents", "Figures per agent", "AgentsReport", "one row per agent.")
        },
        "/reports/labels": {
            "get": report_operation("labels", "Figures per label", "LabelsReport", "one row per label.")
        },
        "/reports/busiest-hours": {
            "get": report_operation(
                "busiest-hours",
                "Conversations opened and customer messages per weekday and hour",
                "BusiestHoursReport",
                "one row per weekday and hour (168).",
            )
        },
        "/console/reports": {
            "get": web_page(
                "The console's reports page",
                operation_id="consoleReportsPage",
                params=REPORT_PARAMS[:3],
                ok={
                    **console_page("An HTML page with charts and tables."),
                    "422": {
                        "description": "A bad period: the page says why; without a session, the JSON error.",
                        "content": {"text/html": {}, **RESPONSES["ValidationError"]["content"]},
                    },
                },
                description="Authenticated by the console session cookie (agents and admins).",
            )
        },
        "/console/reports/{report}.csv": {
            "get": web_page(
                "A report as CSV, for the console's download links",
                operation_id="consoleReportCsv",
                params=[
                    {
                        "name": "report",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": ["overview", "agents", "labels", "busiest-hours"]},
                    },
                    *REPORT_PARAMS[:3],
                ],
                ok={"200": {"description": "The CSV of GET /reports/{report}.", "content": {"text/csv": {}}}},
                errors=("Unauthorized", "Forbidden", "NotFound", "ValidationError"),
                description="Authenticated by the console session cookie (agents and admins).",
            )
        },
        "/console/account": {
            "get": web_page(
                "The console's account page (change your password)",
                operation_id="consoleAccountPage",
                ok=console_page("An HTML page."),
                description="Authenticated by the console session cookie.",
            )
        },
        "/console/account/password": {
            "post": form_post(
                "Change your own password (HTML form)",
                "consoleChangePassword",
                ["csrf_token", "current_password", "new_password", "repeat_password"],
                {
                    "303": {"description": "Changed: to /console/account?changed=1; this session carries on."},
                    "403": {"description": "Wrong current password or CSRF token: the form again, with the reason."},
                    "422": {
                        "description": "A new password that is too short, or not repeated alike: the form again. "
                        "A field missing altogether, without a session: the JSON error.",
                        "content": {"text/html": {}, **RESPONSES["ValidationError"]["content"]},
                    },
                    "429": {"description": "Too many failed attempts."},
                },
            )
        },
    }
)


# ---- the agent workspace: labels, activity, canned responses (docs/web.md) ---------------

LABEL_COLOR: Schema = {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$", "description": "#rrggbb, stored lower case."}
ACTOR: Schema = nullable(
    obj(
        {"id": UUID, "name": {"type": "string"}, "role": {"type": "string"}},
        description="Who made the change; null for the system (the AI handing off).",
    )
)
ASSIGNEE_REF: Schema = nullable(obj({"id": UUID, "name": {"type": "string"}}))
SCHEMAS.update(
    {
        "Label": obj(
            {
                "id": UUID,
                "name": {"type": "string"},
                "color": {"type": "string"},
                "created_at": TIMESTAMP,
                "updated_at": TIMESTAMP,
            }
        ),
        "LabelResponse": obj({"label": ref("Label")}),
        "LabelList": obj({"labels": array_of("Label")}),
        "CreateLabelRequest": with_properties(request_schema(label_handlers.CREATE_SCHEMA), color=LABEL_COLOR),
        "UpdateLabelRequest": with_properties(request_schema(label_handlers.UPDATE_SCHEMA), color=LABEL_COLOR),
        "TicketLabelsRequest": obj(
            {
                "label_ids": {
                    "type": "array",
                    "items": UUID,
                    "maxItems": label_service.MAX_LABELS_PER_TICKET,
                    "description": "The ticket's labels after the call (the whole set; [] removes all).",
                }
            }
        ),
        "Activity": obj(
            {
                "id": {"type": "integer", "description": "Increases with time; page with ?after_id=."},
                "ticket_id": UUID,
                "kind": {"type": "string", "enum": ["status", "priority", "assignee", "ai", "labels"]},
                "data": {
                    "type": "object",
                    "description": "status, priority: {from, to} (strings); ai: {from, to} (booleans); assignee: "
                    "{from, to}, each null or {id, name} (the name at the time); labels: {added, removed}, "
                    "lists of {id, name, color}.",
                },
                "actor": ACTOR,
                "created_at": TIMESTAMP,
            }
        ),
        "ActivityPage": obj({"activity": array_of("Activity"), "has_more": {"type": "boolean"}}),
        "CannedResponse": obj(
            {
                "id": UUID,
                "shortcut": {"type": "string"},
                "body": {"type": "string"},
                "shared": {"type": "boolean", "description": "Shared with every agent (managed by admins)."},
                "owner_id": nullable(UUID),
                "created_at": TIMESTAMP,
                "updated_at": TIMESTAMP,
            }
        ),
        "CannedResponseResponse": obj({"canned_response": ref("CannedResponse")}),
        "CannedResponseList": obj({"canned_responses": array_of("CannedResponse")}),
        "CreateCannedResponseRequest": request_schema(canned_handlers.CREATE_SCHEMA),
        "UpdateCannedResponseRequest": request_schema(canned_handlers.UPDATE_SCHEMA),
    }
)
AGENTS_NOTE = "Agents and admins (403 for customers)."
LABELS = Resource(tag="workspace", noun="Label", id_name="label_id", note="Admins only.")
CANNED = Resource(
    tag="workspace",
    noun="CannedResponse",
    id_name="canned_id",
    note="Your own personal response, or a shared one (admins only: 403 for agents). Another agent's personal "
    "response is 404. 409 when the shortcut is taken.",
)
# PUT and PATCH on a canned response are one operation under two methods.
CANNED_UPDATE_REST: dict[str, Any] = {
    "ok_description": "The response after the change.",
    "errors": ("Conflict",),
    "extra": "PUT and PATCH are the same: fields left out keep their value.",
}
PATHS.update(
    {
        "/labels": {
            "get": LABELS.list(
                "List labels",
                "LabelList",
                "Every label, by name.",
                note=AGENTS_NOTE,
                extra="An API key needs tickets:read.",
            ),
            "post": LABELS.create(
                "Create a label",
                "CreateLabelRequest",
                "The new label.",
                errors=("Conflict",),
                extra="409 when a label has this name (in any case).",
            ),
        },
        "/labels/{label_id}": {
            "patch": LABELS.update(
                "Rename or recolour a label",
                "UpdateLabelRequest",
                "The label after the change.",
                errors=("Conflict",),
                extra="Every ticket carrying the label shows the change.",
            ),
            "delete": LABELS.delete("Delete a label", "Deleted, and taken off every ticket."),
        },
        "/tickets/{ticket_id}/labels": {
            "put": operation(
                "Replace a ticket's labels",
                tag="workspace",
                operation_id="setTicketLabels",
                params=[TICKET_ID_PARAM],
                body="TicketLabelsRequest",
                ok=returns("TicketResponse", "The ticket with its labels."),
                errors=("Forbidden", "NotFound"),
                description=AGENTS_NOTE + " An API key needs tickets:write. A change is a ticket update: the "
                'ticket.updated event, an activity line, and `ticket.updated` with changes ["labels"] to agents '
                "in the room. 422 for an unknown label id.",
            )
        },
        "/tickets/{ticket_id}/activity": {
            "get": operation(
                "A ticket's activity log",
                tag="workspace",
                operation_id="listTicketActivity",
                params=[
                    TICKET_ID_PARAM,
                    query_param(
                        "after_id",
                        {"type": "integer", "minimum": 0, "maximum": 2**62},
                        "Lines after this id (default: from the start).",
                    ),
                    limit_param(500, 100),
                ],
                ok=returns("ActivityPage", "Lines, oldest first."),
                errors=("Forbidden", "NotFound", "ValidationError"),
                description=AGENTS_NOTE + " Status, priority, assignee, label and AI changes: who, what, when. "
                "Never part of the messages, so no path that serves messages to customers carries it.",
            )
        },
        "/canned-responses": {
            "get": CANNED.list(
                "List canned responses",
                "CannedResponseList",
                "The shared ones and your own, by shortcut.",
                params=[
                    query_param(
                        "q", {"type": "string", "maxLength": 100}, "Only those whose shortcut or text contains this."
                    )
                ],
                note=AGENTS_NOTE,
            ),
            "post": CANNED.create(
                "Create a canned response",
                "CreateCannedResponseRequest",
                "The new response.",
                errors=("Conflict",),
                note="Personal by default; `shared: true` for admins only (403 for agents). The shortcut "
                "is 1-40 characters from a-z, 0-9, - and _ (upper case is lowered). 409 when taken.",
            ),
        },
        "/canned-responses/{canned_id}": {
            "patch": CANNED.update("Change a canned response", "UpdateCannedResponseRequest", **CANNED_UPDATE_REST),
            "put": CANNED.update(
                "Change a canned response (as PATCH)",
                "UpdateCannedResponseRequest",
                operation_id="replaceCannedResponse",
                **CANNED_UPDATE_REST,
            ),
            "delete": CANNED.delete("Delete a canned response", "Deleted."),
        },
    }
)


# ---- widget settings, away mode and email (docs/web.md, "Widget settings", "Away mode and email") ----

_TEXT = {"type": ["string", "null"], "maxLength": widget_settings_service.MAX_TEXT_CHARS}
_LOCALE = {"type": "string", "enum": list(widget_settings_service.LOCALES)}
_HHMM = {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"}
SCHEMAS.update(
    {
        "WidgetSettings": obj(
            {
                "color": nullable({"type": "string", "pattern": "^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"}),
                "title": {"type": ["string", "null"], "maxLength": 100},
                "greeting": _TEXT,
                "expected_reply": {"type": ["string", "null"], "maxLength": 200},
                "away_message": _TEXT,
                "business_hours": nullable(
                    obj(
                        {
                            "timezone": {"type": "string", "description": "An IANA time zone, e.g. Europe/Paris."},
                            "schedule": {
                                "type": "array",
                                "maxItems": widget_settings_service.MAX_INTERVALS,
                                "items": obj(
                                    {
                                        "day": {"type": "string", "enum": list(widget_settings_service.DAYS)},
                                        "open": _HHMM,
                                        "close": _HHMM,
                                    }
                                ),
                            },
                        },
                        description="Weekly opening hours in a time zone; intervals may not overlap or cross "
                        "midnight (close 24:00 ends the day). Null: always open.",
                    )
                ),
                "default_locale": {"oneOf": [_LOCALE, {"type": "null"}]},
                "languages": nullable({"type": "array", "items": _LOCALE, "minItems": 1}),
                "strings": {
                    "type": "object",
                    "description": "Per-language overrides of the widget's strings: {locale: {name: text}}.",
                    "additionalProperties": {"type": "object", "additionalProperties": {"type": "string"}},
                },
                "email_capture": {"type": "string", "enum": list(widget_settings_service.EMAIL_CAPTURE)},
            },
            description="Every field is optional in a PUT; a field left out is unset (null: no override).",
        ),
        "WidgetSettingsResponse": obj(
            {
                "settings": ref("WidgetSettings"),
                "version": {"type": "integer", "description": "Rises with every save."},
                "updated_by": nullable(UUID),
                "updated_at": nullable(TIMESTAMP),
            }
        ),
        "WidgetConfig": obj(
            {
                "settings": ref("WidgetSettings"),
                "version": {"type": "integer"},
                "status": obj(
                    {
                        "open": {"type": "boolean", "description": "Inside business hours."},
                        "agents_available": {"type": "boolean", "description": "An agent has the console open."},
                        "away": {"type": "boolean"},
                        "next_open_at": nullable(TIMESTAMP),
                    }
                ),
                "email": obj(
                    {
                        "enabled": {"type": "boolean", "description": "SMTP_URL is set."},
                        "ask": {"type": "boolean", "description": "The widget asks the visitor for an address."},
                    }
                ),
            }
        ),
        "ReopenRequest": request_schema(widget_handlers.REOPEN_SCHEMA),
        "ReopenResponse": obj(
            {
                **SCHEMAS["TokenResponse"]["properties"],
                "ticket_id": {**UUID, "description": "The conversation the link reopens."},
            }
        ),
        "ContactEmailRequest": request_schema(ticket_mail_handlers.CONTACT_SCHEMA),
        "TranscriptRequest": request_schema(ticket_mail_handlers.TRANSCRIPT_SCHEMA),
        "TranscriptQueued": obj(
            {
                "transcript": obj(
                    {
                        "status": {"type": "string", "enum": ["queued"]},
                        "email": {"type": "string"},
                        "requested_at": TIMESTAMP,
                    }
                )
            }
        ),
    }
)
SCHEMAS["WidgetSettingsRequest"] = {k: v for k, v in SCHEMAS["WidgetSettings"].items() if k != "required"}

PATHS.update(
    {
        "/admin/widget-settings": {
            "get": operation(
                "The widget settings admins edit",
                tag="admin",
                operation_id="adminGetWidgetSettings",
                ok=returns("WidgetSettingsResponse", "The stored document and its version."),
                errors=("Forbidden",),
                description=ADMIN_NOTE,
            ),
            "put": operation(
                "Replace the widget settings",
                tag="admin",
                operation_id="adminPutWidgetSettings",
                body="WidgetSettingsRequest",
                ok=returns("WidgetSettingsResponse", "The document as saved."),
                errors=("Forbidden",),
                description=f"{ADMIN_NOTE} Every instance serves the new settings at once (a backplane event; "
                "at most WIDGET_SETTINGS_CACHE_SECONDS late if it is lost). 422 names each bad field: colour, "
                "time zone, overlapping or inverted hours, unknown locale.",
            ),
        },
        "/widget/config": {
            "get": operation(
                "The widget's settings and away status",
                tag="widget",
                operation_id="widgetConfig",
                auth=False,
                ok=returns("WidgetConfig", "Settings, away status, and whether to ask for email."),
                description="Away: outside business hours, or no agent has the console open. The widget asks "
                "for an email address only when SMTP_URL is set.",
            )
        },
        "/widget/reopen": {
            "post": operation(
                "Sign a visitor back in from the link in a reply email",
                tag="widget",
                operation_id="reopenConversation",
                auth=False,
                body="ReopenRequest",
                ok=returns("ReopenResponse", "The visitor's token and the ticket to open."),
                errors=("Unauthorized", "Forbidden", "NotFound"),
                description="401 link_expired past MAIL_LINK_TTL_SECONDS, link_invalid for a tampered or foreign "
                "link (or an account signed out since).",
            )
        },
        "/tickets/{ticket_id}/contact-email": {
            "put": operation(
                "Set the visitor's contact address for replies and transcripts",
                tag="tickets",
                operation_id="setContactEmail",
                params=[TICKET_ID_PARAM],
                body="ContactEmailRequest",
                ok=returns("TicketResponse", "The ticket with its contact_email."),
                errors=("NotFound",),
                description="The ticket's customer, or an agent. null or an empty string clears it.",
            )
        },
        "/tickets/{ticket_id}/transcript": {
            "post": operation(
                "Email the conversation's transcript to its customer",
                tag="tickets",
                operation_id="requestTranscript",
                params=[TICKET_ID_PARAM],
                body="TranscriptRequest",
                ok=returns("TranscriptQueued", "Queued; sent in the background.", "202"),
                errors=("NotFound", "Conflict", "RateLimited"),
                description="The ticket's customer only (agents: 403). To `email`, else the ticket's contact "
                "address (422 with neither). 409 email_disabled without SMTP_URL; 429 past "
                "three transcripts an hour per ticket.",
            )
        },
    }
)


# ---- AI actions (docs/ai.md, "Acting") -------------------------------------------------------

CALL_ID_PARAM = path_param("call_id")
TOOL_CALL_STATUS: Schema = {
    "type": "string",
    "enum": ["running", "awaiting_approval", "approved", "refused", "succeeded", "failed", "cancelled"],
}
ACTION_NOTE = (
    f"{ADMIN_NOTE} Header values are write-only: answers list `header_names`. The URL template may have "
    "`{parameter}` placeholders in its path and query only (filled URL-encoded); http(s) only, and "
    "private, loopback and link-local targets are refused unless ACTIONS_ALLOW_PRIVATE_NETWORKS allows them."
)
_ACTION_FIELDS: dict[str, Schema] = {
    "parameters": {"type": "object", "description": "A JSON Schema (an object schema) of the arguments."},
    "headers": {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "description": "Header names to values, stored encrypted; on update, replaces every header.",
    },
    "timeout_seconds": {"type": "number", "minimum": 0.1, "maximum": 60, "description": "Default 5."},
}


def _action_request(schema: Mapping[str, Field], required: list[str]) -> Schema:
    base = request_schema(schema)
    out = {**base, "properties": {**base["properties"], **_ACTION_FIELDS}}
    out.pop("required", None)
    if required:
        out["required"] = required
    return out


SCHEMAS.update(
    {
        "Action": obj(
            {
                "id": UUID,
                "name": {"type": "string"},
                "description": {"type": "string"},
                "parameters": {"type": "object"},
                "method": {"type": "string", "enum": list(actions_service.METHODS)},
                "url_template": {"type": "string"},
                "label": {"type": "string", "description": "What the room reads while it runs."},
                "header_names": {"type": "array", "items": {"type": "string"}},
                "timeout_seconds": {"type": "number"},
                "mutating": {"type": "boolean", "description": "Changes something: waits for approval."},
                "customer_confirmation": {"type": "boolean", "description": "The customer may approve it too."},
                "enabled": {"type": "boolean"},
                "created_at": TIMESTAMP,
                "updated_at": TIMESTAMP,
            }
        ),
        "ActionResponse": obj({"action": ref("Action")}),
        "ActionList": obj({"actions": array_of("Action")}),
        "CreateActionRequest": _action_request(
            admin_actions_handlers.CREATE_SCHEMA, ["name", "description", "parameters", "method", "url_template"]
        ),
        "UpdateActionRequest": _action_request(admin_actions_handlers.UPDATE_SCHEMA, []),
        "ToolCall": obj(
            {
                "id": UUID,
                "ticket_id": UUID,
                "reply_id": UUID,
                "name": {"type": "string"},
                "action_id": nullable(UUID),
                "arguments": {"description": "What the model passed (JSON), or {raw} when it was not JSON."},
                "label": {"type": "string"},
                "mutating": {"type": "boolean"},
                "confirm_by": {"oneOf": [{"type": "string", "enum": ["agent", "customer"]}, {"type": "null"}]},
                "status": TOOL_CALL_STATUS,
                "decided_by": nullable(UUID),
                "decided_at": nullable(TIMESTAMP),
                "http_status": nullable({"type": "integer"}),
                "error": nullable({"type": "string"}),
                "result_excerpt": nullable({"type": "string", "description": "The answer's first 500 characters."}),
                "created_at": TIMESTAMP,
                "finished_at": nullable(TIMESTAMP),
            }
        ),
        "ToolCallList": obj(
            {
                "tool_calls": {
                    "type": "array",
                    "items": {"oneOf": [ref("ToolCall"), ref("CustomerToolCall")]},
                    "description": "Agents: every call. The ticket's customer: the calls waiting for their "
                    "confirmation, as the room sees them.",
                }
            }
        ),
        "CustomerToolCall": obj(
            {
                "id": UUID,
                "reply_id": UUID,
                "name": {"type": "string"},
                "label": {"type": "string"},
                "status": TOOL_CALL_STATUS,
                "confirm_by": {"oneOf": [{"type": "string", "enum": ["agent", "customer"]}, {"type": "null"}]},
            }
        ),
        "ToolCallDecision": obj(
            {
                "tool_call": {
                    "oneOf": [ref("ToolCall"), ref("CustomerToolCall")],
                    "description": "Agents get the whole call; a customer what the room sees of it.",
                }
            }
        ),
    }
)


def _decision(verb: str, operation_id: str) -> Schema:
    return operation(
        f"{verb} an action the AI wants to run",
        tag="ai",
        operation_id=operation_id,
        params=[TICKET_ID_PARAM, CALL_ID_PARAM],
        ok=returns("ToolCallDecision", "The decision, also sent to the room as ai.tool_call."),
        errors=("Forbidden", "NotFound", "Conflict"),
        description="Agents; the ticket's customer too where the action allows customer confirmation "
        "(confirm_by customer). 409 when the call is not waiting (decided, cancelled by a takeover, expired).",
    )


ACTIONS = Resource(tag="admin", noun="Action", id_name="action_id", note=ACTION_NOTE, op_prefix="admin")
PATHS.update(
    {
        "/admin/actions": {
            "get": ACTIONS.list("List the actions the AI may call", "ActionList", "Every action, by name."),
            "post": ACTIONS.create(
                "Create an action",
                "CreateActionRequest",
                "The new action.",
                errors=("Conflict",),
                extra="409 when the name is taken.",
            ),
        },
        "/admin/actions/{action_id}": {
            "get": ACTIONS.get("One action", "The action."),
            "patch": ACTIONS.update(
                "Change an action", "UpdateActionRequest", "The action as saved.", errors=("Conflict",)
            ),
            "delete": ACTIONS.delete("Delete an action", "Deleted; the calls it made stay in the tickets' logs."),
        },
        "/tickets/{ticket_id}/tool-calls": {
            "get": operation(
                "The actions the AI called in a ticket",
                tag="ai",
                operation_id="listToolCalls",
                params=[TICKET_ID_PARAM],
                ok=returns("ToolCallList", "Every call, oldest first."),
                errors=("NotFound",),
                description="Agents: every call, with its arguments, outcome and an excerpt of its answer (never "
                "a header value). The ticket's customer: only the calls waiting for their confirmation.",
            )
        },
        "/tickets/{ticket_id}/tool-calls/{call_id}/approve": {"post": _decision("Approve", "approveToolCall")},
        "/tickets/{ticket_id}/tool-calls/{call_id}/refuse": {"post": _decision("Refuse", "refuseToolCall")},
        "/demo/api/orders/{order_id}": {
            "get": web_page(
                "The demo shop's mock order API (development only)",
                operation_id="demoShopOrder",
                params=[path_param("order_id", {"type": "string"})],
                ok={"200": json_content(obj({"order": {"type": "object"}}), "The order.")},
                errors=("Unauthorized", "NotFound"),
                description="What the demo AI action calls, with its X-Shop-Key header; 404 unless DEMO_SHOP "
                "(on in development, never in production).",
            )
        },
    }
)

PATHS.update(
    {
        "/admin/kb/suggestions/{suggestion_id}/publish": {
            "post": operation(
                "Publish a knowledge-base suggestion",
                tag="admin",
                operation_id="adminPublishKbSuggestion",
                params=[KB_SUGGESTIONS.id_param],
                body="KbPublishRequest",
                ok={
                    **ADMIN_KB_ARTICLES.returns_one("A new article.", "201"),
                    **ADMIN_KB_ARTICLES.returns_one("The article it was for, with its new text."),
                },
                errors=("Forbidden", "NotFound", "Conflict"),
                description=f"{ADMIN_NOTE} Fields sent override the suggestion's. {REINDEX_NOTE} "
                "The suggestion is deleted; rejecting one is DELETE /kb/suggestions/{suggestion_id}.",
            ),
        },
        "/kb/articles": {
            "get": KB_ARTICLES.list(
                "List knowledge-base articles (agents and admins)", *KB_PAGE_OK, params=KB_PAGE_PARAMS
            ),
        },
        "/kb/articles/{article_id}": {
            "get": KB_ARTICLES.get("One knowledge-base article (agents and admins)", "The article."),
        },
        "/kb/suggestions": {
            "get": KB_SUGGESTIONS.list(
                "Knowledge-base suggestions: an agent's own, or every one for an admin",
                "KbSuggestionList",
                "Oldest first.",
            ),
            "post": KB_SUGGESTIONS.create(
                "Suggest a new article, or a new text for an article",
                "KbSuggestRequest",
                "The suggestion, waiting for an admin.",
                errors=("NotFound",),
                extra="The AI never answers from a suggestion until an admin publishes it.",
            ),
        },
        "/kb/suggestions/{suggestion_id}": {
            "get": KB_SUGGESTIONS.get(
                "One knowledge-base suggestion",
                "The suggestion.",
                extra="An agent sees only their own (another's is 404).",
            ),
            "delete": KB_SUGGESTIONS.delete(
                "Withdraw (its author) or reject (an admin) a knowledge-base suggestion",
                "Deleted.",
                extra="An agent may delete only their own (another's is 404).",
            ),
        },
    }
)


def build_spec() -> dict[str, Any]:
    """The whole document; a fresh copy each call, so callers may change it."""
    return copy.deepcopy(
        {
            "openapi": "3.1.0",
            "info": {
                "title": "chatserver",
                "version": __version__,
                "description": "Realtime customer-support chat server: REST API. Errors always have the shape "
                '`{"error": {"code", "message", "details"?}}`. Authenticate with `Authorization: Bearer <token>` '
                "from /auth/login or /auth/signup, or with an API key (`csk_...`, docs/integrations.md).",
            },
            "tags": [
                {"name": "auth", "description": "Accounts and tokens"},
                {"name": "tickets", "description": "Support tickets"},
                {"name": "messages", "description": "Messages in a ticket"},
                {"name": "attachments", "description": 'Files sent with messages (docs/web.md, "Attachments")'},
                {"name": "realtime", "description": "WebSocket rooms and the agents' inbox"},
                {"name": "ai", "description": "AI replies, retries and the agents' copilot"},
                {"name": "operations", "description": "Probes, metrics and documentation"},
                {"name": "widget", "description": "The embeddable chat widget and its visitors (docs/web.md)"},
                {"name": "console", "description": "The agent console's JSON endpoints"},
                {"name": "web", "description": "HTML pages: the agent console and the widget demo"},
                {"name": "admin", "description": "Account management, for admins (docs/security.md)"},
                {"name": "kb", "description": "The knowledge base for agents: read it, suggest changes (docs/ai.md)"},
                {"name": "workspace", "description": "Labels, activity and canned responses for agents (docs/web.md)"},
                {
                    "name": "reports",
                    "description": 'Figures over a period, for agents and admins (docs/web.md, "Reports")',
                },
                {
                    "name": "integrations",
                    "description": "API keys, webhooks and the event feed (docs/integrations.md)",
                },
            ],
            "paths": PATHS,
            "components": {
                "schemas": SCHEMAS,
                "responses": RESPONSES,
                "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            },
        }
    )


def downgrade_for_swagger_ui(spec: dict[str, Any]) -> dict[str, Any]:
    """The same document labelled OpenAPI 3.0.3, for the bundled Swagger UI 4, which refuses to
    render 3.1. The 3.1-only constructs used above are "or null" (type lists and oneOf with
    {"type": "null"}), which becomes 3.0's `nullable: true`, and the SSE events' contentSchema,
    which is dropped (its description stays)."""

    def convert(node: Any) -> Any:
        if isinstance(node, list):
            return [convert(item) for item in node]
        if not isinstance(node, dict):
            return node
        # contentMediaType / contentSchema (the SSE events' JSON data) are JSON Schema 2020-12 only.
        out = {key: convert(value) for key, value in node.items() if key not in ("contentMediaType", "contentSchema")}
        kind = out.get("type")
        if isinstance(kind, list) and "null" in kind:
            others = [k for k in kind if k != "null"]
            out["type"] = others[0]
            out["nullable"] = True
        one_of = out.get("oneOf")
        if isinstance(one_of, list) and {"type": "null"} in one_of:
            rest = [s for s in one_of if s != {"type": "null"}]
            del out["oneOf"]
            out["allOf"] = rest
            out["nullable"] = True
        return out

    converted: dict[str, Any] = convert(spec)
    converted["openapi"] = "3.0.3"
    return converted
