"""``GET /openapi.json``: the OpenAPI 3.1 description of every JSON endpoint.

Built from the app itself: the paths are ``app.url_map``'s rules, each
operation comes from ``operations.py`` (keyed by method and rule), and the
limits (the longest question, ...) are this server's settings. A route
without an operation is left out here and fails ``tests/web/api/test_openapi.py``;
Schemathesis checks the live server against the document in the same folder's
``test_contract.py``.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify

from web.api.openapi.components import SCHEMAS, SECURITY_SCHEMES
from web.api.openapi.operations import core_operations

bp = Blueprint("openapi", __name__)

OPENAPI_VERSION = "3.1.0"
# Routes that are not JSON endpoints: the page, its files and Prometheus' text.
UNDOCUMENTED_RULES = frozenset({"/", "/static/<path:filename>", "/metrics"})
DOCUMENTED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_CACHE_KEY = "mailchat.openapi"
_PARAMETER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def openapi_path(rule: str) -> str:
    """A Flask rule (``/api/emails/<email_id>``) as an OpenAPI path (``/api/emails/{email_id}``)."""
    return _PARAMETER.sub(r"{\1}", rule)


def route_keys(app: Flask) -> set[tuple[str, str]]:
    """(method, rule) of every route the document must describe."""
    return {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule not in UNDOCUMENTED_RULES
        for method in rule.methods or ()
        if method in DOCUMENTED_METHODS
    }


def build_document(app: Flask) -> dict[str, Any]:
    """The document for ``app``: its routes, described by ``operations``, with its limits."""
    settings = app.extensions["mailchat"].settings
    operations = core_operations(settings)
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        for method in sorted((rule.methods or set()) & set(DOCUMENTED_METHODS)):
            operation = operations.get((method, rule.rule))
            if operation is None:
                continue
            paths.setdefault(openapi_path(rule.rule), {})[method.lower()] = operation.build(
                rule.endpoint.replace(".", "_")
            )
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Mailchat",
            "version": "1",
            "description": "Chat with your inbox. Every error is JSON: "
            '`{"error": {"code", "message", "field"}}`; 429 and 503 carry `Retry-After`.',
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": SCHEMAS, "securitySchemes": SECURITY_SCHEMES},
        "security": [],
    }


@bp.get("/openapi.json")
def openapi_document() -> Any:
    document = current_app.extensions.get(_CACHE_KEY)
    if document is None:
        document = current_app.extensions[_CACHE_KEY] = build_document(current_app)
    return jsonify(document)
