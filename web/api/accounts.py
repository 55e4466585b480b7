"""Mail accounts: list, add (IMAP; Gmail through OAuth), sync now, delete; Gmail push.

Views validate and call ``shared/``; syncs run on workers. Credentials go
into ``shared.sync.accounts`` (encrypted there) and never come back out: every
response is ``Account.public()``. The OAuth callback and the Pub/Sub push
endpoint are public (Google's redirect and Pub/Sub carry no bearer token):
the callback verifies its signed, single-use ``state``, the push endpoint its
``?token=``.

The state alone does not say *whose browser* comes back with it: a consent link
started by one person and approved by another would link the second person's
Gmail into the first one's account. So ``connect`` also sets a random nonce in
an HttpOnly cookie and puts only its hash into the state; the callback refuses
a state whose hash does not match the cookie the browser brings back.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from typing import Any
from urllib.parse import urlencode

import httplib2
from flask import Blueprint, current_app, jsonify, redirect, request, url_for

from shared.sync import accounts
from shared.sync.accounts import NEEDS_REAUTH, AccountError
from shared.sync.documents import remove_account as remove_or_defer
from shared.sync.providers import gmail_api, gmail_state
from shared.sync.providers.gmail_push import PushError, decode_push, handle_push
from shared.sync.providers.imap import TLS_MODES, ImapConfig
from shared.sync.providers.imap_net import HostNotAllowed, normalise_host, resolve_checked
from shared.sync.schedule import request_sync
from web.api.auth import current_user
from web.errors import ApiError, queue_errors
from web.extensions import services
from web.ratelimits import per_user
from web.validation import json_body, required_string

log = logging.getLogger(__name__)

bp = Blueprint("accounts", __name__, url_prefix="/api")

BINDING_COOKIE = "mailchat_gmail_oauth"
BINDING_COOKIE_PATH = "/api/accounts/gmail"  # sent to connect and callback only
MAX_FOLDERS = 100
# Tests hand Google's side in through the library's HttpMockSequence under this key.
GMAIL_HTTP_CONFIG = "MAILCHAT_GMAIL_HTTP"


def _public(account: accounts.Account) -> dict[str, Any]:
    svc = services()
    return account.public(accounts.message_count(svc.redis, svc.settings, account.id))


def _owned(account_id: str) -> accounts.Account:
    svc = services()
    account = accounts.user_account(svc.redis, svc.settings, current_user().id, account_id)
    if account is None:
        raise ApiError(404, "account_not_found", "No such account.")
    return account


def _enqueue(account_id: str, *, announce: bool, force: bool) -> None:
    svc = services()
    with queue_errors():
        request_sync(
            svc.redis,
            svc.settings,
            svc.celery.send_task,
            account_id,
            announce=announce,
            force=force,
        )


@bp.get("/accounts")
def list_accounts() -> Any:
    svc = services()
    found = [_public(a) for a in accounts.list_accounts(svc.redis, svc.settings, current_user().id)]
    total = sum(int(a["message_count"]) for a in found)
    return jsonify(
        {"accounts": found, "total_emails": total, "warning": engine_warning(svc.settings, total)}
    )


def engine_warning(settings: Any, total: int) -> str | None:
    """Say so when a mailbox outgrows the embedded engine (it scans every document per query)."""
    if not settings.embedded_search_engine or total <= settings.embedded_engine_warn_emails:
        return None
    return (
        f"{total:,} emails is more than the built-in search engine handles well "
        f"(over {settings.embedded_engine_warn_emails:,}, answers slow down by seconds): "
        "run Mailchat on Elasticsearch for a mailbox this size (see deploy/ and the README)."
    )


def _imap_config(body: dict[str, Any]) -> ImapConfig:
    settings = services().settings
    host = required_string(body, "host", 253).lower()
    port = body.get("port", 993)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ApiError(400, "invalid_field", "'port' must be 1 to 65535.", field="port")
    username = required_string(body, "username", 320)
    tls = body.get("tls", True)
    tls = {True: "ssl", False: "none"}.get(tls, tls) if isinstance(tls, bool) else tls
    if tls not in TLS_MODES:
        raise ApiError(
            400, "invalid_field", "'tls' must be true, false, 'ssl' or 'starttls'.", field="tls"
        )
    folders = body.get("folders")
    if folders is not None and (
        not isinstance(folders, list)
        or len(folders) > MAX_FOLDERS
        or not all(isinstance(f, str) and 0 < len(f) <= 512 for f in folders)
    ):
        raise ApiError(
            400, "invalid_field", "'folders' must be a list of folder names.", field="folders"
        )
    host = normalise_host(host)
    try:
        # A first look, to answer the person now; the worker checks again when it
        # connects, and connects to the address it checked then.
        resolve_checked(host, port, allow_private=settings.imap_allow_private_hosts)
    except HostNotAllowed as exc:
        raise ApiError(400, "host_not_allowed", str(exc), field="host") from exc
    if tls == "none" and not _loopback(host):
        raise ApiError(
            400,
            "tls_required",
            "Passwords are only sent without TLS to this machine; use tls true or 'starttls'.",
            field="tls",
        )
    return ImapConfig(host, port, username, tls, tuple(folders or ()))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@bp.post("/accounts")
def add_account() -> Any:
    svc = services()
    body = json_body()
    provider = body.get("provider")
    if provider == "gmail":
        raise ApiError(
            400,
            "use_oauth",
            "Gmail accounts are added through GET /api/accounts/gmail/connect.",
            field="provider",
        )
    if provider != "imap":
        raise ApiError(400, "invalid_field", "'provider' must be 'imap'.", field="provider")
    config = _imap_config(body)
    if body.get("oauth2_refresh_token"):  # Gmail's IMAP with XOAUTH2
        secret = {"refresh_token": required_string(body, "oauth2_refresh_token", 2048)}
    else:
        secret = {"password": required_string(body, "password", 1024)}
    user = current_user()
    address = f"{config.username}@{config.host}"
    for existing in accounts.list_accounts(svc.redis, svc.settings, user.id):
        if existing.provider == "imap" and existing.address == address:
            raise ApiError(
                409, "account_exists", f"{address} is already connected.", field="username"
            )
    try:
        account = accounts.create_account(
            svc.redis, svc.settings, user.id, "imap", address, config.as_dict(), secret
        )
    except AccountError as exc:
        raise ApiError(409, "account_limit", str(exc)) from exc
    _enqueue(account.id, announce=True, force=True)
    return jsonify({"account": _public(account)}), 201


@bp.patch("/accounts/<account_id>")
def update_credentials(account_id: str) -> Any:
    """A new password for an IMAP account (e.g. after needs_reauth); syncs again."""
    svc = services()
    account = _owned(account_id)
    if account.provider != "imap":
        raise ApiError(400, "use_oauth", "Reconnect Gmail through GET /api/accounts/gmail/connect.")
    password = required_string(json_body(), "password", 1024)
    accounts.set_secret(svc.redis, svc.settings, account.id, {"password": password})
    _enqueue(account.id, announce=True, force=True)
    return jsonify({"account": _public(_owned(account_id))})


@bp.post("/accounts/<account_id>/sync")
@per_user("sync", "sync_rate_limit")
def sync_now(account_id: str) -> Any:
    account = _owned(account_id)
    if account.state == NEEDS_REAUTH:
        raise ApiError(409, "needs_reauth", account.last_error or "Reconnect this account first.")
    if account.provider == "mbox":
        raise ApiError(409, "not_syncable", "An uploaded mbox has nothing new to sync.")
    if account.paused:
        raise ApiError(409, "paused", "This account is paused; resume it to sync.")
    _enqueue(account.id, announce=True, force=True)
    return jsonify({"queued": True, "account": _public(account)}), 202


@bp.post("/accounts/<account_id>/pause")
def pause_account(account_id: str) -> Any:
    """Stop syncing the account (a running sync stops after its batch) until resumed."""
    svc = services()
    account = _owned(account_id)
    accounts.set_paused(svc.redis, svc.settings, account.id, True)
    return jsonify({"account": _public(_owned(account_id))})


@bp.post("/accounts/<account_id>/resume")
@per_user("sync", "sync_rate_limit")
def resume_account(account_id: str) -> Any:
    """Sync the account again, from where it stopped."""
    svc = services()
    account = _owned(account_id)
    accounts.set_paused(svc.redis, svc.settings, account.id, False)
    if account.state != NEEDS_REAUTH:
        _enqueue(account.id, announce=True, force=True)
    return jsonify({"account": _public(_owned(account_id))}), 202


@bp.delete("/accounts/<account_id>")
def remove_account(account_id: str) -> Any:
    """Delete the account and its mail now; if a sync holds the account, it does it."""
    svc = services()
    account = _owned(account_id)
    removed = remove_or_defer(svc.redis, svc.elasticsearch, svc.settings, account.id)
    if removed is None:
        return jsonify({"deleted": False, "deleting": True}), 202
    return jsonify({"deleted": True, "documents_deleted": removed})


# -- Gmail OAuth ---------------------------------------------------------------------------


def _redirect_uri() -> str:
    settings = services().settings
    return settings.gmail_redirect_uri or url_for("accounts.gmail_callback", _external=True)


def _gmail_configured() -> None:
    settings = services().settings
    if not (settings.gmail_client_id and settings.gmail_client_secret):
        raise ApiError(
            503,
            "gmail_not_configured",
            "Gmail is not configured: set MAILCHAT_GMAIL_CLIENT_ID and MAILCHAT_GMAIL_CLIENT_SECRET.",
        )


@bp.get("/accounts/gmail/connect")
def gmail_connect() -> Any:
    _gmail_configured()
    settings = services().settings
    state, binding = gmail_state.new_state(settings, current_user().id)
    response = jsonify({"url": gmail_api.consent_url(settings, _redirect_uri(), state)})
    # Lax: Google's redirect back is a top-level GET, which carries a Lax cookie.
    response.set_cookie(
        BINDING_COOKIE,
        binding,
        max_age=gmail_state.STATE_TTL_SECONDS,
        path=BINDING_COOKIE_PATH,
        httponly=True,
        secure=request.is_secure,
        samesite="Lax",
    )
    return response


def _state_user(state: str) -> str:
    svc = services()
    binding = request.cookies.get(BINDING_COOKIE, "")
    try:
        return gmail_state.spend_state(svc.redis, svc.settings, state, binding)
    except gmail_state.StateError as exc:
        raise ApiError(400, exc.code, str(exc)) from exc


def _browser_navigation() -> bool:
    """Google redirects the person's browser here: send it back to the page, not JSON."""
    return "text/html" in request.headers.get("Accept", "")


@bp.get("/accounts/gmail/callback")
def gmail_callback() -> Any:
    """Finish the connect; a browser is sent back to the page with the outcome in the URL."""
    try:
        body, status = _finish_gmail_connect()
    except ApiError as exc:
        if not _browser_navigation():
            raise
        return redirect("/?" + urlencode({"gmail": "error", "reason": str(exc)}), code=303)
    if _browser_navigation():
        return redirect("/?gmail=connected", code=303)
    return jsonify(body), status


def _finish_gmail_connect() -> tuple[dict[str, Any], int]:
    _gmail_configured()
    svc = services()
    if request.args.get("error"):
        raise ApiError(
            400, "access_denied", f"Google did not grant access ({request.args['error'][:100]})."
        )
    code, state = request.args.get("code"), request.args.get("state")
    if not code or not state:
        raise ApiError(400, "invalid_request", "The callback needs 'code' and 'state'.")
    user_id = _state_user(state)
    transport = current_app.config.get(GMAIL_HTTP_CONFIG) or httplib2.Http(timeout=30)
    try:
        creds = gmail_api.exchange_code(svc.settings, code, _redirect_uri(), transport)
        profile = gmail_api.profile(creds, transport)
    except gmail_api.OAuthError as exc:
        raise ApiError(400, "oauth_failed", str(exc)) from exc
    address = str(profile["emailAddress"]).lower()
    secret = {"refresh_token": str(creds.refresh_token)}
    existing = accounts.find_gmail_account(svc.redis, svc.settings, user_id, address)
    if existing is not None:  # reconnecting (e.g. after needs_reauth): new token, same cursor
        accounts.set_secret(svc.redis, svc.settings, existing.id, secret)
        account_id, status = existing.id, 200
    else:
        try:
            account_id = accounts.create_account(
                svc.redis, svc.settings, user_id, "gmail", address, {}, secret
            ).id
        except AccountError as exc:
            raise ApiError(409, "account_limit", str(exc)) from exc
        status = 201
    _enqueue(account_id, announce=True, force=True)
    account = accounts.get_account(svc.redis, svc.settings, account_id)
    assert account is not None
    # The cookie stays until it expires with the state: a replayed link then hears
    # "already used", and the next connect replaces it.
    return {"account": _public(account)}, status


# -- Gmail push ----------------------------------------------------------------------------


@bp.post("/gmail/push")
def gmail_push() -> Any:
    """Pub/Sub push: verify the shared token, then queue syncs (duplicates are no-ops)."""
    svc = services()
    expected = svc.settings.gmail_push_token
    given = request.args.get("token", "")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(403, "invalid_push_token", "Unknown push token.")
    try:
        notice = decode_push(request.get_json(silent=True))
    except PushError as exc:
        raise ApiError(400, "invalid_push", str(exc)) from exc
    with queue_errors():
        queued = handle_push(svc.redis, svc.settings, notice, svc.celery.send_task)
    log.info("gmail push for history %s queued %d syncs", notice.history_id, len(queued))
    return "", 204


# -- the IMAP form's "Test connection" ---------------------------------------------------


@bp.post("/accounts/imap/test")
def test_imap() -> Any:
    """Log in once with the form's values; 200 with ``ok`` and a reason either way.

    A failed login is an answer, not an error of this request (the form shows
    the reason beside the field to fix); invalid form values are still a 400.
    """
    from shared.sync.providers.imap_check import check_connection

    body = json_body()
    secret = {"password": required_string(body, "password", 1024)}  # bad input first: a 400
    try:
        config = _imap_config(body)
    except ApiError as exc:
        if exc.code != "host_not_allowed":  # a malformed form stays a 400
            raise
        # No such host, or a blocked address: the same kind of answer as a refused login.
        code = "no_such_host" if "does not resolve" in exc.message else exc.code
        return jsonify(
            {"ok": False, "code": code, "message": exc.message, "field": "host", "folders": []}
        )
    check = check_connection(services().settings, config, secret)
    log.info("IMAP test connection: %s", check.code)
    return jsonify(check.as_dict())
