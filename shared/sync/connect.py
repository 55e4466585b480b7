"""Building an account's provider: credentials decrypted, Gmail clients, XOAUTH2 tokens.

Apart from the engine so the run loop stays readable; ``shared.sync.engine``
re-exports these names for its callers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from shared.core.settings import Settings
from shared.sync import accounts
from shared.sync.accounts import Account
from shared.sync.gmail_quota import QuotaBudget
from shared.sync.providers.base import NeedsReauth, Provider, ProviderError


@dataclass
class SyncOptions:
    """How to reach providers; tests hand in the Gmail transport and a clock-free sleep."""

    gmail_http_factory: Callable[[Any], Any] | None = None
    sleep: Callable[[float], None] = time.sleep
    announce: bool = False  # send sync.done even when nothing changed (a sync someone asked for)
    # Asked after each batch lands: true when the worker is shutting down, so the run stops
    # there (its cursor saved) and the task is sent again to go on from that cursor.
    should_stop: Callable[[], bool] | None = None


def build_provider(
    r: redis.Redis, settings: Settings, account: Account, options: SyncOptions
) -> Provider:
    stored = accounts.cursor(r, settings, account.id)
    if account.provider == "gmail":
        from shared.sync.providers.gmail import GmailProvider

        api = gmail_client(r, settings, account, options)
        return GmailProvider(api, r, settings, account.id, stored)
    if account.provider == "imap":
        from shared.sync.providers.imap import ImapConfig, ImapProvider

        secret = accounts.secret(r, settings, account.id)
        if secret.get("refresh_token"):  # Gmail's IMAP with XOAUTH2
            secret = {"access_token": _access_token(settings, secret, options)}
        return ImapProvider(
            r, settings, account.id, ImapConfig.from_dict(account.config), secret, stored
        )
    if account.provider == "mbox":
        from shared.sync.providers.mbox import MboxProvider

        return MboxProvider(settings, account.config["path"], stored)
    raise ProviderError(f"unknown provider {account.provider}")


def gmail_client(r: redis.Redis, settings: Settings, account: Account, options: SyncOptions) -> Any:
    from shared.sync.providers import gmail_api

    secret = accounts.secret(r, settings, account.id)
    if not secret.get("refresh_token"):
        raise NeedsReauth("no Gmail refresh token stored; connect Gmail again")
    creds = gmail_api.credentials(settings, secret["refresh_token"])
    factory = options.gmail_http_factory or gmail_api.default_http_factory
    budget = QuotaBudget(r, settings, account.id, sleep=options.sleep)
    return gmail_api.GmailApi(
        factory(creds), budget, max_retries=settings.gmail_max_retries, sleep=options.sleep
    )


def _access_token(settings: Settings, secret: dict[str, str], options: SyncOptions) -> str:
    """A fresh XOAUTH2 access token for Gmail's IMAP from the stored refresh token."""
    import httplib2
    from google.auth.exceptions import RefreshError
    from google_auth_httplib2 import Request

    from shared.sync.providers import gmail_api

    creds = gmail_api.credentials(settings, secret["refresh_token"], scopes=[gmail_api.IMAP_SCOPE])
    wrapped = options.gmail_http_factory(creds) if options.gmail_http_factory else None
    transport = getattr(wrapped, "http", None) or httplib2.Http(timeout=30)
    try:
        creds.refresh(Request(transport))  # type: ignore[no-untyped-call]  # google-auth: untyped
    except RefreshError as exc:
        raise NeedsReauth("Google refused the stored refresh token; reconnect") from exc
    return str(creds.token)
