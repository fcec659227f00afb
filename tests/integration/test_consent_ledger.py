"""The consent ledger: receipts are only ever added, and many decisions at once all count."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, select

from app.extensions import db
from app.models import AuditEvent, ConsentRecord, User
from app.services import consent as service
from app.services.audit import verify_chain
from tests.integration.test_consent import GPC, consent_cookie, decide, receipts
from tests.support.web import SESSION_COOKIE, csrf_token, login, logout

COLUMNS = [c.name for c in ConsentRecord.__table__.columns]
PARALLEL_POSTS = 50


def _snapshot(app: Flask) -> list[dict[str, Any]]:
    return [{c: getattr(r, c) for c in COLUMNS} for r in receipts(app)]


@pytest.fixture
def ledger_statements(app: Flask) -> Iterator[list[str]]:
    """The first word of every statement the app sends to consent_records during the test."""
    seen: list[str] = []

    def watch(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        words = statement.split()
        if "consent_records" in statement.lower() and words:
            seen.append(words[0].upper())

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", watch)
    yield seen
    event.remove(engine, "before_cursor_execute", watch)


def test_every_decision_adds_a_receipt_and_never_changes_one(
    app: Flask,
    client: FlaskClient,
    make_user: Callable[..., User],
    ledger_statements: list[str],
) -> None:
    person = make_user(email="ledger@example.com", country="US", region="CA")
    steps: list[Callable[[], object]] = [
        lambda: decide(client, "accept_all"),
        lambda: decide(client, "save", ["analytics"], origin="settings"),
        lambda: decide(client, "accept_all"),
        lambda: client.get("/", headers=GPC),  # the signal switches advertising off
        lambda: decide(client, "allow_sale", headers=GPC),  # allowed anyway, knowingly
        lambda: login(client, person.email, person.password),  # merge into the account
        lambda: client.post(
            "/preferences/cookies/do-not-sell",
            data={"csrf_token": csrf_token(client, "/preferences/cookies")},
        ),
        lambda: decide(client, "reject_all", origin="settings"),
    ]
    before = _snapshot(app)
    assert before == []
    for number, step in enumerate(steps, start=1):
        step()
        after = _snapshot(app)
        assert len(after) == number, f"step {number} did not add exactly one receipt"
        assert after[:-1] == before, f"step {number} changed an earlier receipt"
        before = after
    assert [r["source"] for r in before] == [
        "banner",
        "settings",
        "banner",
        "gpc",
        "banner",
        "merge",
        "settings",
        "settings",
    ]
    assert len({r["receipt_id"] for r in before}) == len(before)
    assert ledger_statements.count("INSERT") == len(steps)
    assert set(ledger_statements) == {"INSERT", "SELECT"}

    # Looking around afterwards records nothing and changes nothing.
    for path in ("/", "/preferences/cookies", "/preferences/cookies/history.json"):
        client.get(path, headers=GPC)
    logout(client)
    client.get("/preferences/cookies")
    assert _snapshot(app) == before
    assert set(ledger_statements) == {"INSERT", "SELECT"}  # no UPDATE, no DELETE, ever


def test_current_state_is_the_newest_receipt(app: Flask, client: FlaskClient, user: User) -> None:
    login(client, user.email, user.password)
    for decision in ("accept_all", "reject_all", "save"):
        decide(client, decision, ["preferences"])
    with app.app_context():
        latest = service.latest_for_user(user.id)
        assert latest is not None
        newest = receipts(app)[-1]
        assert latest.receipt_id == newest.receipt_id
        assert latest.choices == {"preferences": True, "analytics": False, "advertising": False}
    assert consent_cookie(app, client).receipt_id == newest.receipt_id  # type: ignore[union-attr]


# --- many at once (PostgreSQL) ----------------------------------------------------------------


@pytest.fixture
def postgres_app(app: Flask) -> Flask:
    if not app.config["SETTINGS"].sqlalchemy_url.startswith("postgresql"):
        pytest.skip("needs PostgreSQL: SQLite serialises every writer")
    return app


def test_fifty_parallel_decisions_for_one_account_all_count(
    postgres_app: Flask, user: User
) -> None:
    app = postgres_app
    signed_in = app.test_client()
    login(signed_in, user.email, user.password)
    token = csrf_token(signed_in, "/preferences/cookies")
    session = signed_in.get_cookie(SESSION_COOKIE).value  # type: ignore[union-attr]
    choices = [["preferences"], ["analytics"], ["advertising"], ["preferences", "analytics"], []]
    start = threading.Barrier(PARALLEL_POSTS)

    def post(number: int) -> int:
        # One browser tab each, all signed in to the same account, all pressing at once.
        client = app.test_client()
        client.set_cookie(SESSION_COOKIE, session)
        data = {
            "csrf_token": token,
            "decision": "save",
            "allow": choices[number % len(choices)],
            "origin": "settings",
            "next": "/",
        }
        start.wait()
        return client.post("/preferences/cookies", data=data).status_code

    with ThreadPoolExecutor(max_workers=PARALLEL_POSTS) as pool:
        statuses = list(pool.map(post, range(PARALLEL_POSTS)))

    assert statuses == [303] * PARALLEL_POSTS
    rows = receipts(app)
    assert len(rows) == PARALLEL_POSTS
    assert {r.user_id for r in rows} == {user.id}
    assert len({r.receipt_id for r in rows}) == PARALLEL_POSTS
    allowed_sets = {tuple(sorted(k for k, v in r.choices.items() if v)) for r in rows}
    assert allowed_sets == {tuple(sorted(c)) for c in choices}
    with app.app_context():
        newest = db.session.scalars(
            select(ConsentRecord)
            .where(ConsentRecord.user_id == user.id)
            .order_by(ConsentRecord.created_at.desc(), ConsentRecord.id.desc())
        ).first()
        current = service.latest_for_user(user.id)
        assert current is not None and newest is not None
        assert current.receipt_id == newest.receipt_id
        audited = db.session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "consent.recorded")
        )
        assert audited == PARALLEL_POSTS
        assert verify_chain().ok
    # What the person sees is that newest receipt.
    page = signed_in.get("/preferences/cookies").get_data(as_text=True)
    for key in ("preferences", "analytics", "advertising"):
        checked = f'id="settings-purpose-{key}"' in page and (
            f'value="{key}" aria-describedby="settings-purpose-{key}-about" checked' in page
        )
        assert checked is bool(newest.choices[key]), key


def test_the_banner_check_is_cheap(
    app: Flask, client: FlaskClient, user: User, ledger_statements: list[str]
) -> None:
    decide(client, "accept_all")
    ledger_statements.clear()
    client.get("/")
    client.get("/policy")
    assert ledger_statements == []  # a visitor who decided: the signed cookie is enough

    login(client, user.email, user.password)
    ledger_statements.clear()
    client.get("/policy")
    assert ledger_statements == ["SELECT"]  # signed in: one query on the account's index


def test_signing_in_with_gpc_does_not_carry_advertising_over(
    app: Flask, client: FlaskClient, user: User
) -> None:
    decide(client, "accept_all")  # without the signal
    token = csrf_token(client, "/preferences/cookies")
    client.post(
        "/login",
        data={"email": user.email, "password": user.password, "csrf_token": token},
        headers=GPC,
    )
    merged = receipts(app)[-1]
    assert (merged.source, merged.user_id, merged.gpc) == ("merge", user.id, True)
    assert merged.choices == {"preferences": True, "analytics": True, "advertising": False}
