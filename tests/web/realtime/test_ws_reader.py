"""The inline WebSocket reader (web/realtime/ws_reader.py): one greenlet per socket, frames intact.

Run in a child process that gevent monkey-patches first, as gunicorn's gevent
worker does, over a real socket pair: the server end is simple-websocket's
``Server`` with ``InlineReader`` (what flask-sock builds from
``SOCK_SERVER_OPTIONS``), the client end speaks wsproto.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from devtools.run import PROJECT_ROOT

CHILD = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()

    import json, socket, threading, time
    import gevent
    from simple_websocket import ConnectionClosed, Server
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

    from web.realtime.ws_reader import InlineReader, receive, server_options

    result = {}
    result["options"] = sorted(server_options(64 * 1024))
    server_end, client_end = socket.socketpair()
    client = WSConnection(ConnectionType.CLIENT)
    request = client.send(Request(host="localhost", target="/ws")).decode()
    key = next(line.split(":", 1)[1].strip() for line in request.split("\\r\\n")
               if line.lower().startswith("sec-websocket-key"))
    environ = {
        "gunicorn.socket": server_end, "REQUEST_METHOD": "GET", "PATH_INFO": "/ws",
        "HTTP_HOST": "localhost", "HTTP_UPGRADE": "websocket", "HTTP_CONNECTION": "Upgrade",
        "HTTP_SEC_WEBSOCKET_KEY": key, "HTTP_SEC_WEBSOCKET_VERSION": "13",
    }
    greenlets_before = threading.active_count()
    ws = Server(environ, **server_options(64 * 1024))
    result["reader"] = type(ws.thread).__name__
    result["threads_added"] = threading.active_count() - greenlets_before
    client.receive_data(client_end.recv(65536))
    result["accepted"] = any(isinstance(e, AcceptConnection) for e in client.events())

    def client_sends(*messages):
        for message in messages:
            client_end.sendall(client.send(TextMessage(data=message)))

    started = time.monotonic()
    result["nothing_yet"] = receive(ws, 0.2)
    result["waited"] = round(time.monotonic() - started, 1)

    gevent.spawn_later(0.1, client_sends, "hello")
    result["first"] = receive(ws, 5)

    big = "x" * 20000  # several reads of 4096 bytes: one frame, put together
    client_sends(big, "after")
    got = [receive(ws, 5), receive(ws, 5)]
    result["big_intact"] = got[0] == big
    result["after"] = got[1]

    client_sends("a", "b", "c")  # arrive together, read at once, kept in order
    result["three"] = [receive(ws, 5) for _ in range(3)]

    client_end.sendall(client.send(CloseConnection(code=1000, reason="bye")))
    try:
        receive(ws, 5)
        result["closed"] = False
    except ConnectionClosed:
        result["closed"] = True
    result["watching_after_close"] = ws.thread._watcher is not None
    print(json.dumps(result))
    """
)


def test_the_inline_reader_reads_every_frame_in_order_without_a_thread() -> None:
    child = subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    result = json.loads(child.stdout.strip().splitlines()[-1])
    assert result["options"] == ["max_message_size", "thread_class"]
    assert result["reader"] == "InlineReader"
    assert result["threads_added"] == 0
    assert result["accepted"] is True
    assert result["nothing_yet"] is None and result["waited"] >= 0.2
    assert result["first"] == "hello"
    assert result["big_intact"] is True
    assert result["after"] == "after"
    assert result["three"] == ["a", "b", "c"]
    assert result["closed"] is True
    assert result["watching_after_close"] is False


def test_without_gevent_simple_websocket_keeps_its_reader_thread() -> None:
    from web.realtime.ws_reader import server_options

    # pytest's process is not monkey-patched: `flask run` and the like keep the threads.
    assert server_options(1024) == {"max_message_size": 1024}
