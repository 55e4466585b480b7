"""Settings: read from the environment, typed, documented in the README."""

from __future__ import annotations

from pathlib import Path

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
