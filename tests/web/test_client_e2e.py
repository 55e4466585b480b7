"""The browser client end to end: Debian's Chromium (Playwright) against real gunicorn,
a real Celery worker, Redis and noida-db. Screenshots go to test-artifacts/e2e/."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.browser import ARTIFACTS, CHROMIUM, INSTRUMENTATION, LAUNCH_ARGS, missing_reason

_reason = missing_reason()
if _reason:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright  # noqa: E402

from celery_app import create_celery  # noqa: E402
from devtools.servers import free_port  # noqa: E402
from shared.assistant.asking import start_question  # noqa: E402
from shared.core.clients import get_redis  # noqa: E402
from shared.core.task_names import ASSISTANT_ANSWER  # noqa: E402
from shared.core.user_agents import user_agent_type  # noqa: E402
from shared.realtime.eventlog import EventLog  # noqa: E402
from tests.conftest import user_with_mailbox  # noqa: E402
from tests.live import WebInstance, http, start_web  # noqa: E402

WAIT_MS = 30_000
RECONNECT_WAIT_MS = 60_000  # the socket's backoff is capped at 20 s
PASSWORD = "e2e-password"
# Telemetry every second (instead of 30 s) so a test sees heartbeats arrive.
FAST_UX = {"MAILCHAT_UX_HEARTBEAT_SECONDS": "1", "MAILCHAT_UX_RATE_LIMIT_PER_MINUTE": "1000"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    playwright = sync_playwright().start()
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
    yield launched
    launched.close()
    playwright.stop()


@pytest.fixture(scope="module")
def person(settings, tmp_path_factory):  # type: ignore[no-untyped-def]
    """A person with 300 realistic emails over the last months."""
    folder = Path(tmp_path_factory.mktemp("e2e"))
    return user_with_mailbox(settings, folder, name="e2e", count=300, password=PASSWORD)


@pytest.fixture(scope="module")
def web(session_dir, settings, celery_worker) -> Iterator[WebInstance]:  # type: ignore[no-untyped-def]
    instance = start_web(session_dir, FAST_UX)
    yield instance
    instance.stop()


@dataclass
class Chat:
    """One browser context on the chat page, with the test's eyes on it."""

    context: BrowserContext
    page: Page
    name: str
    base: str
    page_errors: list[str] = field(default_factory=list)
    responses: list[tuple[str, str, int, dict[str, str]]] = field(default_factory=list)

    def shot(self, step: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{step}.png"
        self.page.screenshot(path=str(path))
        return path

    def login(self, email: str, password: str = PASSWORD) -> None:
        self.page.goto(f"{self.base}/")
        self.page.wait_for_selector("#login-form")
        self.page.fill("#login-email", email)
        self.page.fill("#login-password", password)
        self.page.click("#login-submit")
        self.wait_state("open")

    def wait_state(self, state: str, timeout: int = WAIT_MS) -> None:
        self.page.wait_for_selector(f"#status[data-state={state}]", timeout=timeout)

    def ask(self, text: str) -> None:
        self.page.fill("#composer-input", text)
        self.page.press("#composer-input", "Enter")

    def wait_done(self, count: int, timeout: int = WAIT_MS) -> None:
        self.page.wait_for_function(
            "n => document.querySelectorAll('.turn[data-status=done]').length >= n",
            arg=count,
            timeout=timeout,
        )

    def turns(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.page.eval_on_selector_all(
            ".turn",
            """nodes => nodes.map(n => ({
                cmid: n.dataset.cmid,
                status: n.dataset.status,
                local: [...n.classList].find(c => c.startsWith('local-')) || null,
                q: n.querySelector('.question-text')?.textContent,
                text: n.querySelector('.answer-text')?.textContent ?? null,
                citations: n.querySelectorAll('.citation').length,
                searched: n.querySelector('.searched')?.textContent ?? null,
                filters: [...n.querySelectorAll('.search-filter')].map(f => f.dataset.filter),
            }))""",
        )
        return result

    def debug(self, expression: str) -> Any:
        return self.page.evaluate(f"window.mailchat.{expression}")


@pytest.fixture()
def open_chat(browser, request) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """Open chat pages; at the end none may have had an uncaught error or rejection."""
    opened: list[Chat] = []

    def _open(base: str) -> Chat:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.add_init_script(INSTRUMENTATION)
        page = context.new_page()
        chat = Chat(context, page, request.node.name.removeprefix("test_"), base)
        page.on("pageerror", lambda error: chat.page_errors.append(str(error)))
        page.on(
            "response",
            lambda r: chat.responses.append(
                (r.request.method, r.url.split("?")[0], r.status, r.headers)
            ),
        )
        opened.append(chat)
        return chat

    yield _open
    for chat in opened:
        rejections = chat.page.evaluate("window.__rejections") if not chat.page.is_closed() else []
        chat.context.close()
        assert chat.page_errors == [], chat.page_errors
        assert rejections == [], rejections


def plain(answer: str) -> str:
    """An answer as the page shows it: citation markers [n] become buttons labelled n."""
    return re.sub(r"\[(\d{1,2})\]", r"\1", answer)


def metric(base: str, name: str) -> float:
    text = http("GET", f"{base}/metrics")[2].decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def wait_for(predicate, what: str, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"never happened: {what}")


class SearchQueuePaused:
    """Stop the real worker taking assistant tasks for a while (Celery's own remote
    control), so a question is still unanswered when the test acts on it."""

    def __init__(self, settings) -> None:  # type: ignore[no-untyped-def]
        self.control = create_celery(settings, with_tasks=False).control

    def __enter__(self) -> SearchQueuePaused:
        assert self.control.cancel_consumer("search", reply=True, timeout=5)
        return self

    def resume(self) -> None:
        self.control.add_consumer("search", reply=True, timeout=5)

    def __exit__(self, *exc: object) -> None:
        self.resume()


# --- the tests -----------------------------------------------------------------------------


def test_ask_and_see_the_answer_stream_in_with_citations(web, person, open_chat) -> None:
    opened_before = metric(web.base, "ux_chat_opened_total")
    chat = open_chat(web.base)
    chat.page.goto(f"{web.base}/")
    chat.page.wait_for_selector("#login-form")
    chat.shot("1-login")
    chat.login(person.email)
    chat.page.evaluate(
        """() => {
          window.__seen = [];
          new MutationObserver((records) => {
            for (const record of records) for (const node of record.addedNodes) {
              if (node.nodeType === 1 && node.matches('.turn')) window.__seen.push({
                status: node.dataset.status,
                text: node.querySelector('.answer-text')?.textContent ?? '',
              });
            }
          }).observe(document.querySelector('#messages'), { childList: true });
        }"""
    )
    chat.ask("interviews")
    chat.wait_done(1)
    chat.shot("2-answer")
    [turn] = chat.turns()
    assert turn["q"] == "interviews" and turn["status"] == "done"
    assert turn["citations"] > 0
    assert re.fullmatch(
        r"Searched for interview emails in the last 30 days · \d+ emails? matched", turn["searched"]
    ), turn["searched"]
    assert {"category", "window"} <= set(turn["filters"]), turn["filters"]  # the page shows them
    # It streamed: the answer grew through several partial renders before `done`.
    seen = chat.page.evaluate("window.__seen")
    partial = [s["text"] for s in seen if s["status"] == "streaming" and s["text"]]
    assert len(partial) >= 2, seen
    assert all(len(a) < len(b) for a, b in zip(partial, partial[1:], strict=False))
    assert seen[-1]["status"] == "done"
    assert chat.page.evaluate("window.__es") == {"open": 0, "max": 1, "created": 1}

    # A citation opens the email: subject, sender, date, body text.
    subject = chat.page.text_content(".citation >> nth=0 >> .citation-subject")
    chat.page.click(".citation >> nth=0")
    chat.page.wait_for_selector("#email-dialog[open] .email-body")
    assert chat.page.text_content(".email-subject") == subject
    meta = chat.page.text_content(".email-meta")
    assert "From" in meta and "Date" in meta and "@" in meta
    assert len(chat.page.text_content(".email-body").strip()) > 20
    chat.shot("3-email")
    chat.page.keyboard.press("Escape")
    chat.page.wait_for_selector("#email-dialog:not([open])", state="attached")

    # UX telemetry reached the server: one chat opened, heartbeats while visible.
    assert metric(web.base, "ux_chat_opened_total") >= opened_before + 1
    kind = user_agent_type(chat.page.evaluate("navigator.userAgent"))
    wait_for(
        lambda: metric(web.base, f'ux_heartbeat_total{{user_agent_type="{kind}"}}') >= 1,
        "a heartbeat counted",
    )

    # Teardown (what page unload runs) leaves no timer, stream or socket behind.
    chat.page.evaluate("window.mailchat.teardown()")
    assert chat.debug("activeTimers") == 0
    assert chat.debug("socketState") is None
    assert chat.page.evaluate("window.__es.open") == 0


def test_unload_closes_the_socket_and_the_stream(web, person, open_chat, settings) -> None:
    chat = open_chat(web.base)
    chat.login(person.email)
    # Registered after the page's own pagehide handler, so it sees what teardown left.
    chat.page.evaluate(
        """() => addEventListener('pagehide', () => localStorage.setItem('after-unload',
            JSON.stringify({ streams: window.__es.open, timers: window.mailchat.activeTimers,
                             socket: window.mailchat.socketState })))"""
    )
    closes_before = metric(web.base, 'ws_closes_total{code="1000",reason="client_closed"}')
    with SearchQueuePaused(settings):
        chat.ask("offer")
        chat.page.wait_for_function("() => window.__es.open === 1")
        chat.page.goto(f"{web.base}/healthz")  # same origin: its localStorage is readable
    left = chat.page.evaluate("JSON.parse(localStorage.getItem('after-unload'))")
    assert left == {"streams": 0, "timers": 0, "socket": None}
    wait_for(
        lambda: (
            metric(web.base, 'ws_closes_total{code="1000",reason="client_closed"}')
            >= closes_before + 1
        ),
        "the server saw the page close its socket (1000, not a dropped connection)",
    )


def test_changing_the_window_mid_stream_gives_exactly_one_answer(
    web, person, open_chat, settings
) -> None:
    chat = open_chat(web.base)
    chat.login(person.email)
    with SearchQueuePaused(settings) as paused:
        chat.ask("interviews")
        # The stream is open and the question is in the log; no answer yet.
        chat.page.wait_for_selector(".turn.status-waiting:not([class*='local-'])")
        chat.page.click("label:has(input[name=window][value='90'])")
        chat.page.wait_for_function("() => document.querySelectorAll('.turn').length === 2")
        chat.page.wait_for_selector(".turn >> nth=1 >> .bubble.question")
        chat.shot("1-window-changed")
        paused.resume()
        chat.wait_done(1)
    chat.page.wait_for_selector(".turn[data-status=superseded]")
    chat.shot("2-one-answer")
    first, second = chat.turns()
    assert first["status"] == "superseded" and first["text"] is None
    assert second["status"] == "done" and second["q"] == "interviews"
    assert "in the last 90 days" in second["searched"] and second["citations"] > 0
    assert chat.page.locator(".answer").count() == 1
    assert chat.page.evaluate("window.__es") == {"open": 0, "max": 1, "created": 2}
    assert chat.page.is_checked("input[name=window][value='90']")


def test_web_restart_mid_session_reconnects_and_resumes_without_duplicates(
    session_dir, settings, celery_worker, person, open_chat
) -> None:
    port = free_port()
    instance = start_web(session_dir, FAST_UX, port=port)
    try:
        chat = open_chat(instance.base)
        chat.login(person.email)
        chat.ask("interviews")
        chat.wait_done(1)
        conversation_id = chat.debug("conversationId")

        instance.stop()  # SIGTERM: sockets get advice + 1012
        chat.page.wait_for_selector("#banner:not([hidden])")
        chat.page.wait_for_selector(
            "#status[data-state=reconnecting], #status[data-state=connecting]"
        )
        assert "Connection lost" in chat.page.text_content("#banner")
        chat.shot("1-banner")

        # Meanwhile another device asks in the same conversation (real worker, real log).
        other = "m_" + secrets.token_hex(8)
        started = start_question(
            get_redis(settings),
            settings,
            user_id=person.id,
            question="offer",
            window_days=90,
            conversation_id=conversation_id,
            client_message_id=other,
        )
        create_celery(settings, with_tasks=False).send_task(
            ASSISTANT_ANSWER,
            kwargs={
                "user_id": person.id,
                "conversation_id": conversation_id,
                "client_message_id": other,
                "question": "offer",
                "window_days": 90,
            },
        )
        log = EventLog(get_redis(settings), settings)
        stream = log.conversation_stream(started.conversation_id)

        def other_done() -> dict[str, Any] | None:
            for event in log.read(stream, count=1000).events:
                if event.type == "done" and event.data.get("client_message_id") == other:
                    return event.data
            return None

        wait_for(lambda: other_done() is not None, "the other device's answer in the log")

        instance = start_web(session_dir, FAST_UX, port=port)
        chat.wait_state("open", timeout=RECONNECT_WAIT_MS)
        chat.wait_done(2)
        chat.page.wait_for_selector("#banner", state="hidden")
        chat.shot("2-resumed")
        turns = chat.turns()
        assert [t["q"] for t in turns] == ["interviews", "offer"]
        assert len({t["cmid"] for t in turns}) == 2 and turns[1]["cmid"] == other
        done = other_done()
        assert done is not None and turns[1]["text"] == plain(done["answer"]), "shown once, whole"
        assert chat.page.locator(".answer").count() == 2
        stats = chat.debug("stats")
        assert stats["closeCodes"].get("1012") == 1, stats
        assert stats["reconnectAttempts"] >= 1 and stats["connections"] >= 1

        # And the restarted server answers new questions as before.
        chat.ask("recruiter")
        chat.wait_done(3)
        assert [t["q"] for t in chat.turns()] == ["interviews", "offer", "recruiter"]
        chat.shot("3-after-restart")
    finally:
        instance.stop()


def test_streaming_switched_off_still_answers(
    session_dir, settings, celery_worker, person, open_chat
) -> None:
    instance = start_web(session_dir, {**FAST_UX, "MAILCHAT_CHAT_STREAMING_ENABLED": "false"})
    try:
        chat = open_chat(instance.base)
        chat.login(person.email)
        chat.ask("interviews")
        chat.wait_done(1)
        chat.shot("1-answer")
        [turn] = chat.turns()
        assert turn["citations"] > 0 and "in the last 30 days" in turn["searched"]
        assert turn["text"] and "interview" in turn["text"].lower()
        canary = [
            r
            for r in chat.responses
            if r[1].endswith("/api/chat/stream")
            and r[2] == 503
            and r[3].get("x-chat-streaming-disabled") == "1"
        ]
        assert canary, "the page met the canary's 503"
        posts = [r for r in chat.responses if r[:2] == ("POST", f"{instance.base}/api/chat")]
        assert [r[2] for r in posts] == [200]
        # Known to be off: the next question goes straight to POST /api/chat.
        chat.ask("offer")
        chat.wait_done(2)
        assert chat.page.evaluate("window.__es.created") == 1
        assert chat.page.locator(".answer").count() == 2
    finally:
        instance.stop()


def test_offline_then_online_sends_the_queued_message_once(web, person, open_chat) -> None:
    chat = open_chat(web.base)
    chat.login(person.email)
    chat.context.set_offline(True)
    chat.wait_state("offline")
    assert "offline" in chat.page.text_content("#banner").lower()
    chat.ask("interviews")
    chat.page.wait_for_selector(".turn.local-queued")
    assert chat.debug("outboxSize") == 1
    cmid = chat.turns()[0]["cmid"]
    chat.shot("1-offline")

    chat.context.set_offline(False)
    chat.wait_state("open")
    chat.wait_done(1)
    chat.shot("2-online")
    turns = chat.turns()
    assert len(turns) == 1 and turns[0]["cmid"] == cmid and turns[0]["local"] is None
    assert chat.debug("outboxSize") == 0
    assert chat.page.locator(".answer").count() == 1 and turns[0]["citations"] > 0
    assert chat.debug("stats")["closeCodes"].get("1000") == 1  # our own close on `offline`
    assert chat.page.locator(".toast:has-text('Not connected')").count() == 0


def test_a_message_over_the_limit_is_refused_in_the_page(web, person, open_chat) -> None:
    chat = open_chat(web.base)
    chat.login(person.email)
    asked_before = len([r for r in chat.responses if "/api/chat" in r[1]])
    chat.page.fill("#composer-input", "x" * 2001)
    assert chat.page.text_content("#composer-count") == "2,001 / 2,000"
    chat.page.press("#composer-input", "Enter")
    chat.page.wait_for_selector("#composer-error:not([hidden])")
    assert (
        chat.page.text_content("#composer-error")
        == "Your message is 2,001 characters; the limit is 2,000."
    )
    chat.shot("1-refused")
    assert chat.turns() == []
    assert len([r for r in chat.responses if "/api/chat" in r[1]]) == asked_before
    assert chat.page.input_value("#composer-input") == "x" * 2001, "the text is kept to edit"


def test_a_server_error_is_a_notification_with_retry(
    session_dir, settings, celery_worker, person, open_chat
) -> None:
    instance = start_web(
        session_dir,
        {
            **FAST_UX,
            "MAILCHAT_CHAT_STREAMING_ENABLED": "false",
            "MAILCHAT_CHAT_TIMEOUT_SECONDS": "1",
        },
    )
    try:
        chat = open_chat(instance.base)
        chat.login(person.email)
        with SearchQueuePaused(settings) as paused:
            chat.ask("interviews")  # no worker answers: 503 + Retry-After, retried, 503
            chat.page.wait_for_selector(".toast-error .toast-retry", timeout=60_000)
            message = chat.page.text_content(".toast-error .toast-message")
            assert "No assistant worker answered in time" in message
            assert chat.page.is_visible("#composer"), "the page stays usable"
            chat.shot("1-notification")
            paused.resume()
            chat.page.click(".toast-error .toast-retry")
            chat.wait_done(1)
        chat.shot("2-retried")
        [turn] = chat.turns()
        assert turn["status"] == "done" and turn["citations"] > 0
        errors = chat.debug("errorLog")
        assert any(e["status"] == 503 and e["path"] == "/api/chat" for e in errors), errors
        assert all("ticket" not in (e["path"] or "") for e in errors)
    finally:
        instance.stop()
