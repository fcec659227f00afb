"""Time erasing the heavy demo user: the sweeper's `requests process-due` in its own process.

    .venv/bin/python bench/erasure.py                       # --heavy 5000 and 50000 on SQLite
    .venv/bin/python bench/erasure.py --sizes 50000
    .venv/bin/python bench/erasure.py --database-url postgresql://postgres@127.0.0.1/postgres

For each size, a fresh data folder and database get the demo accounts and `heavy@example.com`
with N prompts (N/10 images on disk), as bench/export.py seeds them. heavy@ then asks for its
account to be deleted and confirms the emailed link; a first `flask --app wsgi requests
process-due` runs while the cooling-off period lasts (the idle sweep: start-up, the emails
waiting to go, nothing to erase), then the cooling-off is moved into the past, as if the week
had gone by, and a second `process-due` erases the account. Both run with JOBS_MODE=inline,
so the media jobs the erasure records remove the image files in that same process.

Reported: the wall time of each process; the erasure's own time, from its recorded steps
(first step started to last step done), and the part of it spent removing image files (the
media jobs the steps recorded, from their own records), beside the floor for that part (a
plain loop unlinking as many files of the same size, laid out the same way); the rows deleted
and the rows kept without the account (invoices, earlier requests), from the steps' counts;
the image files removed from disk; and each process's peak RSS (VmHWM, its own high-water
mark: `ru_maxrss` would include the parent's, which Linux carries over at exec).

With --database-url, a throwaway database is created on that server for each size and dropped
afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from heavy import bench_app, heavy_data, status_kib
from serving import PROJECT

HEAVY_EMAIL = "heavy@example.com"
CONFIRM_LINK = re.compile(r"/requests/confirm/([A-Za-z0-9_.\-]+)")


# --- the child: the sweeper, as cron runs it --------------------------------------------------


def child() -> int:
    """`flask --app wsgi requests process-due`, then this process's peak RSS on a last line."""
    from flask.cli import main as flask_main

    sys.argv = ["flask", "--app", "wsgi", "requests", "process-due"]
    try:
        flask_main()
    finally:
        print(json.dumps({"peak_kib": status_kib("VmHWM")}), flush=True)
    return 0


def _sweep(data_dir: Path, database_url: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "PRIVACY_CENTER_ENV": "development",
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "JOBS_MODE": "inline",
        "SMTP_HOST": "",
        "REDIS_URL": "",
    }
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child"],
        cwd=PROJECT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    lines = done.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    erased = next(line for line in lines if "account erasure(s)" in line)
    return {"seconds": seconds, "peak_kib": report["peak_kib"], "erased": erased}


# --- the parent -------------------------------------------------------------------------------


def _files(media_dir: Path) -> tuple[int, int]:
    """How many files the media folder holds, and their bytes."""
    sizes = [path.stat().st_size for path in media_dir.rglob("*") if path.is_file()]
    return len(sizes), sum(sizes)


def _unlink_floor(work: Path, count: int, size: int) -> float:
    """Seconds a plain loop of `Path.unlink` takes for `count` files of `size` bytes laid
    out as the media store lays them out (written and synced first, then removed)."""
    import secrets

    folder = work / "floor"
    data = os.urandom(size)
    paths = []
    for _ in range(count):
        name = secrets.token_hex(16)
        path = folder / name[:2] / name[2:4] / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    os.sync()
    started = time.perf_counter()
    for path in paths:
        path.unlink()
    seconds = time.perf_counter() - started
    shutil.rmtree(folder)
    return seconds


def _request_deletion(data_dir: Path, database_url: str, user_id: int) -> int:
    """heavy@ asks for the deletion and follows the link in the email (not sent yet: the
    parent only records jobs, so the link is read from the recorded message)."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import OutboundMail, User
    from app.services import requests as service

    app = bench_app(data_dir, database_url)
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None
        request_id = service.create_for_user(user, "delete_account").id
        body = db.session.scalar(
            select(OutboundMail.text_body).where(OutboundMail.template == "request_verify")
        )
        match = CONFIRM_LINK.search(body or "")
        assert match is not None, "no confirmation link in the recorded email"
        service.confirm(match.group(1))
        db.session.remove()
        db.engine.dispose()
    return request_id


def _end_cooling_off(data_dir: Path, database_url: str, request_id: int) -> None:
    from sqlalchemy import update

    from app.extensions import db
    from app.models import DataRequest, utcnow

    app = bench_app(data_dir, database_url)
    with app.app_context():
        db.session.execute(
            update(DataRequest)
            .where(DataRequest.id == request_id, DataRequest.status == DataRequest.WAITING)
            .values(cooling_off_until=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


def _outcome(data_dir: Path, database_url: str, request_id: int) -> dict[str, Any]:
    """What the erasure recorded: rows deleted and kept, its duration and the part of it
    spent removing files (the media jobs its steps recorded, run inline after each step)."""
    from sqlalchemy import select

    from app.datamap import get_datamap
    from app.extensions import db
    from app.models import DataRequest, ErasureStep, Job, RequestEvent, User
    from app.services.deletion import MEDIA_DELETE_JOB

    app = bench_app(data_dir, database_url)
    with app.app_context():
        data_request = db.session.get(DataRequest, request_id)
        assert data_request is not None
        assert data_request.status == DataRequest.DONE, data_request.status
        assert db.session.scalar(select(User.id).where(User.email == HEAVY_EMAIL)) is None
        started = db.session.scalar(
            select(RequestEvent.created_at).where(
                RequestEvent.request_id == request_id, RequestEvent.kind == "erasure_started"
            )
        )
        steps = list(
            db.session.execute(
                select(ErasureStep.step, ErasureStep.done_at, ErasureStep.counts)
                .where(ErasureStep.request_id == request_id)
                .order_by(ErasureStep.id)
            )
        )
        rules = {c.key: c.erasure.rule for c in get_datamap().categories}
        deleted = kept = 0
        for step, _done_at, counts in steps:
            if not (step.startswith("category:") or step == "address"):
                continue  # lock_out, suppress and exports count other things
            for key, number in counts.items():
                if not isinstance(number, int):
                    continue
                if rules.get(key, "delete") == "delete":
                    deleted += number
                else:
                    kept += number
        assert started is not None
        erasure_seconds = (steps[-1][1] - started).total_seconds()
        file_jobs = db.session.execute(
            select(Job.locked_at, Job.finished_at).where(
                Job.kind == MEDIA_DELETE_JOB, Job.created_at >= started
            )
        ).all()
        assert all(finished for _locked, finished in file_jobs), "a media job did not finish"
        file_seconds = sum((finished - locked).total_seconds() for locked, finished in file_jobs)
        db.session.remove()
        db.engine.dispose()
    return {
        "deleted": deleted,
        "kept": kept,
        "erasure_seconds": erasure_seconds,
        "file_seconds": file_seconds,
    }


def bench_size(prompts: int, server_url: str | None) -> dict[str, Any]:
    with heavy_data(prompts, server_url, "erasure-bench") as data:
        work, database_url = data.work, data.database_url
        user_id = data.user_id
        media_dir = work / "media"
        files_before, bytes_before = _files(media_dir)

        request_id = _request_deletion(work, database_url, user_id)
        idle = _sweep(work, database_url)
        assert idle["erased"].startswith("ran 0 "), idle["erased"]
        _end_cooling_off(work, database_url, request_id)
        sweep = _sweep(work, database_url)
        assert sweep["erased"].startswith("ran 1 "), sweep["erased"]

        outcome = _outcome(work, database_url, request_id)
        files_after, bytes_after = _files(media_dir)
        removed = files_before - files_after
        floor = _unlink_floor(work, removed, (bytes_before - bytes_after) // max(removed, 1))
        print(
            f"  erased in {sweep['seconds']:.2f} s (erasure {outcome['erasure_seconds']:.2f} s), "
            f"{outcome['deleted']:,} rows and {removed:,} files deleted, "
            f"peak RSS {sweep['peak_kib'] / 1024:.0f} MiB",
            flush=True,
        )
        return {
            "prompts": prompts,
            "files_removed": removed,
            "files_before": files_before,
            "sweep_seconds": sweep["seconds"],
            "idle_seconds": idle["seconds"],
            "peak_mib": sweep["peak_kib"] / 1024,
            "idle_peak_mib": idle["peak_kib"] / 1024,
            "floor_seconds": floor,
            **outcome,
        }


def _print_table(results: list[dict[str, Any]], backend: str) -> None:
    print()
    print(f"Erasure of heavy@example.com on {backend} (`requests process-due`, JOBS_MODE=inline)")
    print(
        "| prompts | rows deleted (kept) | files removed | process s (idle sweep) "
        "| erasure s (removing files) | unlink floor s | peak RSS MiB (idle sweep) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['prompts']:,} | {r['deleted']:,} ({r['kept']:,}) "
            f"| {r['files_removed']:,} of {r['files_before']:,} "
            f"| {r['sweep_seconds']:.2f} ({r['idle_seconds']:.2f}) "
            f"| {r['erasure_seconds']:.2f} ({r['file_seconds']:.2f}) "
            f"| {r['floor_seconds']:.2f} "
            f"| {r['peak_mib']:.0f} ({r['idle_peak_mib']:.0f}) |"
        )


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_sizes, default=[5000, 50000], help="e.g. 5000,50000")
    parser.add_argument("--database-url", default="", help="a PostgreSQL server to use")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        return child()

    os.environ.setdefault("PRIVACY_CENTER_ENV", "development")
    results = []
    for prompts in args.sizes:
        print(f"heavy N={prompts}", flush=True)
        results.append(bench_size(prompts, args.database_url or None))
    _print_table(results, "PostgreSQL" if args.database_url else "SQLite")
    return 0


if __name__ == "__main__":
    sys.exit(main())
