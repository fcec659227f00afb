"""Demo-only pages: the mail outbox, so a newcomer can follow emailed links without SMTP."""

from __future__ import annotations

import re
from datetime import datetime
from email import policy
from email.parser import BytesParser
from typing import Any

from flask import Blueprint, abort, current_app, render_template

from app.services.mail import list_outbox

bp = Blueprint("dev", __name__, url_prefix="/dev")
MESSAGE_NAME = re.compile(r"^[0-9T]{15}-[0-9]{8}(-[0-9a-f]{8})?\.eml$")
LINK = re.compile(r"https?://[^\s<>\"]+")


@bp.before_request
def demo_only() -> None:
    if not current_app.config["SETTINGS"].demo_mode:
        abort(404)


@bp.get("/outbox")
def outbox() -> str:
    messages = []
    for path in list_outbox():
        with path.open("rb") as handle:
            headers = BytesParser(policy=policy.default).parse(handle, headersonly=True)
        messages.append(
            {
                "name": path.name,
                "to": headers["To"],
                "subject": headers["Subject"],
                "date": _sent_at(headers),
            }
        )
    return render_template("dev/outbox.html", messages=messages)


@bp.get("/outbox/<name>")
def message(name: str) -> str:
    if not MESSAGE_NAME.match(name):
        abort(404)
    path = current_app.config["SETTINGS"].mail_outbox_dir / name
    if not path.is_file():
        abort(404)
    with path.open("rb") as handle:
        parsed = BytesParser(policy=policy.default).parse(handle)
    text_part = parsed.get_body(preferencelist=("plain",))
    text = text_part.get_content() if text_part else ""
    return render_template(
        "dev/message.html",
        message=parsed,
        sent_at=_sent_at(parsed),
        text=text,
        links=list(dict.fromkeys(LINK.findall(text))),
    )


def _sent_at(message: Any) -> datetime | None:
    """The Date header as a datetime, shown in the reader's language (None if unreadable)."""
    header = message["Date"]
    return getattr(header, "datetime", None)
