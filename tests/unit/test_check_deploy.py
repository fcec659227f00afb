"""`flask --app wsgi check-deploy`: what an operator is told before going live."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import check_deploy
from app.config import PROJECT_ROOT
from tests.support.environment import clear_settings_env

SAFE = {
    "PRIVACY_CENTER_ENV": "production",
    "SECRET_KEY": "k" * 48,
    "SUPPRESSION_HASH_KEY": "s" * 48,
    "BASE_URL": "https://privacy.example-platform.io",
    "DATABASE_URL": "postgresql://privacy@db/privacy",
    "REDIS_URL": "redis://cache:6379/0",
    "SMTP_HOST": "smtp.example-platform.io",
    "SMTP_USER": "privacy",
    "SMTP_PASSWORD": "smtp-password",
    "SMTP_STARTTLS": "true",
    "MAIL_FROM": "Privacy <privacy@example-platform.io>",
    "CONTROLLER_EMAIL": "privacy@example-platform.io",
}


def _check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> tuple[int, str]:
    clear_settings_env(monkeypatch)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(check_deploy)
    return result.exit_code, result.output


def test_a_safe_production_setup_has_no_problems(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    status, output = _check(monkeypatch, tmp_path, **SAFE)
    assert (status, output) == (0, "no problems found\n")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"DATABASE_URL": ""}, "the database is SQLite"),
        ({"REDIS_URL": ""}, "REDIS_URL is unset: rate limits are counted in memory"),
        ({"JOBS_MODE": "thread"}, "JOBS_MODE is thread"),
        ({"SMTP_HOST": ""}, "SMTP_HOST is unset"),
        ({"SMTP_STARTTLS": "false"}, "SMTP_PASSWORD is sent without SMTP_STARTTLS"),
        ({"RATE_LIMITS": "false"}, "RATE_LIMITS is off"),
        ({"BASE_URL": "http://privacy.example-platform.io"}, "session cookie is not Secure"),
        ({"DEMO_MODE": "true"}, "DEMO_MODE is on"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY is the development default"),
        ({"MAIL_FROM": "privacy@example.com"}, "MAIL_FROM is a placeholder"),
        ({"PLATFORM_API_KEYS": "abc"}, "PLATFORM_API_KEYS is shorter than 32"),
        ({"LOG_FORMAT": "text"}, "LOG_FORMAT is text"),
        ({"PRIVACY_CENTER_ENV": "development"}, "PRIVACY_CENTER_ENV is not production"),
        ({"SMTP_PORT": "twenty-five"}, "SMTP_PORT must be a whole number"),
    ],
)
def test_each_unsafe_setting_is_named_and_fails_the_check(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, change: dict[str, str], named: str
) -> None:
    status, output = _check(monkeypatch, tmp_path, **{**SAFE, **change})
    assert status == 1
    assert named in output
    assert "no problems found" not in output


def test_it_explains_a_refused_start_through_the_real_command(tmp_path: Path) -> None:
    """The app itself refuses to load with these settings; the command still answers."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "PRIVACY_CENTER_ENV": "production",
        "DATA_DIR": str(tmp_path),
    }
    flask = Path(sys.executable).with_name("flask")
    done = subprocess.run(
        [str(flask), "--app", "wsgi", "check-deploy"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "SECRET_KEY is the development default" in done.stdout
    assert "(production refuses to start)" in done.stdout
    assert "Traceback" not in done.stderr
