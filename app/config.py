"""Typed settings read from the environment, with safe defaults for local use.

Every setting has a default that makes `make run` work on a laptop with nothing installed.
Production (`PRIVACY_CENTER_ENV=production`) refuses the defaults that would be unsafe there.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_SECRET_KEY = "dev-only-insecure-secret-key-change-me"  # noqa: S105 -- the sentinel production refuses
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    """A setting is missing, malformed or unsafe; the message names it."""


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def _env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {value}")
    return value


def _env_str(name: str, default: str) -> str:
    raw = os.environ.get(name)
    return default if raw is None or raw.strip() == "" else raw.strip()


LOG_CHOICES = {"LOG_FORMAT": ("json", "text"), "LOG_LEVEL": ("DEBUG", "INFO", "WARNING", "ERROR")}


def _env_choice(name: str, default: str) -> str:
    value = _env_str(name, default)
    for choice in LOG_CHOICES[name]:
        if value.lower() == choice.lower():
            return choice
    raise ConfigError(f"{name} must be one of {', '.join(LOG_CHOICES[name])}, not {value!r}")


def _env_list(name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in os.environ.get(name, "").split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    secret_key: str = DEFAULT_SECRET_KEY
    data_dir: Path = PROJECT_ROOT / "instance"
    database_url: str = ""
    redis_url: str = ""
    base_url: str = "http://127.0.0.1:5000"
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_starttls: bool = False
    mail_from: str = "Privacy Center <privacy@example.com>"
    mail_outbox_dir: Path = PROJECT_ROOT / "instance" / "outbox"
    deletion_grace_days: int = 7
    export_ttl_days: int = 7
    platform_api_keys: tuple[str, ...] = field(default=(), repr=False)
    demo_mode: bool = True
    jobs_mode: str = "thread"  # thread | inline | queue (only recorded; a worker runs it) | rq
    max_content_length: int = 1024 * 1024
    rate_limits: bool = True
    login_rate_limit: str = "10 per minute;100 per day"
    fresh_login_minutes: int = 10
    # A signed-in session ends after this long without activity, and this long after sign-in.
    session_idle_minutes: int = 30
    session_absolute_hours: int = 12
    controller_name: str = "GPT Image 2"
    controller_email: str = "privacy@example.com"
    controller_address: str = "1209 Orange St., Wilmington, DE 19801, USA"
    # Empty: no data protection officer is appointed, and the notice says whom to write to.
    dpo_email: str = ""
    api_rate_limit: str = "600 per minute"
    export_rate_limit: str = "5 per hour"
    # Older secret keys still accepted when checking signed links (key rotation): an
    # unsubscribe link in a year-old email keeps working after SECRET_KEY changes.
    secret_key_fallbacks: tuple[str, ...] = field(default=(), repr=False)
    # Key of the hash that stands for an address on the suppression list. Separate from
    # SECRET_KEY so that rotating that key does not forget who asked never to be emailed.
    suppression_hash_key: str = field(default="", repr=False)
    # Ask again for cookie consent after this many days.
    consent_max_age_days: int = 365
    # The jurisdiction of a visitor we know nothing about (no account country).
    default_country: str = ""
    # Headers a proxy in front sets to the visitor's country and region (e.g. CloudFront's
    # "CloudFront-Viewer-Country"). Off unless named: anyone can send any header to a site
    # that is reached directly.
    country_header: str = ""
    region_header: str = ""
    # Asking for a link by email (manage marketing without an account, and later requests).
    email_link_rate_limit: str = "5 per hour;20 per day"
    one_click_rate_limit: str = "120 per minute"
    # `json`: one object per line, for a log collector (production's default); `text`: lines
    # for a person at a terminal (development's). Both redact personal data and tokens.
    log_format: str = "text"
    log_level: str = "INFO"

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def suppression_key(self) -> bytes:
        """The suppression-list key; in development, derived from SECRET_KEY."""
        if self.suppression_hash_key:
            return self.suppression_hash_key.encode()
        return hashlib.sha256(b"suppression-list|" + self.secret_key.encode()).digest()

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite:///{self.data_dir / 'privacy-center.sqlite3'}"

    def problems_for_production(self) -> list[str]:
        """Names each setting that is unsafe in production, with what to do about it."""
        problems = []
        if self.secret_key == DEFAULT_SECRET_KEY or len(self.secret_key) < 32:
            problems.append(
                "SECRET_KEY is the development default or shorter than 32 characters: "
                "set a long random value"
            )
        if self.demo_mode:
            problems.append("DEMO_MODE is on: set DEMO_MODE=false (demo accounts are public)")
        if len(self.suppression_hash_key) < 32:
            problems.append(
                "SUPPRESSION_HASH_KEY is unset or shorter than 32 characters: set a long random "
                "value and never change it (the suppression list is keyed by it)"
            )
        if urlparse(self.base_url).scheme != "https":
            problems.append(
                f"BASE_URL must be an https:// address, not {self.base_url!r} (over http the "
                "session cookie is not Secure and emailed links travel unencrypted)"
            )
        return problems

    def deployment_risks(self) -> list[str]:
        """Settings production accepts but that are unsafe or lose something at scale."""
        risks = []
        if not self.is_production:
            risks.append("PRIVACY_CENTER_ENV is not production: the production checks are off")
        if self.sqlalchemy_url.startswith("sqlite"):
            risks.append(
                "the database is SQLite: set DATABASE_URL to PostgreSQL (SQLite serves one "
                "machine and makes web workers wait on each other's writes)"
            )
        if not self.redis_url:
            risks.append(
                "REDIS_URL is unset: rate limits are counted in memory, per worker process "
                "(each gunicorn worker allows the full limit, and a restart forgets them), and "
                "background jobs run inside the web workers"
            )
        elif self.jobs_mode in {"thread", "inline"}:
            risks.append(
                f"JOBS_MODE is {self.jobs_mode}: exports and erasures run inside the web "
                "workers; use rq and run `flask --app wsgi jobs work`"
            )
        if not self.smtp_host:
            risks.append(
                "SMTP_HOST is unset: emails (verification links, export notices) are only "
                "written to the outbox folder, and nobody receives them"
            )
        elif self.smtp_password and not self.smtp_starttls:
            risks.append("SMTP_PASSWORD is sent without SMTP_STARTTLS: set SMTP_STARTTLS=true")
        if not self.rate_limits:
            risks.append(
                "RATE_LIMITS is off: sign-in, emailed links and exports can be tried without limit"
            )
        for name, address in (
            ("MAIL_FROM", self.mail_from),
            ("CONTROLLER_EMAIL", self.controller_email),
        ):
            if re.search(r"@example\.(?:com|org|net)\b", address):
                risks.append(f"{name} is a placeholder address at example.com: set a real one")
        if any(len(key) < 32 for key in self.platform_api_keys):
            risks.append("a key in PLATFORM_API_KEYS is shorter than 32 characters")
        if self.log_format != "json":
            risks.append("LOG_FORMAT is text: log collectors expect LOG_FORMAT=json")
        return risks


def normalise_database_url(url: str) -> str:
    """Accept the common `postgres://` and `postgresql://` spellings and use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def load_settings(
    overrides: dict[str, object] | None = None, *, refuse_unsafe: bool = True
) -> Settings:
    """Read settings from the environment; `overrides` (tests) win over the environment.
    In production, unsafe settings raise ConfigError unless `refuse_unsafe` is False (the
    `check-deploy` command lists them instead)."""
    env = _env_str("PRIVACY_CENTER_ENV", "development")
    if env not in {"development", "production"}:
        raise ConfigError(f"PRIVACY_CENTER_ENV must be development or production, not {env!r}")
    data_dir = Path(_env_str("DATA_DIR", str(PROJECT_ROOT / "instance"))).resolve()
    jobs_mode = _env_str("JOBS_MODE", "rq" if os.environ.get("REDIS_URL") else "thread")
    if jobs_mode not in {"thread", "inline", "queue", "rq"}:
        raise ConfigError(f"JOBS_MODE must be thread, inline, queue or rq, not {jobs_mode!r}")
    values: dict[str, object] = {
        "env": env,
        "secret_key": _env_str("SECRET_KEY", DEFAULT_SECRET_KEY),
        "data_dir": data_dir,
        "database_url": _env_str("DATABASE_URL", ""),
        "redis_url": _env_str("REDIS_URL", ""),
        "base_url": _env_str("BASE_URL", "http://127.0.0.1:5000").rstrip("/"),
        "smtp_host": _env_str("SMTP_HOST", ""),
        "smtp_port": _env_int("SMTP_PORT", 25, minimum=1),
        "smtp_user": _env_str("SMTP_USER", ""),
        "smtp_password": _env_str("SMTP_PASSWORD", ""),
        "smtp_starttls": _env_bool("SMTP_STARTTLS", False),
        "mail_from": _env_str("MAIL_FROM", "Privacy Center <privacy@example.com>"),
        "mail_outbox_dir": Path(_env_str("MAIL_OUTBOX_DIR", str(data_dir / "outbox"))).resolve(),
        "deletion_grace_days": _env_int("DELETION_GRACE_DAYS", 7),
        "export_ttl_days": _env_int("EXPORT_TTL_DAYS", 7, minimum=1),
        "platform_api_keys": _env_list("PLATFORM_API_KEYS"),
        "demo_mode": _env_bool("DEMO_MODE", env != "production"),
        "jobs_mode": jobs_mode,
        "rate_limits": _env_bool("RATE_LIMITS", True),
        "login_rate_limit": _env_str("LOGIN_RATE_LIMIT", "10 per minute;100 per day"),
        "session_idle_minutes": _env_int("SESSION_IDLE_MINUTES", 30, minimum=1),
        "session_absolute_hours": _env_int("SESSION_ABSOLUTE_HOURS", 12, minimum=1),
        "controller_name": _env_str("CONTROLLER_NAME", "GPT Image 2"),
        "controller_email": _env_str("CONTROLLER_EMAIL", "privacy@example.com"),
        "controller_address": _env_str(
            "CONTROLLER_ADDRESS", "1209 Orange St., Wilmington, DE 19801, USA"
        ),
        "dpo_email": _env_str("DPO_EMAIL", ""),
        "api_rate_limit": _env_str("API_RATE_LIMIT", "600 per minute"),
        "export_rate_limit": _env_str("EXPORT_RATE_LIMIT", "5 per hour"),
        "secret_key_fallbacks": _env_list("SECRET_KEY_FALLBACKS"),
        "suppression_hash_key": _env_str("SUPPRESSION_HASH_KEY", ""),
        "consent_max_age_days": _env_int("CONSENT_MAX_AGE_DAYS", 365, minimum=1),
        "default_country": _env_str("DEFAULT_COUNTRY", "").upper(),
        "country_header": _env_str("COUNTRY_HEADER", ""),
        "region_header": _env_str("REGION_HEADER", ""),
        "email_link_rate_limit": _env_str("EMAIL_LINK_RATE_LIMIT", "5 per hour;20 per day"),
        "one_click_rate_limit": _env_str("ONE_CLICK_RATE_LIMIT", "120 per minute"),
        "log_format": _env_choice("LOG_FORMAT", "json" if env == "production" else "text"),
        "log_level": _env_choice("LOG_LEVEL", "INFO"),
    }
    known = {f.name for f in fields(Settings)}
    path_fields = {f.name for f in fields(Settings) if f.type in {"Path", Path}}
    for key, value in (overrides or {}).items():
        if key not in known:
            raise ConfigError(f"unknown setting {key!r}")
        values[key] = Path(value).resolve() if key in path_fields else value
    overrides = overrides or {}
    if (
        "data_dir" in overrides
        and "mail_outbox_dir" not in overrides
        and not os.environ.get("MAIL_OUTBOX_DIR")
    ):
        values["mail_outbox_dir"] = Path(str(values["data_dir"])) / "outbox"
    settings = Settings(**values)  # type: ignore[arg-type]
    if settings.is_production and refuse_unsafe:
        problems = settings.problems_for_production()
        if problems:
            raise ConfigError("refusing to start in production: " + "; ".join(problems) + ".")
    return settings
