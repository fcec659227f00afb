"""The audit log: every event linked to the one before it, and any tampering found."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

import pytest
from flask import Flask
from sqlalchemy import delete, select, update

from app.extensions import db
from app.models import AuditEvent, ProcessingChoice, User
from app.services.audit import GENESIS_HASH, record_event, verify_chain
from app.services.choices import (
    MODEL_IMPROVEMENT,
    UnknownPurposeError,
    choice_history,
    current_choice,
    set_choice,
)


def _append(app: Flask, count: int, subject: int | None = 7) -> None:
    with app.app_context():
        for n in range(count):
            record_event(
                "test.event",
                actor_type="system",
                subject_user_id=subject,
                target=f"item:{n}",
                details={"n": n, "note": "é✓"},
            )
        db.session.commit()


def test_events_form_an_unbroken_chain(app: Flask) -> None:
    _append(app, 5)
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        assert events[0].prev_hash == GENESIS_HASH
        for before, after in itertools.pairwise(events):
            assert after.prev_hash == before.hash
        report = verify_chain(batch_size=2)  # crosses batch boundaries on purpose
        assert report.ok
        assert report.checked == 5


def test_an_edited_event_is_reported_with_its_id(app: Flask) -> None:
    _append(app, 4)
    with app.app_context():
        third = db.session.scalars(select(AuditEvent.id).order_by(AuditEvent.id)).all()[2]
        db.session.execute(
            update(AuditEvent).where(AuditEvent.id == third).values(details={"n": 99})
        )
        db.session.commit()
        report = verify_chain()
        assert report.first_broken_id == third
        assert report.checked == 2
        assert "content" in (report.problem or "")


def test_a_deleted_event_breaks_the_link_of_the_next(app: Flask) -> None:
    _append(app, 4)
    with app.app_context():
        ids = db.session.scalars(select(AuditEvent.id).order_by(AuditEvent.id)).all()
        db.session.execute(delete(AuditEvent).where(AuditEvent.id == ids[1]))
        db.session.commit()
        report = verify_chain()
        assert report.first_broken_id == ids[2]
        assert "link" in (report.problem or "")


def test_a_rolled_back_action_leaves_no_event(app: Flask) -> None:
    _append(app, 1)
    with app.app_context():
        record_event("test.rolled_back", actor_type="system")
        db.session.rollback()
        actions = db.session.scalars(select(AuditEvent.action)).all()
        assert actions == ["test.event"]
        assert verify_chain().ok


def test_cli_verify_reports_intact_and_broken_chains(app: Flask) -> None:
    _append(app, 3)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0
    assert "3 event(s) checked" in result.output
    with app.app_context():
        first = db.session.scalars(select(AuditEvent.id).order_by(AuditEvent.id)).first()
        db.session.execute(
            update(AuditEvent).where(AuditEvent.id == first).values(action="test.forged")
        )
        db.session.commit()
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"broken at event {first}" in result.output


def test_concurrent_appends_keep_one_chain(app: Flask) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            _append(app, 5)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with app.app_context():
        report = verify_chain()
        assert report.ok, report
        assert report.checked == 40


def test_model_improvement_defaults_on_and_records_each_change(
    app: Flask, make_user: Callable[..., User]
) -> None:
    person = make_user()
    with app.app_context():
        initial = current_choice(person.id, MODEL_IMPROVEMENT)
        assert (initial.allowed, initial.source, initial.since) == (True, "default", None)
        set_choice(person.id, MODEL_IMPROVEMENT, allowed=False, source="page")
        db.session.commit()
        set_choice(person.id, MODEL_IMPROVEMENT, allowed=True, source="api")
        db.session.commit()
        now = current_choice(person.id, MODEL_IMPROVEMENT)
        assert (now.allowed, now.source) == (True, "api")
        assert [c.allowed for c in choice_history(person.id, MODEL_IMPROVEMENT)] == [True, False]
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "choice.recorded")
        ).all()
        assert [e.details["source"] for e in events] == ["page", "api"]
        assert all(e.subject_user_id == person.id for e in events)


def test_an_unknown_purpose_stores_nothing(app: Flask, make_user: Callable[..., User]) -> None:
    person = make_user()
    with app.app_context():
        with pytest.raises(UnknownPurposeError):
            set_choice(person.id, "sell_data", allowed=True, source="page")
        db.session.rollback()
        assert db.session.scalars(select(ProcessingChoice)).all() == []
