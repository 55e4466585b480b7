"""Several "hosts" on one machine: network namespaces joined by veth pairs to a bridge.

The multi-host chaos scenario (``bench.chaos.netns``) needs hosts that can be
cut off from each other, which loopback cannot do: every process on loopback
shares one network. A network namespace is a host with its own interfaces,
addresses and ports; a veth pair is its network cable, and a bridge in the
root namespace is the switch, with an address of its own, so the root
namespace is the client host. Pulling a cable (``ip link set <veth> down``
on the bridge's side) cuts one host off mid-conversation, as a failed switch
port or a partition would: its TCP connections neither close nor answer.

Everything made here is named ``mc-<run id>-...`` and removed again, whatever
happens: ``Topology`` is a context manager, registers an ``atexit`` hook, and
``sweep_stale`` removes what a run killed with ``kill -9`` left behind (a run
writes its pid beside its names; another run only removes leftovers whose
owner is dead, so two runs side by side never touch each other's hosts).
Traffic stays on the bridge's private /24: the namespaces have no route out.
"""

from __future__ import annotations

import atexit
import ipaddress
import logging
import os
import secrets
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "mc-"
OWNERS_DIR = Path("/run/mailchat-netns")  # one file per live run: its id, holding its pid
SUBNETS = ipaddress.IPv4Network("10.231.0.0/16")  # a /24 of it per run, one not yet routed


class TopologyError(RuntimeError):
    """A namespace, link or address could not be made (not root, no ``ip netns``...)."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS``; raises TopologyError with ip's own message when it fails."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if check and done.returncode != 0:
        raise TopologyError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


def unusable_reason() -> str | None:
    """Why network namespaces cannot be made here (None when they can): the tests' skip."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    probe = f"{PREFIX}p{os.getpid()}"  # no run id: sweep_stale leaves it to its maker
    try:
        ip("netns", "add", probe)
    except FileNotFoundError:
        return "no `ip` command (apt-get install iproute2)"
    except TopologyError as exc:
        return f"`ip netns add` fails here: {exc}"
    ip("netns", "del", probe, check=False)
    return None


@dataclass(frozen=True)
class Host:
    """One namespace: its name, its address on the bridge, and its cable's two ends."""

    name: str  # the role: "data", "web1"...
    netns: str
    address: str
    cable: str  # the veth end on the bridge (root namespace): down = host cut off

    def command(self, *argv: str) -> list[str]:
        """``argv`` run on this host."""
        return ["ip", "netns", "exec", self.netns, *argv]


class Topology:
    """Hosts on one bridge; ``with Topology(["data", "web1"]) as net: net["web1"].address``."""

    def __init__(self, names: list[str]) -> None:
        if any(len(name) > 5 for name in names):
            raise ValueError("host names are at most 5 characters (interface names are short)")
        self.run_id = secrets.token_hex(2)
        self.bridge = f"{PREFIX}{self.run_id}-br"
        self.names = names
        self.hosts: dict[str, Host] = {}
        self.gateway = ""
        self._made: list[tuple[str, str]] = []  # ("netns"|"link", name), in creation order
        self._owner_file = OWNERS_DIR / self.run_id

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def __enter__(self) -> Topology:
        self.create()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def create(self) -> None:
        """Make the bridge and every host; on any failure, remove what was made and raise."""
        atexit.register(self.remove)
        sweep_stale()
        OWNERS_DIR.mkdir(parents=True, exist_ok=True)
        self._owner_file.write_text(str(os.getpid()))
        try:
            subnet = _free_subnet()
            addresses = list(subnet.hosts())
            self.gateway = str(addresses[0])
            ip("link", "add", self.bridge, "type", "bridge")
            self._made.append(("link", self.bridge))
            ip("addr", "add", f"{self.gateway}/{subnet.prefixlen}", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
            for number, name in enumerate(self.names, start=1):
                self.hosts[name] = self._add_host(name, str(addresses[number]), subnet.prefixlen)
        except BaseException:
            self.remove()
            raise

    def _add_host(self, name: str, address: str, prefixlen: int) -> Host:
        netns = cable = f"{PREFIX}{self.run_id}-{name}"  # names of different kinds
        inner = f"{cable}p"  # renamed eth0 once inside
        ip("netns", "add", netns)
        self._made.append(("netns", netns))
        ip("link", "add", cable, "type", "veth", "peer", "name", inner)
        self._made.append(("link", cable))
        ip("link", "set", inner, "netns", netns)
        ip("link", "set", cable, "master", self.bridge)
        ip("link", "set", cable, "up")
        inside = ["-n", netns]
        ip(*inside, "link", "set", "lo", "up")
        ip(*inside, "link", "set", inner, "name", "eth0")
        ip(*inside, "addr", "add", f"{address}/{prefixlen}", "dev", "eth0")
        ip(*inside, "link", "set", "eth0", "up")
        return Host(name, netns, address, cable)

    def cut(self, name: str) -> None:
        """Pull the host's cable: its packets go nowhere, its connections hang (no RST)."""
        ip("link", "set", self.hosts[name].cable, "down")

    def restore(self, name: str) -> None:
        ip("link", "set", self.hosts[name].cable, "up")

    def remove(self) -> None:
        """Remove everything this run made (idempotent; processes left in a host are killed)."""
        for kind, name in reversed(self._made):
            if kind == "netns":
                _kill_processes_in(name)
                ip("netns", "del", name, check=False)
            else:
                ip("link", "del", name, check=False)  # a veth goes with its peer's namespace
        self._made.clear()
        self._owner_file.unlink(missing_ok=True)


def _kill_processes_in(netns: str) -> None:
    """SIGKILL what still runs in one of this run's namespaces (the scenario stops its own first)."""
    listed = ip("netns", "pids", netns, check=False).stdout.split()
    for pid in listed:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 of SUBNETS that no route of this machine covers yet (another run may hold one)."""
    routed = []
    for line in ip("-4", "route", "show").stdout.splitlines():
        target = line.split()[0]
        if target != "default":
            routed.append(ipaddress.IPv4Network(target, strict=False))
    candidates = list(SUBNETS.subnets(new_prefix=24))
    start = secrets.randbelow(len(candidates))
    for subnet in candidates[start:] + candidates[:start]:
        if not any(subnet.overlaps(other) for other in routed):
            return subnet
    raise TopologyError(f"no free /24 left in {SUBNETS}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> list[str]:
    """Remove the namespaces and links of runs whose owner is dead; returns what it removed."""
    live = set()
    if OWNERS_DIR.is_dir():
        for owner in OWNERS_DIR.iterdir():
            try:
                pid = int(owner.read_text())
            except (OSError, ValueError):
                pid = 0
            if pid and _alive(pid):
                live.add(owner.name)
            else:
                owner.unlink(missing_ok=True)

    def stale(name: str) -> bool:
        parts = name.split("-")
        return name.startswith(PREFIX) and len(parts) >= 3 and parts[1] not in live

    removed = []
    for line in ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if stale(name):
            _kill_processes_in(name)
            ip("netns", "del", name, check=False)
            removed.append(name)
    for line in ip("-o", "link", "show", check=False).stdout.splitlines():
        fields = line.split(":")
        name = fields[1].strip().split("@")[0] if len(fields) > 1 else ""
        if stale(name):
            ip("link", "del", name, check=False)
            removed.append(name)
    if removed:
        log.warning("removed leftovers of an earlier multi-host run: %s", ", ".join(removed))
    return removed
