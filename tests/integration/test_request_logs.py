"""What the logs say about real requests: one JSON line per request with the id the response
carries, and never the person's address, their password, a link's token or their full IP.

The rate limiter is the honest witness here: Flask-Limiter logs the key of every limit it
enforces, and this app's keys are made of exactly those things (address, IP, link token).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.extensions import db
from app.logs import StderrHandler
from app.models import User
from app.services import marketing
from tests.support.web import csrf_token, login

VISITOR_IP = "203.0.113.77"
Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def log_lines(capsys: pytest.CaptureFixture[str]) -> Iterator[Lines]:
    """The app's JSON handler on the root logger, as in production; `log_lines()` parses
    what it wrote so far (failing on any line that is not JSON)."""
    root = logging.getLogger()
    handler, saved_level = StderrHandler("json"), root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    capsys.readouterr()

    def lines() -> list[dict[str, Any]]:
        written = capsys.readouterr().err
        return [json.loads(line) for line in written.splitlines() if line.strip()]

    yield lines
    root.removeHandler(handler)
    root.setLevel(saved_level)


def _client(app: Flask) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = VISITOR_IP
    return client


def _assert_clean(lines: list[dict[str, Any]], *secrets: str) -> None:
    text = json.dumps(lines)
    for secret in (*secrets, VISITOR_IP):
        assert secret not in text, f"{secret!r} is in the log:\n{text}"


def _request_line(lines: list[dict[str, Any]], request_id: str) -> dict[str, Any]:
    found = [line for line in lines if line["logger"] == "app.request"]
    by_id = [line for line in found if line["request_id"] == request_id]
    assert len(by_id) == 1, f"no single request line with id {request_id}: {found}"
    return by_id[0]


@pytest.mark.app_settings(rate_limits=True, one_click_rate_limit="1 per minute")
def test_an_unsubscribe_link_leaves_no_token_in_the_log(app: Flask, log_lines: Lines) -> None:
    address = "reader.logs@example.org"
    with app.app_context():
        marketing.seed_subscriber(address, ("newsletter",))
        subscriber = marketing.find_subscriber(address)
        assert subscriber is not None
        token = marketing.unsubscribe_token(subscriber.id, "newsletter")
        db.session.remove()
    client = _client(app)

    page = client.get(f"/unsubscribe/{token}", headers={"X-Request-ID": "mail-click.42"})
    one_click = [
        client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
        for _ in range(2)
    ]
    lines = log_lines()

    assert page.status_code == 200
    assert page.headers["X-Request-ID"] == "mail-click.42"
    line = _request_line(lines, "mail-click.42")
    assert (line["method"], line["path"], line["status"]) == ("GET", "/unsubscribe/<token>", 200)
    assert isinstance(line["duration_ms"], float)
    assert one_click[-1].status_code == 429
    refused_id = one_click[-1].headers["X-Request-ID"]
    assert _request_line(lines, refused_id)["status"] == 429
    limited = [line for line in lines if "exceeded" in line["message"]]
    assert limited, "Flask-Limiter logged nothing"
    assert limited[0]["request_id"] == refused_id
    _assert_clean(lines, token, token.split(".")[-1], address)


@pytest.mark.app_settings(rate_limits=True, login_rate_limit="1 per minute")
def test_signing_in_leaves_no_address_or_password_in_the_log(
    app: Flask, make_user: Callable[..., User], log_lines: Lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = make_user(email="signer.logs@example.com", password="Tr0ub4dor&3-horse")
    from app.web import auth as auth_views

    real_authenticate = auth_views.authenticate

    def careless_authenticate(email: str, password: str) -> User | None:
        # What a hurried debugging line would write: the request's own secrets go anyway.
        logging.getLogger("app.web.auth").warning("sign-in by %s with %s", email, password)
        return real_authenticate(email, password)

    monkeypatch.setattr(auth_views, "authenticate", careless_authenticate)
    client = _client(app)

    signed_in = login(client, user.email, user.password)
    refused = login(_client(app), user.email, "wrong-Password-9")  # same place, same address
    lines = log_lines()

    assert signed_in.status_code in {302, 303}
    assert refused.status_code == 429
    careless = [line for line in lines if line["message"].startswith("sign-in by")]
    assert careless
    assert careless[0]["message"] == "sign-in by [email] with [secret]"
    assert careless[0]["request_id"] == signed_in.headers["X-Request-ID"]
    assert _request_line(lines, signed_in.headers["X-Request-ID"])["path"] == "/login"
    assert any("exceeded" in line["message"] for line in lines)
    _assert_clean(lines, user.email, user.password, "wrong-Password-9")


@pytest.mark.app_settings(rate_limits=True, email_link_rate_limit="1 per hour")
def test_a_request_by_email_leaves_no_address_in_the_log(app: Flask, log_lines: Lines) -> None:
    address = "asker.logs@example.net"
    client = _client(app)
    answers = [
        client.post(
            "/requests/new/delete_account",
            data={
                "email": address,
                "csrf_token": csrf_token(client, "/requests/new/delete_account"),
            },
        )
        for _ in range(2)
    ]
    unknown = client.get(f"/no/such/page/{address}")
    lines = log_lines()

    assert answers[0].status_code < 400
    assert answers[1].status_code == 429
    assert unknown.status_code == 404
    assert _request_line(lines, unknown.headers["X-Request-ID"])["path"] == "/no/such/page/[email]"
    limited = [line for line in lines if "exceeded" in line["message"]]
    assert limited
    assert "203.0.113.0/24" in json.dumps(limited) or "[email]" in json.dumps(limited)
    _assert_clean(lines, address)


def test_a_crash_is_logged_with_its_request_id_and_without_the_token(
    app: Flask, log_lines: Lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "WzcsIm5ld3NsZXR0ZXIiXQ.q9Rt2ZxVb8sLk1NfXw0aTq5HcJd"

    def broken(link: str) -> Any:
        raise RuntimeError(f"lookup of {link} for ann@example.com failed")

    monkeypatch.setattr(marketing, "subscriber_for_token", broken)
    response = _client(app).get(f"/unsubscribe/{token}")
    lines = log_lines()

    assert response.status_code == 500
    request_id = response.headers["X-Request-ID"]
    errors = [line for line in lines if line["level"] == "ERROR"]
    assert errors
    assert all(line["request_id"] == request_id for line in errors)
    assert any(
        "RuntimeError: lookup of [secret] for [email]" in line.get("exception", "")
        for line in errors
    )
    _assert_clean(lines, token, "ann@example.com")
