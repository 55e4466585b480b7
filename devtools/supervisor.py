"""``make run``'s long-running processes, kept alive by supervisord.

honcho (used before) stops every process as soon as one exits, and never
restarts: ``kill -9`` of the Celery worker took web, beat and Flower down with
it. supervisord (the ``supervisor`` package, the long-standing Unix process
supervisor) restarts a process that exits while the rest keep serving, backs
off between attempts when a process dies right after starting (1 s, 2 s, 3 s,
... up to ``START_RETRIES``), and is also what many production hosts run, so
``make run`` behaves like a deployment rather than like a demo.

The configuration is generated into the data dir from :func:`programs`: one
list of the processes, their commands and their environment, in code that a
test can read. Every child inherits the environment :mod:`devtools.run`
hands to supervisord (the resolved ``MAILCHAT_*`` settings).

There are two Celery workers. ``search-worker`` consumes only the ``search``
queue (answers, at most 30 s each), so kombu's Redis transport can give it a
short visibility timeout: a question in flight when its worker is killed is
redelivered after ``MAILCHAT_SEARCH_VISIBILITY_TIMEOUT_SECONDS``, not after
the hour the ``worker`` (sync, maintenance, delivery) needs for its long
tasks (see ``celery_app.broker_transport_options``).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path

from shared.core.settings import Settings
from shared.core.task_names import ALL_QUEUES, QUEUE_SEARCH

BIN = Path(sys.executable).parent
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# A process that exits within START_SECONDS of starting failed to start: supervisord waits
# 1 s, 2 s, ... before each of START_RETRIES further attempts, then gives up on it (FATAL) and
# says so, while the others keep running. One that ran longer is restarted at once.
START_SECONDS = 5
START_RETRIES = 10
# SIGTERM first (Celery's warm shutdown, gunicorn's graceful stop), SIGKILL to the whole
# process group (pool children, gunicorn workers) if it is still there after this long.
STOP_WAIT_SECONDS = 20
SOCKET_PATH_MAX = 100
GROUP = "mailchat"  # supervisorctl names the programs mailchat:web, mailchat:worker, ...  # AF_UNIX paths are limited to 107 bytes on Linux


@dataclass(frozen=True)
class Program:
    """One supervised process: its name, its command line and any variables of its own."""

    name: str
    command: list[str]
    environment: dict[str, str] = field(default_factory=dict)


def programs(settings: Settings) -> list[Program]:
    """Web, the two Celery workers, beat and Flower, as ``make run`` starts them."""
    data = settings.data_path
    metrics = {"PROMETHEUS_MULTIPROC_DIR": str(data / "prometheus")}
    celery = [str(BIN / "celery"), "-A", "celery_app"]
    other_queues = ",".join(q for q in ALL_QUEUES if q != QUEUE_SEARCH)
    concurrency = f"--concurrency={settings.worker_concurrency}"
    return [
        Program(
            "web",
            [str(BIN / "gunicorn"), "--config", "deploy/gunicorn.conf.py", "wsgi:app"],
            metrics,
        ),
        Program(
            "search-worker",
            [*celery, "worker", "--loglevel=INFO", f"--queues={QUEUE_SEARCH}", concurrency]
            + ["--hostname=search@%h"],
            metrics,
        ),
        Program(
            "worker",
            [*celery, "worker", "--loglevel=INFO", f"--queues={other_queues}", concurrency]
            + ["--hostname=worker@%h"],
            metrics,
        ),
        Program(
            "beat",
            [*celery, "beat", "--loglevel=INFO", f"--schedule={data / 'celerybeat-schedule'}"],
            metrics,
        ),
        # Flower's login comes from FLOWER_BASIC_AUTH in the environment (devtools.run sets
        # it), not from --basic-auth, so the password is not on a command line `ps` shows.
        Program(
            "flower",
            [*celery, "flower", "--address=127.0.0.1", f"--port={settings.flower_port}"],
        ),
    ]


def config_path(settings: Settings) -> Path:
    return settings.data_path / "supervisord.conf"


def socket_path(settings: Settings) -> Path:
    """supervisorctl's socket: in the data dir, unless that path is too long for AF_UNIX."""
    path = settings.data_path / "supervisor.sock"
    if len(str(path)) <= SOCKET_PATH_MAX:
        return path
    digest = sha256(str(settings.data_path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"mailchat-supervisor-{digest}.sock"


def _value(text: str) -> str:
    """A supervisord config value: ``%`` is its interpolation character."""
    if "\n" in text:
        raise ValueError(f"supervisord cannot take a value with a newline: {text!r}")
    return text.replace("%", "%%")


def _environment(variables: dict[str, str]) -> str:
    pairs = []
    for name, value in variables.items():
        if '"' in value:
            raise ValueError(f"{name} holds a double quote, which supervisord cannot quote")
        pairs.append(f'{name}="{_value(value)}"')
    return ",".join(pairs)


def render_config(settings: Settings, supervised: list[Program] | None = None) -> str:
    """The supervisord configuration for ``make run`` (no secrets: those are in the environment).

    ``supervised`` replaces :func:`programs` (tests supervise programs of their own).
    """
    data = settings.data_path
    sock = socket_path(settings)
    lines = [
        "; Generated by devtools/supervisor.py for `make run`; edits are overwritten.",
        "[supervisord]",
        "nodaemon=true",
        # supervisord's own lines (spawned, exited, gave up) go to this file and, in the
        # foreground, to stderr too.
        f"logfile={_value(str(data / 'supervisord.log'))}",
        "logfile_maxbytes=10MB",
        "logfile_backups=1",
        "loglevel=info",
        f"pidfile={_value(str(data / 'supervisord.pid'))}",
        f"childlogdir={_value(str(data))}",
        *(["user=root"] if os.geteuid() == 0 else []),  # root on purpose: say so, no warning
        "",
        "[unix_http_server]",  # so `supervisorctl -c DATA_DIR/supervisord.conf status` works
        f"file={_value(str(sock))}",
        "chmod=0700",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{_value(str(sock))}",
    ]
    supervised = programs(settings) if supervised is None else supervised
    # One group, so Ctrl-C stops every program at once (supervisord stops groups one by one).
    lines += ["", f"[group:{GROUP}]", f"programs={','.join(p.name for p in supervised)}"]
    for program in supervised:
        lines += [
            "",
            f"[program:{program.name}]",
            f"command={_value(shlex.join(program.command))}",
            f"directory={_value(str(PROJECT_ROOT))}",
            "autostart=true",
            "autorestart=true",
            f"startsecs={START_SECONDS}",
            f"startretries={START_RETRIES}",
            "stopsignal=TERM",
            f"stopwaitsecs={STOP_WAIT_SECONDS}",
            "stopasgroup=false",  # TERM to the main process only: it stops its children itself
            "killasgroup=true",  # but SIGKILL leaves nothing behind
            "redirect_stderr=true",
            "stdout_logfile=/dev/stdout",
            "stdout_logfile_maxbytes=0",
        ]
        if program.environment:
            lines.append(f"environment={_environment(program.environment)}")
    return "\n".join(lines) + "\n"


def write_config(settings: Settings) -> Path:
    path = config_path(settings)
    path.write_text(render_config(settings))
    return path


def run_supervisord(settings: Settings, env: dict[str, str]) -> int:
    """Run supervisord in the foreground until it exits; Ctrl-C and SIGTERM stop it cleanly.

    supervisord makes each program the leader of its own process group, so
    Ctrl-C in the terminal reaches supervisord (which stops the programs in
    order) and this process, which then only waits. SIGTERM (e.g. from a
    service manager) is forwarded.
    """
    command = [str(BIN / "supervisord"), "--configuration", str(write_config(settings))]
    process = subprocess.Popen(command, env=env, cwd=PROJECT_ROOT)
    signal.signal(signal.SIGTERM, lambda signum, frame: process.send_signal(signal.SIGTERM))
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:
            continue
