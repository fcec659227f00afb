"""The `flask --app wsgi ...` commands an operator runs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import create_engine, inspect, text

from app.config import PROJECT_ROOT
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
SQLITE_EXPRESSION_INDEX_WARNINGS = (
    "ignore:Skipped unsupported reflection of expression-based index:sqlalchemy.exc.SAWarning",
    "ignore:autogenerate skipping metadata-specified expression-based index:UserWarning",
)


@pytest.mark.filterwarnings(*SQLITE_EXPRESSION_INDEX_WARNINGS)
def test_db_commands_migrate_check_and_report(
    empty_database_url: str, make_app: Callable[..., Flask]
) -> None:
    app = make_app(database_url=empty_database_url)
    runner = app.test_cli_runner()
    head = _head_revision()
    with quiet_alembic_logging():
        upgraded = runner.invoke(args=["db", "upgrade"])
        checked = runner.invoke(args=["db", "check"])
        current = runner.invoke(args=["db", "current"])
        history = runner.invoke(args=["db", "history"])
        downgraded = runner.invoke(args=["db", "downgrade", "0003_exports"])
        behind = runner.invoke(args=["db", "check"])
        current_behind = runner.invoke(args=["db", "current"])
        reupgraded = runner.invoke(args=["db", "upgrade"])
        unknown = runner.invoke(args=["db", "downgrade", "no_such_revision"])

    for result in (upgraded, checked, current, history, downgraded, current_behind, reupgraded):
        assert result.exit_code == 0, result.output
    engine = create_engine(empty_database_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {table.name for table in db.metadata.sorted_tables} <= tables
    assert "No new upgrade operations detected" in checked.output
    assert f"{head} (head)" in current.output
    assert f"-> {head} (head)" in history.output
    assert behind.exit_code == 1
    assert "not up to date" in behind.output
    assert current_behind.output.strip() == "0003_exports"
    assert unknown.exit_code == 1
    assert "no_such_revision" in unknown.output


def _settings_environment(tmp_path: Path) -> dict[str, str]:
    """The environment for a child process: local, on a throwaway SQLite database."""
    return {
        **os.environ,
        "PRIVACY_CENTER_ENV": "development",
        "DATA_DIR": str(tmp_path / "data"),
        "MAIL_OUTBOX_DIR": str(tmp_path / "data" / "outbox"),
        "DATABASE_URL": sqlite_url(tmp_path / "child.sqlite3"),
        "REDIS_URL": "",
        "JOBS_MODE": "inline",
    }


def test_the_app_does_not_import_alembic(tmp_path: Path) -> None:
    """Web workers, job workers and export builds never migrate: Alembic would cost each
    about 11 MiB of memory, so only the `db` commands import it."""
    script = (
        "import sys\n"
        "from app import create_app\n"
        f"app = create_app({{'data_dir': {str(tmp_path / 'data')!r}, "
        f"'database_url': {sqlite_url(tmp_path / 'app.sqlite3')!r}}})\n"
        "help = app.test_cli_runner().invoke(args=['jobs', 'work', '--help'])\n"
        "assert help.exit_code == 0 and '--burst' in help.output, help.output\n"
        "print('alembic' in sys.modules, 'mako' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        env=_settings_environment(tmp_path),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_flask_commands_other_than_db_do_not_import_alembic(tmp_path: Path) -> None:
    """`flask ... jobs work` loads every command group (and the `flask.commands` entry points
    of installed packages), so no group may import Alembic until its command runs."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "flask", "--app", "wsgi", "jobs", "--help"],
        cwd=PROJECT_ROOT,
        env=_settings_environment(tmp_path),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "work" in result.stdout
    # -X importtime writes "import time: self | cumulative | module" for each module imported.
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "flask.cli" in imported and "wsgi" in imported
    assert not [name for name in imported if name.split(".")[0] in {"alembic", "mako"}]


@pytest.mark.filterwarnings(*SQLITE_EXPRESSION_INDEX_WARNINGS)
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
