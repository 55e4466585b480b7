"""deploy/nginx/nginx.conf: `nginx -t`, then a real nginx in front of a real gunicorn
carrying an SSE answer and a WebSocket conversation end to end.

The deploy file names its upstream ``web:8000`` (Compose's service name), which
does not resolve here; the test swaps in the local gunicorn's address, the
listen port and a private temp directory, and changes nothing else.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from devtools.servers import free_port
from shared.identity.users import issue_token
from tests.deploy.tools import DEPLOY, tool
from tests.live import SseReader, http, start_web
from tests.wsclient import WsClient

pytestmark = pytest.mark.timeout(60)


def local_config(tmp: Path, upstream_port: int, listen_port: int) -> Path:
    text = (DEPLOY / "nginx" / "nginx.conf").read_text()
    assert "server web:8000 " in text and "listen 80;" in text
    text = text.replace("server web:8000 ", f"server 127.0.0.1:{upstream_port} ")
    text = text.replace("listen 80;", f"listen 127.0.0.1:{listen_port};")
    text = text.replace("/tmp/", f"{tmp}/")
    path = tmp / "nginx.conf"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def proxied(settings, celery_worker, tmp_path_factory):  # type: ignore[no-untyped-def]
    nginx = tool("nginx")
    tmp = tmp_path_factory.mktemp("nginx")
    web = start_web(tmp, {"MAILCHAT_SSE_PING_SECONDS": "1"})
    port = free_port()
    config = local_config(tmp, web.port, port)
    log = open(tmp / "nginx.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [nginx, "-c", str(config), "-p", str(tmp), "-g", "daemon off;"], stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                web.stop()
                raise RuntimeError((tmp / "nginx.log").read_text()) from None
            time.sleep(0.1)
    yield base
    process.terminate()
    process.wait(10)
    web.stop()


def test_nginx_t_accepts_the_config(tmp_path: Path) -> None:
    config = local_config(tmp_path, 8000, 8080)
    result = subprocess.run(
        [tool("nginx"), "-t", "-c", str(config), "-p", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_sse_answer_streams_through_nginx(proxied, settings, make_user) -> None:
    user, _ = make_user("nginx-sse")
    headers = {"Authorization": f"Bearer {issue_token(settings, user)}"}
    status, _, body = http("POST", f"{proxied}/api/chat/ticket", {}, headers)
    assert status == 200
    ticket = json.loads(body)["ticket"]
    reader = SseReader(f"{proxied}/api/chat/stream?q=invoices&window_days=30&ticket={ticket}")
    assert reader.status == 200
    assert reader.headers["Content-Type"].startswith("text/event-stream")
    kinds: list[str] = []
    for message in reader.messages():
        kinds.append(message["event"])
        if message["event"] in ("done", "error"):
            break
    reader.close()
    events = [k for k in kinds if k not in (":", "retry")]
    assert events[:3] == ["ready", "question", "search"] and events[-1] == "done", kinds


def test_idle_sse_stream_keeps_flowing_through_nginx(proxied, settings, make_user) -> None:
    """A followed conversation with nothing new: pings arrive one by one, not buffered."""
    user, _ = make_user("nginx-idle")
    headers = {"Authorization": f"Bearer {issue_token(settings, user)}"}
    status, _, body = http("POST", f"{proxied}/api/chat", {"q": "anything from the bank?"}, headers)
    assert status == 200, body
    conversation = json.loads(body)["conversation_id"]
    reader = SseReader(f"{proxied}/api/conversations/{conversation}/stream", headers)
    assert reader.status == 200
    arrivals: list[float] = []
    started = time.monotonic()
    for message in reader.messages():
        if message["event"] == ":":
            arrivals.append(time.monotonic() - started)
            if len(arrivals) == 3:
                break
    reader.close()
    # One ping a second, each delivered as it was sent (a buffering proxy holds them back).
    assert arrivals[-1] < 6 and arrivals[-1] - arrivals[0] > 1, arrivals


def test_websocket_conversation_through_nginx(proxied, settings, make_user) -> None:
    user, _ = make_user("nginx-ws")
    client = WsClient(proxied, "http://allowed.example")
    client.send({"type": "auth", "token": issue_token(settings, user)})
    ready = client.receive()
    assert ready and ready["type"] == "ready"
    cmid = "m_" + secrets.token_hex(6)
    client.send(
        {"type": "chat.send", "client_message_id": cmid, "q": "receipts", "window_days": 30}
    )
    frames = client.receive_until(
        lambda f: f.get("type") == "done" and f["data"].get("client_message_id") == cmid
    )
    kinds = [f["type"] for f in frames]
    assert kinds[:2] == ["question", "search"] and kinds[-1] == "done", kinds
    client.send({"type": "ping"})
    assert client.receive_until(lambda f: f["type"] == "pong")[-1] == {"type": "pong"}
    client.close()
