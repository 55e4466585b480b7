"""``GET /openapi.json`` describes every route of the app, and is a valid OpenAPI 3.1 document."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from web.api.openapi import build_document, openapi_path, route_keys
from web.api.openapi.operations import core_operations

pytestmark = pytest.mark.timeout(60)


def test_every_route_is_documented(app, client) -> None:
    document = client.get("/openapi.json").get_json()
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    expected = {(method, openapi_path(rule)) for method, rule in route_keys(app)}
    assert expected, "the app has routes"
    missing = sorted(expected - documented)
    assert not missing, f"routes missing from /openapi.json (add them to operations.py): {missing}"


def test_no_operation_documents_a_route_that_does_not_exist(app) -> None:
    stale = set(core_operations(app.extensions["mailchat"].settings)) - route_keys(app)
    assert not stale, f"operations.py documents routes the app does not have: {sorted(stale)}"


def test_a_new_route_without_an_operation_fails_the_check(app) -> None:
    """The coverage check sees a route added later (as another engineer would add one)."""
    from flask import Flask

    from web import create_app

    fresh: Flask = create_app(app.extensions["mailchat"].settings)
    try:
        fresh.add_url_rule("/api/brand-new/<thing_id>", "brand_new", lambda thing_id: "")
        document = build_document(fresh)
        assert ("GET", "/api/brand-new/<thing_id>") in route_keys(fresh)
        assert "/api/brand-new/{thing_id}" not in document["paths"]
    finally:
        fresh.extensions["mailchat"].relay.stop()


def test_the_document_is_valid_openapi_3_1(client) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema


def test_the_validator_rejects_a_broken_document(client) -> None:
    """The validity check above can fail: a Swagger 2 style body parameter is refused."""
    document = client.get("/openapi.json").get_json()
    parameters = document["paths"]["/api/emails/{email_id}"]["get"]["parameters"]
    parameters[0]["in"] = "body"
    with pytest.raises(OpenAPIValidationError):
        validate(document)


def test_errors_use_the_error_shape_and_retry_after(client) -> None:
    document = client.get("/openapi.json").get_json()
    chat = document["paths"]["/api/chat"]["post"]
    for status in ("400", "401", "413", "429", "503"):
        schema = chat["responses"][status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}, status
    assert "Retry-After" in chat["responses"]["503"]["headers"]
    assert chat["security"] == [{"bearer": []}]
    stream = document["paths"]["/api/chat/stream"]["get"]
    assert {"ticket": []} in stream["security"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]
    assert document["components"]["securitySchemes"]["bearer"]["bearerFormat"] == "JWT"
    question = chat["requestBody"]["content"]["application/json"]["schema"]["properties"]["q"]
    assert question["maxLength"] == document_limit(client)


def document_limit(client) -> int:
    return int(client.get("/client/config").get_json()["max_question_chars"])
