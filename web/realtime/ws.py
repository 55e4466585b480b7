"""The WebSocket ``/ws``: ask, resume and receive every event exactly once per socket.

Protocol (DESIGN.md §3): the first frame must be ``{"type":"auth","token"}``
within 5 s (else close 4401); the Origin must be allowed (else 1008). Client
frames: ``chat.send``, ``resume``, ``ping``, ``pong``. Server frames: each
log event as the event object itself, and the control frames ``ready``,
``reset``, ``pong``, ``ping``, ``error`` and ``advice``. A socket keeps one
cursor per stream it follows, so it never sends an event twice, and any
number of sockets (tabs) of one user each get every event.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from typing import Any

from flask import Flask
from flask_sock import ConnectionClosed, Sock
from wsproto.connection import ConnectionState

from shared.assistant.asking import is_terminal_for
from shared.core import metrics
from shared.core.events import ControlType
from shared.core.settings import Settings
from shared.identity.users import User
from shared.realtime.eventlog import READ_PAGE, Event
from web.errors import SERVER_DOWN_RETRY_AFTER_SECONDS, ApiError, server_down
from web.extensions import Services, services
from web.realtime.asking import record_answer_metrics
from web.realtime.relay import Waiter
from web.realtime.shutdown import shutting_down
from web.realtime.ws_frames import FrameError, handle_frame
from web.realtime.ws_guard import ProcessSlots, SocketGuard
from web.realtime.ws_handshake import (
    Close,
    advise_and_close,
    authenticate,
    negotiated_no_extension,
    notifications_start,
    origin_allowed,
    record_close,
    text_frame,
)
from web.realtime.ws_reader import read_arrived, server_options, stop_reading

log = logging.getLogger(__name__)

sock = Sock()


process_slots = ProcessSlots()  # this process's sockets, at most ws_max_connections


def init_websocket(app: Flask, settings: Settings) -> None:
    """Register /ws; frames over the limit are refused by simple-websocket with close 1009."""
    app.config["SOCK_SERVER_OPTIONS"] = server_options(settings.ws_max_message_bytes)
    sock.init_app(app)


class SocketSession:
    """One authenticated socket: its cursors, its heartbeat, and its one loop.

    Everything a socket does happens in the greenlet gunicorn gave it: the
    loop waits on the socket's event, which its read watcher and the relay's
    doorbell both set (``Waiter(ws.event)``, ``ws_reader``), then reads the
    frames, sends the new events and does whatever is due (ping, pong timeout,
    token re-check). No second greenlet, no lock, no timer: an idle socket
    sleeps until its next duty, and reading its cursors is served from the
    relay's memory, so it costs no Redis call.
    """

    __slots__ = (
        "ws",
        "svc",
        "user",
        "events",
        "cursors",
        "asked",
        "closed",
        "close_code",
        "close_reason",
        "last_pong",
        "ping_sent_at",
        "waiter",
        "guard",
        "plain",
        "waiting",
        "unsent",
    )
    guard: SocketGuard  # set by SocketGuard.run, which runs the session

    def __init__(self, ws: Any, svc: Services, user: User) -> None:
        self.ws = ws
        self.svc = svc
        self.user = user
        self.events = svc.relay.events  # the process's own: a socket pays for none
        self.cursors: dict[str, str] = {}
        self.asked: dict[str, str] = {}  # client_message_id -> conversation stream (for metrics)
        self.closed = False
        self.close_code: int = Close.NORMAL
        self.close_reason = "normal"
        # The first ping comes after a random 50-100 % of the interval, so sockets opened
        # together do not all ping (and get pongs) in the same instant ever after.
        ping_every = svc.settings.ws_ping_seconds
        self.last_pong = time.monotonic() - ping_every * random.random() / 2
        self.ping_sent_at: float | None = None
        svc.relay.start()
        self.plain = negotiated_no_extension(ws)
        self.waiting = False  # the loop sleeps: the relay's listener may send for it
        self.unsent = b""  # what the listener's write left over; sent before anything else
        self.waiter = Waiter(getattr(ws, "event", None), self.deliver if self.plain else None)

    # --- sending -----------------------------------------------------------------

    def send(self, frame: dict[str, Any]) -> None:
        """Send a control frame."""
        self._send_text(
            json.dumps(frame, ensure_ascii=False, separators=(",", ":")), str(frame.get("type"))
        )

    def send_event(self, event: Event) -> None:
        """Send a log event as itself: its JSON, and its frame, are built once for every socket.

        Without an extension (no per-message deflate) a server's text frame is the same bytes
        for every socket, so a thousand followers of a conversation share one encoding and
        each only writes it; otherwise (or once closing) wsproto frames it for this socket.
        """
        connection = self.ws.ws.connection if self.plain else None
        if connection is None or connection.state is not ConnectionState.OPEN:
            self.ws.send(event.json)
            return
        if not self.ws.connected:
            raise ConnectionClosed(self.ws.close_reason, self.ws.close_message)
        self.ws.sock.sendall(text_frame(event.json))

    def deliver(self, stream: str) -> bool:
        """Send ``stream``'s news from the relay's listener, without waking this greenlet.

        Only while the loop sleeps (so nothing of its own is half-sent), with the news
        in the relay's tail, before the token's re-check is due and not once closing.
        The frames go out in one non-blocking write; what the socket cannot take now
        is kept in ``unsent``, which the loop, woken, sends before anything else.
        False (wake the loop instead) in every other case.
        """
        after = self.cursors.get(stream)
        if not self.waiting or self.unsent or after is None or shutting_down.is_set():
            return False
        expires_at = self.user.expires_at
        if time.monotonic() >= self.guard.recheck.next_at or (
            expires_at and time.time() >= expires_at
        ):
            return False
        ws = self.ws
        if not ws.connected or ws.ws.connection.state is not ConnectionState.OPEN:
            return False
        events = self.svc.relay.fresh_after(stream, after)
        if not events:
            return events is not None  # [] : nothing new for this socket
        # From here the bytes are this socket's, past its cursor: written now or by its loop.
        self.unsent = data = b"".join(text_frame(event.json) for event in events)
        self.cursors[stream] = events[-1].id
        try:
            written = os.write(ws.sock.fileno(), data)  # the fd is non-blocking: never waits
        except OSError:  # full (BlockingIOError) or failing: the loop sends it, or finds out
            written = 0
        self.unsent = data[written:]
        for event in events:
            self.counted(event)
        return not self.unsent

    def send_unsent(self) -> None:
        if self.unsent:
            data, self.unsent = self.unsent, b""
            try:
                self.ws.sock.sendall(data)
            except OSError as exc:
                raise ConnectionClosed(Close.GOING_AWAY, "gone") from exc

    def _send_text(self, text: str, frame_type: str) -> None:
        self.ws.send(text)
        metrics.count_frame_sent(frame_type)

    def close(self, code: int, reason: str, message: str = "") -> None:
        if self.closed:
            return
        self.close_code, self.close_reason = code, reason
        self.closed = True
        try:
            self.ws.close(reason=code, message=message or reason)
        except (ConnectionClosed, OSError):
            pass

    def advise(self, why: str, retry_after_ms: int) -> None:
        metrics.WS_RECONNECT_ADVICE.labels(why=why).inc()
        self.send(
            {
                "type": ControlType.ADVICE,
                "why": why,
                "reconnect": True,
                "retry_after_ms": retry_after_ms,
            }
        )

    # --- following streams -------------------------------------------------------

    def follow(self, stream: str, after: str) -> None:
        """Start (or keep) following ``stream`` after ``after``."""
        if stream not in self.cursors:
            self.cursors[stream] = after
            self.svc.relay.add_stream(self.waiter, stream)
        self.waiter.ring()

    def flush(self) -> None:
        """Send every event past each cursor, in order, advancing the cursor as it goes."""
        for stream, after in list(self.cursors.items()):
            # Page after page until the end: a resume far behind must not stop at one page.
            while page := self.svc.relay.read_after(stream, after):
                for event in page:
                    self.send_event(event)
                    self.cursors[stream] = after = event.id
                    self.counted(event)
                if len(page) < READ_PAGE:
                    break  # the end as of now; a newer event rings the waiter again

    def counted(self, event: Event) -> None:
        """Count one sent event (the cursor is the caller's); time an answer it finishes."""
        metrics.count_frame_sent(event.type)
        cmid = str(event.data.get("client_message_id", ""))
        if cmid in self.asked and is_terminal_for(event, cmid):
            del self.asked[cmid]
            record_answer_metrics(event)

    # --- the loop ----------------------------------------------------------------

    def idle_seconds(self) -> float:
        """How long the loop may sleep: until the next ping, pong deadline or token re-check."""
        settings = self.svc.settings
        now = time.monotonic()
        if self.ping_sent_at is None:
            due = self.last_pong + settings.ws_ping_seconds
        else:
            due = self.ping_sent_at + settings.ws_pong_timeout_seconds
        due = min(due, self.guard.recheck.next_at)
        if self.user.expires_at:
            due = min(due, now + self.user.expires_at - time.time())
        return min(max(0.05, due - now + 0.01), settings.ws_ping_seconds)

    def duties(self) -> bool:
        """Send new events, then what is due; False once the socket was closed."""
        settings = self.svc.settings
        self.flush()
        if shutting_down.is_set():
            self.advise("restart", 1000)
            self.close(Close.RESTART, "restart")
            return False
        if self.guard.session_over(self):  # token expired or revoked: 4401
            return False
        now = time.monotonic()
        if self.ping_sent_at is None and now - self.last_pong >= settings.ws_ping_seconds:
            self.ping_sent_at = now
            self.send({"type": ControlType.PING})
        if (
            self.ping_sent_at is not None
            and now - self.ping_sent_at > settings.ws_pong_timeout_seconds
        ):
            self.close(Close.GOING_AWAY, "pong_timeout")
            return False
        return True

    def _arrived_frame(self) -> str | bytes | None:
        """The next frame that already arrived, or None; never waits.

        ``receive(timeout=0)`` on an empty buffer still waits on an event with a zero
        timeout, which yields to the hub: a doorbell waking a thousand sockets would send
        each to the back of the run queue once before it sends its event.
        """
        read_arrived(self.ws)
        if not self.ws.input_buffer and self.ws.connected:
            return None
        return self.ws.receive(timeout=0)  # a frame, or ConnectionClosed once closed

    def receive_frames(self) -> bool:
        """Handle every frame that arrived; False once the socket was closed."""
        while (raw := self._arrived_frame()) is not None:
            if self.guard.frames_over(self):  # error frame, then 1013
                return False
            try:
                handle_frame(self, raw)
            except (FrameError, ApiError) as error:
                self.send_error(error.code, error.message, error.field)
            except ConnectionClosed:
                raise
            except Exception as exc:  # noqa: BLE001 - a frame must never kill the socket
                if server_down(exc) is not None:
                    raise
                # Never let it reach Flask: its 500 page would be written into the socket.
                log.exception("websocket frame failed")
                self.send_error("internal_error", "Something went wrong on our side.", None)
        return not self.closed

    def send_error(self, code: str, message: str, field: str | None) -> None:
        self.send({"type": ControlType.ERROR, "code": code, "message": message, "field": field})

    def advise_server_down(self, exc: BaseException) -> None:
        """Redis (or search) unreachable: advise a later reconnect, then close 1013."""
        log.warning("websocket: %r; advising the client to come back", exc)
        try:
            self.advise("server_unavailable", SERVER_DOWN_RETRY_AFTER_SECONDS * 1000)
        except (ConnectionClosed, OSError):
            pass
        self.close(Close.TRY_LATER, "server_unavailable")

    def run(self, auth_frame: dict[str, Any] | None = None) -> None:
        user_stream = self.events.user_stream(self.user.id)
        request = (auth_frame or {}).get("notifications")
        start, notice = notifications_start(self.events, user_stream, request)
        self.send(
            {
                "type": ControlType.READY,
                "user_id": self.user.id,
                "notifications_epoch": self.events.epoch(user_stream),
                "notifications_after": start,
                "heartbeat_seconds": self.svc.settings.ws_ping_seconds,
            }
        )
        if notice is not None:
            self.send(notice)
        self.follow(user_stream, start)
        try:
            while self.receive_frames() and self.duties():
                self.waiting = True
                self.waiter.wait(self.idle_seconds())
                self.waiting = False
                self.send_unsent()
        except ConnectionClosed:
            if not self.closed:
                self.close_reason = "client_closed"
        except Exception as exc:
            if server_down(exc) is not None:
                self.advise_server_down(exc)
            elif not self.closed:
                log.exception("websocket session failed")
                self.close(Close.INTERNAL, "internal_error")
        finally:
            self.closed = True
            self.svc.relay.remove_waiter(self.waiter)


@sock.route("/ws")
def websocket(ws: Any) -> None:
    svc = services()
    started = time.monotonic()
    if not origin_allowed(svc):
        ws.close(reason=Close.POLICY, message="origin not allowed")
        record_close(Close.POLICY, "bad_origin", started)
        return
    if shutting_down.is_set():
        ws.close(reason=Close.RESTART, message="restart")
        record_close(Close.RESTART, "restart", started)
        return
    if not process_slots.claim(svc.settings.ws_max_connections):
        advise_and_close(ws, "overload", 5000)
        record_close(Close.TRY_LATER, "overload", started)
        return
    session: SocketSession | None = None
    try:
        authenticated = authenticate(ws, svc)
        if authenticated is None:
            ws.close(reason=Close.NOT_AUTHENTICATED, message="not authenticated")
            record_close(Close.NOT_AUTHENTICATED, "not_authenticated", started)
            return
        user, auth_frame = authenticated
        session = SocketSession(ws, svc, user)
        # token re-checks, frame budget, socket slot
        SocketGuard(svc, user).run(session, auth_frame)
    except ConnectionClosed:
        pass
    except Exception as exc:
        if server_down(exc) is None:
            raise
        if session is not None:
            session.advise_server_down(exc)
        else:  # Redis went away during the handshake: same advice, no session yet
            advise_and_close(ws, "server_unavailable", SERVER_DOWN_RETRY_AFTER_SECONDS * 1000)
            record_close(Close.TRY_LATER, "server_unavailable", started)
    finally:
        stop_reading(ws)
        process_slots.release()
        if session is not None:
            code = session.close_code
            if ws.close_reason == Close.TOO_BIG:
                code, session.close_reason = Close.TOO_BIG, "too_big"
            record_close(code, session.close_reason, started)
