"""/preferences/marketing: topics switched on (double opt-in) and off, with and without htmx,
"unsubscribe from all", the history, manage links by email, and the data pages' words."""

from __future__ import annotations

import re
from email import policy
from email.parser import BytesParser
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner
from sqlalchemy import func, select

from app.extensions import db
from app.models import (
    AuditEvent,
    MarketingEvent,
    MarketingSubscriber,
    OutboundMail,
    SuppressionEntry,
    TopicSubscription,
    User,
)
from app.services import marketing
from tests.support.mailbox import SMTPServer
from tests.support.web import csrf_from_html, login, post_form, text_of, title_of

BASE_URL = "http://127.0.0.1:5000"
CONFIRM_LINK = re.compile(
    re.escape(BASE_URL) + r"(/preferences/marketing/confirm/[A-Za-z0-9_.\-]+)"
)
MANAGE_LINK = re.compile(re.escape(BASE_URL) + r"(/preferences/marketing/link/[A-Za-z0-9_.\-]+)")
PAGE = "/preferences/marketing"
HTMX = {"HX-Request": "true"}


# --- helpers ----------------------------------------------------------------------------------


def _words(response: Any) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", text_of(response)).split())


def _switch(client: FlaskClient, topic: str, on: bool, **kwargs: Any) -> Any:
    return post_form(
        client,
        f"{PAGE}/topics/{topic}",
        {"subscribe": "1" if on else "0"},
        form_page=PAGE,
        **kwargs,
    )


def _statuses(app: Flask, email: str) -> dict[str, str]:
    with app.app_context():
        subscriber = marketing.find_subscriber(email)
        if subscriber is None:
            return {}
        rows = db.session.scalars(
            select(TopicSubscription).where(TopicSubscription.subscriber_id == subscriber.id)
        )
        return {row.topic: row.status for row in rows}


def _events(app: Flask, email: str) -> list[tuple[str, str, str]]:
    with app.app_context():
        subscriber = marketing.find_subscriber(email)
        assert subscriber is not None
        rows = db.session.scalars(
            select(MarketingEvent)
            .where(MarketingEvent.subscriber_id == subscriber.id)
            .order_by(MarketingEvent.id)
        )
        return [(row.topic, row.action, row.source) for row in rows]


def _audit(app: Flask, user_id: int) -> list[tuple[str, str | None]]:
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.subject_user_id == user_id, AuditEvent.action.like("marketing.%"))
            .order_by(AuditEvent.id)
        )
        return [(row.action, row.target) for row in rows]


def _count(app: Flask, model: Any) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model)) or 0


def _mail_count(app: Flask) -> int:
    return _count(app, OutboundMail)


# --- the page for visitors and for accounts ---------------------------------------------------


def test_a_visitor_is_offered_a_link_by_email(client: FlaskClient) -> None:
    page = client.get(PAGE)
    assert page.status_code == 200
    assert title_of(page) == "Marketing emails"
    words = _words(page)
    assert "You do not need an account or a password." in words
    assert "Email me a link" in words
    assert "They keep coming whatever you choose here" in words
    assert "sign in" in words


def test_an_account_sees_every_topic_off_and_opening_the_page_stores_nothing(
    app: Flask, client: FlaskClient, user: User
) -> None:
    login(client, user.email, user.password)
    page = client.get(PAGE)
    words = _words(page)
    assert "Choose which marketing emails we send to ann@example.com." in words
    for name in ("Product updates", "Newsletter", "Offers and discounts", "Research invitations"):
        assert name in words
    assert words.count("You do not get these emails.") == 4
    assert page.get_data(as_text=True).count('aria-checked="false"') == 4
    assert "Emails that are not marketing" in words
    assert "No changes yet." in words
    assert _count(app, MarketingSubscriber) == 0


# --- double opt-in ----------------------------------------------------------------------------


def test_turning_a_topic_on_sends_a_confirmation_that_starts_it(
    smtp_app: Flask, smtp_server: SMTPServer, user: User
) -> None:
    client = smtp_app.test_client()
    login(client, user.email, user.password)

    response = _switch(client, "newsletter", on=True)

    assert response.status_code == 303
    assert response.headers["Location"] == f"{PAGE}#topic-newsletter"
    page = client.get(PAGE)
    assert "Almost done: we sent a link to ann@example.com." in _words(page)
    assert "Waiting for you to confirm" in _words(page)
    assert _statuses(smtp_app, user.email) == {"newsletter": "pending"}

    (received,) = smtp_server.wait_for(1)
    assert received.rcpt_tos == ("ann@example.com",)
    assert received.message["Subject"] == "Confirm that you want “Newsletter” emails"
    assert "List-Unsubscribe" not in received.message  # a service message, not marketing
    assert "This is a service message, sent only because of this request." in received.text
    assert "it is not marketing" in received.text
    assert "The link works once, for 7 days." in received.text
    link = CONFIRM_LINK.search(received.text)
    assert link, received.text
    assert link.group(0) in received.html

    # A scanner opening the link starts nothing; the button does.
    confirm_page = client.get(link.group(1))
    assert confirm_page.status_code == 200
    assert title_of(confirm_page) == "Confirm your subscription"
    assert _statuses(smtp_app, user.email) == {"newsletter": "pending"}
    confirmed = post_form(client, link.group(1))
    assert confirmed.status_code == 303
    assert _statuses(smtp_app, user.email) == {"newsletter": "subscribed"}
    page = client.get(PAGE)
    assert "Confirmed: you will get “Newsletter” emails at ann@example.com." in _words(page)
    assert "You get these emails (since" in _words(page)

    assert _events(smtp_app, user.email) == [
        ("newsletter", "requested", "page"),
        ("newsletter", "confirmed", "link"),
    ]
    assert _audit(smtp_app, user.id) == [
        ("marketing.requested", "marketing:newsletter"),
        ("marketing.confirmed", "marketing:newsletter"),
    ]
    # Single use.
    again = post_form(client, link.group(1), form_page=PAGE)
    assert again.status_code == 410
    assert title_of(again) == "This link has already been used"


def test_the_confirmation_is_sent_in_the_subscribers_language(
    smtp_app: Flask, smtp_server: SMTPServer, make_user: Any, german_catalog: Any
) -> None:
    if german_catalog is None:
        pytest.skip("no German catalog yet")
    person = make_user(email="lena@example.de", locale="de")
    client = smtp_app.test_client()
    login(client, person.email, person.password)
    _switch(client, "offers", on=True)
    (received,) = smtp_server.wait_for(1)
    assert received.message["Content-Language"] == "de"


def test_asking_again_sends_a_new_link_and_the_old_one_stops_working(
    app: Flask, client: FlaskClient, user: User
) -> None:
    login(client, user.email, user.password)
    _switch(client, "research", on=True)
    _switch(client, "research", on=True)  # "send the link again"

    links = [CONFIRM_LINK.search(text).group(1) for text in _outbox_texts(app)]  # type: ignore[union-attr]
    assert len(links) == 2
    assert client.get(links[0]).status_code == 410
    assert client.get(links[1]).status_code == 200
    assert _events(app, user.email) == [("research", "requested", "page")] * 2


def _outbox_texts(app: Flask) -> list[str]:
    texts = []
    for path in sorted(app.config["SETTINGS"].mail_outbox_dir.glob("*.eml")):
        with path.open("rb") as handle:
            message = BytesParser(policy=policy.default).parse(handle)
        body = message.get_body(preferencelist=("plain",))
        texts.append(body.get_content() if body is not None else "")  # type: ignore[union-attr]
    return texts


def test_a_confirmation_link_expires_after_seven_days(
    app: Flask, client: FlaskClient, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    login(client, user.email, user.password)
    _switch(client, "offers", on=True)
    (text,) = _outbox_texts(app)
    path = CONFIRM_LINK.search(text).group(1)  # type: ignore[union-attr]
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) + 7 * 86400 + 1)

    page = client.get(path)

    assert page.status_code == 410
    assert title_of(page) == "This link has expired"
    assert _statuses(app, user.email) == {"offers": "pending"}


def test_switching_a_waiting_topic_off_cancels_its_link(
    app: Flask, client: FlaskClient, user: User
) -> None:
    login(client, user.email, user.password)
    _switch(client, "offers", on=True)
    _switch(client, "offers", on=False)
    (text,) = _outbox_texts(app)
    assert client.get(CONFIRM_LINK.search(text).group(1)).status_code == 410  # type: ignore[union-attr]
    assert _statuses(app, user.email) == {"offers": "unsubscribed"}


def test_a_damaged_confirmation_link_is_400(app: Flask, client: FlaskClient) -> None:
    page = client.get(f"{PAGE}/confirm/not-a-real-token")
    assert page.status_code == 400
    assert title_of(page) == "This link is not valid"


# --- switching off, all off, htmx -------------------------------------------------------------


def _subscribed_user(app: Flask, user: User, topics: tuple[str, ...]) -> None:
    with app.app_context():
        marketing.seed_subscriber(user.email, topics, user_id=user.id)


def test_switching_a_topic_off_stops_it_at_once_and_suppresses_it(
    app: Flask, client: FlaskClient, user: User
) -> None:
    _subscribed_user(app, user, ("newsletter", "offers"))
    login(client, user.email, user.password)

    _switch(client, "offers", on=False)

    assert _statuses(app, user.email) == {"newsletter": "subscribed", "offers": "unsubscribed"}
    assert "Saved: you will no longer get “Offers and discounts” emails." in _words(
        client.get(PAGE)
    )
    with app.app_context():
        rows = db.session.scalars(select(SuppressionEntry)).all()
        assert [(r.email_hash, r.topic, r.reason) for r in rows] == [
            (marketing.email_hash(user.email), "offers", "unsubscribe")
        ]
    assert _audit(app, user.id) == [("marketing.unsubscribed", "marketing:offers")]
    assert _mail_count(app) == 0


def test_the_switch_answers_htmx_with_the_topic_alone(
    app: Flask, client: FlaskClient, user: User
) -> None:
    _subscribed_user(app, user, ("newsletter",))
    login(client, user.email, user.password)

    response = _switch(client, "newsletter", on=False, headers=HTMX)

    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith('<li id="topic-newsletter"')
    assert 'aria-checked="false"' in body
    assert '<div id="marketing-live" hx-swap-oob="innerHTML">' in body
    assert "Saved: you will no longer get “Newsletter” emails." in text_of(response)
    assert 'id="marketing-history" aria-labelledby="marketing-history-heading" hx-swap-oob' in body
    assert "<html" not in body
    assert "HX-Request" in response.headers.get("Vary", "")
    assert _statuses(app, user.email) == {"newsletter": "unsubscribed"}


def test_unsubscribe_from_all(app: Flask, client: FlaskClient, user: User) -> None:
    _subscribed_user(app, user, ("newsletter", "offers", "research"))
    login(client, user.email, user.password)

    response = post_form(client, f"{PAGE}/all", form_page=PAGE)

    assert response.status_code == 303
    page = client.get(PAGE)
    assert "Done: we will send no more marketing emails to ann@example.com." in _words(page)
    assert set(_statuses(app, user.email).values()) == {"unsubscribed"}
    assert _events(app, user.email)[-1] == ("*", "unsubscribed", "page")
    assert "All marketing emails: unsubscribed, on this site" in _words(page)
    with app.app_context():
        assert marketing.is_suppressed(marketing.email_hash(user.email), "product_updates")


def test_the_history_says_when_what_and_how(app: Flask, client: FlaskClient, user: User) -> None:
    _subscribed_user(app, user, ("newsletter",))
    with app.app_context():
        subscriber = marketing.find_subscriber(user.email)
        assert subscriber is not None
        marketing.unsubscribe(subscriber, "newsletter", source="one_click")
    login(client, user.email, user.password)

    words = _words(client.get(PAGE))

    assert words.index(
        "Newsletter: unsubscribed, with the unsubscribe button of your mail program"
    ) < (words.index("Newsletter: confirmed, with the link in an email"))
    assert "Newsletter: asked for (waiting for confirmation), on this site" in words


def test_an_unsigned_visitor_cannot_switch(app: Flask, client: FlaskClient) -> None:
    page = client.get(PAGE)
    token = csrf_from_html(page.get_data(as_text=True))
    response = client.post(
        f"{PAGE}/topics/newsletter", data={"subscribe": "1", "csrf_token": token}
    )
    assert response.status_code == 303
    htmx = client.post(
        f"{PAGE}/topics/newsletter", data={"subscribe": "1", "csrf_token": token}, headers=HTMX
    )
    assert htmx.headers["HX-Redirect"] == PAGE
    assert _count(app, MarketingSubscriber) == 0


def test_a_switch_without_its_form_token_is_refused(
    app: Flask, client: FlaskClient, user: User
) -> None:
    _subscribed_user(app, user, ("newsletter",))
    login(client, user.email, user.password)
    response = client.post(f"{PAGE}/topics/newsletter", data={"subscribe": "0"})
    assert response.status_code == 400
    assert _statuses(app, user.email) == {"newsletter": "subscribed"}


def test_a_newsletter_reader_who_opens_an_account_keeps_their_topics(
    app: Flask, client: FlaskClient, user: User
) -> None:
    with app.app_context():
        marketing.seed_subscriber("ANN@example.com", ("newsletter",))
    login(client, user.email, user.password)

    _switch(client, "offers", on=True)

    with app.app_context():
        subscribers = db.session.scalars(select(MarketingSubscriber)).all()
        assert [(s.user_id, s.email) for s in subscribers] == [(user.id, "ANN@example.com")]
        rows = db.session.scalars(select(TopicSubscription).order_by(TopicSubscription.id))
        assert [(r.topic, r.status, r.user_id) for r in rows] == [
            ("newsletter", "subscribed", user.id),
            ("offers", "pending", user.id),
        ]


# --- a manage link by email -------------------------------------------------------------------


def _ask_for_link(client: FlaskClient, email: str) -> Any:
    return post_form(client, f"{PAGE}/link", {"email": email}, form_page=PAGE)


def test_the_answer_is_the_same_whether_or_not_the_address_is_known(
    smtp_app: Flask, smtp_server: SMTPServer
) -> None:
    with smtp_app.app_context():
        marketing.seed_subscriber("reader@example.org", ("newsletter",))
    answers = []
    for email in ("reader@example.org", "stranger@example.org"):
        client = smtp_app.test_client()
        response = _ask_for_link(client, email)
        assert response.status_code == 303
        answers.append(_words(client.get(PAGE)).replace(email, "ADDRESS"))
    assert answers[0] == answers[1]
    assert "If ADDRESS is on our mailing list, a link to choose its marketing emails" in answers[0]

    (received,) = smtp_server.wait_for(1)
    assert received.rcpt_tos == ("reader@example.org",)
    assert received.message["Subject"] == "Your link to choose your marketing emails"
    assert "The link works for 60 minutes" in received.text
    link = MANAGE_LINK.search(received.text)
    assert link, received.text

    visitor = smtp_app.test_client()
    opened = visitor.get(link.group(1))
    assert opened.status_code == 303
    assert "Choose which marketing emails we send to reader@example.org." in _words(
        visitor.get(PAGE)
    )


def test_a_manage_link_expires_after_an_hour(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    with app.app_context():
        marketing.seed_subscriber("reader@example.org", ("newsletter",))
    _ask_for_link(client, "reader@example.org")
    (text,) = _outbox_texts(app)
    path = MANAGE_LINK.search(text).group(1)  # type: ignore[union-attr]
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) + 3601)

    page = app.test_client().get(path)

    assert page.status_code == 410
    assert title_of(page) == "This link has expired"
    assert "Get a new link by email" in _words(page)


def test_an_unusable_address_is_refused_next_to_the_field(app: Flask, client: FlaskClient) -> None:
    response = _ask_for_link(client, "not an address")
    assert response.status_code == 400
    assert "Enter an email address in the form name@example.com." in _words(response)
    assert _mail_count(app) == 0


@pytest.mark.app_settings(rate_limits=True, email_link_rate_limit="2 per hour")
def test_asking_for_links_is_limited_per_address(app: Flask) -> None:
    with app.app_context():
        marketing.seed_subscriber("reader@example.org", ("newsletter",))
    statuses = [
        _ask_for_link(app.test_client(), "Reader@example.org ").status_code for _ in range(3)
    ]
    assert statuses == [303, 303, 429]
    assert _mail_count(app) == 2


# --- the data pages ---------------------------------------------------------------------------


def test_the_data_pages_show_marketing_codes_in_words(
    app: Flask, client: FlaskClient, user: User
) -> None:
    _subscribed_user(app, user, ("newsletter",))
    with app.app_context():
        subscriber = marketing.find_subscriber(user.email)
        assert subscriber is not None
        marketing.unsubscribe(subscriber, "*", source="one_click")
    login(client, user.email, user.password)

    history = _words(client.get("/data/marketing_history"))
    topics = _words(client.get("/data/marketing_topics"))

    assert "All marketing emails" in history
    assert "with the unsubscribe button of your mail program" in history
    assert "asked for (waiting for confirmation)" in history
    assert "one_click" not in history
    assert "Newsletter" in topics
    assert "unsubscribed" in topics
