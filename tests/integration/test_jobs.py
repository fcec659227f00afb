"""Background work: recorded with the change that needs it, run once, retried, never forgotten."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app import jobs
from app.extensions import db
from app.jobs import HANDLERS, RQ_QUEUE_NAME, record_job, run_due_jobs, run_job
from app.models import Job, OutboundMail, utcnow
from app.services.mail import queue_mail
from tests.support.mailbox import SMTPServer, free_port
from tests.support.rq_worker import run_rq_worker_burst

Calls = list[dict[str, Any]]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """A test-only job kind, `test.record`, whose handler notes each payload it runs."""
    seen: Calls = []
    monkeypatch.setitem(HANDLERS, "test.record", seen.append)
    return seen


@pytest.fixture
def failures(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """A test-only job kind, `test.fail`, whose handler always raises."""
    seen: Calls = []

    def fail(payload: dict[str, Any]) -> None:
        seen.append(payload)
        raise RuntimeError("the remote service said no")

    monkeypatch.setitem(HANDLERS, "test.fail", fail)
    return seen


def _job(job_id: int) -> Job:
    job = db.session.get(Job, job_id)
    assert job is not None
    db.session.refresh(job)
    return job


def test_committed_job_runs_once_after_the_commit(app: Flask, calls: Calls) -> None:
    with app.app_context():
        job = record_job("test.record", {"n": 1})
        assert calls == []  # not during the transaction
        db.session.commit()
        assert calls == [{"n": 1}]
        job = _job(job.id)
        assert job.status == Job.DONE
        assert job.attempts == 1
        assert job.finished_at is not None


def test_rolled_back_job_is_never_dispatched(
    app: Flask, calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    dispatched: list[int] = []
    real_dispatch = jobs.dispatch

    def spy(app: Flask, job_id: int) -> None:
        dispatched.append(job_id)
        real_dispatch(app, job_id)

    monkeypatch.setattr(jobs, "dispatch", spy)
    with app.app_context():
        record_job("test.record", {"n": "rolled back"})
        db.session.rollback()
        assert dispatched == []
        job = record_job("test.record", {"n": "committed"})
        db.session.commit()
        # Only the committed job is handed on; the rolled-back one is not even looked up.
        assert dispatched == [job.id]
        assert calls == [{"n": "committed"}]
        assert [j.payload for j in db.session.scalars(select(Job))] == [{"n": "committed"}]


def test_unknown_job_kind_is_refused_when_recorded(app: Flask) -> None:
    with app.app_context(), pytest.raises(ValueError, match="no handler"):
        record_job("no.such.kind", {})


def test_delayed_job_waits_for_its_time(app: Flask, calls: Calls) -> None:
    with app.app_context():
        job = record_job("test.record", {"n": 1}, delay=timedelta(hours=1))
        db.session.commit()
        assert calls == []
        assert run_due_jobs() == 0
        assert run_job(job.id) == Job.QUEUED  # not due: a stray message does not run it early
        assert calls == []
        job.run_after = utcnow() - timedelta(seconds=1)
        db.session.commit()
        assert run_due_jobs() == 1
        assert calls == [{"n": 1}]


def test_failing_job_is_retried_with_backoff_then_marked_failed(
    app: Flask, failures: Calls
) -> None:
    with app.app_context():
        job = record_job("test.fail", {"n": 1})
        job.max_attempts = 3
        db.session.commit()  # inline mode: the first attempt runs here
        job_id = job.id

        delays = []
        for attempt in (1, 2):
            job = _job(job_id)
            assert job.status == Job.QUEUED
            assert job.attempts == attempt
            assert job.locked_at is None
            assert job.last_error == "RuntimeError: the remote service said no"
            delays.append((job.run_after - utcnow()).total_seconds())
            assert run_due_jobs() == 0  # not due yet: the backoff holds it back
            job.run_after = utcnow() - timedelta(seconds=1)  # time passes
            db.session.commit()
            assert run_due_jobs() == 1

        job = _job(job_id)
        assert job.status == Job.FAILED
        assert job.attempts == 3
        assert job.finished_at is not None
        assert run_due_jobs() == 0  # a failed job stays failed
    assert len(failures) == 3
    assert 25 < delays[0] <= 30
    assert 55 < delays[1] <= 60  # the wait doubles


def test_run_job_twice_runs_the_handler_once(make_app: Callable[..., Flask], calls: Calls) -> None:
    app = make_app(jobs_mode="queue")
    with app.app_context():
        job = record_job("test.record", {"n": 1})
        db.session.commit()
        assert calls == []  # "queue" only records; a worker runs it
        assert run_job(job.id) == Job.DONE
        assert run_job(job.id) == Job.DONE
        assert run_job(10_000_000) == "missing"
    assert calls == [{"n": 1}]


def test_stale_running_job_is_picked_up_by_the_sweeper(app: Flask, calls: Calls) -> None:
    with app.app_context():
        now = utcnow()
        stale = Job(
            kind="test.record",
            payload={"n": "worker died"},
            status=Job.RUNNING,
            attempts=1,
            locked_at=now - timedelta(hours=1),
        )
        busy = Job(
            kind="test.record",
            payload={"n": "still running"},
            status=Job.RUNNING,
            attempts=1,
            locked_at=now - timedelta(minutes=2),
        )
        db.session.add_all([stale, busy])
        db.session.commit()

        assert run_due_jobs() == 1
        assert calls == [{"n": "worker died"}]
        assert _job(stale.id).status == Job.DONE
        assert _job(stale.id).attempts == 2
        assert _job(busy.id).status == Job.RUNNING
        assert run_job(busy.id) == Job.RUNNING  # nobody takes a job another worker holds


def test_commit_succeeds_when_redis_is_down(make_app: Callable[..., Flask]) -> None:
    app = make_app(jobs_mode="rq", redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with app.app_context():
        mail = queue_mail(to="ann@example.com", template="mail_test", locale="en")
        db.session.commit()
        job = db.session.scalars(select(Job)).one()
        # The row is the truth: the sweeper finds it even though Redis never heard of it.
        assert job.status == Job.QUEUED
        assert job.payload == {"mail_id": mail.id}


# --- commands ---------------------------------------------------------------------------------


def test_jobs_work_burst_drains_the_table(make_app: Callable[..., Flask]) -> None:
    app = make_app(jobs_mode="queue")
    with app.app_context():
        for to in ("ann@example.com", "ben@example.com"):
            queue_mail(to=to, template="mail_test", locale="en")
        db.session.commit()
    outbox = app.config["SETTINGS"].mail_outbox_dir
    assert not list(outbox.glob("*.eml"))

    result = app.test_cli_runner().invoke(args=["jobs", "work", "--burst"])

    assert result.exit_code == 0, result.output
    assert "draining the jobs table (no REDIS_URL set)" in result.output
    assert "ran 2 job(s)" in result.output
    assert len(list(outbox.glob("*.eml"))) == 2
    with app.app_context():
        assert {m.status for m in db.session.scalars(select(OutboundMail))} == {OutboundMail.SENT}
        assert {j.status for j in db.session.scalars(select(Job))} == {Job.DONE}


def test_requests_process_due_runs_what_is_due(
    make_app: Callable[..., Flask], calls: Calls
) -> None:
    app = make_app(jobs_mode="queue")
    with app.app_context():
        record_job("test.record", {"n": "due"})
        record_job("test.record", {"n": "later"}, delay=timedelta(days=1))
        db.session.commit()
    runner = app.test_cli_runner()

    result = runner.invoke(args=["requests", "process-due"])

    assert result.exit_code == 0, result.output
    assert "ran 1 due job(s)" in result.output
    assert calls == [{"n": "due"}]
    assert "ran 0 due job(s)" in runner.invoke(args=["requests", "process-due"]).output


# --- Redis and RQ -----------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.usefixtures("restore_signals")
def test_rq_worker_delivers_the_mail(
    make_app: Callable[..., Flask],
    redis_url: str,
    smtp_server: SMTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from redis import Redis
    from rq import Queue

    app = make_app(
        jobs_mode="rq", redis_url=redis_url, smtp_host=smtp_server.host, smtp_port=smtp_server.port
    )
    with app.app_context():
        mail = queue_mail(to="mia@example.com", template="mail_test", locale="en")
        db.session.commit()
        mail_id = mail.id
        assert db.session.scalars(select(Job)).one().status == Job.QUEUED
    connection = Redis.from_url(redis_url)
    queue = Queue(RQ_QUEUE_NAME, connection=connection)
    assert queue.count == 1
    assert smtp_server.messages == []

    # The worker builds its own app from the environment, as `jobs work` does in production.
    try:
        run_rq_worker_burst(
            app,
            monkeypatch,
            redis_url,
            queue,
            SMTP_HOST=smtp_server.host,
            SMTP_PORT=str(smtp_server.port),
        )
    finally:
        connection.close()
    (received,) = smtp_server.wait_for(1)
    assert received.rcpt_tos == ("mia@example.com",)
    assert received.message["Subject"] == "Test message from the privacy center"
    with app.app_context():
        assert db.session.get(OutboundMail, mail_id).status == OutboundMail.SENT  # type: ignore[union-attr]
        assert db.session.scalars(select(Job)).one().status == Job.DONE


@pytest.mark.redis
def test_sweeper_re_enqueues_what_redis_lost(
    make_app: Callable[..., Flask], redis_url: str
) -> None:
    from redis import Redis
    from rq import Queue

    app = make_app(jobs_mode="rq", redis_url=redis_url)
    with app.app_context():
        queue_mail(to="ann@example.com", template="mail_test", locale="en")
        db.session.commit()
        job_id = db.session.scalars(select(Job.id)).one()
    connection = Redis.from_url(redis_url)
    queue = Queue(RQ_QUEUE_NAME, connection=connection)
    assert queue.count == 1
    queue.empty()  # Redis restarted without persistence

    result = app.test_cli_runner().invoke(args=["requests", "process-due"])

    assert result.exit_code == 0, result.output
    assert "re-enqueued 1 job(s) on RQ" in result.output
    assert [job.args for job in queue.jobs] == [(job_id,)]
    connection.close()
