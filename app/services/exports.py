"""Data exports (right of access, right to data portability): requested, built, expired.

A request is an `Export` row, its build job and an audit event, committed together by the
caller. The job (`exports.build`) writes the archive to a temporary file named after the
export, and only when the archive is complete, flushed and hashed does it move it to a random
final name and mark the row READY, in one transaction with its audit event and the email.
The download serves READY rows only, so a crash at any point leaves nothing half-built that
could be downloaded: the next attempt (a retry, or the sweeper picking up a job whose worker
died) deletes the leftovers and starts over.

Files live in `DATA_DIR/exports/` (final archives) and `DATA_DIR/exports/tmp/` (builds in
progress). `expire_due_exports` (run by the sweeper) deletes archives past their expiry, and
temporary or orphaned files older than a day.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import func, literal, select, union_all, update

from app.datamap import Category, get_datamap
from app.extensions import db
from app.jobs import job_handler, record_job
from app.models import Export, Job, User, utcnow
from app.services import archive
from app.services.audit import record_event

log = logging.getLogger(__name__)

BUILD_JOB = "exports.build"
STALE_FILE_AGE = timedelta(days=1)
PROGRESS_INTERVAL_SECONDS = 2.0
PROGRESS_INTERVAL_ITEMS = 5000
# Rough bytes one record adds to the archive (its JSON and CSV lines, compressed), for the
# size estimate shown before a request; measured on the demo data (see README).
BYTES_PER_RECORD = 120
ARCHIVE_OVERHEAD_BYTES = 20_000  # index.html, manifest.json, zip directory


class ExportInProgressError(Exception):
    """The person already has an export queued or building: one at a time."""


class UnknownCategoryError(ValueError):
    """A category key that is not in the data map, or not one that goes into an export."""


@dataclass(frozen=True)
class ExportEstimate:
    counts: dict[str, int]  # records per category key, in data-map order
    media_files: int
    approx_bytes: int

    @property
    def records(self) -> int:
        return sum(self.counts.values())


# --- what goes into an export -----------------------------------------------------------------


def exportable_categories() -> list[Category]:
    """The data-map categories with a data file in the archive (those held in the database).

    Browser-only categories (cookies) are described in the archive's index.html instead.
    """
    return [c for c in get_datamap().database_categories if c.time_column]


def resolve_categories(keys: Sequence[str]) -> list[Category]:
    """The categories for `keys`, in data-map order; every exportable one when `keys` is empty."""
    available = exportable_categories()
    if not keys:
        return available
    known = {c.key for c in available}
    unknown = sorted(set(keys) - known)
    if unknown:
        raise UnknownCategoryError(", ".join(unknown))
    wanted = set(keys)
    return [c for c in available if c.key in wanted]


def _check_range(date_from: date | None, date_to: date | None) -> None:
    if date_from and date_to and date_from > date_to:
        raise ValueError("the start date is after the end date")


def estimate_export(
    user_id: int, categories: list[str], date_from: date | None, date_to: date | None
) -> ExportEstimate:
    """What an export would hold: records per category and the media files' total size.

    Two aggregate queries whatever the amount of data; no row is loaded.
    """
    chosen = resolve_categories(categories)
    _check_range(date_from, date_to)
    count_selects = []
    media_selects = []
    for category in chosen:
        model = category.model
        conditions = archive.category_conditions(category, user_id, date_from, date_to)
        count_selects.append(
            select(literal(category.key).label("key"), func.count().label("n")).where(*conditions)
        )
        if category.file_column:
            media_selects.append(
                select(
                    func.count().label("n"),
                    func.coalesce(func.sum(model.byte_size), 0).label("bytes"),
                ).where(*conditions)
            )
    counts = {c.key: 0 for c in chosen}
    if count_selects:
        for key, number in db.session.execute(union_all(*count_selects)):
            counts[key] = int(number)
    media_files = media_bytes = 0
    if media_selects:
        for number, size in db.session.execute(union_all(*media_selects)):
            media_files += int(number)
            media_bytes += int(size)
    approx = media_bytes + sum(counts.values()) * BYTES_PER_RECORD + ARCHIVE_OVERHEAD_BYTES
    return ExportEstimate(counts, media_files, approx)


# --- requesting -------------------------------------------------------------------------------


def _lock_user(user_id: int) -> None:
    """Serialise export requests per person: two tabs submitting at once get one export.

    PostgreSQL: a row lock on the account until the caller commits. SQLite has one writer at
    a time, and a transaction that read before another committed cannot write afterwards.
    """
    db.session.execute(select(User.id).where(User.id == user_id).with_for_update())


def export_in_progress(user_id: int) -> Export | None:
    return db.session.scalars(
        select(Export)
        .where(Export.user_id == user_id, Export.status.in_(Export.IN_PROGRESS))
        .order_by(Export.id.desc())
        .limit(1)
    ).first()


def request_export(
    user_id: int, categories: list[str], date_from: date | None, date_to: date | None
) -> Export:
    """Record an export and its build job in the caller's transaction (the caller commits)."""
    chosen = resolve_categories(categories)
    _check_range(date_from, date_to)
    _lock_user(user_id)
    if export_in_progress(user_id) is not None:
        raise ExportInProgressError(str(user_id))
    keys = [c.key for c in chosen]
    export = Export(
        user_id=user_id,
        status=Export.QUEUED,
        categories=keys,
        date_from=date_from,
        date_to=date_to,
        progress=0,
        summary={},
    )
    db.session.add(export)
    db.session.flush()
    record_job(BUILD_JOB, {"export_id": export.id})
    record_event(
        "export.requested",
        actor_type="user",
        actor_id=user_id,
        subject_user_id=user_id,
        target=f"export:{export.id}",
        details={"categories": keys},
    )
    return export


# --- files ------------------------------------------------------------------------------------


def exports_dir() -> Path:
    return Path(current_app.config["SETTINGS"].data_dir) / "exports"


def temp_dir() -> Path:
    return exports_dir() / "tmp"


def temp_path(export_id: int) -> Path:
    """One name per export, so a retry finds (and removes) what a crashed attempt left."""
    return temp_dir() / f"export-{export_id}.zip.part"


def _final_path(file_name: str) -> Path:
    return exports_dir() / file_name


def _new_file_name() -> str:
    return f"{secrets.token_hex(16)}.zip"


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def export_file_path(export: Export) -> Path | None:
    """The archive to serve: only for a READY export that has not expired, if the file is there."""
    if export.status != Export.READY or not export.file_name:
        return None
    if export.expires_at is None or export.expires_at <= utcnow():
        return None
    path = _final_path(export.file_name)
    return path if path.is_file() else None


# --- building ---------------------------------------------------------------------------------


class _Progress:
    """Writes the percentage the page shows, at most every couple of seconds."""

    def __init__(self, export_id: int, total: int) -> None:
        self.export_id = export_id
        self.total = max(total, 1)
        self.reported = 0
        self.last_time = time.monotonic()
        self.last_done = 0

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        due = now - self.last_time >= PROGRESS_INTERVAL_SECONDS
        if not due and done - self.last_done < PROGRESS_INTERVAL_ITEMS:
            return
        # 99 at most: 100 is for a finished archive, which only READY says.
        percent = min(99, done * 100 // self.total)
        self.last_time, self.last_done = now, done
        if percent == self.reported:
            return
        self.reported = percent
        db.session.execute(
            update(Export)
            .where(Export.id == self.export_id, Export.status == Export.BUILDING)
            .values(progress=percent)
        )
        db.session.commit()


def _start_building(export: Export) -> tuple[str, str | None]:
    """Mark the export BUILDING under a new final name; returns (new name, previous name)."""
    previous = export.file_name
    export.status = Export.BUILDING
    export.started_at = utcnow()
    export.progress = 0
    export.error = None
    export.file_name = _new_file_name()
    db.session.commit()
    return export.file_name, previous


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@job_handler(BUILD_JOB)
def build_export_job(payload: dict[str, Any]) -> None:
    build_export(int(payload["export_id"]))


def build_export(export_id: int) -> None:
    """Build the archive for one export. Safe to run again: it starts over from scratch."""
    export = db.session.get(Export, export_id)
    if export is None or export.status not in Export.IN_PROGRESS:
        return
    user = db.session.get(User, export.user_id)
    if user is None:
        return
    try:
        _build(export, user)
    except Exception as exc:
        db.session.rollback()
        _after_failed_attempt(export_id, exc)
        raise


def _build(export: Export, user: User) -> None:
    export_id = export.id
    file_name, previous = _start_building(export)
    # Whatever an earlier attempt left: its temporary file, or an archive it renamed but
    # never got to mark READY.
    _unlink(temp_path(export_id))
    if previous:
        _unlink(_final_path(previous))
    # A category removed from the data map since the request is simply not there any more.
    wanted = set(export.categories)
    categories = [c for c in exportable_categories() if c.key in wanted]
    estimate = estimate_export(
        user.id, [c.key for c in categories], export.date_from, export.date_to
    )
    db.session.commit()  # end the read transaction; the build takes a while
    temp_dir().mkdir(parents=True, exist_ok=True)
    part = temp_path(export_id)
    request = archive.ArchiveRequest(
        user_id=user.id,
        locale=user.locale or "en",
        categories=tuple(categories),
        date_from=export.date_from,
        date_to=export.date_to,
        generated_at=utcnow().replace(microsecond=0),
    )
    result = archive.write_archive(
        part, request, on_progress=_Progress(export_id, estimate.records + estimate.media_files)
    )
    final = _final_path(file_name)
    part.replace(final)
    _fsync_directory(final.parent)
    _mark_ready(
        export_id,
        user,
        final=final,
        size=result.byte_size,
        digest=result.sha256,
        counts=result.counts,
    )


def _mark_ready(
    export_id: int, user: User, *, final: Path, size: int, digest: str, counts: dict[str, int]
) -> None:
    now = utcnow()
    ttl = timedelta(days=current_app.config["SETTINGS"].export_ttl_days)
    # Conditional: if the export was withdrawn meanwhile (account erasure), it stays so.
    changed = db.session.execute(
        update(Export)
        .where(Export.id == export_id, Export.status == Export.BUILDING)
        .values(
            status=Export.READY,
            progress=100,
            byte_size=size,
            sha256=digest,
            summary=counts,
            finished_at=now,
            expires_at=now + ttl,
            error=None,
        )
    ).rowcount
    if changed != 1:
        db.session.rollback()
        _unlink(final)
        return
    record_event(
        "export.ready",
        actor_type="system",
        subject_user_id=user.id,
        target=f"export:{export_id}",
        details={"records": sum(counts.values()), "bytes": size},
    )
    from app.services.mail import queue_mail  # noqa: PLC0415 -- mail imports the jobs layer too

    settings = current_app.config["SETTINGS"]
    queue_mail(
        to=user.email,
        template="export_ready",
        locale=user.locale or "en",
        user_id=user.id,
        export_url=settings.base_url + "/exports",
    )
    db.session.commit()


def _current_attempt(export_id: int) -> Job | None:
    return db.session.scalars(
        select(Job)
        .where(
            Job.kind == BUILD_JOB,
            Job.status == Job.RUNNING,
            Job.payload["export_id"].as_integer() == export_id,
        )
        .order_by(Job.id.desc())
        .limit(1)
    ).first()


def _after_failed_attempt(export_id: int, exc: Exception) -> None:
    """Remove what the attempt wrote; on the last attempt, say the export failed."""
    _unlink(temp_path(export_id))
    export = db.session.get(Export, export_id)
    if export is None or export.status != Export.BUILDING:
        return
    if export.file_name:
        _unlink(_final_path(export.file_name))
    job = _current_attempt(export_id)
    if job is None or job.attempts >= job.max_attempts:
        # The class name only: exception messages can carry paths or personal data.
        export.status = Export.FAILED
        export.error = f"The archive could not be built ({type(exc).__name__})."
        export.finished_at = utcnow()
        record_event(
            "export.failed",
            actor_type="system",
            subject_user_id=export.user_id,
            target=f"export:{export_id}",
            details={"error": type(exc).__name__},
        )
    else:
        export.status = Export.QUEUED  # the jobs layer retries it shortly
        export.progress = 0
    db.session.commit()


# --- expiry and removal -----------------------------------------------------------------------


def expire_due_exports(now: datetime | None = None, batch_size: int = 100) -> int:
    """The sweeper's part: delete archives past their expiry; returns how many expired.

    Each batch is marked EXPIRED (with its audit events) and committed before its files are
    deleted, so no READY row ever points at a missing file because of this. Files a crash
    left behind (temporary, or renamed but never committed) are removed once a day old.
    """
    now = now or utcnow()
    expired = 0
    while True:
        due = db.session.scalars(
            select(Export)
            .where(Export.status == Export.READY, Export.expires_at <= now)
            .order_by(Export.id)
            .limit(batch_size)
        ).all()
        if not due:
            break
        names = []
        for export in due:
            export.status = Export.EXPIRED
            if export.file_name:
                names.append(export.file_name)
            record_event(
                "export.expired",
                actor_type="system",
                subject_user_id=export.user_id,
                target=f"export:{export.id}",
            )
        db.session.commit()
        for name in names:
            _unlink(_final_path(name))
        expired += len(due)
    _fail_abandoned_builds()
    _remove_stale_files(now)
    return expired


def _fail_abandoned_builds() -> None:
    """An export whose build job gave up for good (or vanished) is FAILED, not stuck:
    otherwise the person could never ask for another one."""
    pending = db.session.scalars(
        select(Export).where(Export.status.in_(Export.IN_PROGRESS)).limit(1000)
    ).all()
    if not pending:
        return
    live = {
        int(export_id)
        for export_id in db.session.scalars(
            select(Job.payload["export_id"].as_integer()).where(
                Job.kind == BUILD_JOB, Job.status.in_((Job.QUEUED, Job.RUNNING))
            )
        )
        if export_id is not None
    }
    abandoned = [export for export in pending if export.id not in live]
    for export in abandoned:
        export.status = Export.FAILED
        export.error = "The archive could not be built."
        export.finished_at = utcnow()
    if abandoned:
        db.session.commit()
        for export in abandoned:
            _unlink(temp_path(export.id))


def _older_than(path: Path, cutoff: float) -> bool:
    try:
        return path.is_file() and path.stat().st_mtime < cutoff
    except FileNotFoundError:  # removed meanwhile (a build finishing, another sweeper)
        return False


def _remove_stale_files(now: datetime) -> None:
    cutoff = (now - STALE_FILE_AGE).timestamp()
    tmp = temp_dir()
    if tmp.is_dir():
        for path in tmp.iterdir():
            if _older_than(path, cutoff):
                _unlink(path)
    folder = exports_dir()
    if not folder.is_dir():
        return
    old = [p for p in folder.glob("*.zip") if _older_than(p, cutoff)]
    if not old:
        return
    ready = set(
        db.session.scalars(
            select(Export.file_name).where(
                Export.status == Export.READY, Export.file_name.in_([p.name for p in old])
            )
        )
    )
    for path in old:
        if path.name not in ready:  # renamed by a build that crashed before its commit
            _unlink(path)


def delete_user_exports(user_id: int) -> int:
    """Withdraw every export of a person (account erasure): files deleted, rows EXPIRED.

    Runs in the caller's transaction. If that transaction rolls back, rows may still say
    READY while their file is gone; `export_file_path` then serves nothing, and expiry
    tidies the rows up.
    """
    exports = db.session.scalars(
        select(Export).where(Export.user_id == user_id, Export.status != Export.EXPIRED)
    ).all()
    for export in exports:
        export.status = Export.EXPIRED
    db.session.flush()
    for export in exports:
        _unlink(temp_path(export.id))
        if export.file_name:
            with contextlib.suppress(OSError):
                _unlink(_final_path(export.file_name))
    return len(exports)
