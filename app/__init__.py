"""Application factory."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.config import PROJECT_ROOT, Settings, load_settings
from app.extensions import babel, csrf, db, htmx, limiter, login_manager
from app.logs import configure_logging, install_request_logging

log = logging.getLogger(__name__)


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the app from the environment; `overrides` replace settings (tests use it)."""
    settings = load_settings(overrides)
    # Before Flask's own logger exists, so it does not add a handler of its own.
    configure_logging(settings.log_format, settings.log_level)
    app = Flask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    _configure(app, settings)
    _init_extensions(app, settings)

    from app.datamap import get_datamap  # noqa: PLC0415 -- needs the models registered

    app.extensions["datamap"] = get_datamap()  # fails start-up with the bad entry named

    from app import cli, jobs  # noqa: PLC0415
    from app.web import register_web  # noqa: PLC0415

    jobs.install(app)
    install_request_logging(app)  # first, so its timing and request id cover every hook
    register_web(app)
    cli.register(app)
    return app


def _configure(app: Flask, settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app.config.update(
        SETTINGS=settings,
        SECRET_KEY=settings.secret_key,
        SECRET_KEY_FALLBACKS=list(settings.secret_key_fallbacks),
        SQLALCHEMY_DATABASE_URI=settings.sqlalchemy_url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings),
        MAX_CONTENT_LENGTH=settings.max_content_length,
        SESSION_COOKIE_NAME="pc_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=settings.session_absolute_hours * 60 * 60,
        REMEMBER_COOKIE_DURATION=0,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session does
        WTF_CSRF_SSL_STRICT=False,  # Referer is never sent (Referrer-Policy: no-referrer)
        BABEL_DEFAULT_LOCALE="en",
        BABEL_DEFAULT_TIMEZONE="UTC",
        BABEL_TRANSLATION_DIRECTORIES=str(PROJECT_ROOT / "translations"),
        RATELIMIT_STORAGE_URI=settings.redis_url or "memory://",
        RATELIMIT_ENABLED=settings.rate_limits,
        RATELIMIT_HEADERS_ENABLED=True,
        PREFERRED_URL_SCHEME="https" if settings.base_url.startswith("https://") else "http",
    )
    if settings.base_url.startswith("https://"):
        app.config["SESSION_COOKIE_NAME"] = "__Host-pc_session"


def _engine_options(settings: Settings) -> dict[str, Any]:
    if settings.sqlalchemy_url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 10}


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    # WAL lets pages read while a background job writes; foreign keys make cascades real.
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


def _init_extensions(app: Flask, settings: Settings) -> None:
    db.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)

    from app.web.i18n import select_locale  # noqa: PLC0415

    babel.init_app(app, locale_selector=select_locale)
