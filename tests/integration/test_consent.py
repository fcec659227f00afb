"""Cookie consent through the real forms: the banner, the settings page, GPC, "Do Not Sell",
the cookie, and what is recorded for each (SQLite, and PostgreSQL when reachable)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from app.extensions import db
from app.models import AuditEvent, ConsentRecord, User, utcnow
from app.services import consent as service
from app.services.consent import COOKIE_NAME, ConsentCookie, get_catalogue
from app.services.notice import get_notice
from tests.support.web import csrf_token, html_problems, login, logout, text_of

HX = {"HX-Request": "true"}
GPC = {"Sec-GPC": "1"}
BANNER_TITLE = "Your choice of cookies"
ALL_ON = {"preferences": True, "analytics": True, "advertising": True}
ALL_OFF = dict.fromkeys(ALL_ON, False)
DO_NOT_SELL = "Do Not Sell or Share My Personal Information"


# --- helpers (also used by the other consent test modules) ------------------------------------


def decide(
    client: FlaskClient,
    decision: str,
    allow: Iterable[str] = (),
    *,
    origin: str = "banner",
    next_url: str = "/",
    headers: dict[str, str] | None = None,
) -> TestResponse:
    """Press a button of the banner (or the settings page) the way a browser sends it."""
    token = csrf_token(client, "/preferences/cookies")  # (fetched without the GPC header)
    data: dict[str, Any] = {
        "csrf_token": token,
        "decision": decision,
        "allow": list(allow),
        "origin": origin,
        "next": next_url,
    }
    return client.post("/preferences/cookies", data=data, headers=headers)


def receipts(app: Flask) -> list[ConsentRecord]:
    """Every consent receipt, oldest first, detached from the session."""
    with app.app_context():
        rows = list(db.session.scalars(select(ConsentRecord).order_by(ConsentRecord.id)))
        db.session.expunge_all()
        return rows


def consent_cookie(app: Flask, client: FlaskClient) -> ConsentCookie | None:
    stored = client.get_cookie(COOKIE_NAME)
    settings = app.config["SETTINGS"]
    keys = [*settings.secret_key_fallbacks, settings.secret_key]
    return service.decode_cookie(stored.value if stored else None, keys)


def has_banner(response: TestResponse) -> bool:
    return 'id="consent-banner-title"' in response.get_data(as_text=True)


def set_cookie_headers(response: TestResponse) -> list[str]:
    return [h for h in response.headers.getlist("Set-Cookie") if h.startswith(COOKIE_NAME + "=")]


def add_receipt(app: Flask, **columns: Any) -> None:
    values: dict[str, Any] = {
        "receipt_id": service.new_receipt_id(),
        "choices": dict(ALL_ON),
        "purposes_version": get_catalogue().version,
        "notice_version": get_notice().current.version,
        "jurisdiction": "DE",
        "consent_model": "opt_in",
        "source": "banner",
        "gpc": False,
        "user_agent_hash": "",
        "created_at": utcnow(),
        **columns,
    }
    with app.app_context():
        db.session.add(ConsentRecord(**values))
        db.session.commit()


# --- the banner -------------------------------------------------------------------------------


def test_first_visit_shows_the_banner_with_equal_accept_and_reject(client: FlaskClient) -> None:
    response = client.get("/")
    assert has_banner(response)
    page = response.get_data(as_text=True)
    accept = re.search(r'<button type="submit" name="decision" value="accept_all"[^>]*>', page)
    reject = re.search(r'<button type="submit" name="decision" value="reject_all"[^>]*>', page)
    assert accept and reject
    # Same element, same style: only the value differs.
    assert accept.group(0).replace("accept_all", "X") == reject.group(0).replace("reject_all", "X")
    assert "<details" in page and "<summary>Choose</summary>" in page
    assert 'role="switch"' in page
    assert "Nothing optional is used until you choose." in text_of(response)
    assert not html_problems(page)[0]
    assert set_cookie_headers(response) == []  # looking sets no consent cookie
    assert DO_NOT_SELL not in text_of(response)  # opt-in place (nothing known: strict default)


def test_banner_sits_before_the_header_and_outside_main(client: FlaskClient) -> None:
    page = client.get("/login").get_data(as_text=True)
    skip, banner, header, main = (
        page.index(marker)
        for marker in ('class="skip-link"', 'id="consent-banner"', "<header", "<main")
    )
    assert skip < banner < header < main
    assert 'role="dialog"' not in page and "aria-modal" not in page


def test_accept_all_without_javascript(app: Flask, client: FlaskClient) -> None:
    agent = {"User-Agent": "TestBrowser/1.0 (Consent)"}
    response = decide(client, "accept_all", next_url="/policy", headers=agent)
    assert response.status_code == 303
    assert response.headers["Location"] == "/policy"
    (header,) = set_cookie_headers(response)
    for attribute in ("HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=31536000"):
        assert attribute in header
    assert "Secure" not in header  # http:// in tests

    (receipt,) = receipts(app)
    assert receipt.choices == ALL_ON
    assert (receipt.source, receipt.gpc, receipt.user_id) == ("banner", False, None)
    assert (receipt.jurisdiction, receipt.consent_model) == ("ZZ", "opt_in")
    assert receipt.notice_version == get_notice().current.version
    assert receipt.purposes_version == get_catalogue().version
    # A keyed hash: the database alone does not tell which browser it was.
    assert receipt.user_agent_hash == service.user_agent_hash(
        app.config["SETTINGS"].secret_key, agent["User-Agent"]
    )

    cookie = consent_cookie(app, client)
    assert cookie is not None
    assert (cookie.receipt_id, cookie.browser_id) == (receipt.receipt_id, receipt.browser_id)
    assert cookie.choices == ALL_ON

    page = client.get("/policy")
    assert "Saved: all optional cookies are allowed." in text_of(page)
    assert not has_banner(page)
    assert not has_banner(client.get("/"))


def test_reject_all_and_choose_some(app: Flask, client: FlaskClient) -> None:
    decide(client, "reject_all")
    assert receipts(app)[-1].choices == ALL_OFF
    assert "Saved: only strictly necessary cookies are used." in text_of(client.get("/"))

    response = decide(client, "save", ["analytics"], origin="settings", next_url="/login")
    assert response.headers["Location"] == "/login"
    latest = receipts(app)[-1]
    assert latest.choices == {"preferences": False, "analytics": True, "advertising": False}
    assert latest.source == "settings"
    assert "Saved. Allowed: Analytics. Off: Preferences and Advertising." in text_of(
        client.get("/login")
    )
    # One browser: both receipts carry the same random browser id, the cookie the newest.
    first, second = receipts(app)
    assert first.browser_id == second.browser_id
    assert consent_cookie(app, client).receipt_id == second.receipt_id  # type: ignore[union-attr]


def test_banner_answer_with_htmx_is_swapped_in_place(app: Flask, client: FlaskClient) -> None:
    response = decide(client, "reject_all", headers=HX)
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "<html" not in body
    assert 'id="consent-banner"' in body and 'role="status"' in body
    assert "Saved: only strictly necessary cookies are used." in text_of(response)
    assert "HX-Request" in response.headers.get("Vary", "")
    assert set_cookie_headers(response)
    # No flash message waits for the next page: the fragment already said it.
    assert "Saved:" not in text_of(client.get("/"))
    assert len(receipts(app)) == 1


@pytest.mark.parametrize(
    "data",
    [
        {"decision": "save", "allow": ["tracking"]},
        {"decision": "save", "allow": ["analytics", "necessary"]},
        {"decision": "accept_some"},
        {"decision": ""},
        {"decision": "accept_all", "origin": "gpc"},
        {"decision": "accept_all", "origin": ""},
    ],
)
def test_a_forged_decision_is_refused_and_nothing_is_stored(
    app: Flask, client: FlaskClient, data: dict[str, Any]
) -> None:
    token = csrf_token(client, "/preferences/cookies")
    form = {"csrf_token": token, "origin": "banner", "next": "/", **data}
    response = client.post("/preferences/cookies", data=form)
    assert response.status_code == 400
    assert "This request could not be understood" in text_of(response)
    assert receipts(app) == []
    assert set_cookie_headers(response) == []


def test_a_decision_without_the_form_token_is_refused(app: Flask, client: FlaskClient) -> None:
    client.get("/")
    response = client.post(
        "/preferences/cookies", data={"decision": "accept_all", "origin": "banner"}
    )
    assert response.status_code == 400
    assert receipts(app) == []


@pytest.mark.parametrize(
    "next_url", ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:x"]
)
def test_decisions_never_redirect_off_site(client: FlaskClient, next_url: str) -> None:
    response = decide(client, "accept_all", next_url=next_url)
    assert response.status_code == 303
    assert response.headers["Location"] == "/preferences/cookies"


# --- when the banner comes back ---------------------------------------------------------------


def _forge(client: FlaskClient, value: str) -> None:
    client.set_cookie(COOKIE_NAME, value)


def test_a_tampered_or_unsigned_cookie_is_ignored(app: Flask, client: FlaskClient) -> None:
    decide(client, "reject_all")
    value = client.get_cookie(COOKIE_NAME).value  # type: ignore[union-attr]
    payload, signature = value.split(".")
    flipped = payload[:-3] + ("A" if payload[-3] != "A" else "B") + payload[-2:]
    for forged in (f"{flipped}.{signature}", payload, f"{payload}.{signature[:-1]}", "garbage"):
        _forge(client, forged)
        assert has_banner(client.get("/")), forged
    _forge(client, value)
    assert not has_banner(client.get("/"))


def test_a_cookie_of_an_unknown_format_version_is_ignored(app: Flask, client: FlaskClient) -> None:
    decide(client, "reject_all")
    cookie = consent_cookie(app, client)
    assert cookie is not None
    keys = [app.config["SETTINGS"].secret_key]
    good = service.encode_cookie(cookie, keys)
    payload = service._b64decode(good.split(".")[0]).decode().replace('"v":1', '"v":2')
    _forge(client, service._signer(keys).sign(service._b64encode(payload.encode())).decode())
    assert has_banner(client.get("/"))


@pytest.mark.app_settings(secret_key="new-secret-key-after-rotation-0123456789")
def test_a_cookie_signed_before_a_key_rotation_still_counts(
    app: Flask, make_app: Callable[..., Flask]
) -> None:
    before = make_app(secret_key="old-secret-key-before-rotation-0123456789").test_client()
    decide(before, "accept_all")
    value = before.get_cookie(COOKIE_NAME).value  # type: ignore[union-attr]

    rotated = make_app(
        secret_key="new-secret-key-after-rotation-0123456789",
        secret_key_fallbacks=("old-secret-key-before-rotation-0123456789",),
    ).test_client()
    rotated.set_cookie(COOKIE_NAME, value)
    assert not has_banner(rotated.get("/"))
    without_fallback = app.test_client()
    without_fallback.set_cookie(COOKIE_NAME, value)
    assert has_banner(without_fallback.get("/"))


def test_banner_returns_when_the_notice_version_changes(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    decide(client, "accept_all")
    assert not has_banner(client.get("/"))
    monkeypatch.setattr("app.web.consent.current_notice_version", lambda: "2099.1.1")
    response = client.get("/")
    assert has_banner(response)
    # The switches show the last answer until the person answers again.
    assert 'value="analytics" aria-describedby="banner-purpose-analytics-about" checked' in (
        response.get_data(as_text=True)
    )


def test_banner_returns_when_the_purposes_change(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    decide(client, "accept_all")
    changed = service.Catalogue(
        version="2", providers=get_catalogue().providers, purposes=get_catalogue().purposes
    )
    monkeypatch.setattr("app.web.consent.get_catalogue", lambda: changed)
    assert has_banner(client.get("/"))


@pytest.mark.app_settings(consent_max_age_days=30)
def test_banner_returns_after_the_maximum_age(app: Flask, client: FlaskClient) -> None:
    cookie = ConsentCookie(
        browser_id=service.new_browser_id(),
        receipt_id=service.new_receipt_id(),
        purposes_version=get_catalogue().version,
        notice_version=get_notice().current.version,
        decided_at=utcnow() - timedelta(days=31),
        source="banner",
        gpc=False,
        choices=dict(ALL_ON),
    )
    keys = [app.config["SETTINGS"].secret_key]
    _forge(client, service.encode_cookie(cookie, keys))
    assert has_banner(client.get("/"))
    recent = dataclasses.replace(cookie, decided_at=utcnow() - timedelta(days=29))
    _forge(client, service.encode_cookie(recent, keys))
    assert not has_banner(client.get("/"))


# --- signed in --------------------------------------------------------------------------------


def test_an_account_that_decided_elsewhere_is_not_asked_again(
    app: Flask, make_user: Callable[..., User]
) -> None:
    person = make_user(email="traveller@example.com", country="DE")
    laptop = app.test_client()
    login(laptop, person.email, person.password)
    assert has_banner(laptop.get("/"))
    decide(laptop, "save", ["preferences"])
    (receipt,) = receipts(app)
    assert receipt.user_id == person.id

    phone = app.test_client()
    login(phone, person.email, person.password)
    response = phone.get("/")
    assert not has_banner(response)
    # The phone's cookie now carries the account's decision too, for the platform.
    cookie = consent_cookie(app, phone)
    assert cookie is not None and cookie.receipt_id == receipt.receipt_id
    assert cookie.browser_id != receipt.browser_id  # another browser
    assert len(receipts(app)) == 1


def test_an_account_decision_is_audited(app: Flask, client: FlaskClient, user: User) -> None:
    login(client, user.email, user.password)
    decide(client, "reject_all")
    (receipt,) = receipts(app)
    with app.app_context():
        (event,) = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "consent.recorded")
        ).all()
        assert (event.subject_user_id, event.actor_type, event.target) == (
            user.id,
            "user",
            f"consent:{receipt.receipt_id}",
        )
        assert event.details["choices"] == ALL_OFF


def test_sign_in_merges_the_browser_choices_into_the_account_stricter_wins(
    app: Flask, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    person = make_user(email="merge@example.com", country="DE")
    add_receipt(
        app,
        user_id=person.id,
        browser_id="another-browser-0001",
        choices={"preferences": True, "analytics": False, "advertising": True},
    )
    decide(client, "save", ["analytics", "advertising"])  # anonymous, in this browser
    anonymous = receipts(app)[-1]
    assert anonymous.user_id is None

    login(client, person.email, person.password)
    merged = receipts(app)[-1]
    assert merged.source == "merge"
    assert (merged.user_id, merged.browser_id) == (person.id, anonymous.browser_id)
    assert merged.choices == {"preferences": False, "analytics": False, "advertising": True}
    assert consent_cookie(app, client).receipt_id == merged.receipt_id  # type: ignore[union-attr]
    assert not has_banner(client.get("/"))
    with app.app_context():
        actions = db.session.scalars(select(AuditEvent.action)).all()
        assert "consent.recorded" in actions

    # Signing in again merges nothing more: the cookie now holds the account's own receipt.
    logout(client)
    login(client, person.email, person.password)
    assert len(receipts(app)) == 3


def test_sign_in_without_account_choices_takes_the_browser_choices(
    app: Flask, client: FlaskClient, user: User
) -> None:
    decide(client, "save", ["preferences"])
    login(client, user.email, user.password)
    merged = receipts(app)[-1]
    assert (merged.source, merged.user_id) == ("merge", user.id)
    assert merged.choices == {"preferences": True, "analytics": False, "advertising": False}


def test_sign_in_does_not_merge_another_account_or_an_outdated_choice(
    app: Flask,
    client: FlaskClient,
    make_user: Callable[..., User],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = make_user(email="first@example.com")
    second = make_user(email="second@example.com")
    login(client, first.email, first.password)
    decide(client, "accept_all")  # made by the first account in this browser
    logout(client)
    login(client, second.email, second.password)
    assert [r.user_id for r in receipts(app)] == [first.id]
    assert has_banner(client.get("/"))  # the second account has not decided
    logout(client)

    fresh = app.test_client()
    decide(fresh, "accept_all")
    monkeypatch.setattr("app.web.consent.current_notice_version", lambda: "2099.1.1")
    login(fresh, second.email, second.password)
    assert [r.source for r in receipts(app)] == ["banner", "banner"]  # no merge


def test_no_consent_cookie_is_set_at_sign_in_without_any_decision(
    client: FlaskClient, user: User
) -> None:
    response = login(client, user.email, user.password)
    assert set_cookie_headers(response) == []
    assert set_cookie_headers(client.get("/")) == []
    assert client.get_cookie(COOKIE_NAME) is None


# --- Global Privacy Control -------------------------------------------------------------------


def test_gpc_before_any_decision_in_an_opt_in_place(app: Flask, client: FlaskClient) -> None:
    response = client.get("/", headers=GPC)
    assert has_banner(response)
    assert (
        "Your browser sent a Global Privacy Control signal, and we honour it: the cookies for "
        "Advertising stay off unless you allow them yourself." in text_of(response)
    )
    assert 'value="advertising" aria-describedby' in response.get_data(as_text=True)
    # Everything optional is off here anyway: no receipt, no cookie until the person answers.
    assert receipts(app) == []
    assert set_cookie_headers(response) == []


def test_accept_all_with_gpc_asks_before_allowing_advertising(
    app: Flask, client: FlaskClient
) -> None:
    response = decide(client, "accept_all", headers=GPC, next_url="/policy")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/preferences/cookies/confirm?")
    (saved,) = receipts(app)
    assert saved.choices == {"preferences": True, "analytics": True, "advertising": False}
    assert saved.gpc is True

    question = client.get(response.headers["Location"], headers=GPC)
    assert question.status_code == 200
    text = text_of(question)
    assert "the cookies for Advertising stay off, unless you allow them anyway" in text
    assert "Keep them off" in text and "Allow them anyway" in text
    assert not has_banner(question)

    kept = decide(client, "keep_sale_off", headers=GPC, next_url="/policy")
    assert kept.headers["Location"] == "/policy"
    assert len(receipts(app)) == 1  # nothing to record: it was off already

    decide(client, "allow_sale", headers=GPC, next_url="/policy")
    allowed = receipts(app)[-1]
    assert allowed.choices == ALL_ON
    assert (allowed.gpc, allowed.source) == (True, "banner")
    # Allowed with the signal in view: later requests with the signal respect that.
    client.get("/", headers=GPC)
    client.get("/policy", headers=GPC)
    assert len(receipts(app)) == 2


def test_accept_all_with_gpc_and_htmx_asks_in_place(app: Flask, client: FlaskClient) -> None:
    response = decide(client, "accept_all", headers={**GPC, **HX})
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "<html" not in body and 'id="consent-banner"' in body
    assert "Allow them anyway" in text_of(response)
    answer = decide(client, "keep_sale_off", headers={**GPC, **HX})
    assert "Nothing changed: the cookies for Advertising stay off." in text_of(answer)
    assert 'role="status"' in answer.get_data(as_text=True)


def test_gpc_switches_off_advertising_after_an_earlier_accept(
    app: Flask, client: FlaskClient
) -> None:
    decide(client, "accept_all")
    response = client.get("/policy", headers=GPC)
    assert "Global Privacy Control signal honoured" in text_of(response)
    assert "We have switched off the cookies for Advertising." in text_of(response)
    first, honoured = receipts(app)
    assert (honoured.source, honoured.gpc) == ("gpc", True)
    assert honoured.choices == {"preferences": True, "analytics": True, "advertising": False}
    assert honoured.browser_id == first.browser_id
    assert consent_cookie(app, client).receipt_id == honoured.receipt_id  # type: ignore[union-attr]

    # Repeated requests with the signal write nothing more, and say nothing more.
    again = client.get("/", headers=GPC)
    assert "Global Privacy Control signal honoured" not in text_of(again)
    assert len(receipts(app)) == 2
    settings = text_of(client.get("/preferences/cookies", headers=GPC))
    assert "We have detected it and we honour it" in settings
    assert "by your browser's Global Privacy Control signal" in settings


def test_gpc_honoured_for_the_signed_in_account_in_an_opt_out_place(
    app: Flask, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    californian = make_user(email="ca@example.com", country="US", region="CA")
    login(client, californian.email, californian.password)
    response = client.get("/", headers=GPC)
    (receipt,) = receipts(app)
    assert (receipt.user_id, receipt.source, receipt.jurisdiction) == (
        californian.id,
        "gpc",
        "US-CA",
    )
    assert receipt.consent_model == "opt_out"
    assert receipt.choices == {"preferences": True, "analytics": True, "advertising": False}
    assert "We have switched off the cookies for Advertising." in text_of(response)
    client.get("/", headers=GPC)
    assert len(receipts(app)) == 1


def test_an_outdated_decision_is_not_renewed_by_gpc(
    client: FlaskClient, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    decide(client, "accept_all")
    monkeypatch.setattr("app.web.consent.current_notice_version", lambda: "2099.1.1")
    response = client.get("/", headers=GPC)
    assert has_banner(response)  # asked again, with advertising already off
    assert len(receipts(app)) == 1
    assert 'value="advertising" aria-describedby="banner-purpose-advertising-about">' in (
        response.get_data(as_text=True)
    )


# --- opt-out places and "Do Not Sell or Share" ------------------------------------------------


def test_opt_out_place_starts_on_and_shows_do_not_sell(
    app: Flask, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    californian = make_user(email="ca2@example.com", country="US", region="CA")
    login(client, californian.email, californian.password)
    response = client.get("/")
    text = text_of(response)
    assert has_banner(response)
    assert "unless you say no" in text
    page = response.get_data(as_text=True)
    assert page.count('href="/preferences/cookies/do-not-sell"') == 2  # banner and footer
    assert 'value="analytics" aria-describedby="banner-purpose-analytics-about" checked' in page

    settings = text_of(client.get("/preferences/cookies"))
    assert "Where you are, optional cookies may be used until you say no." in settings
    assert DO_NOT_SELL in settings

    opt_out = client.get("/preferences/cookies/do-not-sell")
    assert opt_out.status_code == 200 and DO_NOT_SELL in text_of(opt_out)
    token = csrf_token(client, "/preferences/cookies/do-not-sell")
    done = client.post("/preferences/cookies/do-not-sell", data={"csrf_token": token})
    assert done.status_code == 303
    (receipt,) = receipts(app)
    assert receipt.choices == {"preferences": True, "analytics": True, "advertising": False}
    assert (receipt.source, receipt.user_id, receipt.consent_model) == (
        "settings",
        californian.id,
        "opt_out",
    )
    after = text_of(client.get(done.headers["Location"]))
    assert "Done: we do not sell or share your personal information" in after
    assert "This is already switched off for you" in after


def test_opt_in_place_has_no_do_not_sell_link(client: FlaskClient, user: User) -> None:
    login(client, user.email, user.password)
    assert DO_NOT_SELL not in text_of(client.get("/"))


@pytest.mark.app_settings(default_country="US")
def test_default_country_decides_for_visitors(client: FlaskClient) -> None:
    response = client.get("/")
    assert "unless you say no" in text_of(response)


def test_do_not_sell_needs_the_form_token(app: Flask, client: FlaskClient) -> None:
    client.get("/")
    assert client.post("/preferences/cookies/do-not-sell").status_code == 400
    assert receipts(app) == []


# --- the settings page and the history --------------------------------------------------------


def test_settings_page_lists_purposes_cookies_and_history(app: Flask, client: FlaskClient) -> None:
    empty = client.get("/preferences/cookies")
    assert empty.status_code == 200
    assert not has_banner(empty)  # the page is the choices themselves
    assert "No choice has been recorded for this browser yet." in text_of(empty)
    assert "You have not chosen yet. Until you do, only strictly necessary cookies are used." in (
        text_of(empty)
    )

    decide(client, "save", ["analytics"], origin="settings")
    response = client.get("/preferences/cookies")
    page = response.get_data(as_text=True)
    text = text_of(response)
    assert not html_problems(page)[0]
    for purpose in get_catalogue().purposes:
        assert f"<caption>{purpose.name}" in page
        for cookie in purpose.cookies:
            assert f'<th scope="row"><code>{cookie.name}</code></th>' in page
    assert page.count('<th scope="col">') >= 4 * len(get_catalogue().purposes)
    (receipt,) = receipts(app)
    assert receipt.receipt_id in text
    assert "Analytics: allowed" in text and "Advertising: off" in text
    assert "on the cookie settings page" in text
    assert 'href="/preferences/cookies/history.csv"' in page
    assert 'id="settings-purpose-analytics"' in page
    assert re.search(r'id="settings-purpose-analytics"[^>]* checked', page)
    assert not re.search(r'id="settings-purpose-preferences"[^>]* checked', page)


def test_anonymous_history_shows_only_this_browser_anonymous_receipts(
    app: Flask, client: FlaskClient, user: User
) -> None:
    decide(client, "reject_all")
    login(client, user.email, user.password)  # merge: a receipt of the account
    decide(client, "accept_all")
    logout(client)
    text = text_of(client.get("/preferences/cookies"))
    anonymous, merged, accepted = receipts(app)
    assert anonymous.receipt_id in text
    assert merged.receipt_id not in text and accepted.receipt_id not in text


def test_history_downloads_as_csv_and_json(app: Flask, client: FlaskClient, user: User) -> None:
    login(client, user.email, user.password)
    decide(client, "reject_all")
    decide(client, "save", ["preferences", "advertising"], origin="settings")
    older, newer = receipts(app)

    csv_response = client.get("/preferences/cookies/history.csv")
    assert csv_response.status_code == 200
    assert csv_response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert csv_response.headers["Content-Disposition"] == (
        'attachment; filename="cookie-consent-history.csv"'
    )
    assert csv_response.headers["Cache-Control"] == "private, no-store"
    raw = csv_response.get_data()
    assert raw.startswith("\ufeff".encode())
    lines = raw.decode("utf-8-sig").split("\r\n")
    assert lines[0] == (
        "receipt_id,created_at,source,gpc,jurisdiction,consent_model,notice_version,"
        "purposes_version,preferences,analytics,advertising"
    )
    versions = f"{get_notice().current.version},{get_catalogue().version}"
    assert lines[1] == (
        f"{older.receipt_id},{older.created_at.isoformat()},banner,false,ZZ,opt_in,{versions},"
        "false,false,false"
    )
    assert lines[2] == (
        f"{newer.receipt_id},{newer.created_at.isoformat()},settings,false,ZZ,opt_in,{versions},"
        "true,false,true"
    )
    assert lines[3] == ""

    json_response = client.get("/preferences/cookies/history.json")
    assert json_response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "attachment" in json_response.headers["Content-Disposition"]
    document = json_response.get_json()
    assert document["schema_version"] == 1
    assert document["subject"] == "account"
    assert [r["receipt_id"] for r in document["receipts"]] == [older.receipt_id, newer.receipt_id]
    assert document["receipts"][1] == {
        "receipt_id": newer.receipt_id,
        "created_at": newer.created_at.isoformat(),
        "choices": {"preferences": True, "analytics": False, "advertising": True},
        "source": "settings",
        "gpc": False,
        "jurisdiction": "ZZ",
        "consent_model": "opt_in",
        "notice_version": get_notice().current.version,
        "purposes_version": get_catalogue().version,
    }
    assert "user_agent_hash" not in json_response.get_data(as_text=True)


def test_history_downloads_for_a_visitor_without_choices_are_empty(client: FlaskClient) -> None:
    document = client.get("/preferences/cookies/history.json").get_json()
    assert (document["subject"], document["receipts"]) == ("browser", [])
    lines = client.get("/preferences/cookies/history.csv").get_data().decode("utf-8-sig")
    assert lines.split("\r\n")[1:] == [""]


def test_your_data_page_names_purposes_and_where_you_chose(
    app: Flask, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    person = make_user(email="data@example.com", country="US", region="CA")
    login(client, person.email, person.password)
    client.get("/", headers=GPC)  # a receipt from the signal
    text = text_of(client.get("/data/consent_records"))
    assert "by your browser's Global Privacy Control signal" in text
    assert "Advertising" in text and "Analytics" in text
    assert "California, United States" in text
