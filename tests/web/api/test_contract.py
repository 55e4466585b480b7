"""Schemathesis against the live app: real gunicorn, a real worker, Redis and noida-db.

Generated requests (valid and invalid, from ``/openapi.json``) go to every
documented operation as a user with an imported mailbox. Each response must
be no server error, documented (status, content type, headers, body schema),
and every invalid request must be refused. Bounded: a few examples per
operation, so the whole module stays within about three minutes.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import auth_header, user_with_mailbox
from tests.live import WebInstance, start_web

pytestmark = pytest.mark.timeout(240)

CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# Not generated at all: deleting the test user's data would end the run; /ws is an upgrade.
NOT_GENERATED = r"^/api/me/data$|^/ws$|^/api/auth/(logout|password)$"
# Server-Sent Events: only their error answers are exercised (invalid requests).
STREAMS = r"/stream$"


EXAMPLES = 25  # per operation and mode


def _config(*, allow_extra_parameters: bool = True) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "generation": {
                "with-security-parameters": False,
                "allow-extra-parameters": allow_extra_parameters,
            },
            "request-timeout": 30,
            # An invalid request may also be too long for a URL: gunicorn's 414 refuses it too.
            "checks": {
                "negative_data_rejection": {
                    "expected-statuses": ["400", "401", "403", "404", "409", "413", "414", "429"]
                }
            },
        }
    )


@pytest.fixture(scope="module")
def live(settings, celery_worker, tmp_path_factory) -> Iterator[tuple[WebInstance, dict[str, str]]]:
    folder = Path(tmp_path_factory.mktemp("contract"))
    user = user_with_mailbox(settings, folder, name="contract", count=40)
    web = start_web(
        folder,
        {
            # Gmail "configured" with a made-up client: connect then answers its consent URL.
            "MAILCHAT_GMAIL_CLIENT_ID": "contract-test.apps.googleusercontent.com",
            "MAILCHAT_GMAIL_CLIENT_SECRET": secrets.token_urlsafe(16),
        },
    )
    yield web, auth_header(settings, user)
    web.stop()


def _safe(case: Any) -> None:
    """Keep generated IMAP accounts on this machine: a host on loopback is refused (400)."""
    if case.path == "/api/accounts" and case.method == "POST" and isinstance(case.body, dict):
        if isinstance(case.body.get("host"), str):
            case.body["host"] = "127.0.0.1"


def _run(
    schema: Any,
    mode: GenerationMode,
    max_examples: int,
    call: Any,
    path_parameters: dict[str, dict[str, str]] | None = None,
) -> tuple[list[str], int]:
    """Every selected operation, ``max_examples`` generated cases each: the failures, named,
    and how many requests were sent (so a run that generated nothing cannot pass)."""
    failures: list[str] = []
    sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        pinned = (path_parameters or {}).get(operation.path)
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=pinned)

        @hypothesis.settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            derandomize=True,  # the same cases every run: a failure here is reproducible
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        @hypothesis.given(case=strategy)
        def check(case: Any) -> None:
            nonlocal sent
            sent += 1
            call(case)

        try:
            check()
        except hypothesis.errors.Unsatisfiable:
            # Nothing to make invalid (no parameters, no body): only valid requests exist.
            if mode is not GenerationMode.NEGATIVE:
                raise
        except Exception as exc:  # one operation's failure must not hide another's
            failures.append(f"{operation.label} ({mode.value}): {exc}")
    return failures, sent


def test_api_conforms_to_its_document(live) -> None:
    web, headers = live
    schema = schemathesis.openapi.from_url(f"{web.base}/openapi.json", config=_config())
    selected = schema.exclude(path_regex=NOT_GENERATED).exclude(path_regex=STREAMS)
    assert len(list(selected.get_all_operations())) >= 15

    def call(case: Any) -> None:
        _safe(case)
        case.call_and_validate(headers=headers, checks=CHECKS)

    failures, valid = _run(selected, GenerationMode.POSITIVE, EXAMPLES, call)
    negative_failures, invalid = _run(selected, GenerationMode.NEGATIVE, EXAMPLES, call)
    assert not failures + negative_failures, "\n\n".join(failures + negative_failures)
    assert valid >= 100 and invalid >= 50, (valid, invalid)
    print(f"contract: {valid} valid and {invalid} invalid requests")


def test_streams_refuse_invalid_requests(settings, live) -> None:
    """SSE endpoints get only invalid requests: each must be refused, never streamed.

    The conversation is a real one of a user of its own (nothing else of theirs
    exists), so a refusal is about the invalid part, not an unknown conversation.
    """
    from shared.core.clients import get_redis
    from shared.identity.users import create_user
    from shared.realtime.conversations import claim_conversation

    web, _ = live
    r = get_redis(settings)
    user = create_user(r, settings, f"streams-{secrets.token_hex(4)}@example.com", "pw-streams-1")
    conversation = claim_conversation(r, settings, user.id, None)
    headers = auth_header(settings, user)
    config = _config(allow_extra_parameters=False)  # unknown parameters are ignored, not wrong
    schema = schemathesis.openapi.from_url(f"{web.base}/openapi.json", config=config)
    selected = schema.include(path_regex=STREAMS)
    assert len(list(selected.get_all_operations())) == 2

    def call(case: Any) -> None:
        # A stream wrongly opened sends a ping every 15 s: the read timeout ends it as a failure.
        response = case.call(headers=headers, timeout=10)
        assert response.status_code != 200, f"streamed: {case.as_curl_command()}"
        case.validate_response(response, checks=CHECKS)

    pinned = {"/api/conversations/{conversation_id}/stream": {"conversation_id": conversation}}
    failures, sent = _run(selected, GenerationMode.NEGATIVE, EXAMPLES, call, pinned)
    assert not failures, "\n\n".join(failures)
    assert sent >= 10, sent
