"""deploy/docker-compose.yml, checked the way `docker compose config` would, without Docker:
the Compose Specification's JSON schema (vendored in compose_spec/), then this project's
own rules: every long-running service has a healthcheck, secrets only come from the
environment, files it mounts or builds from exist. Also the image's entrypoint."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.tools import DEPLOY, PROJECT_ROOT

COMPOSE = DEPLOY / "docker-compose.yml"
SCHEMA = Path(__file__).parent / "compose_spec" / "compose-spec.json"
SERVICES = {
    "web",
    "worker",
    "search-worker",
    "beat",
    "flower",
    "redis",
    "elasticsearch",
    "prometheus",
    "alertmanager",
    "grafana",
    "nginx",
}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY|TOKEN|AUTH|WEBHOOK", re.I)
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())  # resolves <<: merges
    return loaded


def validate(document: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    # The schema says draft-07 (spelled without the trailing '#' jsonschema looks up).
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(document)


def test_compose_file_matches_the_compose_specification(compose) -> None:  # type: ignore[no-untyped-def]
    validate(compose)


def test_the_schema_check_catches_a_broken_file(compose) -> None:  # type: ignore[no-untyped-def]
    broken = copy.deepcopy(compose)
    broken["services"]["web"]["helthcheck"] = broken["services"]["web"].pop("healthcheck")
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)
    broken = copy.deepcopy(compose)
    broken["services"]["redis"]["ports"] = {"6379": "6379"}
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)


def test_every_service_is_there_with_a_healthcheck(compose) -> None:  # type: ignore[no-untyped-def]
    services = compose["services"]
    assert set(services) >= SERVICES
    for name, service in services.items():
        if service.get("restart") == "no":
            continue  # a one-shot job (bootstrap): it exits instead of serving
        check = service.get("healthcheck")
        assert check and not check.get("disable") and check.get("test"), (
            f"{name} has no healthcheck"
        )


def test_secrets_come_from_the_environment(compose) -> None:  # type: ignore[no-untyped-def]
    for name, service in compose["services"].items():
        environment = service.get("environment", {})
        assert isinstance(environment, dict), f"{name}: use a mapping for environment"
        for variable, value in environment.items():
            if SECRET_NAME.search(variable):
                assert isinstance(value, str) and re.fullmatch(
                    r"\$\{[A-Z0-9_]+(:[-?][^}]*)?\}", value
                ), f"{name}.{variable} must be ${{VAR:?...}} from the environment, not {value!r}"
            if isinstance(value, str) and "://" in value and "@" in value:
                userinfo = value.split("://", 1)[1].split("@", 1)[0]
                assert "${" in userinfo, f"{name}.{variable}: credentials in a URL must be ${{VAR}}"
    text = "\n".join(
        line for line in COMPOSE.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    used = set(INTERPOLATION.findall(text))
    documented = {
        line.split("=", 1)[0]
        for line in (DEPLOY / "env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert (
        used
        - documented
        - {
            "ES_JAVA_OPTS",
            "MAILCHAT_WEB_WORKERS",
            "MAILCHAT_WORKER_CONCURRENCY",
            "MAILCHAT_HTTP_PORT",
            "GRAFANA_ADMIN_USER",
        }
        == set()
    )


def test_the_stack_is_what_the_issue_asks_for(compose) -> None:  # type: ignore[no-untyped-def]
    services = compose["services"]
    redis_command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_command and "--requirepass" in redis_command
    es = services["elasticsearch"]
    assert es["image"].split(":")[1].startswith("9.")
    assert es["environment"]["discovery.type"] == "single-node"
    assert es["environment"]["xpack.security.enabled"] == "true"
    assert "FLOWER_BASIC_AUTH" in services["flower"]["environment"]
    worker_env = services["worker"]["environment"]
    assert worker_env["MAILCHAT_WORKER_METRICS_PORT"] == "9808"
    for name in ("web", "worker", "beat", "flower"):
        assert "/tmp/prometheus" in services[name]["tmpfs"], f"{name}: own multiprocess dir"


def test_mounted_and_built_files_exist(compose) -> None:  # type: ignore[no-untyped-def]
    named = set(compose.get("volumes", {}))
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in named, f"{name} uses undeclared volume {source}"
        for dependency in service.get("depends_on", {}):
            assert dependency in compose["services"], f"{name} depends on unknown {dependency}"
        build = service.get("build")
        if build:
            context = (DEPLOY / build["context"]).resolve()
            dockerfile = context / build["dockerfile"]
            assert dockerfile.exists()
            for line in dockerfile.read_text().splitlines():
                if line.startswith("COPY "):
                    for source in line.split()[1:-1]:
                        assert (context / source).exists(), f"Dockerfile copies missing {source}"


def test_shell_scripts_parse() -> None:
    for script in (DEPLOY / "docker-entrypoint.sh", DEPLOY / "alertmanager" / "render.sh"):
        result = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_entrypoint_wipes_the_metrics_directory_then_runs_the_command(tmp_path: Path) -> None:
    metrics = tmp_path / "prometheus"
    metrics.mkdir()
    (metrics / "counter_123.db").write_bytes(b"a previous run")
    result = subprocess.run(
        [
            "sh",
            str(DEPLOY / "docker-entrypoint.sh"),
            "sh",
            "-c",
            'ls -A "$PROMETHEUS_MULTIPROC_DIR"; echo ran',
        ],
        env={"PATH": os.environ["PATH"], "PROMETHEUS_MULTIPROC_DIR": str(metrics)},
        capture_output=True,
        text=True,
        timeout=10,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ran"


def _entrypoint_worker_command(environment: dict[str, str], tmp_path: Path) -> list[str]:
    """The argv the entrypoint's worker role hands to ``celery`` under this environment (a
    ``celery`` first on PATH that prints its arguments, one a line, stands in for the worker)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "celery"
    shim.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    shim.chmod(0o755)
    variables = {k: v for k, v in environment.items() if k.startswith("MAILCHAT_WORKER_")}
    result = subprocess.run(
        ["sh", str(DEPLOY / "docker-entrypoint.sh"), "worker"],
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}", **variables},
        capture_output=True,
        text=True,
        timeout=10,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_questions_have_workers_of_their_own_and_every_queue_a_consumer(  # type: ignore[no-untyped-def]
    compose, tmp_path: Path
) -> None:
    """As under ``make run``: a sync never holds a question up, and the search-only worker
    gets the short visibility timeout (celery_app chooses it from the worker's queues)."""
    from shared.core.task_names import ALL_QUEUES, QUEUE_SEARCH

    consumed: dict[str, set[str]] = {}
    for name, service in compose["services"].items():
        if service.get("command") != ["worker"]:
            continue
        argv = _entrypoint_worker_command(service["environment"], tmp_path)
        queues = {a.split("=", 1)[1] for a in argv if a.startswith("--queues=")}
        assert len(queues) == 1, argv
        consumed[name] = set(queues.pop().split(","))
        hostname = next(a.split("=", 1)[1] for a in argv if a.startswith("--hostname="))
        node = hostname.split("@", 1)[0]
        assert f"-d {node}@$$HOSTNAME" in " ".join(service["healthcheck"]["test"]), (
            f"{name}'s healthcheck pings another node than {hostname}"
        )
        assert "9808" in service["expose"]
    assert consumed["search-worker"] == {QUEUE_SEARCH}
    assert QUEUE_SEARCH not in consumed["worker"]
    assert set().union(*consumed.values()) == set(ALL_QUEUES)
