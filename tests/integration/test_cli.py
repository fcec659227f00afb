"""The `flask --app wsgi ...` commands an operator runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import create_engine, inspect, text

from app.extensions import db
from tests.support.databases import (
    MIGRATIONS,
    create_postgres_database,
    drop_postgres_database,
    postgres_server_url,
    quiet_alembic_logging,
    sqlite_url,
)


@pytest.fixture
def empty_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A database with nothing in it yet, on the same backend as this test run."""
    if database_url.startswith("sqlite"):
        yield sqlite_url(tmp_path / "empty.sqlite3")
        return
    url = create_postgres_database(postgres_server_url())
    try:
        yield url
    finally:
        drop_postgres_database(url, postgres_server_url())


def _head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()  # type: ignore[return-value]


def test_db_upgrade_is_idempotent(empty_database_url: str, make_app: Callable[..., Flask]) -> None:
    app = make_app(database_url=empty_database_url)
    runner = app.test_cli_runner()
    with quiet_alembic_logging():
        first = runner.invoke(args=["db", "upgrade"])
        second = runner.invoke(args=["db", "upgrade"])
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output

    engine = create_engine(empty_database_url)
    try:
        tables = set(inspect(engine).get_table_names())
        with engine.connect() as connection:
            versions = (
                connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
            )
    finally:
        engine.dispose()
    assert {table.name for table in db.metadata.sorted_tables} <= tables
    assert versions == [_head_revision()]


# SQLite cannot reflect the lower(email) index, so there Alembic skips comparing it (and says so).
@pytest.mark.filterwarnings(
    "ignore:Skipped unsupported reflection of expression-based index:sqlalchemy.exc.SAWarning",
    "ignore:autogenerate skipping metadata-specified expression-based index:UserWarning",
)
def test_migrations_match_the_models(app: Flask) -> None:
    """No model change is missing a migration (the app and tests use the migrated schema)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"render_as_batch": True})
        differences = compare_metadata(context, db.metadata)
    assert differences == [], f"models and migrations differ: {differences}"


@pytest.mark.parametrize(
    ("command", "mentions"),
    [
        (["demo", "seed", "--help"], "--heavy"),
        (["jobs", "work", "--help"], "--burst"),
        (["requests", "process-due", "--help"], "sweeper"),
        (["db", "upgrade", "--help"], "Upgrade"),
        (["--help"], "demo"),
    ],
)
def test_commands_explain_themselves(
    runner: FlaskCliRunner, command: list[str], mentions: str
) -> None:
    result = runner.invoke(args=command)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert mentions in result.output


@pytest.mark.app_settings(demo_mode=False)
def test_demo_seed_refuses_outside_demo_mode(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["demo", "seed"])
    assert result.exit_code != 0
    assert "demo mode" in result.output
