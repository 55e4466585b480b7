"""The IMAP form's "Test connection": log in once and say plainly what went wrong.

It connects through ``imap.connect``, the same function a sync uses (so the
host checks and the address pinned by them apply to the test exactly as to
the account later), within ``MAILCHAT_IMAP_TEST_TIMEOUT_SECONDS``. The
answer is a reason a person can act on (wrong password, no such host, TLS
failure, a blocked private address, no answer), never the server's own text
and never the password.
"""

from __future__ import annotations

import dataclasses
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from imapclient.exceptions import IMAPClientError

from shared.core.settings import Settings
from shared.sync.providers import imap
from shared.sync.providers.base import NeedsReauth, ProviderError
from shared.sync.providers.imap_net import HostNotAllowed

MAX_FOLDERS_SHOWN = 200


@dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    code: str
    message: str
    field: str | None = None
    folders: list[str] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "code": self.code,
            "message": self.message,
            "field": self.field,
            "folders": self.folders,
        }


def _causes(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(found) < 10:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def classify(exc: BaseException, config: imap.ImapConfig) -> ConnectionCheck:
    """A failed connection as a reason and the form field to fix."""
    where = f"{config.host}:{config.port}"
    if isinstance(exc, NeedsReauth):
        return ConnectionCheck(
            False,
            "wrong_password",
            f"{config.host} refused the login for {config.username}: wrong user name or password.",
            "password",
        )
    chain = _causes(exc)
    if isinstance(exc, HostNotAllowed):
        return ConnectionCheck(False, "host_not_allowed", str(exc), "host")
    if any(isinstance(e, socket.gaierror) for e in chain):
        return ConnectionCheck(
            False, "no_such_host", f"There is no host called {config.host}.", "host"
        )
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain):
        return ConnectionCheck(
            False,
            "tls_failed",
            f"{config.host}'s TLS certificate is not valid for that name.",
            "tls",
        )
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return ConnectionCheck(
            False,
            "tls_failed",
            f"The TLS handshake with {where} failed: is it the right port for this TLS setting?",
            "tls",
        )
    if any(isinstance(e, (TimeoutError, socket.timeout)) for e in chain):
        return ConnectionCheck(False, "timeout", f"{where} did not answer in time.", "host")
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return ConnectionCheck(
            False, "connection_refused", f"{where} refused the connection: check the port.", "port"
        )
    if any(isinstance(e, IMAPClientError) for e in chain):
        return ConnectionCheck(
            False,
            "imap_error",
            f"{where} answered, but not as an IMAP server would (check TLS and port).",
            "tls",
        )
    return ConnectionCheck(False, "unreachable", f"Cannot reach {where}.", "host")


def check_connection(
    settings: Settings, config: imap.ImapConfig, secret: dict[str, str]
) -> ConnectionCheck:
    """Log in, list the folders, log out; every failure becomes a ``ConnectionCheck``."""
    try:
        client = imap.connect(
            config,
            secret,
            settings.imap_test_timeout_seconds,
            allow_private=settings.imap_allow_private_hosts,
        )
    except (ProviderError, OSError, IMAPClientError) as exc:
        return classify(exc, config)
    try:
        names = [str(name) for _flags, _sep, name in client.list_folders()]
    except (OSError, IMAPClientError) as exc:
        return classify(exc, config)
    finally:
        try:
            client.logout()
        except Exception:  # noqa: BLE001 - the answer is already known
            pass
    return ConnectionCheck(
        True,
        "ok",
        f"Logged in to {config.host} as {config.username}: {len(names)} folders.",
        folders=sorted(names)[:MAX_FOLDERS_SHOWN],
    )
