"""Issue 11 end to end in Chromium (real gunicorn, worker, Redis, noida-db, Dovecot): sign up,
upload a generated 20,000-message Takeout mbox and watch the bar reach 100 %, ask what only that
mailbox can answer; add an IMAP account through the form (a wrong password first: the reason is
shown), see it sync and answer; remove both and see their mail gone. At 375 px wide."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from datetime import date
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.browser import ARTIFACTS, CHROMIUM, LAUNCH_ARGS, missing_reason

_reason = missing_reason()
if _reason:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402

from devtools.demo_mailbox import write_mbox  # noqa: E402
from shared.core.clients import get_redis  # noqa: E402
from shared.identity.users import find_user  # noqa: E402
from tests.index.test_writer import write_raw_mbox  # noqa: E402
from tests.live import WebInstance, start_web  # noqa: E402
from tests.sync.test_imap import Mailbox  # noqa: E402
from tests.web.api.test_accounts import owner_count, wait_for  # noqa: E402

PHONE = {"width": 375, "height": 812}
BIG_MBOX_MESSAGES = 20_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    playwright = sync_playwright().start()
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
    yield launched
    launched.close()
    playwright.stop()


@pytest.fixture(scope="module")
def web(session_dir, settings, celery_worker) -> Iterator[WebInstance]:  # type: ignore[no-untyped-def]
    instance = start_web(
        session_dir,
        {"MAILCHAT_IMAP_ALLOW_PRIVATE_HOSTS": "true", "MAILCHAT_UPLOAD_CHUNK_MAX_BYTES": "4194304"},
    )
    yield instance
    instance.stop()


def unique_message(owner: str, subject: str, body: str) -> bytes:
    message = EmailMessage()
    message["From"] = "Quartermaster <quartermaster@harbour.example>"
    message["To"] = owner
    message["Subject"] = subject
    message["Date"] = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    message["Message-ID"] = f"<{secrets.token_hex(8)}@harbour.example>"
    message.set_content(body)
    return bytes(message)


@pytest.fixture(scope="module")
def big_mbox(tmp_path_factory) -> tuple[Path, str]:  # type: ignore[no-untyped-def]
    """20,000 generated emails plus one whose word no other mailbox has."""
    folder = Path(tmp_path_factory.mktemp("mailbox-e2e"))
    word = f"zanzibar{secrets.token_hex(3)}"
    bulk = folder / "bulk.mbox"
    write_mbox(
        bulk, owner_address="me@example.com", today=date.today(), count=BIG_MBOX_MESSAGES, days=60
    )
    extra = folder / "extra.mbox"
    write_raw_mbox(
        extra, [unique_message("me@example.com", f"Berth {word} confirmed", f"Your {word} berth.")]
    )
    path = folder / "All mail Including Spam and Trash.mbox"
    with open(path, "wb") as out:
        out.write(bulk.read_bytes())
        out.write(extra.read_bytes())
    return path, word


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"mailbox-{name}.png"), full_page=True)


def sign_up(page: Page, base: str) -> str:
    email = f"me-{secrets.token_hex(4)}@example.com"
    page.goto(f"{base}/")
    page.click("#show-signup")
    page.fill("#signup-email", email)
    page.fill("#signup-password", "short")
    page.click("#signup-submit")
    page.wait_for_selector("#signup-error:not([hidden])")
    assert "8" in page.inner_text("#signup-error"), "the password rules are stated"
    page.fill("#signup-password", "my own mailbox 1")
    page.click("#signup-submit")
    page.wait_for_selector("#mailbox-view:not([hidden])")
    page.wait_for_selector("#status[data-state=open]", timeout=30_000)
    return email


def ask_and_cite(page: Page, question: str, expected: str) -> None:
    if page.is_visible("#mailbox-view"):
        page.click("#close-mailbox")
    page.fill("#composer-input", question)
    page.press("#composer-input", "Enter")
    page.wait_for_function(
        "n => document.querySelectorAll('.turn[data-status=done]').length >= n",
        arg=1,
        timeout=60_000,
    )
    subjects = page.eval_on_selector_all(
        ".turn:last-child .citation-subject", "nodes => nodes.map(n => n.textContent)"
    )
    answer = page.inner_text(".turn:last-child")
    assert any(expected in s for s in subjects), (subjects, answer)


def remove(page: Page, address_part: str) -> None:
    page.once("dialog", lambda dialog: (_check_dialog(dialog.message), dialog.accept()))
    item = page.locator(".account-item", has_text=address_part)
    item.locator("[data-act=remove]").click()
    item.wait_for(state="detached", timeout=30_000)


def _check_dialog(message: str) -> None:
    assert "deletes" in message and "emails" in message, message


@pytest.mark.timeout(180)
def test_sign_up_upload_a_20k_takeout_watch_it_import_and_ask(
    browser, web, settings, big_mbox
) -> None:
    path, word = big_mbox
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        email = sign_up(page, web.base)
        shot(page, "signed-up")
        started = time.monotonic()
        page.set_input_files("#upload-input", str(path))
        page.wait_for_selector("#upload-status:not([hidden])")
        page.wait_for_function(
            "() => document.querySelector('#upload-bar').value >= 100", timeout=60_000
        )
        uploaded = time.monotonic() - started
        page.wait_for_selector(".account-item .sync-progress", timeout=60_000)
        shot(page, "importing")
        page.wait_for_function(
            "() => [...document.querySelectorAll('.account-item progress')].some(p => p.value >= 100)",
            timeout=120_000,
        )
        page.wait_for_selector(".toast:has-text('You can ask about')", timeout=60_000)
        page.wait_for_selector(".account-item[data-state=idle]", timeout=30_000)
        imported = time.monotonic() - started
        text = page.inner_text(".account-item")
        assert re.search(r"20,00\d emails", text), text
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], (
            "nothing wider than the phone"
        )
        shot(page, "imported")
        print(f"upload {uploaded:.1f}s, upload+import {imported:.1f}s")
        ask_and_cite(page, word, word)
        shot(page, "answered")

        page.click("#open-mailbox")
        remove(page, "All mail")
        user = find_user(get_redis(settings), settings, email)
        assert user is not None
        wait_for(lambda: owner_count(settings, user.id) == 0, "its mail gone")  # 20k deletes
        assert not errors, errors
    finally:
        context.close()


@pytest.mark.timeout(120)
def test_imap_through_the_form_wrong_password_first_then_sync_answer_and_remove(
    browser, web, settings, dovecot
) -> None:
    box = Mailbox(dovecot)
    word = f"kestrel{secrets.token_hex(3)}"
    box.append(
        "INBOX", unique_message("me@example.com", f"Pier {word} booked", f"The {word} pier.")
    )
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    try:
        email = sign_up(page, web.base)
        form = "#imap-form"
        page.fill(f"{form} [name=host]", dovecot.host)
        page.fill(f"{form} [name=port]", str(dovecot.port))
        page.select_option(f"{form} [name=tls]", "none")
        page.fill(f"{form} [name=username]", box.username)
        page.fill(f"{form} [name=password]", "wrong-password")
        started = time.monotonic()
        page.click("#imap-test")
        page.wait_for_selector("#imap-result.form-error", timeout=15_000)
        assert time.monotonic() - started < 10
        assert "password" in page.inner_text("#imap-result")
        shot(page, "imap-wrong-password")
        page.fill(f"{form} [name=password]", dovecot.password)
        page.click("#imap-test")
        page.wait_for_selector("#imap-result.form-ok:has-text('Logged in')", timeout=15_000)
        page.click("#imap-add")
        page.wait_for_selector(".account-item[data-state=idle] .account-count", timeout=60_000)
        page.wait_for_function(
            "() => /[1-9][0-9]* emails/.test(document.querySelector('.account-item .account-count').textContent)",
            timeout=60_000,
        )
        shot(page, "imap-synced")
        ask_and_cite(page, word, word)
        page.click("#open-mailbox")
        remove(page, box.username)
        user = find_user(get_redis(settings), settings, email)
        assert user is not None
        wait_for(lambda: owner_count(settings, user.id) == 0, "its mail gone")
        assert page.locator(".account-item").count() == 0
    finally:
        context.close()
        box.close()
