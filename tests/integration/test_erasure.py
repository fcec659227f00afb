"""Erasing an account: nothing of the person left but what the law keeps, whatever goes wrong.

The full erasure runs on the seeded demo accounts (demo2@ is erased, demo@ must not change).
The crash and concurrency cases use a small account with a row in every category, so one
test per step stays quick. Each test gets an empty database (rows are deleted after it).
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask_babel import force_locale, gettext
from sqlalchemy import func, select, update

from app.datamap import get_datamap
from app.extensions import db
from app.jobs import run_due_jobs
from app.jurisdictions import by_code
from app.models import (
    BillingAddress,
    DataRequest,
    DeviceRecord,
    EmailChange,
    ErasureStep,
    Export,
    GeneratedImage,
    Invoice,
    Job,
    OutboundMail,
    ProcessingChoice,
    RequestEvent,
    SessionActivity,
    Subscription,
    Upload,
    UsageEvent,
    User,
    utcnow,
)
from app.services import consent, exports, marketing, media
from app.services import requests as service
from app.services.audit import verify_chain
from app.services.auth import authenticate, find_user_by_email, load_user_from_session_id
from app.services.demo import DEMO, DEMO2, seed_demo
from app.services.erasure import run_due_erasures, run_erasure, step_names
from app.services.notice import get_notice
from tests.integration.test_data_pages import (
    BASE_TIME,
    add_card,
    add_prompt,
    add_support_message,
    add_upload,
)
from tests.integration.test_requests_service import confirmation_token
from tests.support.erasure import Facts, facts_about, holdings, traces
from tests.support.mailbox import outbox_messages_to, plain_text

CANCEL_LINK = re.compile(r"/requests/cancel/([A-Za-z0-9_.\-]+)")
SMALL = "quinn@example.org"
SMALL_PASSWORD = "quinn's long passphrase"
YEARS_KEPT = 10  # invoices: tax and accounting law


class Crash(Exception):  # noqa: N818 -- what it simulates, not an error of the code
    """Raised after a step, as a failure in the middle of an erasure would be."""


class ProcessKilled(BaseException):
    """Like a SIGKILL: nothing in the process gets to clean up (no `except Exception`)."""


def raise_at(step: str, error: type[BaseException] = Crash) -> Callable[[str], None]:
    def after_step(done: str) -> None:
        if done == step:
            raise error(step)

    return after_step


def _steps(request_id: int) -> list[str]:
    return list(
        db.session.scalars(
            select(ErasureStep.step)
            .where(ErasureStep.request_id == request_id)
            .order_by(ErasureStep.id)
        )
    )


def _request(request_id: int) -> DataRequest:
    db.session.expire_all()
    return service.get_request(request_id)


def _confirmed_deletion(app: Flask, user_id: int) -> tuple[int, datetime]:
    """A deletion request made and confirmed; (its id, a moment after its cooling-off)."""
    user = db.session.get(User, user_id)
    assert user is not None
    service.create_for_user(user, "delete_account")
    confirmed = service.confirm(confirmation_token(app, user.email))
    assert confirmed.status == DataRequest.WAITING
    assert confirmed.cooling_off_until is not None
    return confirmed.id, confirmed.cooling_off_until + timedelta(seconds=1)


def _make_due_now(request_id: int) -> None:
    db.session.execute(
        update(DataRequest)
        .where(DataRequest.id == request_id)
        .values(cooling_off_until=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()


def assert_erased(request_id: int, facts: Facts) -> None:
    """The end state of a finished erasure, however it got there."""
    data_request = _request(request_id)
    assert data_request.status == DataRequest.DONE
    assert data_request.user_id is None
    assert data_request.email is None and data_request.details is None
    assert data_request.verify_nonce_hash is None and data_request.erasure_locked_at is None
    assert data_request.retained_as and data_request.retained_as.startswith("erased-")
    assert data_request.retain_until is not None and data_request.retain_until > utcnow()
    steps = _steps(request_id)
    assert sorted(steps) == sorted(step_names()) and len(steps) == len(set(steps))
    completed = [e for e in service.timeline(request_id) if e.kind == "completed"]
    assert [e.details for e in completed] == [{"outcome": "erased"}]

    # The account is gone, and nobody can sign in to it or use an old session.
    assert db.session.get(User, facts.user_id) is None
    assert find_user_by_email(facts.email) is None
    assert authenticate(facts.email, facts.password) is None
    assert load_user_from_session_id(f"{facts.user_id}:{facts.session_version}") is None
    for table in db.metadata.sorted_tables:
        if "user_id" in table.c:
            held = select(func.count()).select_from(table).where(table.c.user_id == facts.user_id)
            assert db.session.scalar(held) == 0, table.name

    # Invoices stay for the tax law, under the pseudonym and without the card.
    for invoice_id, issued_at in facts.invoices.items():
        invoice = db.session.get(Invoice, invoice_id)
        assert invoice is not None
        assert invoice.user_id is None
        assert invoice.retained_as == data_request.retained_as
        assert invoice.payment_method_label is None
        assert invoice.retain_until == datetime(issued_at.year + YEARS_KEPT + 1, 1, 1, tzinfo=UTC)
        assert invoice.retain_until - issued_at > timedelta(days=365 * YEARS_KEPT)

    # Nothing the person wrote or that identifies them, anywhere.
    assert traces(facts.needles) == []

    # Their files are gone once the due jobs ran.
    run_due_jobs()
    assert [key for key in facts.file_keys if media.exists(key)] == []

    assert marketing.is_suppressed(marketing.email_hash(facts.email), "*")
    assert verify_chain().ok
    (last,) = db.session.scalars(
        select(OutboundMail).where(OutboundMail.template == "erasure_done")
    ).all()
    assert last.status == OutboundMail.SENT
    assert last.to_address == "" and last.user_id is None and last.text_body is None


# --- a small account with something in every category ------------------------------------------


def small_account(app: Flask, make_user: Callable[..., User]) -> Facts:
    user = make_user(email=SMALL, password=SMALL_PASSWORD, name="Quinn Lindqvist", country="SE")
    prompt_id, _images = add_prompt(app, user.id, "a lighthouse for Quinn's grandmother", images=2)
    add_upload(app, user.id, "quinn-grandmother.jpg", prompt_id=prompt_id)
    add_support_message(app, user.id, "Quinn's invoice", "Where is the invoice for Quinn?")
    add_card(app, user.id, "tok_quinn_4242")
    with app.app_context():
        db.session.add_all(
            [
                Invoice(
                    user_id=user.id,
                    number="QL-2025-0001",
                    description="Pro plan, one month",
                    amount_cents=1999,
                    tax_cents=319,
                    currency="EUR",
                    status="paid",
                    payment_method_label="Visa ending 4242",
                    issued_at=BASE_TIME,
                ),
                BillingAddress(
                    user_id=user.id,
                    name="Quinn Lindqvist",
                    line1="Storgatan 5",
                    city="Uppsala",
                    postal_code="753 10",
                    country="SE",
                ),
                DeviceRecord(
                    user_id=user.id,
                    ip_address="203.0.113.99",
                    browser="Firefox 130",
                    operating_system="Fedora 40",
                    device_identifier="d-quinn-5f0c1d2e",
                ),
                SessionActivity(user_id=user.id, pages_viewed=3),
                UsageEvent(user_id=user.id, feature="generate", credits_used=2),
                Subscription(user_id=user.id, plan="pro", status="active", credit_balance=12),
                ProcessingChoice(
                    user_id=user.id, purpose="improve_models", allowed=False, source="page"
                ),
                EmailChange(
                    user_id=user.id,
                    old_email=SMALL,
                    new_email="quinn.new@example.org",
                    nonce_hash=secrets.token_hex(32),
                    expires_at=utcnow() + timedelta(days=1),
                ),
            ]
        )
        marketing.seed_subscriber(SMALL, ("newsletter", "offers"), user_id=user.id)
        catalogue = consent.get_catalogue()
        consent.record_decision(
            catalogue,
            consent.Decision(
                choices=dict.fromkeys(catalogue.optional_keys, True),
                source="settings",
                jurisdiction=by_code("SE"),
                notice_version=get_notice().current.version,
                user_id=user.id,
            ),
        )
        # The record of an old export (building one is the demo test's part: it takes time).
        db.session.add(Export(user_id=user.id, status=Export.EXPIRED, categories=["prompts"]))
        db.session.commit()
        # A request still under way: the erasure ends it and keeps no word of it.
        account = db.session.get(User, user.id)
        assert account is not None
        service.create_for_user(account, "question", details="Quinn wonders what you hold")
        facts = facts_about(user.id, SMALL_PASSWORD)
        assert all(holdings(user.id).values())  # something in every category
        return facts


# --- the whole erasure --------------------------------------------------------------------------


def test_erasing_an_account_leaves_only_what_the_law_keeps(app: Flask) -> None:
    with app.app_context():
        seed_demo(echo=lambda _line: None)
        demo = find_user_by_email(DEMO.email)
        demo2 = find_user_by_email(DEMO2.email)
        assert demo is not None and demo2 is not None
        demo_id, demo2_id = demo.id, demo2.id
        export = exports.request_export(demo2_id, [], None, None)
        db.session.commit()  # built at once: jobs run inline in tests
        archive = exports.export_file_path(db.session.get(Export, export.id))  # type: ignore[arg-type]
        assert archive is not None and archive.is_file()
        facts = facts_about(demo2_id, DEMO2.password)
        demo_before = holdings(demo_id)
        demo_files = [
            key
            for model in (GeneratedImage, Upload)
            for key in db.session.scalars(select(model.storage_key).where(model.user_id == demo_id))
        ]

        request_id, later = _confirmed_deletion(app, demo2_id)
        assert run_due_erasures(now=later - timedelta(seconds=2)) == 0  # still cooling off
        assert holdings(demo2_id)["prompts"] > 0
        assert run_due_erasures(now=later) == 1

        assert_erased(request_id, facts)
        assert not archive.exists()
        assert [p for p in exports.exports_dir().rglob("*") if p.is_file()] == []

        # The other person is untouched.
        assert holdings(demo_id) == demo_before
        assert all(media.exists(key) for key in demo_files)
        assert authenticate(DEMO.email, DEMO.password) is not None
        assert not marketing.is_suppressed(marketing.email_hash(DEMO.email), "*")

        # The last email says what went and what stays, in the person's language.
        with force_locale(DEMO2.locale):
            subject = gettext("Your account has been deleted")
            kept_heading = gettext(
                "Kept, without your name or account, because the law requires it:"
            )
            invoices = gettext(get_datamap().get("invoices").name)  # type: ignore[union-attr]
            prompts = gettext(get_datamap().get("prompts").name)  # type: ignore[union-attr]
        outbox: Path = app.config["SETTINGS"].mail_outbox_dir
        (last,) = [m for m in outbox_messages_to(outbox, DEMO2.email) if m["Subject"] == subject]
        deleted, _, kept = plain_text(last).partition(kept_heading)
        assert kept, "the email lists nothing as kept"
        assert f"- {invoices}:" in kept and invoices not in deleted
        assert f"- {prompts}\n" in deleted and prompts not in kept


@pytest.mark.parametrize("kind", ["object", "delete_account"])
def test_an_address_request_about_the_erased_account_cannot_be_confirmed_afterwards(
    app: Flask, make_user: Callable[..., User], kind: str
) -> None:
    facts = small_account(app, make_user)
    with app.app_context():
        by_email = service.create_by_email(kind, SMALL, details="Quinn objects to profiling")
        by_email_id = by_email.id
        old_link = confirmation_token(app, SMALL)
        request_id, later = _confirmed_deletion(app, facts.user_id)
        assert run_due_erasures(now=later) == 1

        assert_erased(request_id, facts)
        with pytest.raises(service.LinkUsedError):
            service.confirm(old_link)
        other = _request(by_email_id)
        assert other.status == DataRequest.CANCELLED  # nobody is left to answer it
        assert other.email is None and other.details is None


# --- crash safety -------------------------------------------------------------------------------


@pytest.mark.parametrize("step", step_names())
def test_an_erasure_stopped_after_any_step_resumes_to_the_same_end(
    app: Flask, make_user: Callable[..., User], step: str
) -> None:
    facts = small_account(app, make_user)
    with app.app_context():
        request_id, later = _confirmed_deletion(app, facts.user_id)

        with pytest.raises(Crash):
            run_erasure(request_id, now=later, after_step=raise_at(step))

        names = step_names()
        assert _steps(request_id) == names[: names.index(step) + 1]
        assert authenticate(facts.email, facts.password) is None  # locked out from step one
        stopped = _request(request_id)
        assert stopped.erasure_locked_at is None  # released: the next sweep resumes at once
        assert stopped.status == (DataRequest.DONE if step == "finish" else DataRequest.ERASING)
        with pytest.raises(service.WrongStateError):
            service.cancel(stopped)

        assert run_due_erasures(now=later) == (0 if step == "finish" else 1)
        assert_erased(request_id, facts)
        assert run_due_erasures(now=later + timedelta(days=1)) == 0


def test_a_killed_erasure_resumes_only_once_its_lock_has_gone_stale(
    app: Flask, make_user: Callable[..., User]
) -> None:
    facts = small_account(app, make_user)
    with app.app_context():
        request_id, later = _confirmed_deletion(app, facts.user_id)
        with pytest.raises(ProcessKilled):
            run_erasure(
                request_id, now=later, after_step=raise_at("category:prompts", ProcessKilled)
            )
        db.session.remove()  # the process is gone, and its session with it
        assert _request(request_id).erasure_locked_at is not None  # nobody released it
        done_before = _steps(request_id)

        now = utcnow()
        db.session.execute(
            update(DataRequest).where(DataRequest.id == request_id).values(erasure_locked_at=now)
        )
        db.session.commit()
        assert run_due_erasures(now=now) == 0
        assert run_due_erasures(now=now + timedelta(minutes=9)) == 0
        assert _steps(request_id) == done_before
        assert _request(request_id).status == DataRequest.ERASING

        assert run_due_erasures(now=now + timedelta(minutes=11)) == 1
        assert_erased(request_id, facts)


# --- cancelling and the cooling-off ------------------------------------------------------------


def test_cancelling_during_the_cooling_off_deletes_nothing(
    app: Flask, make_user: Callable[..., User]
) -> None:
    facts = small_account(app, make_user)
    with app.app_context():
        request_id, later = _confirmed_deletion(app, facts.user_id)
        before = holdings(facts.user_id)
        scheduled = [m for m in _texts(app, SMALL) if CANCEL_LINK.search(m)]
        match = CANCEL_LINK.search(scheduled[-1])
        assert match is not None

        cancelled = service.cancel_by_token(match.group(1))

        assert cancelled.status == DataRequest.CANCELLED
        assert cancelled.email is None
        assert run_due_erasures(now=later) == 0
        assert holdings(facts.user_id) == {**before, "emails": before["emails"] + 1}
        assert _steps(request_id) == []
        assert all(media.exists(key) for key in facts.file_keys)
        assert authenticate(SMALL, SMALL_PASSWORD) is not None
        sent = db.session.scalars(
            select(OutboundMail.to_address).where(OutboundMail.template == "deletion_cancelled")
        ).all()
        assert sent == [SMALL]
        with pytest.raises(service.LinkUsedError):
            service.cancel_by_token(match.group(1))
        assert service.pending_deletion(facts.user_id) is None  # a new request may be made


def test_once_the_erasure_has_started_it_cannot_be_cancelled(
    app: Flask, make_user: Callable[..., User]
) -> None:
    facts = small_account(app, make_user)
    with app.app_context():
        request_id, later = _confirmed_deletion(app, facts.user_id)
        match = CANCEL_LINK.search(_texts(app, SMALL)[-1])
        assert match is not None
        with pytest.raises(Crash):
            run_erasure(request_id, now=later, after_step=raise_at("lock_out"))

        with pytest.raises(service.WrongStateError):
            service.cancel(_request(request_id))
        with pytest.raises(service.LinkUsedError):
            service.cancel_by_token(match.group(1))
        assert run_due_erasures(now=later) == 1
        assert_erased(request_id, facts)
        with pytest.raises(service.WrongStateError):
            service.cancel(_request(request_id))


@pytest.mark.app_settings(deletion_grace_days=0)
def test_without_a_cooling_off_period_confirming_starts_the_erasure_at_once(
    app: Flask, make_user: Callable[..., User]
) -> None:
    facts = small_account(app, make_user)
    with app.app_context():
        user = db.session.get(User, facts.user_id)
        assert user is not None
        made = service.create_for_user(user, "delete_account")
        request_id = made.id

        service.confirm(confirmation_token(app, SMALL))

        job = db.session.scalars(select(Job).where(Job.kind == service.ERASE_JOB)).one()
        assert job.payload == {"request_id": request_id}
        assert job.status == Job.DONE
        assert_erased(request_id, facts)


def test_the_sweeper_command_runs_the_erasures_that_are_due(
    app: Flask, make_user: Callable[..., User]
) -> None:
    facts = small_account(app, make_user)
    with app.app_context():
        request_id, _later = _confirmed_deletion(app, facts.user_id)
        first = app.test_cli_runner().invoke(args=["requests", "process-due"])
        assert "ran 0 account erasure(s)" in first.output
        _make_due_now(request_id)

        result = app.test_cli_runner().invoke(args=["requests", "process-due"])

        assert result.exit_code == 0, result.output
        assert "ran 1 account erasure(s)" in result.output
        assert_erased(request_id, facts)


def _texts(app: Flask, address: str) -> list[str]:
    outbox: Path = app.config["SETTINGS"].mail_outbox_dir
    return [plain_text(message) for message in outbox_messages_to(outbox, address)]


# --- at the same moment (PostgreSQL) ------------------------------------------------------------


@pytest.fixture
def postgres_app(app: Flask) -> Flask:
    if not app.config["SETTINGS"].sqlalchemy_url.startswith("postgresql"):
        pytest.skip("needs PostgreSQL: SQLite serialises every writer")
    return app


def test_one_link_confirmed_twice_at_once_and_two_sweepers_erase_once(
    postgres_app: Flask, make_user: Callable[..., User]
) -> None:
    app = postgres_app
    facts = small_account(app, make_user)
    with app.app_context():
        user = db.session.get(User, facts.user_id)
        assert user is not None
        request_id = service.create_for_user(user, "delete_account").id
        token = confirmation_token(app, SMALL)

    start = threading.Barrier(2)

    def confirm(_n: int) -> str:
        with app.app_context():
            start.wait()
            try:
                service.confirm(token)
            except service.LinkUsedError:
                return "used"
            return "confirmed"

    with ThreadPoolExecutor(max_workers=2) as pool:
        assert sorted(pool.map(confirm, range(2))) == ["confirmed", "used"]

    with app.app_context():
        assert _request(request_id).status == DataRequest.WAITING
        kinds = [event.kind for event in service.timeline(request_id)]
        assert kinds.count("verified") == 1 and kinds.count("cooling_off_started") == 1
        _make_due_now(request_id)

    def sweep(_n: int) -> int:
        with app.app_context():
            start.wait()
            return run_due_erasures()

    with ThreadPoolExecutor(max_workers=2) as pool:
        assert sorted(pool.map(sweep, range(2))) == [0, 1]

    with app.app_context():
        assert_erased(request_id, facts)
        started = db.session.scalar(
            select(func.count())
            .select_from(RequestEvent)
            .where(RequestEvent.request_id == request_id, RequestEvent.kind == "erasure_started")
        )
        assert started == 1
