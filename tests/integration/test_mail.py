"""Service email: rendered in the recipient's language, sent after the commit, then forgotten."""

from __future__ import annotations

import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.jobs import run_job
from app.models import Job, OutboundMail
from app.services.mail import queue_mail
from tests.support.mailbox import SMTPServer
from tests.support.web import text_of, title_of

SUBJECT = "Test message from the privacy center"
BODY = "This is a test message. If you can read it, the privacy center can send email."


def _in(catalog: Any, english: str) -> str:
    return catalog.gettext(english) if catalog is not None else english


def _queue_test_mail(
    app: Flask, to: str = "mia@example.com", locale: str = "en"
) -> tuple[int, str]:
    with app.app_context():
        mail = queue_mail(to=to, template="mail_test", locale=locale)
        db.session.commit()
        return mail.id, mail.message_id


def _mail_row(app: Flask, mail_id: int) -> OutboundMail:
    with app.app_context():
        mail = db.session.get(OutboundMail, mail_id)
        assert mail is not None
        db.session.expunge(mail)
        return mail


def _outbox(app: Flask) -> list[Path]:
    return sorted(app.config["SETTINGS"].mail_outbox_dir.glob("*.eml"))


def test_mail_is_sent_over_smtp_in_the_recipients_language(
    smtp_app: Flask, smtp_server: SMTPServer, german_catalog: Any
) -> None:
    with smtp_app.app_context():
        mail = queue_mail(to="mia@example.com", template="mail_test", locale="de")
        assert smtp_server.messages == []  # nothing leaves before the commit
        db.session.commit()
        mail_id, message_id = mail.id, mail.message_id

    (received,) = smtp_server.wait_for(1)
    message = received.message
    assert received.rcpt_tos == ("mia@example.com",)
    assert received.mail_from == "privacy@example.com"
    assert message["To"] == "mia@example.com"
    assert message["Subject"] == _in(german_catalog, SUBJECT)
    assert message["Message-ID"] == message_id
    assert re.fullmatch(r"<[^<>@\s]+@example\.com>", message_id)
    assert message["Content-Language"] == "de"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.is_multipart()
    assert _in(german_catalog, BODY) in received.text
    assert _in(german_catalog, BODY) in received.html
    assert '<html lang="de"' in received.html
    if german_catalog is not None:
        assert BODY not in received.text

    row = _mail_row(smtp_app, mail_id)
    assert row.status == OutboundMail.SENT
    assert row.sent_at is not None
    assert row.text_body is None  # data minimisation: the record stays, the content goes
    assert row.html_body is None
    assert row.subject == message["Subject"]
    with smtp_app.app_context():
        job = db.session.scalars(select(Job)).one()
        assert job.status == Job.DONE
        assert job.payload == {"mail_id": mail_id}  # ids only, never content
    assert _outbox(smtp_app) == []


def test_mail_in_english(smtp_app: Flask, smtp_server: SMTPServer) -> None:
    _queue_test_mail(smtp_app, locale="en")
    (received,) = smtp_server.wait_for(1)
    assert received.message["Subject"] == SUBJECT
    assert BODY in received.text
    assert '<html lang="en"' in received.html


def test_mail_server_down_leaves_the_mail_to_retry(make_app: Any, smtp_server: SMTPServer) -> None:
    from tests.support.mailbox import free_port

    app = make_app(smtp_host="127.0.0.1", smtp_port=free_port())
    mail_id, _ = _queue_test_mail(app)
    row = _mail_row(app, mail_id)
    assert row.status == OutboundMail.PENDING
    assert row.text_body  # kept until it is delivered
    with app.app_context():
        job = db.session.scalars(select(Job)).one()
        assert job.status == Job.QUEUED
        assert job.attempts == 1
        assert job.last_error and job.last_error.startswith("ConnectionRefusedError")


def test_the_same_mail_is_never_sent_twice(make_app: Any, smtp_server: SMTPServer) -> None:
    app = make_app(smtp_host=smtp_server.host, smtp_port=smtp_server.port, jobs_mode="queue")
    mail_id, _ = _queue_test_mail(app)
    assert smtp_server.messages == []  # "queue" mode only records; a worker sends
    with app.app_context():
        job = db.session.scalars(select(Job)).one()
        assert run_job(job.id) == Job.DONE
        assert run_job(job.id) == Job.DONE
        # Even a job handed out again (a worker died after sending) does not resend.
        job.status = Job.QUEUED
        db.session.commit()
        assert run_job(job.id) == Job.DONE
    assert len(smtp_server.wait_for(1)) == 1
    assert _mail_row(app, mail_id).status == OutboundMail.SENT


# --- the outbox (no SMTP server configured) ---------------------------------------------------


def _write_eml(outbox: Path, name: str, text: str) -> None:
    message = EmailMessage()
    message["Subject"] = "Confirm your request"
    message["From"] = "privacy@example.com"
    message["To"] = "ann@example.com"
    message["Date"] = "Sat, 21 Nov 2026 07:00:00 +0000"
    message.set_content(text)
    outbox.mkdir(parents=True, exist_ok=True)
    (outbox / name).write_bytes(message.as_bytes())


def test_without_smtp_the_mail_lands_in_the_outbox(app: Flask, client: FlaskClient) -> None:
    mail_id, message_id = _queue_test_mail(app, to="ann@example.com")
    (path,) = _outbox(app)
    assert re.fullmatch(r"\d{8}T\d{6}-\d{8}-[0-9a-f]{8}\.eml", path.name)
    assert f"-{mail_id:08d}-" in path.name
    with path.open("rb") as handle:
        saved = BytesParser(policy=policy.default).parse(handle)
    assert saved["Message-ID"] == message_id
    assert saved["Subject"] == SUBJECT
    assert not list(path.parent.glob("*.part"))
    assert _mail_row(app, mail_id).status == OutboundMail.SENT

    listing = client.get("/dev/outbox")
    assert listing.status_code == 200
    assert f'href="/dev/outbox/{path.name}"' in listing.get_data(as_text=True)
    assert SUBJECT in text_of(listing)
    assert "ann@example.com" in text_of(listing)

    shown = client.get(f"/dev/outbox/{path.name}")
    assert shown.status_code == 200
    assert title_of(shown) == SUBJECT
    assert BODY in text_of(shown)


def test_outbox_message_lists_its_links(app: Flask, client: FlaskClient) -> None:
    outbox = app.config["SETTINGS"].mail_outbox_dir
    name = "20261121T070000-00000042.eml"
    link = "http://127.0.0.1:5000/requests/confirm/abc123"
    _write_eml(outbox, name, f"Confirm here:\n{link}\nor ignore this message.\n")
    page = client.get(f"/dev/outbox/{name}")
    assert page.status_code == 200
    assert f'<li><a href="{link}">{link}</a></li>' in page.get_data(as_text=True)
    assert "Confirm here:" in text_of(page)


@pytest.mark.parametrize(
    "name",
    [
        "not-a-message.eml",
        "20261121T070000-00000099.eml",  # well formed, but there is no such message
        "20261121T070000-00000042.txt",
        "..%2F..%2Fprivacy-center.sqlite3",
        "20261121T070000-00000042.eml.part",
    ],
)
def test_outbox_refuses_bad_names(app: Flask, client: FlaskClient, name: str) -> None:
    outbox = app.config["SETTINGS"].mail_outbox_dir
    _write_eml(outbox, "20261121T070000-00000042.eml", "hello")
    (outbox / "20261121T070000-00000042.eml.part").write_text("half a message")
    response = client.get(f"/dev/outbox/{name}")
    assert response.status_code == 404
    assert title_of(response) == "Page not found"


@pytest.mark.app_settings(demo_mode=False)
def test_outbox_does_not_exist_outside_demo_mode(app: Flask, client: FlaskClient) -> None:
    _queue_test_mail(app)
    (path,) = _outbox(app)
    assert client.get("/dev/outbox").status_code == 404
    assert client.get(f"/dev/outbox/{path.name}").status_code == 404
    assert "/dev/outbox" not in client.get("/").get_data(as_text=True)
