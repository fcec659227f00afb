"""/requests: asking for something about your data, confirming it by email, following it,
cancelling it and appealing a refusal, as the person sees it.

Requests go through the real forms and the real service; emails are read from the dev outbox
(jobs run inline). Tests that need a request in a state only the privacy team can bring about
(refused, overdue) make the row directly.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous.timed import TimestampSigner
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from app.extensions import db
from app.models import DataRequest, User, utcnow
from app.services import requests as request_service
from tests.support.mailbox import outbox_messages_to, plain_text
from tests.support.web import (
    csrf_token,
    html_problems,
    login,
    post_form,
    text_of,
    title_of,
)

BASE_URL = "http://127.0.0.1:5000"
HX = {"HX-Request": "true"}
CONFIRM_LINK = re.compile(re.escape(BASE_URL) + r"(/requests/confirm/[A-Za-z0-9_.\-]+)")
CANCEL_LINK = re.compile(re.escape(BASE_URL) + r"(/requests/cancel/[A-Za-z0-9_.\-]+)")
STATUS_LINK = re.compile(re.escape(BASE_URL) + r"(/requests/status/[A-Za-z0-9_.\-]+)")
DETAILS = "My postal address is wrong: it should say 12 Harbour Road."


# --- helpers ----------------------------------------------------------------------------------


def _words(response: TestResponse) -> str:
    """What a person reads: the text without tags, spaces collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", text_of(response)).split()).replace(" .", ".")


def _outbox(app: Flask, address: str) -> list[EmailMessage]:
    return outbox_messages_to(app.config["SETTINGS"].mail_outbox_dir, address)


def _link(message: EmailMessage, pattern: re.Pattern[str]) -> str:
    match = pattern.search(plain_text(message))
    assert match, f"no link like {pattern.pattern} in: {plain_text(message)}"
    return match.group(1)


def _rows(app: Flask, *conditions: Any) -> list[DataRequest]:
    with app.app_context():
        rows = list(
            db.session.scalars(select(DataRequest).where(*conditions).order_by(DataRequest.id))
        )
        db.session.expunge_all()
        return rows


def _row(app: Flask, request_id: int) -> DataRequest:
    with app.app_context():
        row = db.session.get(DataRequest, request_id)
        assert row is not None
        db.session.expunge(row)
        return row


def _count(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(DataRequest)) or 0


def _make_request(app: Flask, user_id: int | None, kind: str, status: str, **fields: Any) -> int:
    """A request row in a state only the service or the privacy team brings about."""
    with app.app_context():
        row = DataRequest(
            kind=kind, status=status, user_id=user_id, **{"jurisdiction": "DE", **fields}
        )
        db.session.add(row)
        db.session.commit()
        return row.id


def _ask(
    client: FlaskClient, kind: str, data: dict[str, str] | None = None, query: str = ""
) -> TestResponse:
    path = f"/requests/new/{kind}{query}"
    return post_form(client, path, data or {})


def _request_id(response: TestResponse) -> int:
    assert response.status_code == 303, text_of(response)
    match = re.fullmatch(r"/requests/(\d+)", response.headers["Location"])
    assert match, response.headers["Location"]
    return int(match.group(1))


def _press(client: FlaskClient, path: str) -> TestResponse:
    """Open an emailed link's page and press its button, as the person would."""
    page = client.get(path)
    assert page.status_code == 200, text_of(page)
    return post_form(client, path)


def _age_fresh_sign_in(client: FlaskClient, minutes: float) -> None:
    with client.session_transaction() as session:
        session["fresh_at"] = int(time.time() - minutes * 60)


@pytest.fixture
def signed_in(client: FlaskClient, user: User) -> FlaskClient:
    assert login(client, user.email, user.password).status_code == 303
    return client


def _deletion_waiting(app: Flask, client: FlaskClient, user: User) -> int:
    """Ann asks for her account to be deleted and confirms it: the cooling-off runs."""
    request_id = _request_id(_ask(client, "delete_account"))
    [verify] = _outbox(app, user.email)
    assert _press(client, _link(verify, CONFIRM_LINK)).status_code == 303
    assert _row(app, request_id).status == DataRequest.WAITING
    return request_id


# --- the list ---------------------------------------------------------------------------------


def test_visitors_learn_what_they_can_ask_for_and_where(client: FlaskClient) -> None:
    response = client.get("/requests")

    assert response.status_code == 200
    words = _words(response)
    assert "Delete my account" in words
    assert "Report a child's account" in words
    assert "Appeal a refused request" not in words  # needs an account
    assert 'href="/requests/new"' in response.get_data(as_text=True)
    assert "/login?next=/requests" in response.get_data(as_text=True)


def test_the_list_shows_only_the_persons_own_requests(
    app: Flask, signed_in: FlaskClient, user: User, make_user: Callable[..., User]
) -> None:
    other = make_user(email="bob@example.com")
    late = _make_request(
        app, user.id, "correct", DataRequest.OPEN, due_at=utcnow() - timedelta(days=2)
    )
    _make_request(app, user.id, "question", DataRequest.REFUSED, refusal_reason="unfounded")
    theirs = _make_request(app, other.id, "object", DataRequest.OPEN)

    response = signed_in.get("/requests")

    page = response.get_data(as_text=True)
    words = _words(response)
    assert response.status_code == 200
    assert f'href="/requests/{late}"' in page
    assert f'href="/requests/{theirs}"' not in page
    assert "Object to how my data is used" not in words
    assert "Correct my data" in words
    assert "Ask the privacy team a question" in words
    assert "Refused" in words
    assert "Overdue" in words
    assert 'href="/requests/new"' in page
    assert "<caption" in page and 'scope="col"' in page


def test_another_persons_request_is_not_found(
    app: Flask, signed_in: FlaskClient, make_user: Callable[..., User]
) -> None:
    other = make_user(email="bob@example.com")
    theirs = _make_request(app, other.id, "correct", DataRequest.UNVERIFIED, details="Bob's secret")

    for response in (
        signed_in.get(f"/requests/{theirs}"),
        signed_in.get("/requests/999999"),
        post_form(signed_in, f"/requests/{theirs}/cancel", form_page="/requests"),
        post_form(signed_in, f"/requests/{theirs}/resend", form_page="/requests"),
    ):
        assert response.status_code == 404
        assert title_of(response) == "Page not found"
        assert "Bob's secret" not in _words(response)
    assert _row(app, theirs).status == DataRequest.UNVERIFIED


# --- the kinds --------------------------------------------------------------------------------


def test_the_new_request_page_lists_the_kinds(signed_in: FlaskClient) -> None:
    response = signed_in.get("/requests/new")

    page = response.get_data(as_text=True)
    words = _words(response)
    assert response.status_code == 200
    for label in (
        "Delete my account",
        "Correct my data",
        "Restrict how my data is used",
        "Do not sell or share my personal information",
        "Withdraw my consent",
        "Appeal a refused request",
        "Ask the privacy team a question",
    ):
        assert label in words
    assert "Tell us what is wrong or missing, and what it should say." in words
    # Access is the export, at once; consent can be changed at once too.
    assert '<a href="/exports">Get a copy of my data</a>' in page
    assert 'href="/preferences/cookies"' in page
    assert 'href="/preferences/marketing"' in page
    assert 'href="/requests/new/correct"' in page


def test_visitors_see_the_kinds_they_can_ask_for_by_email(client: FlaskClient) -> None:
    words = _words(client.get("/requests/new"))

    assert "Delete my account" in words
    assert "Appeal a refused request" not in words
    assert "Sign in to download it." in words
    # An appeal needs an account: the form sends visitors to sign in first.
    response = client.get("/requests/new/appeal")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_an_unknown_kind_is_not_found(client: FlaskClient) -> None:
    assert client.get("/requests/new/launch_rockets").status_code == 404
    assert (
        post_form(
            client,
            "/requests/new/launch_rockets",
            {"email": "a@example.org"},
            form_page="/requests",
        ).status_code
        == 404
    )


def test_the_deletion_page_says_what_goes_what_stays_and_why(
    signed_in: FlaskClient, app: Flask
) -> None:
    response = signed_in.get("/requests/new/delete_account")

    words = _words(response)
    assert response.status_code == 200
    assert title_of(response) == "Delete my account"
    assert "What will be deleted" in words
    assert "Prompts" in words
    assert "What we must keep, and why" in words
    assert "Invoices and transactions" in words
    assert "Tax and accounting law requires us to keep invoices for ten years." in words
    assert "Ten years after the end of the year of the purchase" in words
    days = app.config["SETTINGS"].deletion_grace_days
    assert f"nothing is deleted for {days} days" in words
    assert "cancel the deletion with the link in the email" in words


def test_open_exports_are_named_on_the_deletion_page(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    from app.models import Export

    with app.app_context():
        db.session.add(Export(user_id=user.id, status=Export.READY, categories=[], summary={}))
        db.session.commit()

    words = _words(signed_in.get("/requests/new/delete_account"))

    assert "Your export that is still available to download is deleted too." in words


# --- making a request, signed in --------------------------------------------------------------


def test_asking_needs_the_password_again(app: Flask, signed_in: FlaskClient, user: User) -> None:
    token = csrf_token(signed_in, "/requests/new/correct")
    _age_fresh_sign_in(signed_in, minutes=11)

    page = signed_in.get("/requests/new/correct")
    stale_post = signed_in.post(
        "/requests/new/correct", data={"details": DETAILS, "csrf_token": token}
    )

    assert page.status_code == 303
    assert page.headers["Location"] == "/reauth?next=/requests/new/correct"
    assert stale_post.status_code == 303
    assert stale_post.headers["Location"] == "/reauth?next=/requests/new/correct"
    assert _count(app) == 0
    back = post_form(
        signed_in,
        "/reauth",
        {"password": user.password, "next": "/requests/new/correct"},
        form_page="/reauth",
    )
    assert back.headers["Location"] == "/requests/new/correct"
    assert signed_in.get("/requests/new/correct").status_code == 200


def test_a_request_waits_for_the_emailed_link(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    response = _ask(signed_in, "correct", {"details": DETAILS})

    request_id = _request_id(response)
    row = _row(app, request_id)
    assert (row.kind, row.status, row.user_id, row.details) == (
        "correct",
        DataRequest.UNVERIFIED,
        user.id,
        DETAILS,
    )
    [message] = _outbox(app, user.email)
    assert _link(message, CONFIRM_LINK).startswith("/requests/confirm/")
    page = signed_in.get(f"/requests/{request_id}")
    words = _words(page)
    assert "Almost done: check your email." in words
    assert "Waiting for your confirmation" in words
    assert DETAILS in words  # the person's own words, to the person
    assert "Request made" in words
    assert "Send the link again" in words


def test_missing_details_are_refused_and_nothing_is_stored(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    response = _ask(signed_in, "correct", {"details": "   "})

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Write what you want us to do." in _words(response)
    assert 'aria-describedby="details-hint details-error"' in page
    assert _count(app) == 0
    assert _outbox(app, user.email) == []


def test_a_second_deletion_leads_to_the_pending_one(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    first = _request_id(_ask(signed_in, "delete_account"))

    page = signed_in.get("/requests/new/delete_account")
    again = _ask_without_page(signed_in, "/requests/new/delete_account")

    for response in (page, again):
        assert response.status_code == 303
        assert response.headers["Location"] == f"/requests/{first}"
    assert len(_rows(app)) == 1
    words = _words(signed_in.get(f"/requests/{first}"))
    assert "A deletion of your account is already under way" in words


def _ask_without_page(client: FlaskClient, path: str) -> TestResponse:
    """POST with a token from another page (the form page itself redirects)."""
    return client.post(path, data={"csrf_token": csrf_token(client, "/requests")})


def test_appeals_are_about_the_persons_own_refused_requests(
    app: Flask, signed_in: FlaskClient, user: User, make_user: Callable[..., User]
) -> None:
    other = make_user(email="bob@example.com")
    mine = _make_request(app, user.id, "object", DataRequest.REFUSED, refusal_reason="unfounded")
    theirs = _make_request(app, other.id, "object", DataRequest.REFUSED, refusal_reason="unfounded")
    still_open = _make_request(app, user.id, "correct", DataRequest.OPEN)

    assert signed_in.get(f"/requests/new/appeal?of={theirs}").status_code == 404
    assert signed_in.get("/requests/new/appeal?of=999999").status_code == 404
    assert signed_in.get(f"/requests/new/appeal?of={still_open}").status_code == 409
    choice = signed_in.get("/requests/new/appeal")
    assert f'href="/requests/new/appeal?of={mine}"' in choice.get_data(as_text=True)
    detail = signed_in.get(f"/requests/{mine}")
    assert f'href="/requests/new/appeal?of={mine}"' in detail.get_data(as_text=True)
    assert "The request is manifestly unfounded." in _words(detail)

    response = _ask(signed_in, "appeal", {"details": "Please look again."}, f"?of={mine}")

    appeal = _row(app, _request_id(response))
    assert (appeal.kind, appeal.appeal_of_id) == ("appeal", mine)


def test_a_refusal_names_the_authority_or_says_where_to_complain(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    known = _make_request(
        app, user.id, "object", DataRequest.REFUSED, refusal_reason="no_data", jurisdiction="GB"
    )
    unknown = _make_request(
        app, user.id, "restrict", DataRequest.REFUSED, refusal_reason="identity", jurisdiction="ZZ"
    )

    named = _words(signed_in.get(f"/requests/{known}"))
    generic = _words(signed_in.get(f"/requests/{unknown}"))

    assert "We hold no data of the kind the request is about." in named
    assert "Information Commissioner's Office (ICO)" in named
    assert "https://ico.org.uk/make-a-complaint/" in named  # as text: no links to elsewhere
    assert "the data protection authority where you live or work" in generic


# --- the emailed link -------------------------------------------------------------------------


def test_opening_the_link_changes_nothing_until_the_button(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    request_id = _request_id(_ask(signed_in, "correct", {"details": DETAILS}))
    [message] = _outbox(app, user.email)
    path = _link(message, CONFIRM_LINK)

    page = signed_in.get(path)

    assert page.status_code == 200
    assert title_of(page) == "Confirm your request"
    assert f'action="{path}"' in page.get_data(as_text=True)
    assert "Confirm the request" in _words(page)
    assert _row(app, request_id).status == DataRequest.UNVERIFIED

    confirmed = post_form(signed_in, path)

    assert confirmed.status_code == 303
    assert confirmed.headers["Location"] == f"/requests/{request_id}"
    row = _row(app, request_id)
    assert row.status == DataRequest.OPEN
    assert row.due_at is not None
    words = _words(signed_in.get(f"/requests/{request_id}"))
    assert "Confirmed. The privacy team will answer by" in words
    assert "In progress" in words
    assert "Request confirmed by email" in words
    # The link works once.
    again = signed_in.get(path)
    assert again.status_code == 409
    assert title_of(again) == "This link has already been used"
    assert f'href="/requests/{request_id}"' in again.get_data(as_text=True)
    token = csrf_token(signed_in, "/requests")
    assert signed_in.post(path, data={"csrf_token": token}).status_code == 409


def test_a_changed_link_does_not_work(app: Flask, signed_in: FlaskClient, user: User) -> None:
    request_id = _request_id(_ask(signed_in, "correct", {"details": DETAILS}))
    [message] = _outbox(app, user.email)
    path = _link(message, CONFIRM_LINK)
    tampered = path[:-3] + ("aaa" if not path.endswith("aaa") else "bbb")

    page = signed_in.get(tampered)
    pressed = signed_in.post(tampered, data={"csrf_token": csrf_token(signed_in, "/requests")})

    assert page.status_code == 400
    assert title_of(page) == "This link does not work"
    assert pressed.status_code == 400
    assert signed_in.get("/requests/confirm/" + "x" * 600).status_code == 400
    assert signed_in.get("/requests/status/nonsense").status_code == 400
    assert signed_in.get("/requests/cancel/nonsense").status_code == 400
    assert _row(app, request_id).status == DataRequest.UNVERIFIED


def test_an_expired_link_says_so_and_offers_a_new_request(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patched:
        yesterday = int(time.time()) - 25 * 3600
        patched.setattr(TimestampSigner, "get_timestamp", lambda self: yesterday)
        response = _ask(client, "question", {"email": "sam@example.org", "details": "Why?"})
    assert response.status_code == 200
    [message] = _outbox(app, "sam@example.org")
    path = _link(message, CONFIRM_LINK)

    page = client.get(path)
    pressed = client.post(path, data={"csrf_token": csrf_token(client, "/requests")})

    assert page.status_code == 410
    assert title_of(page) == "This link has expired"
    assert 'href="/requests/new"' in page.get_data(as_text=True)
    assert pressed.status_code == 410
    [row] = _rows(app)
    assert row.status == DataRequest.UNVERIFIED


def test_a_confirm_without_the_form_token_changes_nothing(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    request_id = _request_id(_ask(signed_in, "correct", {"details": DETAILS}))
    [message] = _outbox(app, user.email)

    response = signed_in.post(_link(message, CONFIRM_LINK))

    assert response.status_code == 400
    assert _row(app, request_id).status == DataRequest.UNVERIFIED


def test_the_link_can_be_sent_again_a_few_times(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    request_id = _request_id(_ask(signed_in, "correct", {"details": DETAILS}))
    path = f"/requests/{request_id}/resend"

    statuses = [
        post_form(signed_in, path, form_page=f"/requests/{request_id}").status_code
        for _ in range(request_service.MAX_RESENDS + 1)
    ]

    assert statuses == [303] * request_service.MAX_RESENDS + [429]
    messages = _outbox(app, user.email)
    assert len(messages) == 1 + request_service.MAX_RESENDS
    # Only the newest link works.
    old = _link(messages[0], CONFIRM_LINK)
    assert signed_in.get(old).status_code == 409
    assert signed_in.get(_link(messages[-1], CONFIRM_LINK)).status_code == 200
    last = post_form(signed_in, path, form_page=f"/requests/{request_id}")
    assert title_of(last) == "No more links for this request"


def test_resending_after_confirmation_is_refused(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    request_id = _request_id(_ask(signed_in, "correct", {"details": DETAILS}))
    [message] = _outbox(app, user.email)
    _press(signed_in, _link(message, CONFIRM_LINK))
    sent = len(_outbox(app, user.email))

    response = post_form(
        signed_in, f"/requests/{request_id}/resend", form_page=f"/requests/{request_id}"
    )

    assert response.status_code == 409
    assert title_of(response) == "This cannot be done any more"
    assert len(_outbox(app, user.email)) == sent


# --- deleting the account ---------------------------------------------------------------------


def test_a_confirmed_deletion_shows_a_banner_whose_button_cancels_it(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    request_id = _deletion_waiting(app, signed_in, user)

    overview = signed_in.get("/")
    words = _words(overview)
    assert "Your account is scheduled for deletion on" in words
    page = overview.get_data(as_text=True)
    assert f'action="/requests/{request_id}/cancel"' in page
    assert html_problems(page)[0] == []
    # The request's own page says it once, not twice.
    detail = _words(signed_in.get(f"/requests/{request_id}"))
    assert "Your account is scheduled for deletion on" not in detail
    assert "Your account will be deleted on" in detail

    response = post_form(signed_in, f"/requests/{request_id}/cancel", form_page="/")

    assert response.status_code == 303
    assert response.headers["Location"] == f"/requests/{request_id}"
    assert _row(app, request_id).status == DataRequest.CANCELLED
    after = _words(signed_in.get("/"))
    assert "Your account is scheduled for deletion on" not in after
    assert "The deletion is cancelled: your account will not be deleted." in after
    assert _outbox(app, user.email)[-1]["Subject"] == "Your account will not be deleted"


def test_the_emailed_cancel_link_asks_then_cancels(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    request_id = _deletion_waiting(app, signed_in, user)
    scheduled = _outbox(app, user.email)[-1]
    path = _link(scheduled, CANCEL_LINK)
    visitor = app.test_client()  # the link works without signing in

    page = visitor.get(path)

    assert page.status_code == 200
    assert title_of(page) == "Cancel the deletion"
    assert "The account is scheduled for deletion on" in _words(page)
    assert _row(app, request_id).status == DataRequest.WAITING

    done = post_form(visitor, path)

    assert done.status_code == 200
    assert title_of(done) == "Your account will not be deleted"
    assert _row(app, request_id).status == DataRequest.CANCELLED
    again = visitor.get(path)
    assert again.status_code == 409
    assert title_of(again) == "This request is already cancelled"


def test_a_deletion_being_carried_out_cannot_be_cancelled_by_link(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    request_id = _deletion_waiting(app, signed_in, user)
    path = _link(_outbox(app, user.email)[-1], CANCEL_LINK)
    with app.app_context():
        row = db.session.get(DataRequest, request_id)
        assert row is not None
        row.status = DataRequest.ERASING
        db.session.commit()

    response = app.test_client().get(path)

    assert response.status_code == 409
    assert title_of(response) == "The deletion can no longer be cancelled"


def test_cancelling_with_htmx_swaps_the_request(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    request_id = _request_id(_ask(signed_in, "correct", {"details": DETAILS}))
    token = csrf_token(signed_in, f"/requests/{request_id}")

    response = signed_in.post(
        f"/requests/{request_id}/cancel", data={"csrf_token": token}, headers=HX
    )

    fragment = response.get_data(as_text=True)
    assert response.status_code == 200
    assert fragment.lstrip().startswith('<div id="request-detail"')
    assert "Your request is withdrawn." in _words(response)
    assert "<html" not in fragment
    assert _row(app, request_id).status == DataRequest.CANCELLED
    late = signed_in.post(f"/requests/{request_id}/cancel", data={"csrf_token": token}, headers=HX)
    assert late.status_code == 409
    assert late.headers["HX-Redirect"] == f"/requests/{request_id}"


# --- without an account -----------------------------------------------------------------------


def test_by_email_the_answer_is_the_same_whether_or_not_an_account_exists(
    app: Flask, client: FlaskClient, user: User
) -> None:
    known = _ask(client, "delete_account", {"email": user.email})
    unknown = _ask(client, "delete_account", {"email": "nobody@example.org"})

    def main(response: TestResponse, address: str) -> str:
        page = text_of(response)
        body = page[page.index("<main") : page.index("</main>")]
        return body.replace(address, "ADDRESS")

    assert known.status_code == unknown.status_code == 200
    assert title_of(known) == "Check your email"
    assert main(known, user.email) == main(unknown, "nobody@example.org")
    assert "If the address is right, we have sent a link to confirm your request" in _words(known)
    assert "it works for 24 hours" in _words(known)
    for address in (user.email, "nobody@example.org"):
        [message] = _outbox(app, address)
        assert _link(message, CONFIRM_LINK)
    assert all(row.user_id is None for row in _rows(app))


def test_asking_again_by_email_resends_and_then_still_answers_the_same(
    app: Flask, client: FlaskClient
) -> None:
    statuses = [
        _ask(client, "opt_out_sale", {"email": "sam@example.org"}).status_code
        for _ in range(request_service.MAX_RESENDS + 3)
    ]

    assert set(statuses) == {200}
    assert len(_rows(app)) == 1
    assert len(_outbox(app, "sam@example.org")) == 1 + request_service.MAX_RESENDS


def test_by_email_a_bad_address_or_missing_details_store_nothing(
    app: Flask, client: FlaskClient
) -> None:
    bad = _ask(client, "question", {"email": "not an address", "details": "Why?"})
    empty = _ask(client, "question", {"email": "sam@example.org", "details": ""})

    assert bad.status_code == 400
    assert "Enter an email address in the form name@example.com." in _words(bad)
    assert 'aria-describedby="email-hint email-error"' in bad.get_data(as_text=True)
    assert empty.status_code == 400
    assert "Write what you want us to do." in _words(empty)
    assert _count(app) == 0
    assert _outbox(app, "sam@example.org") == []


def test_a_visitor_confirms_and_follows_the_request_with_the_status_link(
    app: Flask, client: FlaskClient
) -> None:
    _ask(client, "question", {"email": "sam@example.org", "details": "Who sees my prompts?"})
    [verify] = _outbox(app, "sam@example.org")

    confirmed = _press(client, _link(verify, CONFIRM_LINK))

    assert confirmed.status_code == 303
    status_path = confirmed.headers["Location"]
    assert status_path.startswith("/requests/status/")
    page = client.get(status_path)
    words = _words(page)
    assert page.status_code == 200
    assert "Ask the privacy team a question" in words
    assert "In progress" in words
    assert "Request confirmed by email" in words
    assert "Who sees my prompts?" not in words  # a forwarded link shows no free text
    # The received email links the same page.
    received = _outbox(app, "sam@example.org")[-1]
    emailed = client.get(_link(received, STATUS_LINK))
    assert emailed.status_code == 200
    assert "Request confirmed by email" in _words(emailed)

    withdrawn = post_form(client, f"{status_path}/cancel", form_page=status_path)

    assert withdrawn.status_code == 303
    assert withdrawn.headers["Location"] == status_path
    assert "Your request is withdrawn." in _words(client.get(status_path))
    [row] = _rows(app)
    assert row.status == DataRequest.CANCELLED


def test_consent_requests_by_email_take_effect_on_confirmation(
    app: Flask, client: FlaskClient
) -> None:
    _ask(client, "withdraw_consent", {"email": "sam@example.org"})
    [verify] = _outbox(app, "sam@example.org")

    confirmed = _press(client, _link(verify, CONFIRM_LINK))

    words = _words(client.get(confirmed.headers["Location"]))
    assert "Confirmed. Your choice took effect." in words
    assert "Done" in words


@pytest.mark.app_settings(rate_limits=True, email_link_rate_limit="2 per hour")
def test_asking_by_email_is_rate_limited(app: Flask) -> None:
    statuses = [
        _ask(
            app.test_client(), "question", {"email": f"p{n}@example.org", "details": "Hi"}
        ).status_code
        for n in range(3)
    ]

    assert statuses == [200, 200, 429]
    assert _count(app) == 2


@pytest.mark.app_settings(rate_limits=True, email_link_rate_limit="2 per hour")
def test_resending_the_link_counts_against_the_mailbox_limit(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    request_id = _request_id(_ask(signed_in, "correct", {"details": DETAILS}))
    path = f"/requests/{request_id}/resend"

    first = post_form(signed_in, path, form_page=f"/requests/{request_id}")
    second = post_form(signed_in, path, form_page=f"/requests/{request_id}")
    assert first.status_code == 303
    assert second.status_code == 429
    assert "You can try again in" in _words(second)
    assert len(_outbox(app, user.email)) == 2  # the request's link and one resend


# --- pages are safe ---------------------------------------------------------------------------


def test_the_request_pages_load_nothing_from_elsewhere(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    request_id = _request_id(_ask(signed_in, "correct", {"details": DETAILS}))
    [message] = _outbox(app, user.email)
    for path in (
        "/requests",
        "/requests/new",
        "/requests/new/delete_account",
        "/requests/new/correct",
        "/requests/new/appeal",
        f"/requests/{request_id}",
        _link(message, CONFIRM_LINK),
    ):
        response = signed_in.get(path)
        assert response.status_code == 200, path
        problems, _attrs = html_problems(response.get_data(as_text=True))
        assert problems == [], f"{path}: {problems}"
