"""The test harness for the unit and integration suites (the e2e suite has its own).

- `database_url` runs every test that uses the app twice: on SQLite, and on PostgreSQL when
  a server is reachable (TEST_DATABASE_URL, else postgres@127.0.0.1:5432). Each backend gets a
  throwaway database migrated once with the real migrations; rows are deleted after each test.
- `app` is built by `create_app` with explicit settings for every field, so nothing in the
  developer's environment (DATABASE_URL, SMTP_HOST, ...) leaks in. Mark a test with
  `@pytest.mark.app_settings(rate_limits=True, ...)` to change some; `make_app` builds more.
- CSRF stays on: `tests.support.web` fills the real forms (`login`, `post_form`, `csrf_token`).
- `smtp_server` is a real SMTP server (aiosmtpd); `redis_url` a Redis database, skipped when
  no Redis answers.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import signal
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from app import create_app
from app.config import Settings
from app.extensions import db
from app.models import User
from app.services.auth import hash_password
from tests.support.databases import (
    UnreachableError,
    create_postgres_database,
    delete_all_rows,
    dispose_engines,
    drop_postgres_database,
    migrate,
    postgres_server_url,
    sqlite_url,
)
from tests.support.i18n import compile_catalogs, load_translations
from tests.support.mailbox import SMTPServer

DEFAULT_PASSWORD = "correct horse battery staple"
GERMAN_MISSING = (
    "translations/de/LC_MESSAGES/messages.po does not exist yet, so German wording is not checked"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "app_settings(**overrides): settings the `app` fixture uses for this test"
    )


# --- settings and databases -------------------------------------------------------------------


def settings_for_tests(database_url: str, data_dir: Path, /, **overrides: Any) -> dict[str, Any]:
    """Every setting given explicitly: the defaults, made safe and local for tests."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(Settings):
        if field.default is not dataclasses.MISSING:
            values[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            values[field.name] = field.default_factory()
    values.update(
        env="development",
        data_dir=data_dir,
        mail_outbox_dir=data_dir / "outbox",
        database_url=database_url,
        redis_url="",
        smtp_host="",
        demo_mode=True,
        jobs_mode="inline",
        rate_limits=False,
    )
    values.update(overrides)
    return values


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated, empty database for this run, on each backend in turn."""
    workdir = tmp_path_factory.mktemp(request.param)
    if request.param == "sqlite":
        url = sqlite_url(workdir / "test.sqlite3")
    else:
        try:
            url = create_postgres_database(postgres_server_url())
        except UnreachableError as exc:
            pytest.skip(f"PostgreSQL not reachable ({exc})")
    try:
        bootstrap = create_app(settings_for_tests(url, workdir / "data"))
        try:
            migrate(bootstrap)
        finally:
            dispose_engines(bootstrap)
        yield url
    finally:
        if request.param == "postgresql":
            drop_postgres_database(url, postgres_server_url())


@pytest.fixture(scope="session")
def _cleanup_engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def _catalog_problem() -> str | None:
    """Compile the catalogs once per run; what went wrong, if anything."""
    try:
        compile_catalogs()
    except Exception as exc:  # a broken .po fails the German checks, not the whole suite
        return f"the translation catalogs do not compile: {exc}"
    return None


@pytest.fixture(scope="session")
def german_catalog(_catalog_problem: str | None) -> Any:
    """The compiled German catalog, or None while there is none."""
    return load_translations("de")


@pytest.fixture
def german(german_catalog: Any, _catalog_problem: str | None) -> Callable[[str], str]:
    """`german("Sign in")`: the catalog's German for a message; skips the rest of the test
    while there is no German catalog, and fails if the message is not translated."""

    def translate(msgid: str) -> str:
        if _catalog_problem:
            pytest.fail(_catalog_problem)
        if german_catalog is None:
            pytest.skip(GERMAN_MISSING)
        translated = german_catalog.gettext(msgid)
        assert translated != msgid, f"the German catalog does not translate {msgid!r}"
        return translated

    return translate


# --- the app ----------------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def make_app(
    database_url: str, data_dir: Path, _cleanup_engine: Engine, german_catalog: Any
) -> Iterator[Callable[..., Flask]]:
    """`make_app(**settings)`: a configured app on this test's database and data folder."""
    apps: list[Flask] = []

    def _make(**overrides: Any) -> Flask:
        app = create_app(settings_for_tests(database_url, data_dir, **overrides))
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield _make
    for app in apps:
        dispose_engines(app)
    delete_all_rows(_cleanup_engine)


@pytest.fixture
def app(request: pytest.FixtureRequest, make_app: Callable[..., Flask]) -> Flask:
    overrides: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers("app_settings"))):
        overrides.update(marker.kwargs)
    return make_app(**overrides)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@cache
def password_hash(password: str) -> str:
    # Argon2 is slow on purpose; one hash per distinct password keeps the suite fast.
    return hash_password(password)


@pytest.fixture
def make_user(app: Flask) -> Callable[..., User]:
    """`make_user(email=..., password=..., locale=..., **columns)`: a committed account.

    Returns the detached row with its columns loaded and the plain `password` attached.
    """
    numbers = itertools.count(1)

    def _make(
        email: str | None = None,
        password: str = DEFAULT_PASSWORD,
        locale: str = "en",
        **fields: Any,
    ) -> User:
        with app.app_context():
            user = User(
                email=email or f"person{next(numbers)}@example.com",
                password_hash=password_hash(password),
                locale=locale,
                **fields,
            )
            db.session.add(user)
            db.session.commit()
            db.session.refresh(user)
            db.session.expunge(user)
        user.password = password  # type: ignore[attr-defined]
        return user

    return _make


@pytest.fixture
def user(make_user: Callable[..., User]) -> User:
    return make_user(email="ann@example.com", name="Ann Example")


# --- mail and Redis ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _smtp() -> Iterator[SMTPServer]:
    server = SMTPServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtp_server(_smtp: SMTPServer) -> SMTPServer:
    """The SMTP server, emptied for this test: `.messages`, `.wait_for(n)`, `.host`, `.port`."""
    _smtp.mailbox.clear()
    return _smtp


@pytest.fixture
def smtp_app(make_app: Callable[..., Flask], smtp_server: SMTPServer) -> Flask:
    return make_app(smtp_host=smtp_server.host, smtp_port=smtp_server.port)


def _database_per_xdist_worker(url: str) -> str:
    """Under pytest-xdist each worker flushes its own Redis database, never another's."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    offset = int(worker[2:]) if worker[2:].isdigit() else 0
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(base + offset) % 16}"))


@pytest.fixture(scope="session")
def _redis_server() -> str:
    from redis import Redis
    from redis.exceptions import RedisError

    url = _database_per_xdist_worker(
        os.environ.get("TEST_REDIS_URL")
        or os.environ.get("REDIS_URL")
        or "redis://127.0.0.1:6379/13"
    )
    connection = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        connection.ping()
    except RedisError as exc:
        pytest.skip(f"Redis not reachable at {url} ({exc})")
    finally:
        connection.close()
    return url


@pytest.fixture
def restore_signals() -> Iterator[None]:
    # An RQ worker takes over SIGINT/SIGTERM; give them back so Ctrl-C still stops pytest.
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture
def redis_url(_redis_server: str) -> Iterator[str]:
    """A Redis database emptied before and after the test."""
    from redis import Redis

    connection = Redis.from_url(_redis_server)
    connection.flushdb()
    yield _redis_server
    connection.flushdb()
    connection.close()
