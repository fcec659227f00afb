"""Throwaway test databases: created per run, migrated with the real migrations, dropped after."""

from __future__ import annotations

import logging.config
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from app.config import PROJECT_ROOT, normalise_database_url

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
MIGRATIONS = PROJECT_ROOT / "migrations"


class UnreachableError(RuntimeError):
    pass


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def postgres_server_url() -> str:
    """The server to make throwaway databases on: TEST_DATABASE_URL, else the local default."""
    return normalise_database_url(os.environ.get("TEST_DATABASE_URL") or DEFAULT_POSTGRES_URL)


def _admin_engine(server_url: str) -> Engine:
    return create_engine(
        server_url,
        isolation_level="AUTOCOMMIT",  # CREATE/DROP DATABASE cannot run in a transaction
        connect_args={"connect_timeout": 2},
        poolclass=NullPool,
    )


def create_postgres_database(server_url: str) -> str:
    """A new empty database on the server; its URL. UnreachableError if no server answers."""
    name = f"pc_test_{secrets.token_hex(6)}"
    engine = _admin_engine(server_url)
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        raise UnreachableError(str(exc).splitlines()[0]) from exc
    finally:
        engine.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str, server_url: str) -> None:
    """Drop a database made by `create_postgres_database`, whoever is still connected to it."""
    name = make_url(url).database
    assert name and name.startswith("pc_test_"), f"refusing to drop {name!r}"
    engine = _admin_engine(server_url)
    try:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


@contextmanager
def quiet_alembic_logging() -> Iterator[None]:
    """Alembic's env.py calls logging.config.fileConfig, which is right for the `flask db`
    command but, in-process, disables every logger that already exists (the app's included)
    and replaces pytest's handlers. Tests run the migrations without it."""
    with mock.patch.object(logging.config, "fileConfig", lambda *args, **kwargs: None):
        yield


def migrate(app: Any) -> None:
    from app.extensions import db
    from app.migrations_cli import upgrade_database

    with app.app_context(), quiet_alembic_logging():
        upgrade_database()
        db.session.remove()


def dispose_engines(app: Any) -> None:
    from app.extensions import db

    with app.app_context():
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()


def delete_all_rows(engine: Engine) -> None:
    """Empty every table, children first; much cheaper than migrating a database per test."""
    from app.extensions import db

    with engine.begin() as connection:
        for table in reversed(db.metadata.sorted_tables):
            connection.execute(table.delete())
