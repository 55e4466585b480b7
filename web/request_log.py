"""One log line per request, with a request id that follows it through every log line.

The id comes from the client's ``X-Request-ID`` (when it looks like one) or is made
here, and goes back in the response header, so a person reporting a problem can
quote it. The line names the route *template* (``/api/emails/<email_id>``), never
the path or query string: those carry ids, tickets and questions.
"""

from __future__ import annotations

import logging
import re
import secrets
import time

from flask import Flask, Response, g, request

from shared.core import logs

log = logging.getLogger("mailchat.request")

HEADER = "X-Request-ID"
_VALID_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def _start() -> None:
    offered = request.headers.get(HEADER, "")
    request_id = offered if _VALID_ID.fullmatch(offered) else secrets.token_hex(8)
    route = request.url_rule.rule if request.url_rule is not None else "unmatched"
    g.request_id = request_id
    g.request_started = time.perf_counter()
    g.log_tokens = logs.bind(request_id=request_id, route=route, user=None)


def _finish(response: Response) -> Response:
    started = g.get("request_started")
    if started is None:
        return response
    user = g.get("user")
    if user is not None:
        logs.bind(user=logs.user_hash(user.id))
    response.headers[HEADER] = g.request_id
    log.info(
        "request",
        extra={
            "method": request.method,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
    return response


def _teardown(_exc: BaseException | None) -> None:
    tokens = g.pop("log_tokens", None)
    if tokens:
        logs.clear()


def init_request_log(app: Flask) -> None:
    """Runs first (before authentication), so even a refused request has an id."""
    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(_finish)
    app.teardown_request(_teardown)
