"""What a WebSocket may keep doing (issue 10): its token, its frame budget, its slot.

- The token a socket authenticated with is re-checked every
  ``session_recheck_seconds`` (at most 30 s): once it expired or was revoked
  (logout, password change, delete-my-data) the socket closes with 4401.
- Each socket may send ``ws_frame_rate_limit`` frames (``limits`` on Redis);
  beyond that it gets an error frame, then 1013.
- Each person may hold ``ws_max_sockets_per_user`` sockets across every web
  process (``shared.core.ratelimit.SocketSlots``); the claim is renewed with
  each re-check and lapses on its own if the process dies.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

from shared.core import metrics
from shared.core.ratelimit import for_settings, socket_slots
from shared.identity.sessions import Recheck
from shared.identity.users import User
from web.extensions import Services
from web.realtime.ws_handshake import Close


class SocketGuard:
    """Guards one ``SocketSession`` (duck-typed: ``send``, ``close``, ``advise``, ``run``)."""

    __slots__ = ("svc", "user", "socket_id", "recheck", "slots")

    def __init__(self, svc: Services, user: User) -> None:
        self.svc, self.user = svc, user
        self.socket_id = secrets.token_hex(8)
        self.recheck = Recheck(svc.redis, svc.settings, user)
        self.slots = socket_slots(svc.settings, 3 * Recheck.MAX_INTERVAL)

    def run(self, session: Any, auth_frame: dict[str, Any] | None = None) -> None:
        """Run the session in one of the person's socket slots (else advice + 1013)."""
        session.guard = self
        if not self.claim():
            session.advise("overload", 5000)
            session.close(Close.TRY_LATER, "too_many_sockets", "too many sockets")
            return
        try:
            session.run(auth_frame)
        finally:
            self.release()

    def session_over(self, session: Any) -> bool:
        """Close the session with 4401 if its token expired or was revoked; True if so."""
        ended = self.ended()
        if ended is None:
            return False
        session.close(Close.NOT_AUTHENTICATED, f"session_{ended}", f"token {ended}")
        return True

    def frames_over(self, session: Any) -> bool:
        """Spend one frame; over the budget, send the error frame, close 1013, True."""
        refusal = self.frame_refusal()
        if refusal is None:
            return False
        session.send(refusal)
        session.close(Close.TRY_LATER, "rate_limited", "too many frames")
        return True

    def claim(self) -> bool:
        """Take one of the person's socket slots; False when they hold them all."""
        return self.slots.claim(self.user.id, self.socket_id)

    def release(self) -> None:
        self.slots.release(self.user.id, self.socket_id)

    def ended(self) -> str | None:
        """Why the socket must close now (``expired``/``revoked``), or None; renews the slot."""
        if time.monotonic() >= self.recheck.next_at:
            self.slots.claim(self.user.id, self.socket_id)
        reason = self.recheck.due()
        if reason is not None:
            metrics.STREAM_SESSIONS_ENDED.labels(transport="ws", reason=reason).inc()
        return reason

    def frame_refusal(self) -> dict[str, Any] | None:
        """Spend one frame; the error frame to send (before 1013) when over the budget."""
        settings = self.svc.settings
        decision = for_settings(settings).spend(
            "ws_frames", settings.ws_frame_rate_limit, self.socket_id
        )
        if decision.allowed:
            return None
        return {
            "type": "error",
            "code": "rate_limited",
            "message": f"Too many frames (at most {settings.ws_frame_rate_limit}).",
            "field": None,
            "retry_after_ms": decision.retry_after_seconds * 1000,
        }


class ProcessSlots:
    """The sockets this process holds, at most ``ws_max_connections`` (beyond: advice + 1013).

    A gevent process never runs two greenlets at once, but the lock keeps the count right
    under any worker class."""

    __slots__ = ("_lock", "held")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.held = 0

    def claim(self, limit: int) -> bool:
        with self._lock:
            if self.held >= limit:
                return False
            self.held += 1
        metrics.WS_CONNECTIONS_ACTIVE.inc()
        return True

    def release(self) -> None:
        with self._lock:
            self.held -= 1
        metrics.WS_CONNECTIONS_ACTIVE.dec()
