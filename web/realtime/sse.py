"""Server-Sent Events: an answer streamed as it is written, and resumable conversations.

Wire format (DESIGN.md §3): ``id:`` is the log entry id, ``event:`` the
type, ``data:`` the event as one JSON line; ``retry:`` once; a ``: ping``
comment every 15 s; ``X-Accel-Buffering: no`` so proxies do not hold it back.
A reconnecting ``EventSource`` sends ``Last-Event-ID`` and gets exactly the
events after it, or ``reset`` when that position is gone.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, request, stream_with_context

from shared.assistant.asking import is_terminal_for
from shared.core import metrics
from shared.core.events import ControlType, EventType
from shared.identity.sessions import Recheck
from shared.realtime.conversations import owns_conversation
from shared.realtime.eventlog import Event, EventLog, is_entry_id, position_before
from web.api.auth import current_user
from web.errors import SERVER_DOWN_RETRY_AFTER_SECONDS, ApiError, error_response, server_down
from web.extensions import services
from web.realtime.asking import ask, follow, record_answer_metrics
from web.validation import required_string

log = logging.getLogger(__name__)

bp = Blueprint("sse", __name__, url_prefix="/api")

STREAM_ENDPOINTS = {"sse.chat_stream", "sse.conversation_stream"}


def sse_event(event: Event) -> str:
    return f"id: {event.id}\nevent: {event.type}\ndata: {event.json}\n\n"


def sse_control(event_type: str, data: dict[str, Any]) -> str:
    """A control message (ready, reset, reconnect): no ``id:``, so Last-Event-ID stays put."""
    return f"event: {event_type}\ndata: {json.dumps({'type': event_type, **data})}\n\n"


def _counted(body: Iterator[str]) -> Iterator[str]:
    """Count the open stream; a server lost mid-stream ends it with an ``error`` it can act on.

    The 200 and its headers are already sent, so a 503 is no longer possible:
    the stream's last message says what happened and when to retry.
    """
    metrics.SSE_STREAMS_ACTIVE.inc()
    try:
        yield from body
    except Exception as exc:
        down = server_down(exc)
        if down is None:
            raise
        log.warning("SSE stream ended: %r", exc)
        code, message = down
        retry_ms = SERVER_DOWN_RETRY_AFTER_SECONDS * 1000
        yield sse_control(
            ControlType.ERROR, {"code": code, "message": message, "retry_after_ms": retry_ms}
        )
    finally:
        metrics.SSE_STREAMS_ACTIVE.dec()


def sse_response(body: Iterator[str]) -> Response:
    response = Response(stream_with_context(_counted(body)), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"
    return response


def session_check() -> tuple[Recheck, Any]:
    """(re-check of the caller's token, its final ``error`` message maker) for one stream.

    An open stream re-checks its token every <= 30 s; once it expired or was
    revoked (logout, password change, delete-my-data) the stream ends with a
    final ``error`` (``session_expired``/``session_revoked``), never silently.
    """
    svc = services()
    recheck = Recheck(svc.redis, svc.settings, current_user())

    def final(reason: str) -> str:
        metrics.STREAM_SESSIONS_ENDED.labels(transport="sse", reason=reason).inc()
        message = "Your session has ended; log in again."
        return sse_control(ControlType.ERROR, {"code": f"session_{reason}", "message": message})

    return recheck, final


def streaming_disabled() -> Any:
    """The seed's canary switch: tell clients to use the plain JSON endpoint."""
    response = error_response(
        503,
        "streaming_disabled",
        "Streaming is switched off; send the question to POST /api/chat instead.",
        retry_after=60,
    )
    response.headers["X-Chat-Streaming-Disabled"] = "1"
    return response


@bp.get("/chat/stream")
def chat_stream() -> Any:
    """Ask and stream the answer: ready, question, search, hits, delta*, done."""
    svc = services()
    if not svc.settings.chat_streaming_enabled:
        return streaming_disabled()
    args = request.args.to_dict()
    started = ask(current_user(), args, required_string(args, "q", svc.settings.max_question_chars))
    stream = EventLog(svc.redis, svc.settings).conversation_stream(started.conversation_id)
    recheck, session_over = session_check()

    def body() -> Iterator[str]:
        # A dropped connection does not cancel the answer: the client may be
        # reconnecting to resume it. Only a newer question cancels it.
        finished = answering = False
        unanswered_deadline = time.monotonic() + svc.settings.chat_timeout_seconds
        yield f"retry: {svc.settings.sse_retry_ms}\n\n"
        yield sse_control(
            ControlType.READY,
            {
                "conversation_id": started.conversation_id,
                "epoch": started.epoch,
                "client_message_id": started.client_message_id,
            },
        )
        for event in follow(
            stream,
            position_before(started.question_event_id),
            until_answered=started.client_message_id,
            idle_seconds=min(
                svc.settings.sse_ping_seconds, svc.settings.chat_timeout_seconds, recheck.interval
            ),
        ):
            if (ended := recheck.due()) is not None:
                yield session_over(ended)
                return
            if event is None:
                if not answering and time.monotonic() > unanswered_deadline:
                    # No worker took the question (it expires unanswered): say so, like POST does.
                    yield sse_control(
                        ControlType.ERROR,
                        {
                            "code": "assistant_unavailable",
                            "message": "No assistant worker answered in time; try again.",
                            "client_message_id": started.client_message_id,
                        },
                    )
                    return
                yield ": ping\n\n"
                continue
            if event.type != EventType.QUESTION:
                answering = True
            if is_terminal_for(event, started.client_message_id):
                finished = True
                record_answer_metrics(event)
            yield sse_event(event)
        if not finished:
            yield sse_control(ControlType.RECONNECT, {"reason": "server restarting"})

    return sse_response(body())


@bp.get("/conversations/<conversation_id>/stream")
def conversation_stream(conversation_id: str) -> Any:
    """Follow a conversation from ``Last-Event-ID`` (or ``?after=``), indefinitely."""
    svc = services()
    if not svc.settings.chat_streaming_enabled:
        return streaming_disabled()
    if not owns_conversation(svc.redis, svc.settings, current_user().id, conversation_id):
        raise ApiError(
            404, "conversation_not_found", "No such conversation.", field="conversation_id"
        )
    # Each position given is checked, also the one Last-Event-ID overrides: a bad ?after=
    # is the client's bug, and it would surface on the first reconnect without the header.
    given = [request.headers.get("Last-Event-ID"), request.args.get("after")]
    if not all(is_entry_id(value) for value in given if value):
        raise ApiError(400, "invalid_field", "'after' must be an event id.", field="after")
    after = next((value for value in given if value), "0")
    epoch = request.args.get("epoch")
    events = EventLog(svc.redis, svc.settings)
    stream = events.conversation_stream(conversation_id)
    recheck, session_over = session_check()

    def body() -> Iterator[str]:
        yield f"retry: {svc.settings.sse_retry_ms}\n\n"
        position = events.read(stream, after=after, epoch=epoch, count=1)
        if position.reset:
            yield sse_control(
                ControlType.RESET, {"conversation_id": conversation_id, "epoch": position.epoch}
            )
            return
        yield sse_control(
            ControlType.READY, {"conversation_id": conversation_id, "epoch": position.epoch}
        )
        idle = min(svc.settings.sse_ping_seconds, recheck.interval)
        for event in follow(stream, after, idle_seconds=idle):
            if (ended := recheck.due()) is not None:
                yield session_over(ended)
                return
            yield ": ping\n\n" if event is None else sse_event(event)
        yield sse_control(ControlType.RECONNECT, {"reason": "server restarting"})

    return sse_response(body())
