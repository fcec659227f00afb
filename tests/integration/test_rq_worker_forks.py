"""`jobs work` on RQ: every job runs in a fork, which inherits the worker's app instead of
building its own (half a second a job, measured by bench/soak.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

import app as app_package
from app.extensions import db
from app.jobs import RQ_QUEUE_NAME, worker
from app.models import OutboundMail
from app.services.mail import queue_mail
from tests.support.mailbox import SMTPServer
from tests.support.rq_worker import worker_environment


@pytest.mark.redis
@pytest.mark.usefixtures("restore_signals")
def test_forked_jobs_share_the_app_the_worker_built_once(
    make_app: Callable[..., Flask],
    redis_url: str,
    smtp_server: SMTPServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from redis import Redis
    from rq import Queue

    app = make_app(
        jobs_mode="rq", redis_url=redis_url, smtp_host=smtp_server.host, smtp_port=smtp_server.port
    )
    addresses = [f"reader{n}@example.com" for n in range(3)]
    with app.app_context():
        for address in addresses:
            queue_mail(to=address, template="mail_test", locale="en")
        db.session.commit()
    connection = Redis.from_url(redis_url)
    assert Queue(RQ_QUEUE_NAME, connection=connection).count == 3

    # Each process that builds an app (this one, or a fork running a job) notes its pid.
    builds = tmp_path / "builds"
    real_create_app = app_package.create_app

    def noted_create_app(*args: object, **kwargs: object) -> Flask:
        with builds.open("a") as log:
            log.write(f"{os.getpid()}\n")
        return real_create_app(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(app_package, "create_app", noted_create_app)
    smtp = {"SMTP_HOST": smtp_server.host, "SMTP_PORT": str(smtp_server.port)}
    try:
        with worker_environment(app, monkeypatch, redis_url, **smtp):
            worker.run_rq_worker(app, burst=True)  # the real Worker: one fork per job
    finally:
        connection.close()

    received = smtp_server.wait_for(3)
    assert sorted(message.rcpt_tos[0] for message in received) == addresses
    with app.app_context():
        statuses = db.session.scalars(select(OutboundMail.status)).all()
    assert statuses == [OutboundMail.SENT] * 3
    assert builds.read_text().split() == [str(os.getpid())]
