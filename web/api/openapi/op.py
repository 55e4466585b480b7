"""``Op``: one documented operation, and what operations of a kind share.

Authenticated operations get 401 and 503 (the token check reads Redis), JSON
bodies get 400 and 413, 429 and 503 carry ``Retry-After``: an operation
lists only the answers that are its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from web.api.openapi.components import Schema, error_response, json_content, json_request

Security = list[dict[str, list[str]]]
BEARER: Security = [{"bearer": []}]
BEARER_OR_TICKET: Security = [{"bearer": []}, {"ticket": []}]


@dataclass
class Op:
    """One operation; ``build`` turns it into the OpenAPI operation object."""

    summary: str
    tag: str
    responses: dict[int, Any]
    errors: tuple[int, ...] = ()
    body: Schema | None = None
    parameters: list[Schema] = field(default_factory=list)
    security: Security | None = None  # None: public
    description: str = ""
    errors_described: dict[int, str] = field(default_factory=dict)
    multipart: Schema | None = None  # a multipart/form-data body instead of JSON

    def build(self, operation_id: str) -> dict[str, Any]:
        errors = set(self.errors) | set(self.errors_described)
        if self.security:
            errors |= {401, 503}  # the token check reads the token version from Redis
        if self.body is not None:
            errors |= {400, 413}
        if any(p["in"] == "query" for p in self.parameters):
            errors.add(414)  # gunicorn's request-line limit (web/gunicorn_worker.py)
        responses: dict[str, Any] = {str(s): r for s, r in self.responses.items()}
        for status in sorted(errors):
            responses[str(status)] = error_response(status, self.errors_described.get(status))
        built: dict[str, Any] = {
            "operationId": operation_id,
            "summary": self.summary,
            "tags": [self.tag],
            "responses": responses,
            "security": self.security or [],
        }
        if self.description:
            built["description"] = self.description
        if self.parameters:
            built["parameters"] = self.parameters
        if self.body is not None:
            built["requestBody"] = json_request(self.body)
        if self.multipart is not None:
            built["requestBody"] = {
                "required": True,
                "content": {"multipart/form-data": {"schema": self.multipart}},
            }
        return built


def ok(schema: Schema, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": json_content(schema)}


def obj(required: list[str], **properties: Schema) -> Schema:
    return {"type": "object", "required": required, "properties": properties}


NO_CONTENT = {"description": "Done; no body."}
