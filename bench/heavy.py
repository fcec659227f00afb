"""The heavy demo user in a throwaway data folder, shared by the benchmarks that need one."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def bench_app(data_dir: Path, database_url: str) -> Flask:
    from app import create_app

    return create_app(
        {
            "data_dir": data_dir,
            "database_url": database_url,
            "jobs_mode": "queue",
            "rate_limits": False,
        }
    )


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def seed_heavy(data_dir: Path, database_url: str, prompts: int) -> tuple[int, int]:
    """Seed the demo accounts and the heavy one; (heavy's id, the second demo account's id)."""
    from app.extensions import db
    from app.migrations_cli import upgrade_database
    from app.services.auth import find_user_by_email
    from app.services.demo import DEMO2, HEAVY, seed_demo

    app = bench_app(data_dir, database_url)
    with app.app_context():
        upgrade_database()
        seed_demo(heavy=prompts, echo=lambda _line: None)
        user, small = find_user_by_email(HEAVY.email), find_user_by_email(DEMO2.email)
        assert user is not None
        assert small is not None
        ids = (user.id, small.id)
        db.session.remove()
        db.engine.dispose()
    return ids


def postgres_database(server_url: str) -> str:
    """A throwaway database on that server (the caller drops it)."""
    from tests.support.databases import create_postgres_database

    return create_postgres_database(server_url)


@dataclass(frozen=True)
class HeavyData:
    work: Path  # the data folder (DATA_DIR): database file, media, exports
    database_url: str
    user_id: int  # heavy@
    small_user_id: int  # demo2@


@contextmanager
def heavy_data(prompts: int, server_url: str | None, prefix: str) -> Iterator[HeavyData]:
    """A fresh data folder (and, with `server_url`, a PostgreSQL database on that server)
    seeded with the demo accounts and heavy@ with `prompts` prompts; removed afterwards."""
    from app.config import normalise_database_url

    work = Path(tempfile.mkdtemp(prefix=f"{prefix}-{prompts}-"))
    database_url = f"sqlite:///{work}/bench.sqlite3"
    if server_url:
        database_url = postgres_database(normalise_database_url(server_url))
    try:
        started = time.perf_counter()
        user_id, small_user_id = seed_heavy(work, database_url, prompts)
        print(f"  seeded heavy N={prompts} in {time.perf_counter() - started:.1f} s", flush=True)
        yield HeavyData(work, database_url, user_id, small_user_id)
    finally:
        if server_url:
            from tests.support.databases import drop_postgres_database

            drop_postgres_database(database_url, normalise_database_url(server_url))
        shutil.rmtree(work, ignore_errors=True)
