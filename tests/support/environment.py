"""The environment variables the app reads (see app/config.py)."""

from __future__ import annotations

import pytest

SETTINGS_ENV = (
    "PRIVACY_CENTER_ENV", "SECRET_KEY", "DATA_DIR", "DATABASE_URL", "REDIS_URL", "BASE_URL",
    "SMTP_HOST", "SMTP_PORT", "SMTP_USER", "SMTP_PASSWORD", "SMTP_STARTTLS", "MAIL_FROM",
    "MAIL_OUTBOX_DIR", "DELETION_GRACE_DAYS", "EXPORT_TTL_DAYS", "PLATFORM_API_KEYS", "DEMO_MODE",
    "JOBS_MODE", "RATE_LIMITS", "LOGIN_RATE_LIMIT", "CONTROLLER_NAME", "CONTROLLER_EMAIL",
    "CONTROLLER_ADDRESS", "DPO_EMAIL", "API_RATE_LIMIT", "EXPORT_RATE_LIMIT",
    "COUNTRY_HEADER", "REGION_HEADER", "SESSION_IDLE_MINUTES", "SESSION_ABSOLUTE_HOURS",
    "SECRET_KEY_FALLBACKS", "SUPPRESSION_HASH_KEY", "CONSENT_MAX_AGE_DAYS", "DEFAULT_COUNTRY",
    "EMAIL_LINK_RATE_LIMIT", "ONE_CLICK_RATE_LIMIT", "LOG_FORMAT", "LOG_LEVEL",
)  # fmt: skip


def clear_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset every variable the app reads, whatever the developer's shell has exported."""
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
