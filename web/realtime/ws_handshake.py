"""Around a WebSocket session: its Origin, auth frame, resume positions, framing, advice, closes."""

from __future__ import annotations

import json
import time
from enum import IntEnum
from functools import lru_cache
from typing import Any

from flask import request
from flask_sock import ConnectionClosed
from wsproto.frame_protocol import FrameProtocol

from shared.core import metrics
from shared.core.events import ControlType
from shared.identity.users import TokenError, User, verify_token
from shared.realtime.eventlog import EventLog, is_entry_id
from web.extensions import Services
from web.realtime.ws_reader import receive
from web.validation import parse_json


class Close(IntEnum):
    """The WebSocket close codes Mailchat sends (DESIGN.md section 3)."""

    NORMAL = 1000
    GOING_AWAY = 1001  # a pong came too late
    POLICY = 1008  # bad origin
    TOO_BIG = 1009
    INTERNAL = 1011
    RESTART = 1012  # this process is shutting down: reconnect soon
    TRY_LATER = 1013  # overload, rate limit, Redis unreachable
    NOT_AUTHENTICATED = 4401  # get a new token before reconnecting


def authenticate(ws: Any, svc: Services) -> tuple[User, dict[str, Any]] | None:
    """The first frame's user and the frame itself (it may say where to resume), or None."""
    raw = receive(ws, svc.settings.ws_auth_timeout_seconds)
    try:
        frame = parse_json(raw) if raw is not None else None
    except ValueError:
        frame = None
    if (
        not isinstance(frame, dict)
        or frame.get("type") != "auth"
        or not isinstance(frame.get("token"), str)
    ):
        return None
    try:
        return verify_token(svc.settings, frame["token"]), frame
    except TokenError:
        return None


def notifications_start(
    events: EventLog, stream: str, request: object
) -> tuple[str, dict[str, Any] | None]:
    """Where to follow the person's notifications from, and a frame to send after ``ready``.

    A reconnecting client names the last one it got in its auth frame
    (``"notifications": {"after", "epoch"}``, as ``ready`` told it), so
    what arrived while it was away is sent now; a position that cannot be
    resumed gets a ``reset`` (stream ``notifications``) and starts from now.
    """
    if request is None:
        return events.last_id(stream), None
    asked = request if isinstance(request, dict) else {}
    after = asked.get("after")
    if not isinstance(after, str) or not is_entry_id(after):
        error = {
            "type": ControlType.ERROR,
            "code": "invalid_field",
            "message": "'notifications' needs an event id 'after' (and the 'epoch').",
            "field": "notifications",
        }
        return events.last_id(stream), error
    epoch = unresumable(events, stream, after, asked.get("epoch"))
    if epoch is not None:
        reset = {"type": ControlType.RESET, "stream": "notifications", "epoch": epoch}
        return events.last_id(stream), reset
    return after, None


def unresumable(events: EventLog, stream: str, after: str, epoch: object) -> str | None:
    """The stream's epoch when a client at ``(epoch, after)`` cannot resume it (it must get
    a ``reset``: another epoch, or ``after`` trimmed away), else None. One round trip."""
    position = events.read(
        stream, after=after, epoch=epoch if isinstance(epoch, str) else None, count=1
    )
    if not position.reset:
        return None
    metrics.EVENT_LOG_RESETS.inc()
    return position.epoch


def advise_and_close(ws: Any, why: str, retry_after_ms: int) -> None:
    """Before a session exists: an ``advice`` frame, then close 1013 (try again later)."""
    metrics.WS_RECONNECT_ADVICE.labels(why=why).inc()
    try:
        ws.send(
            json.dumps(
                {
                    "type": ControlType.ADVICE,
                    "why": why,
                    "reconnect": True,
                    "retry_after_ms": retry_after_ms,
                }
            )
        )
        ws.close(reason=Close.TRY_LATER, message=why)
    except (ConnectionClosed, OSError):
        pass


def origin_allowed(svc: Services) -> bool:
    origin = request.headers.get("Origin")
    return origin is not None and origin in svc.settings.allowed_origins


def record_close(code: int, reason: str, started: float) -> None:
    metrics.WS_CLOSES.labels(code=str(int(code)), reason=reason).inc()
    metrics.WS_CONNECTION_DURATION.observe(time.monotonic() - started)


@lru_cache(maxsize=256)
def text_frame(text: str) -> bytes:
    """One server-to-client text frame (unmasked, no extension), by wsproto, once per event."""
    return bytes(FrameProtocol(client=False, extensions=[]).send_data(text, fin=True))


def negotiated_no_extension(ws: Any) -> bool:
    """True when the handshake agreed on no extension, so frames may be shared between sockets."""
    connection = getattr(getattr(ws, "ws", None), "connection", None)
    return getattr(getattr(connection, "_proto", None), "extensions", None) == []
