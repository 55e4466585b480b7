"""Mail accounts: who syncs what, in what state, with which (encrypted) credentials.

An account is a Redis hash ``account:<id>`` listed in ``user-accounts:<user
id>``; every other key of the account starts with ``account:<id>:``, so
deleting a person's data finds everything. Credentials (a Gmail refresh
token, an IMAP password) are encrypted with Fernet under
``MAILCHAT_CREDENTIALS_KEY`` (several comma-separated keys allow rotation:
the first encrypts, all decrypt) and no function here returns them to a
caller that builds an API response: ``Account.public()`` has no secret in it.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import redis
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from shared.core.keyfiles import read_or_create
from shared.core.keys import RedisKeys
from shared.core.logs import user_hash
from shared.core.settings import Settings

log = logging.getLogger(__name__)

PROVIDERS = ("gmail", "imap", "mbox")
IDLE, SYNCING, NEEDS_REAUTH, ERROR = "idle", "syncing", "needs_reauth", "error"
MAX_ACCOUNTS_PER_USER = 20


class AccountError(ValueError):
    """An account cannot be created as asked."""


@dataclass
class Account:
    id: str
    user_id: str
    provider: str
    address: str
    state: str
    created_at: float
    config: dict[str, Any] = field(default_factory=dict)
    last_started_at: float | None = None
    last_success_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    last_run: dict[str, Any] = field(default_factory=dict)
    watch_expires_at: float | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    paused: bool = False  # the person paused it: no scheduled or asked-for sync runs

    def public(self, message_count: int, now: float | None = None) -> dict[str, Any]:
        """What the API shows: state and counters, never a credential."""
        now = time.time() if now is None else now
        since = self.last_success_at or self.created_at
        shown_config = {k: v for k, v in self.config.items() if k != "path"}
        return {
            "id": self.id,
            "provider": self.provider,
            "address": self.address,
            "state": self.state,
            "paused": self.paused,
            "created_at": _iso(self.created_at),
            "last_success_at": _iso(self.last_success_at),
            "last_error": self.last_error,
            "last_error_at": _iso(self.last_error_at),
            "message_count": message_count,
            "lag_seconds": max(0, round(now - since)),
            "last_run": self.last_run,
            "progress": self.progress or None,
            "watch_expires_at": _iso(self.watch_expires_at),
            "settings": shown_config,
        }


def _iso(value: float | None) -> str | None:
    if value is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(value))


def _float(value: Any) -> float | None:
    return float(value) if value not in (None, "") else None


# -- credentials ---------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _fernet(keys: str) -> MultiFernet:
    return MultiFernet([Fernet(k.strip().encode()) for k in keys.split(",") if k.strip()])


def credentials_keys(settings: Settings) -> str:
    """The configured key(s), or one generated once into DATA_DIR/credentials_key (0600)."""
    if settings.credentials_key:
        return settings.credentials_key
    return read_or_create(
        settings.data_path / "credentials_key", lambda: Fernet.generate_key().decode()
    )


def encrypt_secret(settings: Settings, secret: dict[str, str]) -> str:
    return _fernet(credentials_keys(settings)).encrypt(json.dumps(secret).encode()).decode()


def decrypt_secret(settings: Settings, token: str) -> dict[str, str]:
    try:
        data: dict[str, str] = json.loads(
            _fernet(credentials_keys(settings)).decrypt(token.encode())
        )
    except InvalidToken as exc:
        raise AccountError(
            "stored credentials cannot be decrypted with the configured key"
        ) from exc
    return data


# -- records ---------------------------------------------------------------------------------


def _from_hash(account_id: str, data: dict[Any, Any]) -> Account:
    return Account(
        id=account_id,
        user_id=data["user_id"],
        provider=data["provider"],
        address=data.get("address", ""),
        state=data.get("state", IDLE),
        created_at=float(data.get("created_at", 0)),
        config=json.loads(data.get("config") or "{}"),
        last_started_at=_float(data.get("last_started_at")),
        last_success_at=_float(data.get("last_success_at")),
        last_error=data.get("last_error") or None,
        last_error_at=_float(data.get("last_error_at")),
        last_run=json.loads(data.get("last_run") or "{}"),
        watch_expires_at=_float(data.get("watch_expires_at")),
        progress=json.loads(data.get("progress") or "{}"),
        paused=data.get("paused") == "1",
    )


def create_account(
    r: redis.Redis,
    settings: Settings,
    user_id: str,
    provider: str,
    address: str,
    config: dict[str, Any],
    secret: dict[str, str] | None,
) -> Account:
    """Store a new account (credentials encrypted) and list it for its user."""
    if provider not in PROVIDERS:
        raise AccountError(f"unknown provider {provider!r}")
    keys = RedisKeys(settings.key_prefix)
    if r.scard(keys.user_accounts(user_id)) >= MAX_ACCOUNTS_PER_USER:
        raise AccountError(f"at most {MAX_ACCOUNTS_PER_USER} accounts per user")
    account_id = "a_" + secrets.token_hex(8)
    now = time.time()
    mapping: dict[Any, Any] = {
        "user_id": user_id,
        "provider": provider,
        "address": address,
        "state": IDLE,
        "created_at": repr(now),
        "config": json.dumps(config),
    }
    if secret is not None:
        mapping["credentials"] = encrypt_secret(settings, secret)
    pipe = r.pipeline(transaction=True)
    pipe.hset(keys.account(account_id), mapping=mapping)
    pipe.sadd(keys.user_accounts(user_id), account_id)
    pipe.sadd(keys.all_accounts(), account_id)
    if provider == "gmail":
        pipe.sadd(keys.gmail_address_accounts(address), account_id)
    pipe.execute()
    log.info("account %s (%s) created for %s", account_id, provider, user_hash(user_id))
    return Account(account_id, user_id, provider, address, IDLE, now, config)


def get_account(r: redis.Redis, settings: Settings, account_id: str) -> Account | None:
    data = r.hgetall(RedisKeys(settings.key_prefix).account(account_id))
    return _from_hash(account_id, data) if data else None


def user_account(
    r: redis.Redis, settings: Settings, user_id: str, account_id: str
) -> Account | None:
    """The account if it exists and belongs to ``user_id`` (else None: never reveal others')."""
    account = get_account(r, settings, account_id)
    return account if account is not None and account.user_id == user_id else None


def list_accounts(r: redis.Redis, settings: Settings, user_id: str) -> list[Account]:
    keys = RedisKeys(settings.key_prefix)
    ids = sorted(str(a) for a in r.smembers(keys.user_accounts(user_id)))
    found = [get_account(r, settings, a) for a in ids]
    return sorted((a for a in found if a is not None), key=lambda a: a.created_at)


def all_account_ids(r: redis.Redis, settings: Settings) -> list[str]:
    return sorted(str(a) for a in r.smembers(RedisKeys(settings.key_prefix).all_accounts()))


def find_gmail_account(
    r: redis.Redis, settings: Settings, user_id: str, address: str
) -> Account | None:
    """The user's existing account for a Gmail address (reconnecting updates it)."""
    for account in list_accounts(r, settings, user_id):
        if account.provider == "gmail" and account.address.lower() == address.lower():
            return account
    return None


def gmail_accounts_for_address(r: redis.Redis, settings: Settings, address: str) -> list[str]:
    members = r.smembers(RedisKeys(settings.key_prefix).gmail_address_accounts(address))
    return sorted(str(a) for a in members)


def secret(r: redis.Redis, settings: Settings, account_id: str) -> dict[str, str]:
    token = r.hget(RedisKeys(settings.key_prefix).account(account_id), "credentials")
    return decrypt_secret(settings, str(token)) if token else {}


def set_secret(r: redis.Redis, settings: Settings, account_id: str, value: dict[str, str]) -> None:
    """Replace the credentials (a reconnect) and clear needs_reauth."""
    r.hset(
        RedisKeys(settings.key_prefix).account(account_id),
        mapping={"credentials": encrypt_secret(settings, value), "state": IDLE, "last_error": ""},
    )


def message_count(r: redis.Redis, settings: Settings, account_id: str) -> int:
    return int(r.hlen(RedisKeys(settings.key_prefix).account_messages(account_id)))


def cursor(r: redis.Redis, settings: Settings, account_id: str) -> dict[str, str]:
    stored = r.hgetall(RedisKeys(settings.key_prefix).account_cursor(account_id))
    return {str(k): str(v) for k, v in stored.items()}


def request_deletion(r: redis.Redis, settings: Settings, account_id: str) -> None:
    """Ask the running sync to stop and delete the account (it holds the lock)."""
    update(r, settings, account_id, deleting=1)


def removal_state(r: redis.Redis, settings: Settings, account_id: str) -> str | None:
    """ "gone" (deleted under a running sync), "deleting" (asked to), or None."""
    flag = r.hget(RedisKeys(settings.key_prefix).account(account_id), "deleting")
    if flag is None and not r.exists(RedisKeys(settings.key_prefix).account(account_id)):
        return "gone"
    return "deleting" if flag else None


def set_paused(r: redis.Redis, settings: Settings, account_id: str, paused: bool) -> None:
    """Pause or resume an account's syncing; a running sync stops after its batch."""
    update(r, settings, account_id, paused="1" if paused else "0")


def is_paused(r: redis.Redis, settings: Settings, account_id: str) -> bool:
    return r.hget(RedisKeys(settings.key_prefix).account(account_id), "paused") == "1"


def update(r: redis.Redis, settings: Settings, account_id: str, **values: Any) -> None:
    """Set record fields (None clears one); only for an account that still exists."""
    key = RedisKeys(settings.key_prefix).account(account_id)
    if not r.exists(key):
        return
    mapping: dict[Any, Any] = {
        name: ""
        if value is None
        else (json.dumps(value) if isinstance(value, dict) else str(value))
        for name, value in values.items()
    }
    r.hset(key, mapping=mapping)


def owner_addresses(r: redis.Redis, settings: Settings, user_id: str) -> list[str]:
    """The user's own addresses (sign-in email and every account's address), lowercased:
    mail from one of them is ``from_me``."""
    keys = RedisKeys(settings.key_prefix)
    email = r.hget(keys.user(user_id), "email")
    found = {str(email).strip().lower()} if email else set()
    for account in list_accounts(r, settings, user_id):
        if "@" in account.address:
            found.add(account.address.strip().lower())
    return sorted(found)
