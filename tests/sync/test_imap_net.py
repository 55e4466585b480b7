"""The IMAP host check fails closed, resolves once, connects to what it checked, and never
shows the server's own words to the person.

The connections go to real sockets: the session's Dovecot, and a tiny TCP
server that greets with a hostile banner (an IMAP server we do not control).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import secrets
import socket
import threading
from collections.abc import Iterator

import pytest

from shared.core.clients import get_redis
from shared.sync import accounts
from shared.sync.providers.base import ProviderError
from shared.sync.providers.imap_net import (
    HostNotAllowed,
    PinnedIMAPClient,
    is_public_address,
    normalise_host,
    resolve_checked,
)
from tests.conftest import auth_header
from tests.sync.test_imap import run

BANNER = "evil-banner-" + secrets.token_hex(4)

NOT_PUBLIC = [
    "10.0.0.1",
    "127.0.0.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # carrier-grade NAT
    "100.127.255.254",
    "192.168.1.1",
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "::ffff:10.0.0.1",  # IPv4-mapped
    "::ffff:127.0.0.1",
    "::ffff:100.64.0.1",
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2002:808:808::1", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("text", NOT_PUBLIC)
def test_non_public_addresses_are_refused(text: str) -> None:
    assert not is_public_address(ipaddress.ip_address(text))


@pytest.mark.parametrize("text", PUBLIC)
def test_public_addresses_pass(text: str) -> None:
    assert is_public_address(ipaddress.ip_address(text))


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "imap.localhost", "127.0.0.1"])
def test_loopback_names_are_refused_unless_allowed(host: str) -> None:
    with pytest.raises(HostNotAllowed):
        resolve_checked(host, 993, allow_private=False)
    assert normalise_host(host) == host.lower().rstrip(".")


def test_a_name_that_does_not_resolve_is_refused_not_waved_through() -> None:
    with pytest.raises(HostNotAllowed, match="does not resolve"):
        resolve_checked("no-such-host.invalid", 993, allow_private=False)
    with pytest.raises(HostNotAllowed, match="does not resolve"):
        resolve_checked("no-such-host.invalid", 993, allow_private=True)


def test_the_socket_goes_to_the_checked_address_not_a_fresh_lookup(dovecot) -> None:
    """A name that resolves to nothing still reaches Dovecot: only the pinned address is used."""
    client = PinnedIMAPClient(
        "imap.rebinding.invalid", dovecot.host, port=dovecot.port, ssl=False, timeout=10
    )
    try:
        client.login("pinned", dovecot.password)
        assert client.list_folders()
    finally:
        client.logout()


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("LOCALHOST.", "loopback"),
        ("no-such-host.invalid", "does not resolve"),
        ("100.64.0.1", "private"),
        ("2002:a00:1::1", "private"),
    ],
)
def test_the_api_refuses_hosts_that_are_not_public(
    client, settings, make_user, host: str, why: str
) -> None:
    user, _ = make_user("api-host")
    body = {"provider": "imap", "host": host, "port": 993, "username": "u", "password": "p"}
    response = client.post("/api/accounts", json=body, headers=auth_header(settings, user))
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert (error["code"], error["field"]) == ("host_not_allowed", "host")
    assert why in error["message"]


@pytest.fixture()
def hostile_server() -> Iterator[int]:
    """A TCP server on loopback that greets like a broken IMAP server, with text of its own."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.sendall(f"* BYE {BANNER} <script>alert(1)</script>\r\n".encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    listener.close()
    thread.join(5)


def test_the_servers_banner_never_reaches_the_person(settings, make_user, hostile_server) -> None:
    allowed = dataclasses.replace(settings, imap_allow_private_hosts=True)
    user, _ = make_user("banner")
    config = {"host": "127.0.0.1", "port": hostile_server, "username": "u", "tls": "none"}
    account = accounts.create_account(
        get_redis(allowed), allowed, user.id, "imap", "u@127.0.0.1", config, {"password": "p"}
    )
    events: list = []
    with pytest.raises(ProviderError) as raised:
        run(allowed, account.id, events)
    stored = accounts.get_account(get_redis(allowed), allowed, account.id)
    assert stored is not None and stored.state == "error"
    shown = [str(raised.value), stored.last_error or "", *(str(e[1]) for e in events)]
    assert all(BANNER not in text and "<script>" not in text for text in shown), shown
    assert "IMAP error" in (stored.last_error or "")


def test_the_sync_refuses_a_private_host_when_it_connects(settings, make_user) -> None:
    """Accounts stored before the check (or a name that now points inside) stop at connect."""
    user, _ = make_user("connect-check")
    config = {"host": "127.0.0.1", "port": 1, "username": "u", "tls": "none"}
    account = accounts.create_account(
        get_redis(settings), settings, user.id, "imap", "u@127.0.0.1", config, {"password": "p"}
    )
    with pytest.raises(HostNotAllowed):
        run(settings, account.id)
    stored = accounts.get_account(get_redis(settings), settings, account.id)
    assert stored is not None and "private" in (stored.last_error or "")


def _self_signed(tmp_path, name: str):  # type: ignore[no-untyped-def]
    """A certificate for ``name`` (and its key), written as PEM files; returns their paths."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_to_the_pinned_address_still_verifies_the_host_name(tmp_path) -> None:
    """The socket goes to the checked address; SNI and the certificate check use the name."""
    import ssl

    cert, key = _self_signed(tmp_path, "imap.mailchat.test")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    names: list[str | None] = []
    server_context.sni_callback = lambda _sock, name, _ctx: names.append(name)  # type: ignore[assignment,misc,return-value]
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = int(listener.getsockname()[1])

    def serve() -> None:
        for _ in range(2):
            try:
                conn, _ = listener.accept()
                with server_context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"* OK ready\r\n")
                    tag = tls.recv(200).split(b" ", 1)[0]  # "<tag> CAPABILITY"
                    tls.sendall(b"* CAPABILITY IMAP4rev1\r\n" + tag + b" OK done\r\n")
                    tls.recv(200)
            except (OSError, ssl.SSLError):
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    trusting = ssl.create_default_context(cafile=str(cert))
    try:
        client = PinnedIMAPClient(
            "imap.mailchat.test", "127.0.0.1", port=port, ssl=True, ssl_context=trusting, timeout=5
        )
        client.shutdown()
        assert names[0] == "imap.mailchat.test", "SNI names the host, not the address"
        with pytest.raises(ssl.SSLCertVerificationError):
            PinnedIMAPClient(
                "other.mailchat.test", "127.0.0.1", port=port, ssl=True, ssl_context=trusting
            )
    finally:
        listener.close()
        thread.join(5)
