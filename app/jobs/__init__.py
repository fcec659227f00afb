"""Background work: recorded in the database first, then run in-process or by RQ workers.

A job is a row in `jobs`. `record_job` adds it to the current transaction; only when that
transaction commits is the job dispatched, so work is never run for a change that was rolled
back and never lost for a change that was committed. Dispatch depends on `JOBS_MODE`:

- `thread` (default): a small in-process thread pool runs it right after the commit;
- `inline`: runs it synchronously after the commit (tests, scripts);
- `rq`: pushes the job id to Redis, where `flask --app wsgi jobs work` runs an RQ worker;
- `queue`: only records it; `jobs work` drains the table.

Whatever the mode, `requests process-due` (the sweeper) runs anything due that is not done,
so a lost message, a dead worker or a crashed process delays work but never forgets it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import event, or_, select, update
from sqlalchemy.orm import Session

from app.extensions import db
from app.logs import bound_request_id, current_request_id
from app.models import Job, utcnow

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], None]
HANDLERS: dict[str, Handler] = {}
STALE_AFTER = timedelta(minutes=10)
RQ_QUEUE_NAME = "privacy-center"
_PENDING_KEY = "privacy_center_pending_jobs"
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def job_handler(kind: str) -> Callable[[Handler], Handler]:
    """Register the function that runs jobs of `kind`. Handlers must be safe to run twice."""

    def register(func: Handler) -> Handler:
        HANDLERS[kind] = func
        return func

    return register


def record_job(kind: str, payload: dict[str, Any], *, delay: timedelta | None = None) -> Job:
    """Add a job to the current transaction; it is dispatched once the transaction commits."""
    if kind not in HANDLERS:
        raise ValueError(f"no handler for job kind {kind!r}")
    job = Job(kind=kind, payload=payload, run_after=utcnow() + (delay or timedelta(0)))
    db.session.add(job)
    db.session.flush()
    if not delay:
        db.session.info.setdefault(_PENDING_KEY, []).append(job.id)
    return job


def _after_commit(session: Session) -> None:
    job_ids = session.info.pop(_PENDING_KEY, [])
    if job_ids:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        for job_id in job_ids:
            dispatch(app, job_id)


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)


def install(app: Flask) -> None:
    """Hook dispatch into the session's commit; called once by `create_app`."""
    if not event.contains(Session, "after_commit", _after_commit):
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_rollback", _after_rollback)
    from app.services import deletion, exports, mail, requests  # noqa: F401, PLC0415 -- register their job handlers


def dispatch(app: Flask, job_id: int) -> None:
    """Hand a committed job to whatever runs jobs in this deployment."""
    mode = app.config["SETTINGS"].jobs_mode
    request_id = current_request_id()  # the job's log lines carry the request that asked
    if mode == "inline":
        run_job_in_app(app, job_id)
    elif mode == "thread":
        _thread_pool().submit(run_job_in_app, app, job_id, request_id)
    elif mode == "rq":
        try:
            args = (job_id, request_id) if request_id else (job_id,)
            rq_queue(app).enqueue("app.jobs.worker.run_job_from_rq", *args, job_timeout=3600)
        except Exception:  # the row is committed; the sweeper will enqueue it again
            log.warning("could not enqueue job %s on Redis; the sweeper will retry", job_id)


def rq_queue(app: Flask) -> Any:
    from redis import Redis  # noqa: PLC0415 -- only deployments with Redis import it
    from rq import Queue  # noqa: PLC0415

    return Queue(RQ_QUEUE_NAME, connection=Redis.from_url(app.config["SETTINGS"].redis_url))


def _thread_pool() -> ThreadPoolExecutor:
    global _executor  # noqa: PLW0603 -- one pool per process, made on first use
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="jobs")
        return _executor


def run_job_in_app(app: Flask, job_id: int, request_id: str | None = None) -> None:
    with app.app_context(), bound_request_id(request_id):
        try:
            run_job(job_id)
        finally:
            db.session.remove()


def _claim(job_id: int) -> bool:
    """Take the job if it is due and nobody else holds it; atomic on every database."""
    now = utcnow()
    result = db.session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            or_(
                (Job.status == Job.QUEUED) & (Job.run_after <= now),
                (Job.status == Job.RUNNING) & (Job.locked_at < now - STALE_AFTER),
            ),
        )
        .values(status=Job.RUNNING, locked_at=now, attempts=Job.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


def run_job(job_id: int) -> str:
    """Run one job if it is due; returns its status afterwards. Safe to call twice."""
    if not _claim(job_id):
        job = db.session.get(Job, job_id)
        return job.status if job else "missing"
    job = db.session.get(Job, job_id)
    assert job is not None
    handler = HANDLERS.get(job.kind)
    try:
        if handler is None:
            raise LookupError(f"no handler for job kind {job.kind!r}")
        handler(dict(job.payload))
    except Exception as exc:
        db.session.rollback()
        _record_failure(job_id, exc)
    else:
        job.status = Job.DONE
        job.finished_at = utcnow()
        job.last_error = None
        db.session.commit()
    job = db.session.get(Job, job_id)
    return job.status if job else "missing"


def _record_failure(job_id: int, exc: Exception) -> None:
    job = db.session.get(Job, job_id)
    if job is None:
        return
    # The class name and a short message only: exception texts can carry personal data.
    job.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
    if job.attempts >= job.max_attempts:
        job.status = Job.FAILED
        job.finished_at = utcnow()
        log.error("job %s (%s) failed for good after %s attempts", job.id, job.kind, job.attempts)
    else:
        job.status = Job.QUEUED
        job.run_after = utcnow() + timedelta(seconds=30 * 2 ** (job.attempts - 1))
        log.warning("job %s (%s) failed, retrying later: %s", job.id, job.kind, job.last_error)
    job.locked_at = None
    db.session.commit()


def due_job_ids(limit: int = 100) -> list[int]:
    now = utcnow()
    return list(
        db.session.scalars(
            select(Job.id)
            .where(
                or_(
                    (Job.status == Job.QUEUED) & (Job.run_after <= now),
                    (Job.status == Job.RUNNING) & (Job.locked_at < now - STALE_AFTER),
                )
            )
            .order_by(Job.run_after, Job.id)
            .limit(limit)
        )
    )


def run_due_jobs(limit: int = 100) -> int:
    """Run every job that is due, here and now. Returns how many were attempted."""
    ids = due_job_ids(limit)
    for job_id in ids:
        run_job(job_id)
    return len(ids)


def requeue_due_jobs(app: Flask, limit: int = 1000) -> int:
    """The sweeper's half for RQ: push due jobs back onto the queue. Returns the count."""
    ids = due_job_ids(limit)
    for job_id in ids:
        dispatch(app, job_id)
    return len(ids)
