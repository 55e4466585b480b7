"""Reaching an IMAP server safely: resolve once, refuse non-public addresses, pin the socket.

A person names the IMAP host, and the worker then connects from inside our
network, so a host name is a way to make the worker talk to anything it can
reach (server-side request forgery). The check therefore

- fails closed: a name that does not resolve is refused, not waved through;
- treats ``localhost``, ``LOCALHOST.`` and ``*.localhost`` as loopback without
  asking DNS (RFC 6761 reserves them);
- refuses every address that is not globally routable: private, loopback,
  link-local, carrier-grade NAT (``100.64.0.0/10``), reserved, multicast,
  unspecified, and the IPv6 forms that embed an IPv4 address (IPv4-mapped
  ``::ffff:0:0/96``, 6to4 ``2002::/16``, Teredo, NAT64 ``64:ff9b::/96``) are
  judged by the IPv4 address inside;
- resolves once, when connecting, and connects to the address it checked (DNS
  rebinding: a second lookup could answer differently). TLS still verifies the
  certificate against, and sends SNI for, the host name.

``MAILCHAT_IMAP_ALLOW_PRIVATE_HOSTS`` lifts the address rule (tests, LAN
servers); names must still resolve.

Server text (greetings, error responses) never reaches the person: failures
are described in our words (``describe_failure``), and the server's own text
goes to the log only.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError
from imapclient.imap4 import IMAP4WithTimeout
from imapclient.tls import IMAP4_TLS, wrap_socket

from shared.sync.providers.base import NeedsReauth, ProviderError

log = logging.getLogger(__name__)

TLS_MODES = ("ssl", "starttls", "none")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class ImapConfig:
    """Where the mailbox is; the secret (password or OAuth token) is kept apart, encrypted."""

    host: str
    port: int
    username: str
    tls: str = "ssl"
    folders: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImapConfig:
        return cls(
            host=str(data["host"]),
            port=int(data["port"]),
            username=str(data["username"]),
            tls=str(data.get("tls", "ssl")),
            folders=tuple(data.get("folders") or ()),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "tls": self.tls,
            "folders": list(self.folders),
        }


class HostNotAllowed(ProviderError):
    """The IMAP host is not on the public internet (or does not resolve); says which, safely."""


def normalise_host(host: str) -> str:
    """Lower case, without the root label's trailing dot (``LOCALHOST.`` is ``localhost``)."""
    return host.strip().rstrip(".").lower()


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address (the server's is public anyway)
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public_address(address: IPAddress) -> bool:
    """True only for a globally routable unicast address (IPv4 inside IPv6 judged as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            return is_public_address(inner)
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return False
    # is_global is False for private, loopback, link-local, CGNAT 100.64/10, documentation...
    return bool(address.is_global)


def _is_localhost_name(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost")


def resolve_checked(host: str, port: int, *, allow_private: bool) -> list[IPAddress]:
    """The addresses ``host`` resolves to now, every one checked; raises ``HostNotAllowed``."""
    name = normalise_host(host)
    if not name:
        raise HostNotAllowed("the IMAP host is empty")
    if _is_localhost_name(name) and not allow_private:
        raise HostNotAllowed(f"{name} is this machine (loopback), not a public IMAP server")
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        log.info("IMAP host %s does not resolve: %r", name, exc)
        raise HostNotAllowed(f"{name} does not resolve to an address") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone id
        address = ipaddress.ip_address(text)
        if not allow_private and not is_public_address(address):
            raise HostNotAllowed(
                f"{name} resolves to a private, loopback or reserved address; "
                "set MAILCHAT_IMAP_ALLOW_PRIVATE_HOSTS to allow it"
            )
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise HostNotAllowed(f"{name} does not resolve to an address")
    return addresses


# -- connecting to the checked address -------------------------------------------------------


class _PinnedTLS(IMAP4_TLS):  # type: ignore[misc]  # imapclient ships no type hints
    """Implicit TLS to a fixed address; certificate and SNI still checked against the name."""

    def __init__(self, host: str, address: str, port: int, context: Any, timeout: Any) -> None:
        self._pinned = address
        super().__init__(host, port, context, timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        sock = socket.create_connection((self._pinned, self.port), timeout or self._timeout)
        wrapped: socket.socket = wrap_socket(sock, self.ssl_context, self.host)
        return wrapped


class _PinnedPlain(IMAP4WithTimeout):  # type: ignore[misc]
    """Plain (or STARTTLS, which IMAPClient wraps with the host name) to a fixed address."""

    def __init__(self, host: str, address: str, port: int, timeout: Any) -> None:
        self._pinned = address
        super().__init__(host, port, timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        return socket.create_connection((self._pinned, self.port), timeout or self._timeout)


class PinnedIMAPClient(IMAPClient):  # type: ignore[misc]  # imapclient ships no type hints
    """An ``IMAPClient`` whose socket goes to ``address`` while ``host`` is used for TLS."""

    def __init__(self, host: str, address: str, **kwargs: Any) -> None:
        self._pinned_address = address
        super().__init__(host, **kwargs)

    def _create_IMAP4(self) -> Any:  # noqa: N802 - imapclient's name
        timeout = getattr(self._timeout, "connect", None)
        if self.ssl:
            return _PinnedTLS(self.host, self._pinned_address, self.port, self.ssl_context, timeout)
        return _PinnedPlain(self.host, self._pinned_address, self.port, timeout)


def open_checked(
    host: str, port: int, *, tls: str, timeout: float, allow_private: bool
) -> IMAPClient:
    """Resolve and check ``host`` once, then connect to the first checked address that answers."""
    name = normalise_host(host)
    addresses = resolve_checked(name, port, allow_private=allow_private)
    context = ssl.create_default_context()
    last: BaseException | None = None
    for address in addresses:
        try:
            client = PinnedIMAPClient(
                name,
                str(address),
                port=port,
                ssl=tls == "ssl",
                ssl_context=context if tls == "ssl" else None,
                timeout=timeout,
            )
            if tls == "starttls":
                client.starttls(context)
            return client
        except (OSError, IMAPClientError) as exc:
            log.warning("IMAP %s (%s) port %d: %r", name, address, port, exc)
            last = exc
    assert last is not None
    raise ProviderError(f"cannot reach {name}:{port}: {describe_failure(last)}") from last


def connect(
    config: ImapConfig, secret: dict[str, str], timeout: float, *, allow_private: bool = False
) -> IMAPClient:
    """Log in with a password or XOAUTH2 access token; refused credentials are NeedsReauth.

    The host is resolved and checked once, here, and the socket goes to the
    address checked (``imap_net``); no server text reaches the error messages.
    """
    client = open_checked(
        config.host, config.port, tls=config.tls, timeout=timeout, allow_private=allow_private
    )
    client.normalise_times = False  # keep INTERNALDATE's zone
    try:
        if secret.get("access_token"):
            client.oauth2_login(config.username, secret["access_token"])
        else:
            client.login(config.username, secret.get("password", ""))
    except LoginError as exc:
        close_quietly(client)
        raise NeedsReauth(
            f"{config.host} refused the login for {config.username}; update the password"
        ) from exc
    except (OSError, IMAPClientError) as exc:
        close_quietly(client)
        log.warning("IMAP login to %s failed: %r", config.host, exc)
        raise ProviderError(f"IMAP login failed: {describe_failure(exc)}") from exc
    return client


def close_quietly(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # noqa: BLE001 - closing a broken connection
        try:
            client.shutdown()
        except Exception:  # noqa: BLE001
            pass


def describe_failure(exc: BaseException) -> str:
    """What went wrong, in our words: never the server's greeting or error text."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "the server's TLS certificate could not be verified for this host name"
    if isinstance(exc, ssl.SSLError):
        return "the TLS handshake failed"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "the server did not answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return "the connection was refused"
    if isinstance(exc, ConnectionError):
        return "the connection was closed by the server"
    if isinstance(exc, IMAPClientError):
        return "the server answered with an IMAP error"
    if isinstance(exc, OSError):
        return "a network error"
    return type(exc).__name__
