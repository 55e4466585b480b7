"""The model's reply through the whole pipeline: a real worker, real gunicorn, SSE and JSON.

The worker and web run on a Redis database of their own (``isolated``) with the
model settings pointing at a real llama.cpp server (``tests/llm_server.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.identity.users import issue_token
from tests.assistant.test_llm import need_server
from tests.conftest import user_with_mailbox
from tests.live import SseReader, http, start_web
from tests.llm_server import start_llm_server, write_tiny_model

pytestmark = pytest.mark.timeout(120)


def test_the_models_reply_streams_through_worker_and_web(
    isolated, session_dir, tmp_path: Path
) -> None:
    need_server()
    server = start_llm_server(write_tiny_model(tmp_path / "chatty.gguf"), tmp_path / "llm.log")
    try:
        iso = isolated(
            13,
            llm_base_url=server.base_url,
            llm_model="tiny",
            llm_timeout_seconds=15.0,
            llm_max_tokens=80,
            search_result_size=3,
        )
        iso.start_worker("llm-worker")
        web = start_web(
            session_dir, {k: v for k, v in iso.env.items() if k.startswith("MAILCHAT_")}
        )
        try:
            user = user_with_mailbox(iso.settings, tmp_path, name="llm", count=120)
            bearer = {"Authorization": f"Bearer {issue_token(iso.settings, user)}"}
            status, _, body = http("POST", f"{web.base}/api/chat/ticket", {}, bearer)
            assert status == 200
            ticket = json.loads(body)["ticket"]
            reader = SseReader(
                f"{web.base}/api/chat/stream?q=interview&window_days=365&ticket={ticket}"
            )
            assert reader.status == 200
            messages = []
            for message in reader.messages():
                if message["event"] not in (":", "retry"):
                    messages.append(message)
                if message["event"] in ("done", "error") or len(messages) > 2000:
                    break
            reader.close()

            kinds = [m["event"] for m in messages]
            assert kinds[:4] == ["ready", "question", "search", "hits"] and kinds[-1] == "done"
            done = messages[-1]["data"]["data"]
            assert done["phrasing"] == {"by": "llm", "fallback": None}
            deltas = [m for m in messages if m["event"] == "delta"]
            assert [d["data"]["data"]["index"] for d in deltas] == list(range(len(deltas)))
            assert "".join(d["data"]["data"]["text"] for d in deltas) == done["answer"]
            # Written as the model produced them, not in one burst at the end: the entry ids
            # (milliseconds) of the deltas span more than one instant.
            assert len({d["id"].split("-")[0] for d in deltas}) >= 2
            assert done["citations"] == messages[3]["data"]["data"]["citations"]
            assert done["citations"] and all(
                c["id"].startswith(f"{user.id}:") for c in done["citations"]
            )

            # The plain JSON endpoint gets the model's text and the search's citations too.
            status, _, body = http(
                "POST", f"{web.base}/api/chat", {"q": "interview", "window_days": 365}, bearer
            )
            assert status == 200, body
            answered = json.loads(body)
            assert answered["citations"] == done["citations"]
            assert answered["answer"].strip() and "language model" not in answered["answer"]
            assert answered["phrasing"]["by"] in ("llm", "rules"), "who phrased it, as in done"
        finally:
            web.stop()
    finally:
        server.stop()
