"""What the socket benchmarks share with this process and the web process they measure.

The realtime figures themselves live in their own modules: the time to the
first ``delta`` in ``bench.chat``, idle sockets in ``bench.ws_idle``, fan-out
in ``bench.ws_fanout``, the reconnect storm in ``bench.reconnect_storm``.
"""

from __future__ import annotations

from pathlib import Path


def worker_rss_bytes(master_pid: int) -> int:
    """Resident memory of the (single) gunicorn worker process under ``master_pid``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        if f"PPid:\t{master_pid}\n" in status:
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    raise RuntimeError("no gunicorn worker found")


def raise_fd_limit() -> None:
    """Thousands of sockets need thousands of descriptors, here and in gunicorn (inherited)."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
