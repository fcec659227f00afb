"""Time `seed_demo(heavy=N)`: how long building the heavy benchmark account takes.

    .venv/bin/python bench/seed_heavy.py 50000
    DATABASE_URL=postgresql://postgres@127.0.0.1/pc_seed_bench \
        .venv/bin/python bench/seed_heavy.py 50000

Runs against a fresh SQLite file in a temporary directory, or against DATABASE_URL when it is
set (use a throwaway database: the schema is migrated into it and the demo accounts are added).
The ordinary demo accounts are seeded first and timed separately, so the heavy figure measures
only the heavy account.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prompts", type=int, help="N: prompts for heavy@example.com")
    args = parser.parse_args()

    from sqlalchemy import func, select

    from app import create_app
    from app.extensions import db
    from app.migrations_cli import upgrade_database
    from app.services.auth import find_user_by_email
    from app.services.demo import HEAVY

    with tempfile.TemporaryDirectory(prefix="seed-bench-") as data_dir:
        database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{data_dir}/bench.sqlite3"
        app = create_app(
            {"data_dir": Path(data_dir), "database_url": database_url, "jobs_mode": "inline"}
        )
        with app.app_context():
            from app.services.demo import seed_demo

            upgrade_database()
            if find_user_by_email(HEAVY.email) is not None:
                print(f"{HEAVY.email} already exists in this database: use a fresh one")
                return 1

            started = time.perf_counter()
            seed_demo(echo=lambda _line: None)
            print(f"ordinary demo accounts: {time.perf_counter() - started:.1f} s")

            started = time.perf_counter()
            report = seed_demo(heavy=args.prompts, echo=lambda _line: None)
            seconds = time.perf_counter() - started

            heavy = find_user_by_email(HEAVY.email)
            assert heavy is not None
            rows = 1 + sum(
                db.session.scalar(
                    select(func.count()).select_from(table).where(table.c.user_id == heavy.id)
                )
                or 0
                for table in db.metadata.sorted_tables
                if "user_id" in table.c
            )
            files = sum(1 for path in Path(data_dir, "media").rglob("*") if path.is_file())
            print(report.splitlines()[-1])
            print(
                f"heavy N={args.prompts} on {db.engine.dialect.name}: {seconds:.1f} s, "
                f"{rows} rows ({rows / seconds:,.0f} rows/s), {files} media files in total"
            )
            db.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
