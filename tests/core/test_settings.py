"""Settings: read from the environment, typed, documented in the README."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared.core.settings import Settings, SettingsError, parse_bool, settings_table
from tests.conftest import PROJECT_ROOT


def test_defaults_match_the_issue() -> None:
    settings = Settings.from_env({})
    assert settings.web_port == 8000 and settings.flower_port == 5555
    assert settings.data_dir == ".data"
    assert settings.demo_email == "demo@example.com"
    assert settings.index_alias == "gmail_emails"
    assert settings.index_template == "gmail-emails-template"


def test_environment_values_are_typed() -> None:
    settings = Settings.from_env(
        {
            "MAILCHAT_WEB_PORT": "9001",
            "MAILCHAT_CHAT_TIMEOUT_SECONDS": "2.5",
            "MAILCHAT_DEMO_EMAIL": "a@b.c",
        }
    )
    assert settings.web_port == 9001 and settings.chat_timeout_seconds == 2.5
    assert settings.demo_email == "a@b.c"


def test_bad_values_name_the_variable() -> None:
    with pytest.raises(SettingsError, match="MAILCHAT_WEB_PORT"):
        Settings.from_env({"MAILCHAT_WEB_PORT": "eighty"})


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("1", True),
        ("Yes", True),
        ("y", True),
        ("false", False),
        ("0", False),
        ("no", False),
        ("N", False),
    ],
)
def test_bool_spellings(text: str, value: bool) -> None:
    assert parse_bool("X", text) is value
    with pytest.raises(SettingsError):
        parse_bool("X", "maybe")


def test_generated_secret_key_is_persisted(tmp_path: Path) -> None:
    first = Settings.from_env({}, data_dir=str(tmp_path)).with_secret_key()
    second = Settings.from_env({}, data_dir=str(tmp_path)).with_secret_key()
    assert len(first.secret_key) >= 32 and first.secret_key == second.secret_key
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0, "the key file must be private"


def test_readme_documents_every_setting() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    for variable, _default, meaning in settings_table():
        assert f"`{variable}`" in readme, variable
        assert meaning, f"{variable} has no documented meaning"


def _ask(barrier: Any, seen: list[str], make_key: Callable[[Path], str], directory: Path) -> None:
    barrier.wait()
    try:
        seen.append(make_key(directory))
    except Exception as exc:  # the test reports whatever went wrong
        seen.append(f"error: {exc!r}")


def _race(
    make_key: Callable[[Path], str], root: Path, rounds: int = 200, threads: int = 6
) -> list[list[str]]:
    """``threads`` threads ask at once for the key of a fresh data dir, ``rounds`` times.

    On the old create-then-write code about one round in five saw an empty key.
    """
    import sys
    import threading

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: widen every race window
    results: list[list[str]] = []
    try:
        for number in range(rounds):
            seen: list[str] = []
            barrier = threading.Barrier(threads)
            args = (barrier, seen, make_key, root / f"round-{number}")
            workers = [threading.Thread(target=_ask, args=args) for _ in range(threads)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            results.append(seen)
    finally:
        sys.setswitchinterval(interval)
    return results


@pytest.mark.timeout(60)
def test_concurrent_processes_never_see_an_empty_secret_key(tmp_path: Path) -> None:
    """Issue 10, item 12: creating the key file and then writing it let a reader sign with ''."""

    def make_key(directory: Path) -> str:
        return Settings.from_env({}, data_dir=str(directory)).with_secret_key().secret_key

    for seen in _race(make_key, tmp_path):
        assert len(set(seen)) == 1 and len(seen[0]) >= 32, seen


@pytest.mark.timeout(60)
def test_concurrent_processes_never_see_an_empty_credentials_key(tmp_path: Path) -> None:
    from shared.sync.accounts import credentials_keys

    def make_key(directory: Path) -> str:
        return credentials_keys(Settings.from_env({}, data_dir=str(directory)))

    for seen in _race(make_key, tmp_path):
        assert len(set(seen)) == 1 and len(seen[0]) == 44, seen  # a Fernet key


def test_an_empty_key_file_is_an_error_not_an_empty_key(tmp_path: Path) -> None:
    from shared.core.keyfiles import KeyFileError

    (tmp_path / "secret_key").write_text("")
    with pytest.raises(KeyFileError, match="secret_key is empty"):
        Settings.from_env({}, data_dir=str(tmp_path)).with_secret_key()


def test_key_files_are_private_and_leave_no_temporary_files(tmp_path: Path) -> None:
    from shared.sync.accounts import credentials_keys

    Settings.from_env({}, data_dir=str(tmp_path)).with_secret_key()
    credentials_keys(Settings.from_env({}, data_dir=str(tmp_path)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["credentials_key", "secret_key"]
    for path in tmp_path.iterdir():
        assert path.stat().st_mode & 0o077 == 0, f"{path.name} must be private"


def test_repr_shows_no_secret() -> None:
    secrets_given = {
        "secret_key": "sk-0123456789",
        "credentials_key": "ck-0123456789",
        "gmail_client_secret": "gcs-0123456789",
        "gmail_push_token": "gpt-0123456789",
        "flower_basic_auth": "admin:fb-0123456789",
        "demo_password": "dp-0123456789",
        "redis_url": "redis://default:rp-0123456789@redis.internal:6379/0",
        "elasticsearch_url": "https://elastic:ep-0123456789@es.internal:9200",
    }
    settings = Settings.from_env({}, **secrets_given)
    for text in (repr(settings), str(settings), f"{settings}", repr([settings])):
        for secret in ("sk-", "ck-", "gcs-", "gpt-", "fb-", "dp-", "rp-", "ep-", "default:"):
            assert secret not in text, f"{secret} leaked"
    assert "redis.internal:6379" in repr(settings) and "web_port=8000" in repr(settings)
    assert "secret_key='<redacted>'" in repr(settings)


def test_every_secret_looking_setting_is_marked_secret() -> None:
    import dataclasses
    import re

    looks_secret = re.compile(r"secret|password|token|credential|auth|_key$")
    for f in dataclasses.fields(Settings):
        if (
            f.type in ("str", str)
            and looks_secret.search(f.name)
            and not f.name.endswith("_rate_limit")
        ):
            assert f.metadata.get("secret"), f"{f.name} must carry metadata secret=True"
