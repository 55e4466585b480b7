"""simple-websocket's frame reading, done by the socket's own greenlet instead of a thread.

simple-websocket reads every socket in a thread of its own, a greenlet under
gevent. An idle socket pays for that greenlet all its life: the slice of C
stack greenlet saves for it, the page of Python data stack greenlet gives
each greenlet (a 16 KiB chunk of its own), a ``Thread`` with its locks: an
idle socket cost 43.9 KiB with it, 32.8 without. Yet the socket's session already
has a greenlet that sleeps on the socket's event (the relay's doorbell rings
it too), so that one can do the reading as well.

``InlineReader`` is handed to simple-websocket as its ``thread_class``: it
never starts a thread. Its ``start`` arms a one-shot read watcher on the
socket whose callback, run by the hub without a greenlet, only marks the
socket readable and sets its event. Whoever waits on that event (the
handshake's ``receive``, the session's loop) then calls ``read_arrived``,
which does one non-blocking read and hands the bytes to simple-websocket's
own frame handling (wsproto, ping/pong, close, the message size limit), and
re-arms the watcher. Outside gevent (``flask run``) simple-websocket keeps
its threads and ``read_arrived`` does nothing: the thread fills the buffer.
"""

from __future__ import annotations

import time
from typing import Any

from wsproto.utilities import LocalProtocolError


def server_options(max_message_bytes: int) -> dict[str, Any]:
    """flask-sock's ``SOCK_SERVER_OPTIONS``: the inline reader wherever gevent runs the sockets."""
    options: dict[str, Any] = {"max_message_size": max_message_bytes}
    if _gevent_sockets():
        options["thread_class"] = InlineReader
    return options


def _gevent_sockets() -> bool:
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return False
    return bool(monkey.is_module_patched("socket"))


class InlineReader:
    """Stands where simple-websocket's reader thread would: a read watcher, no greenlet."""

    __slots__ = ("ws", "name", "_watcher", "_readable")

    def __init__(self, target: Any) -> None:
        self.ws: Any = target.__self__  # simple-websocket passes its bound ``_thread``
        self.name = "simple_websocket.inline"  # simple-websocket renames its thread
        self._watcher: Any = None
        self._readable = False

    def start(self) -> None:
        import gevent

        self._watcher = gevent.get_hub().loop.io(self.ws.sock.fileno(), 1)
        self._watcher.start(self._on_readable)

    def _on_readable(self) -> None:
        # One-shot: a socket with unread bytes would otherwise call back on every loop turn.
        self._watcher.stop()
        self._readable = True
        self.ws.event.set()

    def read(self) -> None:
        """Hand what has arrived to simple-websocket; never waits."""
        ws = self.ws
        if not self._readable or self._watcher is None:
            return
        self._readable = False
        try:
            data = ws.sock.recv(ws.receive_bytes)  # readable: returns at once
            if not data:
                raise ConnectionResetError("closed by the client")
            ws.ws.receive_data(data)
            ws.connected = ws._handle_events()
        except (OSError, LocalProtocolError):
            ws.connected = False
            ws.event.set()
        if ws.connected:
            self._watcher.start(self._on_readable)  # more bytes pending call back at once
        else:
            self.stop()

    def stop(self) -> None:
        """Stop watching the socket; called once its session is over, before it is closed."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()
            watcher.close()


def read_arrived(ws: Any) -> None:
    """Read whatever arrived on ``ws`` into its input buffer (a no-op with a reader thread)."""
    reader = getattr(ws, "thread", None)
    if isinstance(reader, InlineReader):
        reader.read()


def stop_reading(ws: Any) -> None:
    reader = getattr(ws, "thread", None)
    if isinstance(reader, InlineReader):
        reader.stop()


def receive(ws: Any, timeout: float) -> str | bytes | None:
    """The next frame within ``timeout`` seconds, or None; ConnectionClosed once closed."""
    deadline = time.monotonic() + timeout
    while True:
        read_arrived(ws)
        if ws.input_buffer or not ws.connected:
            return ws.receive(timeout=0)  # the frame, or ConnectionClosed
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        ws.event.wait(remaining)
        ws.event.clear()
