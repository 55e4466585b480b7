"""A real Dovecot IMAP server for the tests and the bench, on a free port.

Debian's ``dovecot-imapd`` runs in the foreground (``-F``) with its own
config file, base_dir and Maildir root in a temporary directory, so it never
touches a system Dovecot. Any user name logs in with the one static password;
each user gets its own Maildir, so tests isolate themselves by user name.

Dovecot refuses to deliver mail as uid 0, hence the static userdb with
``uid=mail gid=mail`` and ``first_valid_uid = 1``: it works when the tests run
as root, and as the ``mail`` user it simply owns the temporary Maildirs.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from devtools.servers import free_port

PASSWORD = "dovecot-test-password"

_CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
mail_plugins = $mail_plugins
default_login_user = dovenull
default_internal_user = dovecot
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid=mail gid=mail home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Trash {{
    special_use = \\Trash
  }}
  mailbox Junk {{
    special_use = \\Junk
  }}
  mailbox Archive {{
    special_use = \\Archive
  }}
}}
"""


class DovecotMissing(RuntimeError):
    """The ``dovecot`` binary is not installed (Debian: ``apt-get install dovecot-imapd``)."""


@dataclass
class Dovecot:
    """A running Dovecot: where it listens and how to stop it."""

    host: str
    port: int
    root: Path
    config: Path
    process: subprocess.Popen[bytes]
    password: str = PASSWORD

    def doveadm(self, *args: str) -> str:
        """Run ``doveadm`` against this instance (e.g. to reset a folder's UIDVALIDITY)."""
        doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
        result = subprocess.run(
            [doveadm, "-c", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def log_tail(self, chars: int = 3000) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


def dovecot_binary() -> str:
    found = shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None
    )
    if not found:
        raise DovecotMissing("dovecot is not installed (Debian package dovecot-imapd)")
    return found


def start_dovecot(timeout: float = 30.0) -> Dovecot:
    """Start Dovecot on a free loopback port with a fresh Maildir root."""
    binary = dovecot_binary()
    if os.geteuid() != 0:
        raise DovecotMissing("the test Dovecot drops to the 'mail' user, so it must start as root")
    # Not under pytest's tmp_path: that is private to root, and Dovecot's
    # mail processes run as ``mail`` and must reach their Maildirs.
    root = Path(tempfile.mkdtemp(prefix="mailchat-dovecot-"))
    root.chmod(0o755)
    (root / "mail").mkdir()
    shutil.chown(root / "mail", user="mail", group="mail")
    port = free_port()
    config = root / "dovecot.conf"
    config.write_text(_CONFIG.format(root=root, port=port, password=PASSWORD))
    process = subprocess.Popen(
        [binary, "-F", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=open(root / "stderr.log", "wb"),  # noqa: SIM115 - lives as long as the process
    )
    server = Dovecot("127.0.0.1", port, root, config, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            detail = (root / "stderr.log").read_text(errors="replace") + server.log_tail()
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"dovecot exited with {process.returncode}:\n{detail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(200).startswith(b"* OK"):
                    return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError("dovecot did not answer in time")
