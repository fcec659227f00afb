"""Settings from the environment, and production refusing what would be unsafe there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.config import (
    DEFAULT_SECRET_KEY,
    PROJECT_ROOT,
    ConfigError,
    load_settings,
    normalise_database_url,
)
from tests.support.environment import SETTINGS_ENV, clear_settings_env

GOOD_SECRET = "s3cr3t-" + "k" * 40


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """An environment with none of the app's variables set, whatever the developer's shell has."""
    clear_settings_env(monkeypatch)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    return monkeypatch


@pytest.fixture
def production(env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A production environment with every setting that production checks set safely."""
    env.setenv("PRIVACY_CENTER_ENV", "production")
    env.setenv("SECRET_KEY", GOOD_SECRET)
    env.setenv("BASE_URL", "https://privacy.example.com")
    env.setenv("SUPPRESSION_HASH_KEY", "s" * 40)
    return env


def test_development_defaults_work_with_nothing_set(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = load_settings()
    assert settings.env == "development"
    assert settings.demo_mode is True
    assert settings.secret_key == DEFAULT_SECRET_KEY
    assert settings.jobs_mode == "thread"
    assert settings.sqlalchemy_url == f"sqlite:///{tmp_path.resolve() / 'privacy-center.sqlite3'}"
    assert settings.mail_outbox_dir == tmp_path.resolve() / "outbox"
    assert settings.deletion_grace_days == 7
    assert settings.export_ttl_days == 7


def test_production_with_safe_settings_starts(production: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.is_production
    assert settings.demo_mode is False  # production's default


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("SECRET_KEY", None, "SECRET_KEY"),
        ("SECRET_KEY", DEFAULT_SECRET_KEY, "SECRET_KEY"),
        ("SECRET_KEY", "short-but-not-default", "SECRET_KEY"),
        ("DEMO_MODE", "true", "DEMO_MODE"),
        ("BASE_URL", "http://privacy.example.com", "BASE_URL"),
        ("SUPPRESSION_HASH_KEY", None, "SUPPRESSION_HASH_KEY"),
        ("SUPPRESSION_HASH_KEY", "too-short", "SUPPRESSION_HASH_KEY"),
    ],
    ids=[
        "secret-unset",
        "secret-default",
        "secret-short",
        "demo-mode",
        "http-base-url",
        "suppression-key-unset",
        "suppression-key-short",
    ],
)
def test_production_refuses_unsafe_setting_and_names_it(
    production: pytest.MonkeyPatch, variable: str, value: str | None, named: str
) -> None:
    if value is None:
        production.delenv(variable)
    else:
        production.setenv(variable, value)
    with pytest.raises(ConfigError) as excinfo:
        load_settings()
    message = str(excinfo.value)
    assert "production" in message
    assert named in message
    # Only the setting at fault is blamed, so the operator knows what to change.
    others = {"SECRET_KEY", "DEMO_MODE", "BASE_URL", "SUPPRESSION_HASH_KEY"} - {named}
    assert not [other for other in others if other in message]


def test_production_lists_every_unsafe_setting_at_once(env: pytest.MonkeyPatch) -> None:
    env.setenv("PRIVACY_CENTER_ENV", "production")
    env.setenv("DEMO_MODE", "yes")
    with pytest.raises(ConfigError) as excinfo:
        load_settings()
    for name in ("SECRET_KEY", "DEMO_MODE", "BASE_URL", "SUPPRESSION_HASH_KEY"):
        assert name in str(excinfo.value)


def test_unknown_environment_name_is_refused(env: pytest.MonkeyPatch) -> None:
    env.setenv("PRIVACY_CENTER_ENV", "prod")
    with pytest.raises(ConfigError, match="PRIVACY_CENTER_ENV"):
        load_settings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [("SMTP_PORT", "twenty-five"), ("SMTP_PORT", "0"), ("DEMO_MODE", "perhaps"),
     ("JOBS_MODE", "celery"), ("EXPORT_TTL_DAYS", "0")],
)  # fmt: skip
def test_malformed_values_are_refused_by_name(
    env: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    env.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings()


def test_redis_url_switches_jobs_to_rq(env: pytest.MonkeyPatch) -> None:
    env.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    assert load_settings().jobs_mode == "rq"


def test_overrides_win_and_unknown_overrides_are_refused(env: pytest.MonkeyPatch) -> None:
    env.setenv("SMTP_HOST", "mail.example.com")
    assert load_settings({"smtp_host": ""}).smtp_host == ""
    with pytest.raises(ConfigError, match="no_such_setting"):
        load_settings({"no_such_setting": 1})


def test_database_url_from_environment_uses_psycopg(env: pytest.MonkeyPatch) -> None:
    env.setenv("DATABASE_URL", "postgres://pc:pw@db.internal:5432/pc")
    assert load_settings().sqlalchemy_url == "postgresql+psycopg://pc:pw@db.internal:5432/pc"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgresql://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:////srv/data/pc.sqlite3", "sqlite:////srv/data/pc.sqlite3"),
        ("sqlite:///relative.sqlite3", "sqlite:///relative.sqlite3"),
    ],
)
def test_normalise_database_url(given: str, expected: str) -> None:
    assert normalise_database_url(given) == expected


def test_tests_know_every_variable_the_app_reads() -> None:
    """The harness clears these so a developer's shell cannot leak into a test."""
    source = (PROJECT_ROOT / "app" / "config.py").read_text(encoding="utf-8")
    read = set(re.findall(r'(?:_env_\w+|os\.environ\.get)\(\s*"([A-Z_]+)"', source))
    assert read, "found no environment variables in app/config.py (the pattern is stale)"
    assert read <= set(SETTINGS_ENV), f"add {sorted(read - set(SETTINGS_ENV))} to SETTINGS_ENV"
