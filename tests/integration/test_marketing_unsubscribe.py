"""Unsubscribe links: a scanner's GET changes nothing, the button and RFC 8058 one-click POST
do, bad links get a page that helps, undo works only for the browser that unsubscribed, and
the link opens a short session for that address's topics only."""

from __future__ import annotations

import http.client
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeSerializer
from sqlalchemy import delete, func, select
from werkzeug.serving import make_server

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
from app.web import marketing as marketing_web
from tests.support.web import csrf_from_html, post_form, text_of, title_of

ONE_CLICK = {"List-Unsubscribe": "One-Click"}
READER = "reader@example.org"


# --- helpers ----------------------------------------------------------------------------------


def _subscribe(
    app: Flask,
    email: str = READER,
    topics: tuple[str, ...] = ("newsletter", "offers"),
    user_id: int | None = None,
) -> int:
    with app.app_context():
        assert marketing.seed_subscriber(email, topics, user_id=user_id)
        subscriber = marketing.find_subscriber(email)
        assert subscriber is not None
        return subscriber.id


def _token(app: Flask, subscriber_id: int, topic: str) -> str:
    with app.app_context():
        return marketing.unsubscribe_token(subscriber_id, topic)


def _statuses(app: Flask, subscriber_id: int) -> dict[str, str]:
    with app.app_context():
        rows = db.session.scalars(
            select(TopicSubscription).where(TopicSubscription.subscriber_id == subscriber_id)
        )
        return {row.topic: row.status for row in rows}


def _events(app: Flask, subscriber_id: int, action: str | None = None) -> list[tuple[str, str]]:
    """(topic, source) of the subscriber's events after the seeded ones, oldest first."""
    with app.app_context():
        query = select(MarketingEvent).where(MarketingEvent.subscriber_id == subscriber_id)
        if action:
            query = query.where(MarketingEvent.action == action)
        rows = db.session.scalars(query.order_by(MarketingEvent.id))
        return [(row.topic, row.source) for row in rows]


def _suppressions(app: Flask) -> list[tuple[str, bool, str]]:
    with app.app_context():
        rows = db.session.scalars(select(SuppressionEntry).order_by(SuppressionEntry.id))
        return [(row.topic, row.suppressed, row.reason) for row in rows]


def _state(app: Flask, subscriber_id: int) -> tuple[Any, ...]:
    """Everything an unsubscribe could change."""
    with app.app_context():
        counts = tuple(
            db.session.scalar(select(func.count()).select_from(model)) or 0
            for model in (MarketingEvent, SuppressionEntry, AuditEvent, OutboundMail)
        )
    return _statuses(app, subscriber_id), counts


def _words(response: Any) -> str:
    """The page's text as a reader sees it: no tags, single spaces."""
    return " ".join(re.sub(r"<[^>]+>", " ", text_of(response)).split())


def _path(token: str, suffix: str = "") -> str:
    return f"/unsubscribe/{token}{suffix}"


def _press(client: FlaskClient, path: str, form_page: str | None = None) -> Any:
    """Press the one button of the page at `form_page` (default `path`), as a browser does."""
    page = client.get(form_page or path)
    assert page.status_code == 200, text_of(page)
    return client.post(path, data={"csrf_token": csrf_from_html(page.get_data(as_text=True))})


# --- what GET shows, and that it changes nothing ----------------------------------------------


def test_a_scanner_following_every_link_changes_nothing(app: Flask) -> None:
    subscriber_id = _subscribe(app)
    token = _token(app, subscriber_id, "newsletter")
    before = _state(app, subscriber_id)
    scanner = app.test_client()

    page = scanner.get(_path(token))
    for suffix in ("/done", "/manage"):
        assert scanner.get(_path(token, suffix)).status_code in (200, 303)
    scanner.get("/preferences/marketing")

    assert page.status_code == 200
    assert title_of(page) == "Unsubscribe from “Newsletter”"
    text = text_of(page)
    assert "we stop sending “Newsletter” emails to r***@example.org" in text
    assert "Other topics you chose are not affected." in text
    assert READER not in text  # the address is shown masked only
    assert 'href="/unsubscribe/' + token + '/manage"' in page.get_data(as_text=True)
    assert "Emails about your account, billing, security" in text
    assert _state(app, subscriber_id) == before


def test_the_all_topics_link_lists_what_stops(app: Flask) -> None:
    subscriber_id = _subscribe(app)
    page = app.test_client().get(_path(_token(app, subscriber_id, "*")))
    assert title_of(page) == "Unsubscribe from all marketing emails"
    assert "These stop: Newsletter Offers and discounts" in _words(page)


# --- RFC 8058 one-click -----------------------------------------------------------------------


def test_one_click_without_cookies_unsubscribes_and_answers_200(app: Flask) -> None:
    subscriber_id = _subscribe(app)
    client = app.test_client(use_cookies=False)

    response = client.post(_path(_token(app, subscriber_id, "newsletter")), data=ONE_CLICK)

    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True).strip() == "Unsubscribed."
    assert "Set-Cookie" not in response.headers
    assert "Location" not in response.headers
    assert _statuses(app, subscriber_id) == {"newsletter": "unsubscribed", "offers": "subscribed"}
    assert _events(app, subscriber_id, "unsubscribed") == [("newsletter", "one_click")]
    assert _suppressions(app) == [("newsletter", True, "one_click")]


def test_one_click_as_multipart_works_too(app: Flask) -> None:
    subscriber_id = _subscribe(app)
    response = app.test_client(use_cookies=False).post(
        _path(_token(app, subscriber_id, "*")),
        data=ONE_CLICK,
        content_type="multipart/form-data",
    )
    assert response.status_code == 200
    assert set(_statuses(app, subscriber_id).values()) == {"unsubscribed"}


@pytest.fixture
def served(app: Flask) -> Iterator[int]:
    """The app on a real socket, for a client that is nothing but HTTP."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


def test_a_bare_http_client_performs_the_one_click_post(app: Flask, served: int) -> None:
    """What a mail provider sends: a POST with exactly this body, nothing else."""
    subscriber_id = _subscribe(app)
    connection = http.client.HTTPConnection("127.0.0.1", served, timeout=10)
    connection.request(
        "POST",
        _path(_token(app, subscriber_id, "offers")),
        body="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    response = connection.getresponse()
    body = response.read()
    connection.close()

    assert response.status == 200
    assert body.strip() == b"Unsubscribed."
    assert response.getheader("Set-Cookie") is None
    assert _statuses(app, subscriber_id) == {"newsletter": "subscribed", "offers": "unsubscribed"}


def test_repeated_one_click_posts_are_harmless_and_each_is_recorded(app: Flask, user: User) -> None:
    subscriber_id = _subscribe(app, user.email, user_id=user.id)
    path = _path(_token(app, subscriber_id, "newsletter"))
    client = app.test_client(use_cookies=False)

    answers = [client.post(path, data=ONE_CLICK).status_code for _ in range(3)]

    assert answers == [200, 200, 200]
    assert _statuses(app, subscriber_id)["newsletter"] == "unsubscribed"
    assert _events(app, subscriber_id, "unsubscribed") == [("newsletter", "one_click")] * 3
    assert _suppressions(app) == [("newsletter", True, "one_click")] * 3
    with app.app_context():  # the account's audit log has the one change, not three
        audited = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "marketing.unsubscribed")
        ).all()
        assert [(e.subject_user_id, e.details["topics"]) for e in audited] == [
            (user.id, ["newsletter"])
        ]


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ({"List-Unsubscribe": "one-click"}, None),
        ({"List-Unsubscribe": "Unsubscribe"}, None),
        ({"List-Unsubscribe": ""}, None),
        ({"unsubscribe": "yes"}, None),
        ({}, None),
        ('{"List-Unsubscribe": "One-Click"}', "application/json"),
        ("List-Unsubscribe: One-Click", "text/plain"),
    ],
    ids=["lower-case", "other-value", "empty-value", "other-field", "empty", "json", "text"],
)
def test_any_other_post_body_is_400_and_changes_nothing(
    app: Flask, data: Any, content_type: str | None
) -> None:
    subscriber_id = _subscribe(app)
    before = _state(app, subscriber_id)
    kwargs = {"content_type": content_type} if content_type else {}
    response = app.test_client(use_cookies=False).post(
        _path(_token(app, subscriber_id, "newsletter")), data=data, **kwargs
    )
    assert response.status_code == 400
    assert _state(app, subscriber_id) == before


def test_a_topic_link_leaves_the_other_topics_alone(app: Flask) -> None:
    subscriber_id = _subscribe(app, topics=("newsletter", "offers", "research"))
    other_id = _subscribe(app, "someone.else@example.org")
    app.test_client(use_cookies=False).post(
        _path(_token(app, subscriber_id, "offers")), data=ONE_CLICK
    )
    assert _statuses(app, subscriber_id) == {
        "newsletter": "subscribed",
        "offers": "unsubscribed",
        "research": "subscribed",
    }
    assert set(_statuses(app, other_id).values()) == {"subscribed"}


def test_the_all_link_also_cancels_topics_waiting_for_confirmation(app: Flask) -> None:
    subscriber_id = _subscribe(app, topics=("newsletter",))
    with app.app_context():
        subscriber = db.session.get(MarketingSubscriber, subscriber_id)
        assert subscriber is not None
        marketing.request_subscription(
            subscriber, "research", source="page", confirm_url=lambda token: token
        )
    assert _statuses(app, subscriber_id)["research"] == "pending"

    app.test_client(use_cookies=False).post(_path(_token(app, subscriber_id, "*")), data=ONE_CLICK)

    assert _statuses(app, subscriber_id) == {
        "newsletter": "unsubscribed",
        "research": "unsubscribed",
    }
    assert _suppressions(app) == [("*", True, "one_click")]


# --- bad links --------------------------------------------------------------------------------


def _damaged(token: str) -> dict[str, str]:
    payload, _, signature = token.rpartition(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return {
        "tampered-signature": f"{payload}.{flipped}",
        "truncated": token[:-6],
        "payload-only": payload,
        "other-subscriber": URLSafeSerializer("not-our-key", salt="x").dumps([1, "newsletter"]),
        "garbage": "not-a-token",
    }


def _foreign_tokens(app: Flask, subscriber_id: int) -> dict[str, str]:
    settings = app.config["SETTINGS"]
    return {
        "foreign-key": URLSafeSerializer(
            "another-secret-key", salt=marketing.UNSUBSCRIBE_SALT
        ).dumps([subscriber_id, "newsletter"]),
        "other-purpose": URLSafeSerializer(settings.secret_key, salt="email-change").dumps(
            [subscriber_id, "newsletter"]
        ),
        "wrong-shape": URLSafeSerializer(
            settings.secret_key, salt=marketing.UNSUBSCRIBE_SALT
        ).dumps({"s": subscriber_id}),
    }


def test_damaged_or_foreign_links_get_a_400_page_with_the_link_form(app: Flask) -> None:
    subscriber_id = _subscribe(app)
    token = _token(app, subscriber_id, "newsletter")
    before = _state(app, subscriber_id)
    client = app.test_client()
    bad = {**_damaged(token), **_foreign_tokens(app, subscriber_id)}

    for name, bad_token in bad.items():
        for suffix in ("", "/done", "/manage"):
            page = client.get(_path(bad_token, suffix))
            assert page.status_code == 400, (name, suffix)
            assert title_of(page) == "This link is not valid", name
            assert 'action="/preferences/marketing/link"' in page.get_data(as_text=True)
            assert "Nothing was changed." in text_of(page)
        one_click = client.post(_path(bad_token), data=ONE_CLICK)
        assert one_click.status_code == 400, name

    assert _state(app, subscriber_id) == before


def test_an_overlong_token_is_refused_without_reading_it(client: FlaskClient) -> None:
    assert client.get(_path("a" * 1000)).status_code == 400


def test_a_link_for_a_subscriber_that_is_gone_says_there_is_nothing_to_do(app: Flask) -> None:
    subscriber_id = _subscribe(app)
    token = _token(app, subscriber_id, "newsletter")
    with app.app_context():
        db.session.execute(
            delete(MarketingSubscriber).where(MarketingSubscriber.id == subscriber_id)
        )
        db.session.commit()
    client = app.test_client()

    page = client.get(_path(token))
    one_click = app.test_client(use_cookies=False).post(_path(token), data=ONE_CLICK)

    assert page.status_code == 200
    assert title_of(page) == "Nothing to unsubscribe"
    assert "no longer on our mailing list" in text_of(page)
    assert one_click.status_code == 200
    assert one_click.get_data(as_text=True).startswith("Nothing to unsubscribe")
    assert _suppressions(app) == []


def test_an_unknown_topic_is_404(app: Flask) -> None:
    subscriber_id = _subscribe(app)
    forged_topic = URLSafeSerializer(
        app.config["SETTINGS"].secret_key, salt=marketing.UNSUBSCRIBE_SALT
    ).dumps([subscriber_id, "horoscopes"])
    client = app.test_client()

    assert client.get(_path(forged_topic)).status_code == 404
    assert client.post(_path(forged_topic), data=ONE_CLICK).status_code == 404
    assert title_of(client.get(_path(forged_topic))) == "We do not send emails on this topic"
    page = client.get("/preferences/marketing")
    token = csrf_from_html(page.get_data(as_text=True))
    switch = client.post(
        "/preferences/marketing/topics/horoscopes", data={"subscribe": "1", "csrf_token": token}
    )
    assert switch.status_code == 404


# --- key rotation -----------------------------------------------------------------------------


def test_links_signed_with_the_previous_key_keep_working_after_rotation(
    make_app: Callable[..., Flask],
) -> None:
    old_app = make_app(secret_key="the-old-secret-key-" + "x" * 20)
    subscriber_id = _subscribe(old_app)
    old_token = _token(old_app, subscriber_id, "newsletter")
    rotated = make_app(
        secret_key="the-new-secret-key-" + "y" * 20,
        secret_key_fallbacks=("the-old-secret-key-" + "x" * 20,),
    )
    forgotten = make_app(secret_key="the-new-secret-key-" + "y" * 20)

    assert forgotten.test_client().get(_path(old_token)).status_code == 400
    assert rotated.test_client().get(_path(old_token)).status_code == 200
    new_token = _token(rotated, subscriber_id, "newsletter")
    assert new_token != old_token  # new links are signed with the new key
    assert forgotten.test_client().get(_path(new_token)).status_code == 200
    response = rotated.test_client(use_cookies=False).post(_path(old_token), data=ONE_CLICK)
    assert response.status_code == 200
    assert _statuses(rotated, subscriber_id)["newsletter"] == "unsubscribed"


# --- the button, and undo ---------------------------------------------------------------------


def test_the_button_unsubscribes_and_undo_brings_the_topics_back(app: Flask) -> None:
    subscriber_id = _subscribe(app)
    token = _token(app, subscriber_id, "*")
    client = app.test_client()

    pressed = _press(client, _path(token))
    assert pressed.status_code == 303
    assert pressed.headers["Location"] == _path(token, "/done")
    assert set(_statuses(app, subscriber_id).values()) == {"unsubscribed"}  # before the page
    done = client.get(_path(token, "/done"))
    assert title_of(done) == "You are unsubscribed"
    assert "We will send no more marketing emails to r***@example.org." in text_of(done)
    assert "Undo brings back: Newsletter, Offers and discounts." in text_of(done)

    undone = _press(client, _path(token, "/undo"), form_page=_path(token, "/done"))
    assert undone.status_code == 303
    assert undone.headers["Location"] == _path(token)
    page = client.get(_path(token))
    assert "Undone. You will get these emails again: Newsletter, Offers and discounts." in text_of(
        page
    )
    assert _statuses(app, subscriber_id) == {"newsletter": "subscribed", "offers": "subscribed"}
    assert _events(app, subscriber_id, "unsubscribed") == [("*", "link")]
    assert _events(app, subscriber_id, "resubscribed") == [
        ("newsletter", "link"),
        ("offers", "link"),
    ]
    # Back on without a new opt-in, and off the suppression list for those topics.
    assert _suppressions(app) == [
        ("*", True, "unsubscribe"),
        ("newsletter", False, "resubscribe"),
        ("offers", False, "resubscribe"),
    ]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboundMail)) == 0
        assert not marketing.is_suppressed(marketing.email_hash(READER), "offers")
        assert marketing.is_suppressed(marketing.email_hash(READER), "research")


def test_undo_works_only_in_the_browser_that_unsubscribed(app: Flask) -> None:
    subscriber_id = _subscribe(app)
    token = _token(app, subscriber_id, "newsletter")
    _press(app.test_client(), _path(token))
    stranger = app.test_client()

    page = stranger.get(_path(token, "/done"))
    assert "Undo" not in text_of(page)
    response = _press(stranger, _path(token, "/undo"), form_page=_path(token, "/done"))

    assert response.status_code == 410
    assert title_of(response) == "This can no longer be undone"
    assert _statuses(app, subscriber_id)["newsletter"] == "unsubscribed"


def test_undo_runs_out_after_half_an_hour(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    subscriber_id = _subscribe(app)
    token = _token(app, subscriber_id, "newsletter")
    client = app.test_client()
    _press(client, _path(token))
    page = client.get(_path(token, "/done"))
    later = time.time() + marketing_web.UNDO_SECONDS + 1
    monkeypatch.setattr(marketing_web.time, "time", lambda: later)

    response = client.post(
        _path(token, "/undo"), data={"csrf_token": csrf_from_html(page.get_data(as_text=True))}
    )

    assert response.status_code == 410
    assert _statuses(app, subscriber_id)["newsletter"] == "unsubscribed"


def test_the_button_without_its_form_token_is_400_and_changes_nothing(app: Flask) -> None:
    subscriber_id = _subscribe(app)
    token = _token(app, subscriber_id, "newsletter")
    before = _state(app, subscriber_id)
    client = app.test_client()
    client.get(_path(token))

    for data in ({}, {"csrf_token": "forged"}):
        response = client.post(_path(token), data=data)
        assert response.status_code == 400
        assert title_of(response) == "This form has expired"
    assert _state(app, subscriber_id) == before


def test_an_already_unsubscribed_topic_can_still_be_put_on_the_list(app: Flask) -> None:
    subscriber_id = _subscribe(app, topics=("newsletter",))
    token = _token(app, subscriber_id, "offers")
    page = app.test_client().get(_path(token))
    assert "r***@example.org does not get “Offers and discounts” emails from us now." in text_of(
        page
    )


# --- managing every topic from the link -------------------------------------------------------


def test_the_manage_link_opens_this_addresses_topics_only(app: Flask, user: User) -> None:
    subscriber_id = _subscribe(app)
    client = app.test_client()

    response = client.get(_path(_token(app, subscriber_id, "newsletter"), "/manage"))
    assert response.status_code == 303
    assert response.headers["Location"] == "/preferences/marketing"
    page = client.get("/preferences/marketing")
    text = text_of(page)
    assert f"Choose which marketing emails we send to {READER}." in text
    assert "It shows only these email settings, for 30 more minutes." in text
    # Nothing else opens: the data pages still ask for a sign-in.
    assert client.get("/data").status_code in (302, 303)
    assert client.get("/profile").status_code in (302, 303)

    switched = post_form(
        client,
        "/preferences/marketing/topics/offers",
        {"subscribe": "0"},
        form_page="/preferences/marketing",
    )
    assert switched.status_code == 303
    assert _statuses(app, subscriber_id)["offers"] == "unsubscribed"
    assert _events(app, subscriber_id, "unsubscribed") == [("offers", "page")]


def test_the_manage_session_runs_out(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    subscriber_id = _subscribe(app)
    client = app.test_client()
    client.get(_path(_token(app, subscriber_id, "*"), "/manage"))
    page = client.get("/preferences/marketing")
    later = time.time() + marketing_web.MANAGE_SESSION_SECONDS + 1
    monkeypatch.setattr(marketing_web.time, "time", lambda: later)

    switched = client.post(
        "/preferences/marketing/topics/offers",
        data={"subscribe": "0", "csrf_token": csrf_from_html(page.get_data(as_text=True))},
    )

    assert switched.status_code == 303
    assert _statuses(app, subscriber_id)["offers"] == "subscribed"
    again = client.get("/preferences/marketing")
    assert "Your link to change these emails has run out." in text_of(again)
    assert "Email me a link" in text_of(again)


def test_leaving_ends_the_manage_session(app: Flask) -> None:
    subscriber_id = _subscribe(app)
    client = app.test_client()
    client.get(_path(_token(app, subscriber_id, "*"), "/manage"))
    left = post_form(client, "/preferences/marketing/leave", form_page="/preferences/marketing")
    assert left.status_code == 303
    assert READER not in text_of(client.get("/preferences/marketing"))
