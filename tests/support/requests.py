"""Data-subject requests in tests: the token of the link that confirms one, from the outbox."""

from __future__ import annotations

import re
from pathlib import Path

from app.models import User
from app.services import requests as request_service
from app.services.auth import find_user_by_email
from tests.support.mailbox import outbox_messages_to, plain_text

CONFIRM_LINK = re.compile(r"/requests/confirm/([A-Za-z0-9_.\-]+)")


def seeded_user(email: str) -> User:
    user = find_user_by_email(email)
    assert user is not None, f"the demo seed made no {email}"
    return user


def confirmation_token(outbox: Path, address: str, request_id: int) -> str:
    """The newest live confirmation link's token for that request in mail to `address`."""
    for message in reversed(outbox_messages_to(outbox, address)):
        for found in CONFIRM_LINK.findall(plain_text(message)):
            try:
                if request_service.request_for_verify_token(found).id == request_id:
                    return found
            except request_service.RequestError:
                continue
    raise AssertionError(f"no confirmation link for request {request_id}")
