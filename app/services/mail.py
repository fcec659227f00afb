"""The one way this application sends email.

`queue_mail` renders a message in the recipient's language and records it, with a job to
deliver it, in the caller's transaction. Delivery happens after the commit, never during a
page request: over SMTP when `SMTP_HOST` is set, otherwise as `.eml` files in the outbox
folder (which demo mode lists at `/dev/outbox`, so newcomers can follow emailed links).
"""

from __future__ import annotations

import secrets
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from flask import current_app, render_template
from flask_babel import force_locale

from app.extensions import db
from app.jobs import job_handler, record_job
from app.models import OutboundMail, utcnow

MAIL_JOB = "mail.send"


class MailTemplateError(LookupError):
    """A mail template is missing one of its three parts."""


def render_mail(template: str, locale: str, **context: Any) -> tuple[str, str, str]:
    """Subject, text body and HTML body of `emails/<template>/`, in `locale`."""
    with force_locale(locale):
        subject = render_template(f"emails/{template}/subject.txt", **context)
        text = render_template(f"emails/{template}/body.txt", **context)
        html = render_template(f"emails/{template}/body.html", **context)
    return " ".join(subject.split()), text, html


def queue_mail(
    *,
    to: str,
    template: str,
    locale: str,
    user_id: int | None = None,
    headers: dict[str, str] | None = None,
    forget_recipient: bool = False,
    **context: Any,
) -> OutboundMail:
    """Record a message and its delivery job; both take effect when the caller commits.

    `headers` are added to the message as they are (List-Unsubscribe on marketing email).
    `forget_recipient` drops the address too once the message is sent (an erased account's
    last message)."""
    subject, text, html = render_mail(template, locale, **context)
    domain = to.rpartition("@")[2] or "localhost"
    mail = OutboundMail(
        user_id=user_id,
        to_address=to,
        template=template,
        locale=locale,
        subject=subject,
        text_body=text,
        html_body=html,
        message_id=make_msgid(domain=_sender_domain() or domain),
        headers=headers or None,
        forget_recipient=forget_recipient,
    )
    db.session.add(mail)
    db.session.flush()
    record_job(MAIL_JOB, {"mail_id": mail.id})
    return mail


def _sender_domain() -> str:
    address = current_app.config["SETTINGS"].mail_from
    return address.rpartition("@")[2].rstrip(">").strip()


def build_message(mail: OutboundMail) -> EmailMessage:
    settings = current_app.config["SETTINGS"]
    message = EmailMessage()
    message["Subject"] = mail.subject
    message["From"] = settings.mail_from
    message["To"] = mail.to_address
    message["Date"] = format_datetime(mail.created_at)
    # The same Message-ID on every attempt lets receiving servers drop a duplicate resend.
    message["Message-ID"] = mail.message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.text_body or "")
    if mail.html_body:
        message.add_alternative(mail.html_body, subtype="html")
    # After the bodies: set_content() clears every Content-* header set before it.
    message["Content-Language"] = mail.locale.replace("_", "-")
    for name, value in (mail.headers or {}).items():
        message[name] = value
    if mail.headers:
        # An unsubscribe URL is longer than 78 characters: folded at 78, it would become an
        # RFC 2047 encoded word that mail providers do not decode. Header lines may be 998
        # long; the bodies are already encoded, so only the headers see this.
        message.policy = message.policy.clone(max_line_length=998)
    return message


def _send_smtp(message: EmailMessage) -> None:
    settings = current_app.config["SETTINGS"]
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password)
        smtp.send_message(message)


def _write_outbox(message: EmailMessage, mail: OutboundMail) -> Path:
    outbox: Path = current_app.config["SETTINGS"].mail_outbox_dir
    outbox.mkdir(parents=True, exist_ok=True)
    stamp = mail.created_at.strftime("%Y%m%dT%H%M%S")
    # A random part: SQLite reuses the ids of deleted rows (an erased account's messages),
    # and a message must never overwrite an earlier one.
    final = outbox / f"{stamp}-{mail.id:08d}-{secrets.token_hex(4)}.eml"
    partial = final.with_suffix(".eml.part")
    partial.write_bytes(message.as_bytes())
    partial.replace(final)  # a reader never sees half a message
    return final


@job_handler(MAIL_JOB)
def deliver(payload: dict[str, Any]) -> None:
    """Send one recorded message. Running it again after success does nothing."""
    mail = db.session.get(OutboundMail, payload["mail_id"])
    if mail is None or mail.status == OutboundMail.SENT:
        return
    message = build_message(mail)
    if current_app.config["SETTINGS"].smtp_host:
        _send_smtp(message)
    else:
        _write_outbox(message, mail)
    mail.status = OutboundMail.SENT
    mail.sent_at = utcnow()
    # Keep the record that a message went out, not what it said.
    mail.text_body = None
    mail.html_body = None
    mail.headers = None  # an unsubscribe token is as personal as the body
    if mail.forget_recipient:
        mail.to_address = ""
    db.session.commit()


def list_outbox(limit: int = 200) -> list[Path]:
    outbox: Path = current_app.config["SETTINGS"].mail_outbox_dir
    if not outbox.is_dir():
        return []
    return sorted(outbox.glob("*.eml"), reverse=True)[:limit]
