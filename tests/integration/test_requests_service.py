"""Data-subject requests as a service: made, verified by an emailed link, answered in time.

Without HTTP: the tests call `app.services.requests` and read the links from the emails the
app wrote to its outbox folder, as the person would.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from flask import Flask
from itsdangerous.timed import TimestampSigner
from sqlalchemy import select

from app.extensions import db
from app.jurisdictions import by_code
from app.models import (
    ConsentRecord,
    DataRequest,
    MarketingSubscriber,
    RequestEvent,
    TopicSubscription,
    User,
    utcnow,
)
from app.services import consent, marketing
from app.services import requests as service
from app.services.notice import get_notice
from tests.support.mailbox import outbox_messages_to, plain_text

STRANGER = "nobody-here@example.org"
CONFIRM_LINK = re.compile(r"/requests/confirm/([A-Za-z0-9_.\-]+)")
# The last day of January: "one calendar month" later is the last day of February.
VERIFIED_AT = datetime(2026, 1, 31, 9, 30, tzinfo=UTC)


@pytest.fixture
def ctx(app: Flask) -> Iterator[Flask]:
    with app.app_context():
        yield app


def _user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    assert user is not None
    return user


def messages_to(app: Flask, address: str) -> list[str]:
    """The text of every email the app wrote for `address`, oldest first."""
    outbox = app.config["SETTINGS"].mail_outbox_dir
    return [plain_text(message) for message in outbox_messages_to(outbox, address)]


def confirmation_token(app: Flask, address: str) -> str:
    """The confirmation token of the newest link sent to `address`."""
    links = [m for m in messages_to(app, address) if CONFIRM_LINK.search(m)]
    assert links, f"no confirmation link was emailed to {address}"
    match = CONFIRM_LINK.search(links[-1])
    assert match is not None
    return match.group(1)


def _events(request_id: int) -> list[tuple[str, dict[str, object]]]:
    return [(event.kind, dict(event.details)) for event in service.timeline(request_id)]


def _confirmed(
    app: Flask, user: User, kind: str, details: str | None = None, now: datetime | None = None
) -> DataRequest:
    service.create_for_user(_user(user.id), kind, details=details)
    return service.confirm(confirmation_token(app, user.email), now=now)


# --- made by email ----------------------------------------------------------------------------


def test_a_request_by_email_is_made_and_linked_the_same_way_for_any_address(
    ctx: Flask, make_user: Callable[..., User]
) -> None:
    known = make_user(email="known@example.org")
    made = {
        address: service.create_by_email("delete_account", address, locale="en")
        for address in (known.email, STRANGER)
    }
    for address, data_request in made.items():
        assert data_request.status == DataRequest.UNVERIFIED
        assert data_request.user_id is None  # looked up only once the link is followed
        assert data_request.email == address
        assert data_request.email_hash == marketing.email_hash(address)
        assert data_request.expires_at is not None
        (message,) = messages_to(ctx, address)
        assert CONFIRM_LINK.search(message)
        assert _events(data_request.id) == [("created", {"by_email": True})]


def test_confirming_a_deletion_for_an_address_without_account_erases_its_marketing(
    ctx: Flask,
) -> None:
    marketing.seed_subscriber(STRANGER, ("newsletter",))
    db.session.commit()
    data_request = service.create_by_email("delete_account", STRANGER)
    request_id = data_request.id

    service.confirm(confirmation_token(ctx, STRANGER))

    db.session.expire_all()
    done = service.get_request(request_id)
    assert done.status == DataRequest.DONE
    assert done.user_id is None
    assert done.email is None and done.verify_nonce_hash is None  # the address is forgotten
    assert ("completed", {"outcome": "no_account"}) in _events(request_id)
    assert marketing.find_subscriber(STRANGER) is None
    assert db.session.scalars(select(TopicSubscription)).all() == []
    assert marketing.is_suppressed(marketing.email_hash(STRANGER), "*")
    assert len(messages_to(ctx, STRANGER)) == 2  # the link, then the answer


def test_a_deletion_by_email_for_an_account_address_starts_its_cooling_off(
    ctx: Flask, make_user: Callable[..., User]
) -> None:
    known = make_user(email="known@example.org", country="DE")
    data_request = service.create_by_email("delete_account", "Known@Example.org")

    assert data_request.email == "Known@example.org"  # as typed; the domain is normalised
    confirmed = service.confirm(confirmation_token(ctx, data_request.email), now=VERIFIED_AT)

    assert confirmed.id == data_request.id
    assert confirmed.user_id == known.id
    assert confirmed.jurisdiction == "DE"
    assert confirmed.status == DataRequest.WAITING
    grace = timedelta(days=ctx.config["SETTINGS"].deletion_grace_days)
    assert confirmed.cooling_off_until == VERIFIED_AT + grace


def test_a_confirmed_deletion_by_email_replaces_the_accounts_unconfirmed_one(
    ctx: Flask, make_user: Callable[..., User]
) -> None:
    known = make_user(email="known@example.org")
    marketing.seed_subscriber(known.email, ("newsletter",), user_id=known.id)
    db.session.commit()
    own = service.create_for_user(_user(known.id), "delete_account")
    own_id, own_link = own.id, confirmation_token(ctx, known.email)
    by_email = service.create_by_email("delete_account", known.email)

    confirmed = service.confirm(confirmation_token(ctx, known.email))

    assert confirmed.id == by_email.id
    assert confirmed.status == DataRequest.WAITING and confirmed.user_id == known.id
    replaced = service.get_request(own_id)
    assert replaced.status == DataRequest.CANCELLED
    assert _events(own_id)[-1] == ("cancelled", {"replaced": True})
    with pytest.raises(service.LinkUsedError):
        service.confirm(own_link)
    assert service.pending_deletion(known.id).id == by_email.id  # type: ignore[union-attr]
    # Nothing is erased before the cooling-off, and nobody is told there is no account.
    assert marketing.find_subscriber(known.email) is not None
    assert not marketing.is_suppressed(marketing.email_hash(known.email), "*")
    assert not any("No account uses" in text for text in messages_to(ctx, known.email))


def test_a_deletion_by_email_adds_nothing_to_the_accounts_confirmed_one(
    ctx: Flask, make_user: Callable[..., User]
) -> None:
    known = make_user(email="known@example.org")
    marketing.seed_subscriber(known.email, ("newsletter",), user_id=known.id)
    db.session.commit()
    own = _confirmed(ctx, known, "delete_account")
    own_id, cooling_off_until = own.id, own.cooling_off_until
    by_email = service.create_by_email("delete_account", known.email)
    sent = len(messages_to(ctx, known.email))

    confirmed = service.confirm(confirmation_token(ctx, known.email))

    assert confirmed.id == by_email.id
    assert confirmed.status == DataRequest.DONE and confirmed.email is None
    assert ("completed", {"outcome": "already_scheduled"}) in _events(by_email.id)
    standing = service.get_request(own_id)
    assert standing.status == DataRequest.WAITING
    assert standing.cooling_off_until == cooling_off_until
    assert marketing.find_subscriber(known.email) is not None
    assert not marketing.is_suppressed(marketing.email_hash(known.email), "*")
    (answer,) = messages_to(ctx, known.email)[sent:]  # that the deletion is already scheduled
    assert "No account uses" not in answer


# --- consent requests -------------------------------------------------------------------------


def test_withdrawing_consent_records_a_receipt_with_everything_off_and_stops_marketing(
    ctx: Flask, make_user: Callable[..., User]
) -> None:
    user = make_user(country="US", region="CA")  # opt-out: optional purposes start on
    marketing.seed_subscriber(user.email, ("newsletter", "offers"), user_id=user.id)
    db.session.commit()

    data_request = _confirmed(ctx, user, "withdraw_consent")

    assert data_request.status == DataRequest.DONE
    assert ("completed", {"outcome": "applied"}) in _events(data_request.id)
    receipt = consent.latest_for_user(user.id)
    assert receipt is not None
    assert receipt.source == "request"
    assert receipt.jurisdiction == "US-CA"
    catalogue = consent.get_catalogue()
    assert receipt.choices == dict.fromkeys(catalogue.optional_keys, False)
    assert receipt.notice_version == get_notice().current.version
    statuses = set(db.session.scalars(select(TopicSubscription.status)))
    assert statuses == {TopicSubscription.UNSUBSCRIBED}
    assert marketing.is_suppressed(marketing.email_hash(user.email), "*")


def test_opting_out_of_sale_turns_off_only_the_sale_and_sharing_purposes(
    ctx: Flask, make_user: Callable[..., User]
) -> None:
    user = make_user(country="US", region="CA")
    marketing.seed_subscriber(user.email, ("newsletter",), user_id=user.id)
    catalogue = consent.get_catalogue()
    assert catalogue.sale_or_sharing_keys
    assert set(catalogue.optional_keys) - set(catalogue.sale_or_sharing_keys)
    consent.record_decision(
        catalogue,
        consent.Decision(
            choices=dict.fromkeys(catalogue.optional_keys, True),
            source="settings",
            jurisdiction=by_code("US-CA"),
            notice_version=get_notice().current.version,
            user_id=user.id,
        ),
    )
    db.session.commit()

    data_request = _confirmed(ctx, user, "opt_out_sale")

    assert data_request.status == DataRequest.DONE
    receipt = consent.latest_for_user(user.id)
    assert receipt is not None and receipt.source == "request"
    assert receipt.choices == {
        key: key not in catalogue.sale_or_sharing_keys for key in catalogue.optional_keys
    }
    assert db.session.scalar(select(TopicSubscription.status)) == TopicSubscription.SUBSCRIBED
    assert not marketing.is_suppressed(marketing.email_hash(user.email), "*")
    assert len(db.session.scalars(select(ConsentRecord)).all()) == 2  # receipts are only added


# --- deadlines --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("place", "kind", "due"),
    [
        pytest.param("DE", "correct", datetime(2026, 2, 28, 9, 30, tzinfo=UTC), id="EU"),
        pytest.param("US-CA", "correct", VERIFIED_AT + timedelta(days=45), id="US-CA"),
        pytest.param("BR", "object", VERIFIED_AT + timedelta(days=15), id="BR"),
        pytest.param("DE", "child_report", VERIFIED_AT + timedelta(days=2), id="child"),
        pytest.param("BR", "child_report", VERIFIED_AT + timedelta(days=2), id="child-BR"),
    ],
)
def test_the_deadline_runs_from_verification_by_the_jurisdictions_rules(
    ctx: Flask, make_user: Callable[..., User], place: str, kind: str, due: datetime
) -> None:
    country, _, region = place.partition("-")
    user = make_user(country=country, region=region or None)
    data_request = _confirmed(ctx, user, kind, details="Please look into this.", now=VERIFIED_AT)

    assert data_request.status == DataRequest.OPEN
    assert data_request.verified_at == VERIFIED_AT
    assert data_request.due_at == due
    assert service.is_overdue(data_request, now=due + timedelta(seconds=1))
    assert not service.is_overdue(data_request, now=due)


def test_the_eu_extension_adds_two_months_once_and_brazil_allows_none(
    ctx: Flask, make_user: Callable[..., User]
) -> None:
    staff = make_user(email="staff@example.org", is_staff=True)
    german = make_user(email="de@example.org", country="DE")
    brazilian = make_user(email="br@example.org", country="BR")
    eu = _confirmed(ctx, german, "restrict", details="Stop using my prompts.", now=VERIFIED_AT)
    br = _confirmed(ctx, brazilian, "restrict", details="Pare.", now=VERIFIED_AT)
    staff_row = service.staff_user(staff.id)

    assert service.can_extend(eu)
    sent = len(messages_to(ctx, german.email))
    service.extend(eu, staff_row, "complex")
    assert eu.due_at == datetime(2026, 4, 28, 9, 30, tzinfo=UTC)
    assert eu.extension_reason == "complex"
    assert ("extended", {"reason": "complex"}) in _events(eu.id)
    assert not service.can_extend(eu)  # once
    with pytest.raises(service.WrongStateError):
        service.extend(eu, staff_row, "many_requests")
    assert len(messages_to(ctx, german.email)) == sent + 1  # the person is told, once

    assert not service.can_extend(br)
    with pytest.raises(service.WrongStateError):
        service.extend(br, staff_row, "complex")
    db.session.refresh(br)
    assert br.due_at == VERIFIED_AT + timedelta(days=15)


# --- the link ---------------------------------------------------------------------------------


def test_unconfirmed_requests_expire_after_seven_days_and_forget_their_address(
    ctx: Flask,
) -> None:
    data_request = service.create_by_email("question", STRANGER, details="What do you hold?")
    request_id = data_request.id
    made = utcnow()

    assert service.expire_unverified(now=made + timedelta(days=6, hours=23)) == 0
    assert service.expire_unverified(now=made + timedelta(days=7, minutes=1)) == 1

    db.session.expire_all()
    expired = service.get_request(request_id)
    assert expired.status == DataRequest.EXPIRED
    assert expired.email is None and expired.verify_nonce_hash is None
    assert expired.email_hash is not None  # keyed: a repeat can still be told apart
    assert _events(request_id)[-1] == ("expired", {})
    with pytest.raises(service.LinkUsedError):
        service.confirm(confirmation_token(ctx, STRANGER))


def test_a_link_is_resent_at_most_three_times_and_only_the_newest_works(
    ctx: Flask, make_user: Callable[..., User]
) -> None:
    user = make_user()
    data_request = service.create_for_user(_user(user.id), "correct", details="My name is Ann.")
    first = confirmation_token(ctx, user.email)
    for _ in range(service.MAX_RESENDS):
        service.resend_verification(data_request)
    with pytest.raises(service.ResendLimitError):
        service.resend_verification(data_request)
    assert len(messages_to(ctx, user.email)) == 1 + service.MAX_RESENDS

    with pytest.raises(service.LinkUsedError):
        service.confirm(first)  # replaced by the resent one
    assert service.confirm(confirmation_token(ctx, user.email)).status == DataRequest.OPEN
    with pytest.raises(service.LinkUsedError):
        service.confirm(confirmation_token(ctx, user.email))  # once


def test_asking_again_by_email_resends_the_link_within_the_limit(ctx: Flask) -> None:
    first = service.create_by_email("object", STRANGER, details="No profiling, please.")
    for _ in range(service.MAX_RESENDS):
        again = service.create_by_email("object", STRANGER, details="No profiling, please.")
        assert again.id == first.id
    with pytest.raises(service.ResendLimitError):
        service.create_by_email("object", STRANGER, details="No profiling, please.")
    assert db.session.scalars(select(DataRequest.id)).all() == [first.id]


def test_a_tampered_link_is_invalid_and_an_old_one_expired(
    ctx: Flask, make_user: Callable[..., User]
) -> None:
    user = make_user()
    data_request = service.create_for_user(_user(user.id), "question", details="Hello?")
    token = confirmation_token(ctx, user.email)
    payload, _, signature = token.rpartition(".")
    # The first character: the last one of a base64 signature carries padding bits too.
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]

    for bad in (f"{payload}.{flipped}", token[1:], "x" * (service.MAX_TOKEN_LENGTH + 1), ""):
        with pytest.raises(service.LinkInvalidError):
            service.confirm(bad)
    later = int(time.time()) + int(service.VERIFY_TTL.total_seconds()) + 60
    with (
        mock.patch.object(TimestampSigner, "get_timestamp", return_value=later),
        pytest.raises(service.LinkExpiredError),
    ):
        service.confirm(token)

    db.session.refresh(data_request)
    assert data_request.status == DataRequest.UNVERIFIED  # nothing happened
    assert service.confirm(token).status == DataRequest.OPEN  # the genuine link still works


def test_a_second_deletion_while_one_is_pending_points_to_the_first(
    ctx: Flask, make_user: Callable[..., User]
) -> None:
    user = make_user()
    first = service.create_for_user(_user(user.id), "delete_account")
    with pytest.raises(service.DeletionPendingError) as unverified:
        service.create_for_user(_user(user.id), "delete_account")
    assert unverified.value.request.id == first.id

    service.confirm(confirmation_token(ctx, user.email))
    with pytest.raises(service.DeletionPendingError) as waiting:
        service.create_for_user(_user(user.id), "delete_account")
    assert waiting.value.request.id == first.id
    assert waiting.value.request.status == DataRequest.WAITING
    # Another kind is still fine.
    other = service.create_for_user(_user(user.id), "question", details="When exactly?")
    assert other.status == DataRequest.UNVERIFIED
    assert len(db.session.scalars(select(DataRequest.id)).all()) == 2


@pytest.mark.parametrize(
    ("kind", "details", "problem"),
    [
        ("correct", None, "missing"),
        ("correct", "  \n\t ", "missing"),
        ("child_report", "", "missing"),
        ("question", "hello\x00world", "control characters"),
        ("correct", "bell\x07", "control characters"),
        ("object", "escape \x1b[31mred", "control characters"),
        ("restrict", "delete\x7f", "control characters"),
        ("question", "my name is \u202eeciffo", "control characters"),
        ("question", "isolated \u2067text\u2069", "control characters"),
        ("question", "x" * (service.MAX_DETAILS_LENGTH + 1), "too long"),
    ],
)
def test_details_are_required_where_needed_and_must_be_plain_text(
    ctx: Flask, make_user: Callable[..., User], kind: str, details: str | None, problem: str
) -> None:
    user = make_user()
    with pytest.raises(service.DetailsError, match=problem):
        service.create_for_user(_user(user.id), kind, details=details)
    with pytest.raises(service.DetailsError, match=problem):
        service.create_by_email(kind, STRANGER, details=details)
    assert db.session.scalars(select(DataRequest)).all() == []
    assert messages_to(ctx, user.email) == [] and messages_to(ctx, STRANGER) == []


def test_details_keep_line_breaks_and_tabs_and_are_trimmed(
    ctx: Flask, make_user: Callable[..., User]
) -> None:
    user = make_user()
    data_request = service.create_for_user(
        _user(user.id), "correct", details="  My name is Ann,\r\n\tnot Anne. ✍️  "
    )
    assert data_request.details == "My name is Ann,\n\tnot Anne. ✍️"
    deletion = service.create_for_user(_user(user.id), "delete_account", details="   ")
    assert deletion.details is None


def test_kinds_that_need_an_account_cannot_be_asked_for_by_email(ctx: Flask) -> None:
    with pytest.raises(service.UnknownKindError):
        service.create_by_email("appeal", STRANGER, details="I disagree.")
    with pytest.raises(service.UnknownKindError):
        service.create_by_email("export_everything", STRANGER)
    with pytest.raises(marketing.InvalidAddressError):
        service.create_by_email("question", "not an address", details="Hi")
    assert db.session.scalars(select(MarketingSubscriber)).all() == []
    assert db.session.scalars(select(RequestEvent)).all() == []


def test_a_german_account_gets_its_deadline_as_a_german_date(
    ctx: Flask, make_user: Callable[..., User]
) -> None:
    german = make_user(email="frist@example.org", country="DE", locale="de")

    data_request = _confirmed(ctx, german, "correct", details="Name falsch.", now=VERIFIED_AT)

    assert data_request.due_at == datetime(2026, 2, 28, 9, 30, tzinfo=UTC)  # one month, EU
    received = messages_to(ctx, german.email)[-1]
    assert "28. Februar 2026" in received
    assert "February" not in received
    assert received.startswith("Guten Tag,")
