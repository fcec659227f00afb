"""Many requests at once on PostgreSQL: no lost update, no unique violation, every post recorded.

(SQLite has one writer at a time, so it cannot show these races; these tests skip there.)
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.extensions import db
from app.models import (
    AuditEvent,
    MarketingEvent,
    MarketingSubscriber,
    SuppressionEntry,
    TopicSubscription,
    User,
)
from app.services import marketing
from app.services.audit import verify_chain

SUBSCRIBERS = 50
WITH_ACCOUNTS = 10  # their changes also go through the audit log's lock
POSTS_EACH = 2
THREADS = 16


@pytest.fixture
def postgres_app(app: Flask) -> Flask:
    if not app.config["SETTINGS"].sqlalchemy_url.startswith("postgresql"):
        pytest.skip("needs PostgreSQL: SQLite serialises every writer")
    return app


def _people(app: Flask, make_user: Callable[..., User]) -> list[int]:
    accounts = [make_user(email=f"member{n}@example.org") for n in range(WITH_ACCOUNTS)]
    ids = []
    with app.app_context():
        for n in range(SUBSCRIBERS):
            account = accounts[n] if n < WITH_ACCOUNTS else None
            email = account.email if account else f"reader{n}@example.org"
            marketing.seed_subscriber(
                email, ("newsletter", "offers"), user_id=account.id if account else None
            )
            subscriber = marketing.find_subscriber(email)
            assert subscriber is not None
            ids.append(subscriber.id)
    return ids


def test_concurrent_one_click_posts_unsubscribe_everyone_and_record_every_post(
    postgres_app: Flask, make_user: Callable[..., User]
) -> None:
    app = postgres_app
    ids = _people(app, make_user)
    with app.app_context():
        paths = [f"/unsubscribe/{marketing.unsubscribe_token(i, '*')}" for i in ids]
    posts = paths * POSTS_EACH
    random.Random(6).shuffle(posts)
    start = threading.Barrier(THREADS)

    def post(path: str) -> tuple[int, str]:
        client = app.test_client(use_cookies=False)
        response = client.post(path, data={"List-Unsubscribe": "One-Click"})
        return response.status_code, response.get_data(as_text=True).strip()

    def warm_then_post(batch: list[str]) -> list[tuple[int, str]]:
        start.wait()  # every thread starts at once
        return [post(path) for path in batch]

    batches = [posts[n::THREADS] for n in range(THREADS)]
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        answers = [answer for batch in pool.map(warm_then_post, batches) for answer in batch]

    assert len(answers) == SUBSCRIBERS * POSTS_EACH
    assert set(answers) == {(200, "Unsubscribed.")}
    with app.app_context():
        statuses = db.session.execute(
            select(TopicSubscription.status, func.count()).group_by(TopicSubscription.status)
        ).all()
        assert dict(statuses) == {"unsubscribed": SUBSCRIBERS * 2}
        posted = db.session.scalar(
            select(func.count())
            .select_from(MarketingEvent)
            .where(MarketingEvent.source == "one_click")
        )
        assert posted == SUBSCRIBERS * POSTS_EACH
        per_subscriber = db.session.execute(
            select(MarketingEvent.subscriber_id, func.count())
            .where(MarketingEvent.source == "one_click")
            .group_by(MarketingEvent.subscriber_id)
        ).all()
        assert {count for _id, count in per_subscriber} == {POSTS_EACH}
        assert len(per_subscriber) == SUBSCRIBERS
        suppressions = db.session.scalar(select(func.count()).select_from(SuppressionEntry))
        assert suppressions == SUBSCRIBERS * POSTS_EACH
        # Each account's change is audited once (the second post changed nothing).
        audited = db.session.scalars(
            select(AuditEvent.subject_user_id).where(AuditEvent.action == "marketing.unsubscribed")
        ).all()
        assert len(audited) == WITH_ACCOUNTS == len(set(audited))
        assert verify_chain().ok


def test_concurrent_requests_for_one_topic_make_one_pending_row(
    postgres_app: Flask,
) -> None:
    app = postgres_app
    with app.app_context():
        subscriber = marketing.add_subscriber("reader@example.org")
        db.session.commit()
        subscriber_id = subscriber.id
    start = threading.Barrier(8)

    def ask(_n: int) -> str:
        with app.app_context():
            start.wait()
            row = db.session.get(MarketingSubscriber, subscriber_id)
            assert row is not None
            state = marketing.request_subscription(
                row, "research", source="page", confirm_url=lambda token: token
            )
            return state.status

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(ask, range(8)))

    assert set(results) == {"pending"}
    with app.app_context():
        rows = db.session.scalars(select(TopicSubscription)).all()
        assert [(r.topic, r.status) for r in rows] == [("research", "pending")]
        requested = db.session.scalar(
            select(func.count())
            .select_from(MarketingEvent)
            .where(MarketingEvent.action == "requested")
        )
        assert requested == 8
