"""GET /openapi.json and GET /docs: every route is described, the document is valid OpenAPI 3.1,
real responses match the documented schemas, and the docs page works with no network."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator

from chatserver.errors import ApiError
from chatserver.handlers import tickets as ticket_handlers
from chatserver.openapi import LIST_TICKET_PARAMS, MESSAGE_PARAMS, build_spec, downgrade_for_swagger_ui, field_schema
from chatserver.services.auth import check_email
from chatserver.validation import Str, validate

from .conftest import MakeUser

HTTP_METHODS = ("get", "put", "post", "delete", "options", "patch", "trace")


def documented_routes(app: web.Application) -> set[tuple[str, str]]:
    routes = set()
    for route in app.router.routes():
        if route.method == "HEAD" or isinstance(route.resource, web.StaticResource) or route.resource is None:
            continue
        routes.add((route.method.lower(), route.resource.canonical))
    return routes


def response_schema(spec: dict[str, Any], method: str, path: str, status: int) -> dict[str, Any]:
    responses = spec["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} does not document status {status}"
    response = responses[str(status)]
    if "$ref" in response:
        response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema


async def assert_matches_spec(resp: Any, method: str, path: str) -> Any:
    """Validate a real response body against the schema the spec documents for its status."""
    spec = build_spec()
    body = await resp.json()
    schema = {**response_schema(spec, method, path, resp.status), "components": spec["components"]}
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(body)
    return body


async def test_every_route_is_in_the_spec(client: TestClient) -> None:
    spec = (await (await client.get("/openapi.json")).json())["paths"]
    documented = {(method, path) for path, ops in spec.items() for method in ops if method in HTTP_METHODS}
    missing = documented_routes(client.app) - documented
    assert not missing, f"routes missing from chatserver/openapi.py: {sorted(missing)}"


async def test_spec_describes_no_route_that_does_not_exist(client: TestClient) -> None:
    spec = build_spec()["paths"]
    documented = {(method, path) for path, ops in spec.items() for method in ops if method in HTTP_METHODS}
    assert documented - documented_routes(client.app) == set()


def test_spec_is_valid_openapi_3_1() -> None:
    spec = build_spec()
    assert spec["openapi"].startswith("3.1")
    OpenAPIV31SpecValidator(spec).validate()


def test_swagger_ui_copy_is_valid_openapi_3_0() -> None:
    downgraded = downgrade_for_swagger_ui(build_spec())
    assert downgraded["openapi"] == "3.0.3"
    OpenAPIV30SpecValidator(downgraded).validate()
    assert '"null"' not in repr(downgraded)


def test_operation_ids_are_unique() -> None:
    ids = [op["operationId"] for ops in build_spec()["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


def test_documented_query_parameters_are_the_ones_handlers_accept() -> None:
    assert [p["name"] for p in LIST_TICKET_PARAMS] == list(ticket_handlers.LIST_QUERY)
    assert [p["name"] for p in MESSAGE_PARAMS] == list(ticket_handlers.MESSAGES_QUERY)


def test_request_schemas_follow_the_handlers_validation() -> None:
    schemas = build_spec()["components"]["schemas"]
    update = schemas["UpdateTicketRequest"]
    assert update["additionalProperties"] is False
    assert set(update["properties"]) == set(ticket_handlers.UPDATE_SCHEMA)
    assert update["properties"]["assignee_id"]["type"] == ["string", "null"]
    post = schemas["PostMessageRequest"]
    assert post["required"] == ["body"]
    assert post["properties"]["client_id"]["maxLength"] == 100


def test_every_authenticated_operation_documents_401() -> None:
    """And every JSON-body operation the body errors (form posts of the web pages excepted)."""
    for path, ops in build_spec()["paths"].items():
        for method, op in ops.items():
            if op["security"]:
                assert "401" in op["responses"], f"{method} {path}"
            if "application/json" in op.get("requestBody", {}).get("content", {}):
                assert {"400", "413", "415", "422"} <= set(op["responses"]), f"{method} {path}"


async def test_real_responses_match_the_documented_schemas(client: TestClient, make_user: MakeUser) -> None:
    signup = await client.post("/auth/signup", json={"email": "spec@example.com", "password": "password1"})
    await assert_matches_spec(signup, "post", "/auth/signup")
    customer = await make_user("customer")
    agent = await make_user("agent")
    await assert_matches_spec(await client.get("/auth/me", headers=agent.headers), "get", "/auth/me")
    login = await client.post("/auth/login", json={"email": agent.email, "password": "correct horse battery"})
    await assert_matches_spec(login, "post", "/auth/login")

    created = await client.post("/tickets", json={"subject": "Hi", "message": "Hello"}, headers=customer.headers)
    body = await assert_matches_spec(created, "post", "/tickets")
    ticket_id = body["ticket"]["id"]
    no_message = await client.post("/tickets", json={"subject": "Bare"}, headers=customer.headers)
    assert (await assert_matches_spec(no_message, "post", "/tickets"))["message"] is None

    one = "/tickets/{ticket_id}"
    await assert_matches_spec(await client.get(f"/tickets/{ticket_id}", headers=agent.headers), "get", one)
    patched = await client.patch(f"/tickets/{ticket_id}", json={"assignee_id": agent.id}, headers=agent.headers)
    await assert_matches_spec(patched, "patch", one)
    await assert_matches_spec(await client.get("/tickets?limit=1", headers=agent.headers), "get", "/tickets")

    msgs = "/tickets/{ticket_id}/messages"
    note = {"body": "note", "internal": True, "client_id": "n1"}
    posted = await client.post(f"/tickets/{ticket_id}/messages", json=note, headers=agent.headers)
    await assert_matches_spec(posted, "post", msgs)
    again = await client.post(f"/tickets/{ticket_id}/messages", json=note, headers=agent.headers)
    assert again.status == 200
    await assert_matches_spec(again, "post", msgs)
    await assert_matches_spec(await client.get(f"/tickets/{ticket_id}/messages", headers=agent.headers), "get", msgs)

    await assert_matches_spec(await client.get("/healthz"), "get", "/healthz")
    await assert_matches_spec(await client.get("/readyz"), "get", "/readyz")
    ws_ticket = await client.post("/ws/tickets", headers=customer.headers)
    await assert_matches_spec(ws_ticket, "post", "/ws/tickets")


@pytest.mark.parametrize(
    ("method", "path", "template", "kwargs", "status"),
    [
        ("get", "/auth/me", "/auth/me", {}, 401),
        ("post", "/tickets", "/tickets", {"data": "{", "headers": {"Content-Type": "application/json"}}, 401),
        ("get", "/tickets?limit=0", "/tickets", {"auth": True}, 422),
        ("post", "/tickets", "/tickets", {"auth": True, "data": "{"}, 415),
        ("get", f"/tickets/{'0' * 8}-0000-4000-8000-{'0' * 12}", "/tickets/{ticket_id}", {"auth": True}, 404),
    ],
)
async def test_error_responses_match_the_error_schema(
    client: TestClient, make_user: MakeUser, method: str, path: str, template: str, kwargs: dict[str, Any], status: int
) -> None:
    user = await make_user("customer")
    if kwargs.pop("auth", False):
        kwargs["headers"] = {**kwargs.get("headers", {}), **user.headers}
    resp = await client.request(method, path, **kwargs)
    assert resp.status == status
    body = await assert_matches_spec(resp, method, template)
    assert set(body) == {"error"}


async def test_openapi_json_is_served_as_json(client: TestClient) -> None:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert (await resp.json())["info"]["title"] == "chatserver"


async def test_docs_page_uses_only_local_assets(client: TestClient) -> None:
    resp = await client.get("/docs")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    html = await resp.text()
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "the docs page must not load anything remote"
    assets = re.findall(r"(?:src|href)=\"(/docs/static/[^\"]+)\"", html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    assert any(a.endswith("swagger-ui.css") for a in assets)
    for asset in assets:
        served = await client.get(asset)
        assert served.status == 200, asset
        assert len(await served.read()) > 0


async def test_docs_page_embeds_the_spec_safely(client: TestClient) -> None:
    html = await (await client.get("/docs")).text()
    assert '"openapi":"3.0.3"' in html
    # One closing tag for the bundle's <script src>, one for the inline one: no string in the
    # embedded spec can end the script early.
    assert html.count("</script>") == 2
    assert "/tickets/{ticket_id}/messages" in html


@pytest.mark.parametrize(
    "text",
    ["a", " a ", "\t", "\x0c", "\x1c", "\u3000", "\u3000x", "a\x00", "\x00", "", "x" * 100, " " + "x" * 100],
)
def test_documented_string_rules_are_the_ones_validation_applies(text: str) -> None:
    """What the schema allows (pattern, min/maxLength) is exactly what validate() accepts, so a
    fuzzer reading the schema neither sends refused values as valid nor the reverse."""
    fields = {"required": Str(max_len=100), "optional": Str(required=False, min_len=0, max_len=100)}
    for name, field in fields.items():
        allowed = Draft202012Validator(field_schema(field)).is_valid(text)
        try:
            validate({name: text}, {name: field})
            accepted = True
        except ApiError:
            accepted = False
        assert allowed == accepted, (name, text)


@pytest.mark.parametrize("email", ["a@b.co", " a@b.co ", "0", "a@b", "a b@c.de", "a\x00@b.co", "a@b.c\x1c"])
def test_the_documented_signup_email_is_the_one_signup_accepts(email: str) -> None:
    pattern = build_spec()["components"]["schemas"]["SignupRequest"]["properties"]["email"]["pattern"]
    try:
        check_email(email)
        accepted = "\x00" not in email
    except ApiError:
        accepted = False
    assert bool(re.search(pattern, email)) == accepted


async def test_a_console_ticket_page_for_a_malformed_id_is_not_found(client: TestClient) -> None:
    resp = await client.get("/console/tickets/null,null", allow_redirects=False)
    assert resp.status == 404
