"""The session: its timeouts, what it costs to guess, and HSTS only over https."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from app.extensions import db
from app.models import User
from app.services import auth as auth_service
from tests.support.web import (
    login,
    post_form,
    session_data,
    signed_in_user_id,
    text_of,
    title_of,
)

ENDED = "Your session has ended, to protect your account. Please sign in again."


def _shift(client: FlaskClient, **seconds_ago: int) -> None:
    """Pretend the session's sign-in or last activity happened that long ago."""
    with client.session_transaction() as session:
        for key, ago in seconds_ago.items():
            session[key] = int(time.time()) - ago


def test_sign_in_records_when_and_activity_moves_the_idle_clock(
    client: FlaskClient, user: User
) -> None:
    login(client, user.email, user.password)
    started = session_data(client)
    assert abs(int(started["signed_in_at"]) - time.time()) < 5
    assert started["seen_at"] == started["signed_in_at"]

    _shift(client, seen_at=25 * 60)
    assert title_of(client.get("/")) == "Overview"  # 25 minutes idle: still signed in

    after = session_data(client)
    assert abs(int(after["seen_at"]) - time.time()) < 5  # the visit counts as activity
    assert after["signed_in_at"] == started["signed_in_at"]


def test_an_idle_session_ends_and_says_so(client: FlaskClient, user: User) -> None:
    login(client, user.email, user.password)
    _shift(client, seen_at=31 * 60)

    page = client.get("/data", follow_redirects=True)

    assert title_of(page) == "Sign in"
    assert ENDED in text_of(page)
    assert signed_in_user_id(client) is None
    assert "fresh_at" not in session_data(client)


def test_a_session_ends_twelve_hours_after_sign_in_however_active(
    client: FlaskClient, user: User
) -> None:
    login(client, user.email, user.password)
    _shift(client, signed_in_at=12 * 3600 + 60, seen_at=10)

    page = client.get("/")

    assert title_of(page) != "Overview"
    assert ENDED in text_of(page)
    assert signed_in_user_id(client) is None


@pytest.mark.app_settings(session_idle_minutes=5, session_absolute_hours=1)
def test_the_timeouts_are_settings(client: FlaskClient, user: User) -> None:
    login(client, user.email, user.password)
    _shift(client, seen_at=6 * 60)
    assert title_of(client.get("/")) != "Overview"

    login(client, user.email, user.password)
    _shift(client, signed_in_at=3601, seen_at=0)
    assert title_of(client.get("/")) != "Overview"


def test_a_session_from_before_the_timeouts_is_not_trusted(client: FlaskClient, user: User) -> None:
    login(client, user.email, user.password)
    with client.session_transaction() as session:
        del session["signed_in_at"]

    assert title_of(client.get("/")) != "Overview"
    assert signed_in_user_id(client) is None


def test_progress_polling_does_not_keep_a_session_alive(
    app: Flask, client: FlaskClient, user: User
) -> None:
    from app.services import exports

    login(client, user.email, user.password)
    with app.app_context():
        export_id = exports.request_export(user.id, [], None, None).id
        db.session.commit()
    _shift(client, seen_at=20 * 60)
    before = session_data(client)["seen_at"]

    assert client.get(f"/exports/{export_id}/status", headers={"HX-Request": "true"}).status_code
    assert session_data(client)["seen_at"] == before


def test_hsts_only_over_https(client: FlaskClient) -> None:
    plain = client.get("/")
    secure = client.get("/", base_url="https://localhost")

    assert "Strict-Transport-Security" not in plain.headers
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")
    assert int(secure.headers["Strict-Transport-Security"].split("=")[1]) >= 31536000


# --- guessing an address costs the same whether or not it has an account --------------------


@contextmanager
def _counting(app: Flask) -> Iterator[dict[str, int]]:
    """SQL statements and password checks made inside the block."""
    counts = {"sql": 0, "password_checks": 0}

    def on_sql(*_: object) -> None:
        counts["sql"] += 1

    class CountingHasher(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
            counts["password_checks"] += 1
            return super().verify(hash, password)

    original = auth_service._hasher
    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", on_sql)
    auth_service._hasher = CountingHasher()
    try:
        yield counts
    finally:
        auth_service._hasher = original
        event.remove(engine, "before_cursor_execute", on_sql)


def test_a_wrong_password_and_an_unknown_address_cost_the_same(
    app: Flask, client: FlaskClient, user: User
) -> None:
    login(client, user.email, "warm-up-wrong")  # first-use costs (catalogs, pools) out of the way
    with _counting(app) as known:
        known_page = login(client, user.email, "not-the-password")
    with _counting(app) as unknown:
        unknown_page = login(client, "nobody@example.com", "not-the-password")

    assert known_page.status_code == unknown_page.status_code == 401
    assert known["password_checks"] == unknown["password_checks"] == 1
    assert known["sql"] == unknown["sql"]


def test_asking_by_email_costs_the_same_whether_or_not_the_address_has_an_account(
    app: Flask, client: FlaskClient, user: User
) -> None:
    path = "/requests/new/delete_account"
    post_form(client, path, {"email": "warm-up@example.org"})
    with _counting(app) as known:
        known_page = post_form(client, path, {"email": user.email})
    with _counting(app) as unknown:
        unknown_page = post_form(client, path, {"email": "nobody@example.org"})

    assert known_page.status_code == unknown_page.status_code == 200
    assert known["sql"] == unknown["sql"]
    assert known["password_checks"] == unknown["password_checks"] == 0
