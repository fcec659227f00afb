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


def run_job_from_rq(job_id: int) -> None:
    """What RQ calls: look the job up in the database and run it there."""
    run_job_in_app(_worker_app(), job_id)


def run_rq_worker(app: Flask, burst: bool) -> None:
    from redis import Redis  # noqa: PLC0415
    from rq import Queue, Worker  # noqa: PLC0415

    connection = Redis.from_url(app.config["SETTINGS"].redis_url)
    worker = Worker([Queue(RQ_QUEUE_NAME, connection=connection)], connection=connection)
    worker.work(burst=burst, with_scheduler=False)


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
