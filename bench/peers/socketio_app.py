"""The peer measured beside Mailchat's /ws: a minimal Flask-SocketIO app (issue 14, item 2).

Run the way Mailchat runs: one gunicorn process with a gevent worker, where
python-engineio serves WebSockets through simple-websocket, the same library
flask-sock uses. Every socket joins the room ``bench``; with
``PEER_MESSAGE_QUEUE`` set (a Redis URL) the app listens to Flask-SocketIO's
Redis message queue, so another process emits to the room the way a Celery
task would (``SocketIO(message_queue=...).emit(..., to="bench")``).

It is a peer measured beside us, not a stand-in for anything of ours.
"""

from __future__ import annotations

import os

from flask import Flask
from flask_socketio import SocketIO, join_room

ROOM = "bench"
CHANNEL = os.environ.get("PEER_CHANNEL", "flask-socketio-bench")

app = Flask(__name__)
socketio = SocketIO(
    app,
    async_mode="gevent",
    message_queue=os.environ.get("PEER_MESSAGE_QUEUE") or None,
    channel=CHANNEL,
    cors_allowed_origins="*",
    max_http_buffer_size=16384,
)


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@socketio.on("connect")
def connected() -> None:
    join_room(ROOM)
