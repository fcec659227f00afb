"""Entry points for worker processes (RQ, or the database-draining loop)."""

from __future__ import annotations

import time
from functools import cache

from flask import Flask

from app.extensions import db
from app.jobs import RQ_QUEUE_NAME, run_due_jobs, run_job_in_app


@cache
def _worker_app() -> Flask:
    from app import create_app  # noqa: PLC0415 -- a worker builds its app once, on first job

    return create_app()


def run_job_from_rq(job_id: int, request_id: str | None = None) -> None:
    """What RQ calls: look the job up in the database and run it there (`request_id`: the
    web request that enqueued it, for the logs; None when the sweeper re-enqueued it)."""
    run_job_in_app(_worker_app(), job_id, request_id)


def run_rq_worker(app: Flask, burst: bool) -> None:
    from redis import Redis  # noqa: PLC0415
    from rq import Queue, Worker  # noqa: PLC0415

    connection = Redis.from_url(app.config["SETTINGS"].redis_url)
    _build_app_before_forking()
    worker = Worker([Queue(RQ_QUEUE_NAME, connection=connection)], connection=connection)
    worker.work(burst=burst, with_scheduler=False)


def _build_app_before_forking() -> None:
    """RQ runs every job in a fresh fork of this process. Built here, once, the app is
    inherited by each fork; built in the fork, it cost every job half a second (the soak
    benchmark measured the worker at two jobs a second). No database connection is left
    open, so no two forks ever share one."""
    worker_app = _worker_app()
    with worker_app.app_context():
        for engine in db.engines.values():
            engine.dispose()


def drain_database_queue(app: Flask, burst: bool, poll_seconds: float = 2.0) -> int:
    """Run due jobs straight from the table until none are left (burst) or forever."""
    total = 0
    with app.app_context():
        while True:
            done = run_due_jobs()
            db.session.remove()
            total += done
            if done == 0:
                if burst:
                    return total
                time.sleep(poll_seconds)
