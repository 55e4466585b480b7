"""Talking to the Gmail API: OAuth, the client, retries with backoff, batched gets.

google-api-python-client builds the client from its bundled discovery
document (``static_discovery=True``): no discovery fetch at run time, and the
same code runs in tests over the library's own ``HttpMockSequence``. The
library's built-in retries are not used (``num_retries=0``): they neither
honour ``Retry-After`` nor count anything. Here every call spends the
account's quota budget first, is retried on 429, 403 rate-limit reasons, 5xx
and network errors with exponential backoff and full jitter (never sooner
than ``Retry-After``), and is counted in ``gmail_api_requests_total``.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import socket
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httplib2
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2.credentials import Credentials
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from shared.core import metrics
from shared.core.settings import Settings
from shared.sync.gmail_quota import QuotaBudget
from shared.sync.providers.base import NeedsReauth, ProviderError

log = logging.getLogger(__name__)

SCOPE = "https://www.googleapis.com/auth/gmail.readonly"
IMAP_SCOPE = "https://mail.google.com/"  # what Gmail's IMAP accepts for XOAUTH2
AUTH_URI = "https://accounts.google.com/o/oauth2/v2/auth"
TOKEN_URI = "https://oauth2.googleapis.com/token"
MAX_BATCH = 50  # Google advises at most 50 calls per Gmail batch request
HTTP_TIMEOUT_SECONDS = 60
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 64.0
RATE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}


class OAuthError(Exception):
    """Google refused an authorization code (expired, reused, wrong redirect URI)."""


def consent_url(settings: Settings, redirect_uri: str, state: str) -> str:
    """Google's consent page for read-only Gmail access, asking for a refresh token."""
    query = {
        "client_id": settings.gmail_client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": SCOPE,
        "access_type": "offline",  # a refresh token, so sync runs without the person
        "prompt": "consent",  # ... even when they connected before
        "include_granted_scopes": "true",
        "state": state,
    }
    return f"{AUTH_URI}?{urllib.parse.urlencode(query)}"


def exchange_code(settings: Settings, code: str, redirect_uri: str, http: Any) -> Credentials:
    """Trade the callback's code for tokens (RFC 6749 4.1.3) over ``http``."""
    body = urllib.parse.urlencode(
        {
            "code": code,
            "client_id": settings.gmail_client_id,
            "client_secret": settings.gmail_client_secret,
            "redirect_uri": redirect_uri,
            "grant_type": "authorization_code",
        }
    )
    resp, content = http.request(
        TOKEN_URI,
        method="POST",
        body=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    try:
        payload = json.loads(content or b"{}")
    except ValueError:
        payload = {}
    if int(resp.status) != 200:
        reason = payload.get("error_description") or payload.get("error") or f"HTTP {resp.status}"
        raise OAuthError(f"Google refused the authorization code: {reason}")
    if SCOPE not in str(payload.get("scope", SCOPE)).split():
        raise OAuthError("Gmail read access was not granted; tick the Gmail box on Google's page")
    if not payload.get("refresh_token"):
        raise OAuthError(
            "Google sent no refresh token; remove Mailchat under Google Account > Security > "
            "Third-party access, then connect again"
        )
    expiry = datetime.now(UTC).replace(tzinfo=None) + timedelta(
        seconds=int(payload.get("expires_in", 3600))
    )
    return credentials(settings, payload["refresh_token"], payload.get("access_token"), expiry)


def credentials(
    settings: Settings,
    refresh_token: str,
    token: str | None = None,
    expiry: datetime | None = None,
    scopes: list[str] | None = None,
) -> Credentials:
    """OAuth credentials that refresh themselves from the stored refresh token."""
    # google-auth ships no annotations for Credentials.__init__.
    return Credentials(  # type: ignore[no-untyped-call]
        token=token,
        refresh_token=refresh_token,
        token_uri=TOKEN_URI,
        client_id=settings.gmail_client_id,
        client_secret=settings.gmail_client_secret,
        scopes=scopes or [SCOPE],
        expiry=expiry,
    )


def default_http_factory(creds: Credentials) -> Any:
    return AuthorizedHttp(creds, http=httplib2.Http(timeout=HTTP_TIMEOUT_SECONDS))


def _retry_after(resp: Any) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), if any."""
    value = resp.get("retry-after") if resp is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _reason(exc: HttpError) -> str:
    try:
        error = json.loads(exc.content or b"{}").get("error", {})
    except (ValueError, AttributeError):
        return ""
    if not isinstance(error, dict):
        return str(error)
    errors = error.get("errors") or [{}]
    return str(errors[0].get("reason") or error.get("status") or "")


def classify(exc: BaseException) -> tuple[str | None, float | None]:
    """(backoff reason, Retry-After) for a retryable error; (None, None) if not retryable.

    Raises ``NeedsReauth`` for errors that only the person can fix.
    """
    if isinstance(exc, RefreshError):
        raise NeedsReauth(
            "Google refused the stored refresh token (revoked or expired); reconnect Gmail"
        ) from exc
    if isinstance(exc, HttpError):
        status = int(exc.resp.status)
        reason = _reason(exc)
        if status == 429 or (status == 403 and reason in RATE_LIMIT_REASONS):
            return "rate_limit", _retry_after(exc.resp)
        if status >= 500:
            return "server_error", _retry_after(exc.resp)
        if status == 401 or (status == 403 and reason == "insufficientPermissions"):
            raise NeedsReauth(
                f"Google refused Mailchat's access to this mailbox ({status} {reason}); "
                "reconnect Gmail"
            ) from exc
        return None, None
    if isinstance(exc, (TransportError, httplib2.HttpLib2Error, socket.timeout, OSError)):
        return "network", None
    return None, None


class GmailApi:
    """One account's Gmail client: quota-budgeted, retried, counted."""

    def __init__(
        self,
        http: Any,
        budget: QuotaBudget,
        *,
        max_retries: int = 6,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.service = build("gmail", "v1", http=http, static_discovery=True, cache_discovery=False)
        self.users = self.service.users()
        self.budget = budget
        self.max_retries = max_retries
        self.sleep = sleep
        self.http_requests = 0  # round trips, for the bench

    def _backoff(self, attempt: int, reason: str, retry_after: float | None) -> None:
        delay = random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))
        if retry_after is not None:
            delay = max(delay, retry_after)
        metrics.MAIL_SYNC_BACKOFFS.labels(provider="gmail", reason=reason).inc()
        log.info("Gmail API %s: retrying in %.1fs (attempt %d)", reason, delay, attempt + 1)
        self.sleep(delay)

    def call(self, method: str, request: Any) -> dict[str, Any]:
        """Execute one request (``method`` is its quota-table name, e.g. users.history.list)."""
        label = method.removeprefix("users.")
        for attempt in range(self.max_retries + 1):
            self.budget.spend(method)
            self.http_requests += 1
            try:
                result: dict[str, Any] = request.execute(num_retries=0)
            except Exception as exc:
                status = str(exc.resp.status) if isinstance(exc, HttpError) else "error"
                metrics.GMAIL_API_REQUESTS.labels(method=label, status=status).inc()
                reason, retry_after = classify(exc)
                if reason is None or attempt == self.max_retries:
                    raise
                self._backoff(attempt, reason, retry_after)
                continue
            metrics.GMAIL_API_REQUESTS.labels(method=label, status="200").inc()
            return result
        raise AssertionError("unreachable")

    def get_many(self, ids: list[str], fmt: str = "raw") -> dict[str, dict[str, Any] | None]:
        """``messages.get`` for up to 50 ids in one batch request; None for a vanished message.

        Parts that were rate limited or failed on Google's side are retried in
        a smaller batch after a backoff; a message deleted since it was listed
        (404) is simply gone.
        """
        if len(ids) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} messages per batch")
        results: dict[str, dict[str, Any] | None] = {}
        pending = list(ids)
        failures: dict[str, BaseException] = {}
        for attempt in range(self.max_retries + 1):
            failures.clear()

            def collect(request_id: str, response: Any, exception: BaseException | None) -> None:
                if exception is None:
                    results[request_id] = response
                    metrics.GMAIL_API_REQUESTS.labels(method="messages.get", status="200").inc()
                    return
                status = str(exception.resp.status) if isinstance(exception, HttpError) else "error"
                metrics.GMAIL_API_REQUESTS.labels(method="messages.get", status=status).inc()
                if isinstance(exception, HttpError) and int(exception.resp.status) == 404:
                    results[request_id] = None
                else:
                    failures[request_id] = exception

            batch = self.service.new_batch_http_request(callback=collect)
            for message_id in pending:
                batch.add(
                    self.users.messages().get(userId="me", id=message_id, format=fmt),
                    request_id=message_id,
                )
            self.budget.spend("users.messages.get", len(pending))
            self.http_requests += 1
            try:
                batch.execute()
            except Exception as exc:
                metrics.GMAIL_API_REQUESTS.labels(
                    method="batch",
                    status=str(exc.resp.status) if isinstance(exc, HttpError) else "error",
                ).inc()
                reason, retry_after = classify(exc)
                if reason is None or attempt == self.max_retries:
                    raise
                self._backoff(attempt, reason, retry_after)
                continue
            if not failures:
                return results
            worst: tuple[str, float | None] | None = None
            for exception in failures.values():
                reason, retry_after = classify(exception)
                if reason is None or attempt == self.max_retries:
                    raise ProviderError(f"messages.get failed: {exception}") from exception
                if worst is None or (retry_after or 0) > (worst[1] or 0):
                    worst = (reason, retry_after)
            assert worst is not None
            self._backoff(attempt, *worst)
            pending = list(failures)
        raise AssertionError("unreachable")


def profile(creds: Credentials, transport: Any) -> dict[str, Any]:
    """``users.getProfile`` right after connecting (1 unit; no account, so no budget yet)."""
    service = build(
        "gmail",
        "v1",
        http=AuthorizedHttp(creds, http=transport),
        static_discovery=True,
        cache_discovery=False,
    )
    try:
        result: dict[str, Any] = service.users().getProfile(userId="me").execute(num_retries=2)
    except (HttpError, RefreshError) as exc:
        metrics.GMAIL_API_REQUESTS.labels(
            method="getProfile", status=str(getattr(getattr(exc, "resp", None), "status", "error"))
        ).inc()
        raise OAuthError(f"Gmail did not answer for the new account: {exc}") from exc
    metrics.GMAIL_API_REQUESTS.labels(method="getProfile", status="200").inc()
    return result
