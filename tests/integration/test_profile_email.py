"""Changing the sign-in address: a link to the new address, a notice to the old one, and the
change only when the link is followed (signed, single use, 24 hours)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from app.extensions import db
from app.models import (
    AuditEvent,
    EmailChange,
    MarketingSubscriber,
    OutboundMail,
    TopicSubscription,
    User,
    utcnow,
)
from app.services import marketing
from app.services.profile import make_token
from tests.support.mailbox import SMTPServer
from tests.support.web import csrf_token, login, post_form, text_of, title_of

BASE_URL = "http://127.0.0.1:5000"
LINK = re.compile(re.escape(BASE_URL) + r"(/profile/email/confirm/[A-Za-z0-9_.\-]+)")
NEW = "ann.new@example.org"


# --- helpers ----------------------------------------------------------------------------------


def _ask(client: FlaskClient, new_email: str, password: str) -> TestResponse:
    return post_form(
        client,
        "/profile/email",
        {"new_email": new_email, "password": password},
        form_page="/profile",
    )


def _outbox(app: Flask) -> list[EmailMessage]:
    messages = []
    for path in sorted(app.config["SETTINGS"].mail_outbox_dir.glob("*.eml")):
        with path.open("rb") as handle:
            messages.append(BytesParser(policy=policy.default).parse(handle))
    return messages


def _text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content()  # type: ignore[union-attr]


def _html(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return part.get_content()  # type: ignore[union-attr]


def _to(messages: list[EmailMessage], address: str) -> list[EmailMessage]:
    return [m for m in messages if m["To"] == address]


def _link_in(message: EmailMessage) -> str:
    match = LINK.search(_text(message))
    assert match, "the message has no confirmation link"
    assert match.group(0) in _html(message)
    return match.group(1)


def _user(app: Flask, user_id: int) -> User:
    with app.app_context():
        row = db.session.get(User, user_id)
        assert row is not None
        db.session.expunge(row)
        return row


def _changes(app: Flask, user_id: int) -> list[EmailChange]:
    with app.app_context():
        rows = list(
            db.session.scalars(
                select(EmailChange).where(EmailChange.user_id == user_id).order_by(EmailChange.id)
            )
        )
        db.session.expunge_all()
        return rows


def _events(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        rows = list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))
        db.session.expunge_all()
        return rows


def _mail_count(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(OutboundMail)) or 0


def _confirm(client: FlaskClient, path: str) -> TestResponse:
    """Press the button on the confirmation page, as the person who got the link would."""
    page = client.get(path)
    assert page.status_code == 200, text_of(page)
    return post_form(client, path)


def _asked(app: Flask, client: FlaskClient, user: User, new_email: str = NEW) -> str:
    """Sign in, ask for the change; the path of the link that arrived at the new address."""
    login(client, user.email, user.password)
    assert _ask(client, new_email, user.password).status_code == 303
    (message,) = _to(_outbox(app), new_email)
    return _link_in(message)


# --- asking -----------------------------------------------------------------------------------


def test_asking_sends_a_link_to_the_new_address_and_a_masked_notice_to_the_old(
    smtp_app: Flask, smtp_server: SMTPServer, user: User
) -> None:
    client = smtp_app.test_client()
    login(client, user.email, user.password)
    response = _ask(client, NEW, user.password)
    assert response.status_code == 303
    assert response.headers["Location"] == "/profile"
    page = text_of(client.get("/profile"))
    assert f"We sent a confirmation link to {NEW}." in page
    assert f"A change to {NEW} is waiting for confirmation." in page

    received = {r.rcpt_tos[0]: r for r in smtp_server.wait_for(2)}
    assert set(received) == {NEW, "ann@example.com"}
    confirm = received[NEW]
    assert confirm.message["Subject"] == "Confirm your new sign-in address"
    link = LINK.search(confirm.text)
    assert link, confirm.text
    assert link.group(0) in confirm.html
    assert "The link works once, for 24 hours." in confirm.text
    assert "ann@example.com" not in confirm.text  # the new mailbox learns nothing of the old

    notice = received["ann@example.com"]
    assert notice.message["Subject"] == "Someone asked to change your sign-in address"
    assert "a***@example.org" in notice.text
    assert "a***@example.org" in notice.html
    assert NEW not in notice.text + notice.html
    assert "/confirm/" not in notice.text + notice.html  # the old mailbox cannot complete it
    assert "Nothing has changed yet." in notice.text
    assert "privacy@example.com" in notice.text
    assert f"{BASE_URL}/profile" in notice.text

    # Still the old address, until the link is followed.
    assert _user(smtp_app, user.id).email == "ann@example.com"
    (change,) = _changes(smtp_app, user.id)
    assert (change.old_email, change.new_email) == ("ann@example.com", NEW)
    assert change.confirmed_at is None
    assert change.cancelled_at is None
    assert timedelta(hours=23, minutes=59) < change.expires_at - change.created_at
    assert change.expires_at - change.created_at <= timedelta(hours=24)
    assert re.fullmatch(r"[0-9a-f]{64}", change.nonce_hash)
    # The link carries the change's id and a nonce, never an address, and not the stored hash.
    token = link.group(1).rsplit("/", 1)[1]
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert set(payload) == {"c", "n"}
    assert payload["c"] == change.id
    assert payload["n"] != change.nonce_hash
    (event,) = _events(smtp_app, "profile.email_change_requested")
    assert "@" not in json.dumps(event.details) + (event.target or "")


def test_mails_are_written_in_the_language_the_person_chose(
    app: Flask, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    me = make_user(email="jonas@example.com", locale="de")
    login(client, me.email, me.password)
    assert _ask(client, "jonas.neu@example.org", me.password).status_code == 303
    messages = _outbox(app)
    assert len(messages) == 2
    for message in messages:
        assert message["Content-Language"] == "de"
        assert '<html lang="de"' in _html(message)


def test_wrong_password_sends_nothing_and_records_nothing(
    app: Flask, client: FlaskClient, user: User
) -> None:
    login(client, user.email, user.password)
    response = _ask(client, NEW, "not my password")
    assert response.status_code == 400
    assert "That password is not right. Try again." in text_of(response)
    assert "No link was sent." in text_of(response)
    assert _changes(app, user.id) == []
    assert _mail_count(app) == 0
    assert _outbox(app) == []


@pytest.mark.parametrize(
    ("new_email", "message"),
    [
        ("ANN@Example.com", "This is already the address you sign in with."),
        ("not-an-address", "Enter an email address in the form name@example.com."),
        ("ann@", "Enter an email address in the form name@example.com."),
        ("", "Enter the new email address."),
        ("a" * 250 + "@example.org", "Use at most 254 characters."),
    ],
    ids=["same-address-other-case", "no-at", "no-domain", "empty", "too-long"],
)
def test_unusable_new_addresses_are_refused(
    app: Flask, client: FlaskClient, user: User, new_email: str, message: str
) -> None:
    login(client, user.email, user.password)
    response = _ask(client, new_email, user.password)
    assert response.status_code == 400
    assert message in text_of(response)
    assert _changes(app, user.id) == []
    assert _mail_count(app) == 0


def test_an_address_another_account_uses_gets_the_same_answer_and_no_link(
    app: Flask, client: FlaskClient, user: User, make_user: Callable[..., User]
) -> None:
    taken = make_user(email="bob@example.org", locale="en")
    login(client, user.email, user.password)
    response = _ask(client, "Bob@Example.org", user.password)
    assert response.status_code == 303
    # Word for word what a free address gets: the form does not tell who has an account.
    assert "We sent a confirmation link to Bob@example.org." in text_of(client.get("/profile"))

    messages = _outbox(app)
    assert sorted(m["To"] for m in messages) == ["ann@example.com", "bob@example.org"]
    (to_bob,) = _to(messages, "bob@example.org")
    assert to_bob["Subject"] == "Someone tried to use your address for another account"
    assert not LINK.search(_text(to_bob))
    assert "nothing was changed" in _text(to_bob)
    assert "ann@example.com" not in _text(to_bob) + _html(to_bob)
    (notice,) = _to(messages, "ann@example.com")
    assert "B***@example.org" in _text(notice)
    assert _user(app, taken.id).email == "bob@example.org"
    assert _user(app, user.id).email == "ann@example.com"


def test_asking_again_replaces_the_earlier_link(
    app: Flask, client: FlaskClient, user: User
) -> None:
    first = _asked(app, client, user, "first@example.org")
    assert _ask(client, "second@example.org", user.password).status_code == 303
    (message,) = _to(_outbox(app), "second@example.org")
    second = _link_in(message)

    response = client.get(first)
    assert response.status_code == 410
    assert title_of(response) == "This link has already been used"
    assert "a newer change was asked for" in text_of(response)
    assert _confirm(client, second).status_code == 303
    assert _user(app, user.id).email == "second@example.org"


def test_a_pending_change_can_be_cancelled(app: Flask, client: FlaskClient, user: User) -> None:
    link = _asked(app, client, user)
    response = post_form(client, "/profile/email/cancel", form_page="/profile")
    assert response.status_code == 303
    page = text_of(client.get("/profile"))
    assert "The change of your sign-in address is cancelled." in page
    assert "is waiting for confirmation" not in page
    assert client.get(link).status_code == 410
    assert _user(app, user.id).email == "ann@example.com"
    assert len(_events(app, "profile.email_change_cancelled")) == 1


# --- following the link -----------------------------------------------------------------------


def test_opening_the_link_changes_nothing_and_pressing_the_button_does(
    app: Flask, client: FlaskClient, user: User, make_user: Callable[..., User]
) -> None:
    bystander = make_user(email="bob@example.com", name="Bob")
    elsewhere = app.test_client()  # another browser where Ann is signed in
    login(elsewhere, user.email, user.password)
    link = _asked(app, client, user)

    # A link scanner, or the person, opens the link: only a page that says what will happen.
    reader = app.test_client()
    for _ in range(2):
        page = reader.get(link)
        assert page.status_code == 200
        assert title_of(page) == "Confirm your new sign-in address"
        assert f"Change your sign-in address from a***@example.com to {NEW}." in text_of(page)
        assert "every browser that is signed in to the account is signed out" in text_of(page)
    assert _user(app, user.id).email == "ann@example.com"
    assert _changes(app, user.id)[0].confirmed_at is None

    before = _user(app, user.id)
    mails_before = len(_outbox(app))
    response = post_form(reader, link)
    assert response.status_code == 303
    assert response.headers["Location"] == "/login"
    assert f"Your sign-in address is now {NEW}." in text_of(reader.get("/login"))

    after = _user(app, user.id)
    assert after.email == NEW
    assert after.session_version == before.session_version + 1
    (change,) = _changes(app, user.id)
    assert change.confirmed_at is not None
    (event,) = _events(app, "profile.email_changed")
    assert (event.actor_id, event.subject_user_id) == (user.id, user.id)
    assert "@" not in json.dumps(event.details) + (event.target or "")

    final = _outbox(app)[mails_before:]
    (to_new,) = _to(final, NEW)
    assert to_new["Subject"] == "Your sign-in address has been changed"
    assert f"You now sign in to your GPT Image 2 account with this address, {NEW}." in _text(to_new)
    (to_old,) = _to(final, "ann@example.com")
    assert "a***@example.org" in _text(to_old)
    assert NEW not in _text(to_old)

    # Every other session of Ann's has ended; Bob is untouched.
    assert client.get("/profile").status_code == 302
    assert elsewhere.get("/profile").status_code == 302
    assert _user(app, bystander.id).email == "bob@example.com"
    assert _user(app, bystander.id).session_version == bystander.session_version

    # The new address signs in; the old one no longer does.
    fresh = app.test_client()
    assert login(fresh, "ann@example.com", user.password).status_code == 401
    assert login(fresh, NEW, user.password).status_code == 303
    assert text_of(fresh.get("/profile")).count(NEW) >= 1


def test_confirming_while_signed_in_ends_this_session_too(
    app: Flask, client: FlaskClient, user: User
) -> None:
    link = _asked(app, client, user)
    assert _confirm(client, link).status_code == 303
    page = client.get("/login")
    assert page.status_code == 200  # signed out: the sign-in page shows, no redirect
    assert "Sign in with your new address." in text_of(page)


def test_confirming_while_signed_in_as_someone_else_changes_only_the_link_owner(
    app: Flask, client: FlaskClient, user: User, make_user: Callable[..., User]
) -> None:
    other = make_user(email="bob@example.com", name="Bob")
    link = _asked(app, client, user)
    browser = app.test_client()
    login(browser, other.email, other.password)
    assert _confirm(browser, link).status_code == 303
    assert _user(app, user.id).email == NEW
    assert _user(app, other.id).email == "bob@example.com"
    # Bob stays signed in as Bob; nobody was signed in as Ann.
    assert title_of(browser.get("/profile")) == "Your details"
    assert "bob@example.com" in text_of(browser.get("/profile"))


def test_a_link_works_only_once(app: Flask, client: FlaskClient, user: User) -> None:
    link = _asked(app, client, user)
    browser = app.test_client()
    assert _confirm(browser, link).status_code == 303
    token = csrf_token(browser, "/login")
    again = browser.post(link, data={"csrf_token": token})
    assert again.status_code == 410
    assert title_of(again) == "This link has already been used"
    assert browser.get(link).status_code == 410
    assert len(_events(app, "profile.email_changed")) == 1


@pytest.mark.parametrize(
    "damage",
    [
        "tampered-payload",
        "tampered-signature",
        "truncated",
        "garbage",
        "unknown-change",
        "wrong-nonce",
        "other-key",
    ],
)
def test_a_damaged_link_is_refused_and_changes_nothing(
    app: Flask, client: FlaskClient, user: User, damage: str
) -> None:
    link = _asked(app, client, user)
    prefix, token = link.rsplit("/", 1)
    (change,) = _changes(app, user.id)
    secret = app.config["SECRET_KEY"]

    def flip(at: int) -> str:  # one character changed, in the middle of a part
        return token[:at] + ("x" if token[at] != "x" else "y") + token[at + 1 :]

    bad = {
        "tampered-payload": flip(5),
        "tampered-signature": flip(len(token) - 10),
        "truncated": token[:-5],
        "garbage": "not-a-token",
        # Signed by us, but for a change that does not exist or with another nonce.
        "unknown-change": make_token(secret, change.id + 1000, "nonce"),
        "wrong-nonce": make_token(secret, change.id, "a-guessed-nonce"),
        "other-key": make_token("another-secret-key", change.id, "nonce"),
    }[damage]
    browser = app.test_client()
    path = f"{prefix}/{bad}"
    for response in (browser.get(path), post_form(browser, path, form_page="/login")):
        assert response.status_code == 400
        assert title_of(response) == "This link is not valid"
        assert "Nothing was changed." in text_of(response)
    assert _user(app, user.id).email == "ann@example.com"
    assert _changes(app, user.id)[0].confirmed_at is None


def test_an_expired_link_is_refused_and_says_what_to_do(
    app: Flask, client: FlaskClient, user: User
) -> None:
    link = _asked(app, client, user)
    with app.app_context():
        change = db.session.scalars(select(EmailChange)).one()
        change.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    browser = app.test_client()
    for response in (browser.get(link), post_form(browser, link, form_page="/login")):
        assert response.status_code == 410
        assert title_of(response) == "This link has expired"
        assert "ask for the change again" in text_of(response)
    assert _user(app, user.id).email == "ann@example.com"
    assert _changes(app, user.id)[0].confirmed_at is None


def test_a_link_older_than_a_day_is_refused_by_its_signature(
    app: Flask, client: FlaskClient, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from itsdangerous.timed import TimestampSigner

    link = _asked(app, client, user)
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) + 86_401)
    response = app.test_client().get(link)
    assert response.status_code == 410
    assert title_of(response) == "This link has expired"


def test_an_address_taken_in_the_meantime_stops_the_change(
    app: Flask, client: FlaskClient, user: User, make_user: Callable[..., User]
) -> None:
    link = _asked(app, client, user)
    make_user(email=NEW.upper())
    browser = app.test_client()
    for response in (browser.get(link), post_form(browser, link, form_page="/login")):
        assert response.status_code == 409
        assert title_of(response) == "This address cannot be used"
    after = _user(app, user.id)
    assert after.email == "ann@example.com"
    assert after.session_version == user.session_version
    assert _changes(app, user.id)[0].confirmed_at is None
    assert _events(app, "profile.email_changed") == []


def test_pressing_the_button_without_the_forms_token_changes_nothing(
    app: Flask, client: FlaskClient, user: User
) -> None:
    link = _asked(app, client, user)
    response = app.test_client().post(link)
    assert response.status_code == 400
    assert _user(app, user.id).email == "ann@example.com"


@pytest.mark.app_settings(rate_limits=True, login_rate_limit="2 per minute")
def test_guessing_the_password_is_limited_like_signing_in(
    app: Flask, client: FlaskClient, user: User
) -> None:
    login(client, user.email, user.password)
    for _ in range(2):
        assert _ask(client, NEW, "a guess").status_code == 400
    response = _ask(client, NEW, user.password)
    assert response.status_code == 429
    assert title_of(response) == "Too many attempts"
    assert _changes(app, user.id) == []


# --- marketing email follows the address ------------------------------------------------------


def test_marketing_email_follows_the_new_address_and_joins_its_newsletter_subscription(
    app: Flask, client: FlaskClient, user: User
) -> None:
    with app.app_context():
        marketing.seed_subscriber(user.email, ["product_updates"], user_id=user.id)
        marketing.seed_subscriber(NEW, ["newsletter", "product_updates"])  # no account
        db.session.commit()
    link = _asked(app, client, user)
    assert post_form(app.test_client(), link).status_code == 303

    with app.app_context():
        assert marketing.find_subscriber("ann@example.com") is None  # nothing goes there now
        subscriber = marketing.find_subscriber(NEW)
        assert subscriber is not None
        assert (subscriber.user_id, subscriber.email) == (user.id, NEW)
        assert db.session.scalar(select(func.count()).select_from(MarketingSubscriber)) == 1
        topics = db.session.execute(
            select(TopicSubscription.topic, TopicSubscription.status, TopicSubscription.user_id)
            .where(TopicSubscription.subscriber_id == subscriber.id)
            .order_by(TopicSubscription.topic)
        ).all()
        assert topics == [
            ("newsletter", "subscribed", user.id),
            ("product_updates", "subscribed", user.id),
        ]
        headers = marketing.list_unsubscribe_headers(NEW, "newsletter")
        assert "/unsubscribe/" in headers["List-Unsubscribe"]
