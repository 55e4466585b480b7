"""gunicorn's gevent worker, with its own error pages in the API's JSON shape.

gunicorn answers requests it cannot parse (a 60 KB header: 431, a request
line over its limit: 414, a broken chunked body: 400) itself, before Flask
sees them, with an HTML page. Clients of a JSON API should not have to parse
HTML, so this worker writes those answers as ``{"error": {...}}``.

gunicorn has no hook for the body of these answers: its workers call
``gunicorn.util.write_error``, so this module replaces that one function.
The status line and reason stay gunicorn's own.
"""

from __future__ import annotations

import json
from typing import Any

import gevent
from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker

# gevent records, for every greenlet, which greenlet spawned it and a copy of the stack
# it was spawned from (a debugging aid, on by default). With a greenlet or two per open
# socket that is ~7 frame records per socket, memory each socket pays for and that every
# full garbage collection walks, pausing every socket of the process. Off before any
# greenlet is spawned: this module is imported in the master, before the worker forks.
gevent.config.track_greenlet_tree = False

# Which part of the request each gunicorn status is about, for the error's ``field``.
_FIELDS = {414: "url", 431: "headers"}


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's ``write_error``, with a JSON body and the API's security headers."""
    body = json.dumps(
        {
            "error": {
                "code": reason.lower().replace(" ", "_"),
                "message": f"{reason}: {mesg}" if mesg else reason,
                "field": _FIELDS.get(status_int),
            }
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        "Cache-Control: no-store\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin1") + body)


util.write_error = write_json_error


class JsonErrorGeventWorker(GeventWorker):  # type: ignore[misc]
    """The gevent worker; importing this module is what switches the error pages to JSON."""
