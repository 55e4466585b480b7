"""Around a WebSocket session: its Origin, auth frame, negotiated framing, advice, close metrics."""

from __future__ import annotations

import json
import time
from functools import lru_cache
from typing import Any

from flask import request
from flask_sock import ConnectionClosed
from wsproto.frame_protocol import FrameProtocol

from shared.core import metrics
from shared.core.events import ControlType
from shared.identity.users import TokenError, User, verify_token
from web.extensions import Services
from web.validation import parse_json

CLOSE_TRY_LATER = 1013


def authenticate(ws: Any, svc: Services) -> User | None:
    raw = ws.receive(timeout=svc.settings.ws_auth_timeout_seconds)
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
        return verify_token(svc.settings, frame["token"])
    except TokenError:
        return None


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
        ws.close(reason=CLOSE_TRY_LATER, message=why)
    except (ConnectionClosed, OSError):
        pass


def origin_allowed(svc: Services) -> bool:
    origin = request.headers.get("Origin")
    return origin is not None and origin in svc.settings.allowed_origins


def record_close(code: int, reason: str, started: float) -> None:
    metrics.WS_CLOSES.labels(code=str(code), reason=reason).inc()
    metrics.WS_CONNECTION_DURATION.observe(time.monotonic() - started)


@lru_cache(maxsize=256)
def text_frame(text: str) -> bytes:
    """One server-to-client text frame (unmasked, no extension), by wsproto, once per event."""
    return bytes(FrameProtocol(client=False, extensions=[]).send_data(text, fin=True))


def negotiated_no_extension(ws: Any) -> bool:
    """True when the handshake agreed on no extension, so frames may be shared between sockets."""
    connection = getattr(getattr(ws, "ws", None), "connection", None)
    return getattr(getattr(connection, "_proto", None), "extensions", None) == []
