"""Cookie consent in a real browser, with JavaScript on and off: the banner's three answers,
the cookie jar before and after, Global Privacy Control, a new notice version, and sign-in.

Each test uses a fresh browser and, where it signs in, an account of its own, so the demo
accounts stay as the other browser tests expect them.
"""

from __future__ import annotations

import secrets

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.axe import assert_no_axe_violations

pytestmark = pytest.mark.e2e

BANNER = "Your choice of cookies"
PASSWORD = "consent-test-password"
GPC_HEADER = {"Sec-GPC": "1"}
CONFIRM_HEADING = "Your browser asks us not to sell or share your data"
JS = pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])


def necessary_cookies() -> frozenset[str]:
    from app.services.consent import get_catalogue

    return get_catalogue().necessary_cookie_names


def jar(visitor) -> dict[str, dict]:
    return {cookie["name"]: cookie for cookie in visitor.context.cookies()}


def assert_only_necessary_cookies(visitor) -> None:
    names = set(jar(visitor))
    assert names <= necessary_cookies(), f"cookies that are not strictly necessary: {names}"


def consent_cookie(visitor, live_server):
    from app.services.consent import COOKIE_NAME, decode_cookie

    settings = live_server.app.config["SETTINGS"]
    cookie = jar(visitor).get(COOKIE_NAME)
    assert cookie is not None, "no consent cookie"
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax"
    decoded = decode_cookie(cookie["value"], [*settings.secret_key_fallbacks, settings.secret_key])
    assert decoded is not None
    return decoded


def receipts(live_server, *, browser_id: str | None = None, user_id: int | None = None) -> list:
    from sqlalchemy import select

    from app.extensions import db
    from app.models import ConsentRecord

    query = select(ConsentRecord).order_by(ConsentRecord.id)
    if browser_id is not None:
        query = query.where(ConsentRecord.browser_id == browser_id)
    if user_id is not None:
        query = query.where(ConsentRecord.user_id == user_id)
    with live_server.app.app_context():
        rows = list(db.session.scalars(query))
        db.session.expunge_all()
        db.session.remove()
    return rows


def new_account(live_server, **columns: object) -> tuple[str, int]:
    from app.extensions import db
    from app.models import User
    from app.services.auth import hash_password

    email = f"consent-{secrets.token_hex(4)}@example.org"
    with live_server.app.app_context():
        user = User(email=email, password_hash=hash_password(PASSWORD), locale="en", **columns)
        db.session.add(user)
        db.session.commit()
        user_id = user.id
        db.session.remove()
    return email, user_id


def banner(page: Page):
    return page.get_by_role("region", name=BANNER)


def answer(page: Page, javascript: bool, button: str) -> None:
    """Press a button of the banner; without JavaScript the browser follows the redirect."""
    if javascript:
        banner(page).get_by_role("button", name=button, exact=True).click()
    else:
        with page.expect_navigation():
            banner(page).get_by_role("button", name=button, exact=True).click()


# --- the three answers ------------------------------------------------------------------------


ANSWERS = {
    "Accept all": (
        {"preferences", "analytics", "advertising"},
        "Saved: all optional cookies are allowed.",
    ),
    "Reject all": (set(), "Saved: only strictly necessary cookies are used."),
}


@JS
@pytest.mark.parametrize("button", list(ANSWERS))
def test_accept_or_reject_all(visit, live_server, javascript, button):
    allowed, message = ANSWERS[button]
    visitor = visit(java_script_enabled=javascript)
    page = visitor.page
    visitor.open("/policy")
    expect(banner(page)).to_be_visible()
    assert_only_necessary_cookies(visitor)
    assert "pc_consent" not in jar(visitor)
    if javascript:
        assert_no_axe_violations(page)

    answer(page, javascript, button)
    expect(page.get_by_role("status")).to_contain_text(message)
    expect(banner(page)).to_have_count(0)
    assert page.url.endswith("/policy")  # the same page, the banner answered
    if javascript:  # swapped in place: the status took the banner's place
        expect(page.locator("#consent-banner[role=status]")).to_be_visible()
    assert_only_necessary_cookies(visitor)
    cookie = consent_cookie(visitor, live_server)
    (receipt,) = receipts(live_server, browser_id=cookie.browser_id)
    assert {k for k, v in receipt.choices.items() if v} == allowed
    assert (receipt.source, receipt.gpc, receipt.user_id) == ("banner", False, None)

    visitor.open("/")
    expect(banner(page)).to_have_count(0)
    visitor.watch.assert_clean()


@JS
def test_choose_some(visit, live_server, javascript):
    visitor = visit(java_script_enabled=javascript)
    page = visitor.page
    visitor.open("/")
    page.get_by_text("Choose", exact=True).click()  # opens the switches in place
    switch = banner(page).get_by_role("switch", name="Analytics")
    expect(switch).not_to_be_checked()
    switch.check()
    expect(banner(page).get_by_role("switch", name="Advertising")).not_to_be_checked()
    if javascript:
        assert_no_axe_violations(page)
    answer(page, javascript, "Save my choices")
    expect(page.get_by_role("status")).to_contain_text(
        "Saved. Allowed: Analytics. Off: Preferences and Advertising."
    )
    assert_only_necessary_cookies(visitor)
    cookie = consent_cookie(visitor, live_server)
    assert cookie.choices == {"preferences": False, "analytics": True, "advertising": False}
    (receipt,) = receipts(live_server, browser_id=cookie.browser_id)
    assert receipt.receipt_id == cookie.receipt_id

    # The settings page shows the same choices, and withdrawing is as easy as giving.
    visitor.open("/preferences/cookies")
    expect(page.get_by_role("switch", name="Analytics")).to_be_checked()
    expect(page.get_by_role("row").filter(has_text=receipt.receipt_id)).to_be_visible()
    if javascript:
        assert_no_axe_violations(page)
    with page.expect_navigation():
        page.get_by_role("button", name="Reject all").click()
    expect(page.get_by_role("status")).to_contain_text("only strictly necessary cookies")
    expect(page.get_by_role("switch", name="Analytics")).not_to_be_checked()
    assert len(receipts(live_server, browser_id=cookie.browser_id)) == 2
    visitor.watch.assert_clean()


# --- Global Privacy Control -------------------------------------------------------------------


@JS
@pytest.mark.parametrize(
    ("button", "advertising"), [("Keep them off", False), ("Allow them anyway", True)]
)
def test_gpc_is_honoured_and_accept_all_asks_first(
    visit, live_server, javascript, button, advertising
):
    visitor = visit(java_script_enabled=javascript, extra_http_headers=GPC_HEADER)
    page = visitor.page
    visitor.open("/")
    expect(banner(page)).to_contain_text(
        "Your browser sent a Global Privacy Control signal, and we honour it"
    )
    assert_only_necessary_cookies(visitor)

    answer(page, javascript, "Accept all")
    question = page.get_by_role("region", name=CONFIRM_HEADING)
    expect(question).to_be_visible()
    expect(question).to_contain_text("the cookies for Advertising stay off")
    if javascript:
        assert_no_axe_violations(page)
    cookie = consent_cookie(visitor, live_server)
    (saved,) = receipts(live_server, browser_id=cookie.browser_id)
    assert saved.choices == {"preferences": True, "analytics": True, "advertising": False}
    assert saved.gpc is True

    if javascript:
        question.get_by_role("button", name=button).click()
    else:
        with page.expect_navigation():
            question.get_by_role("button", name=button).click()
    expect(page.get_by_role("status")).to_be_visible()
    expected = 2 if advertising else 1
    rows = receipts(live_server, browser_id=cookie.browser_id)
    assert len(rows) == expected
    assert rows[-1].choices["advertising"] is advertising
    assert rows[-1].gpc is True
    assert_only_necessary_cookies(visitor)

    visitor.open("/preferences/cookies")
    expect(page.locator(".consent-gpc")).to_contain_text("We have detected it and we honour it")
    assert len(receipts(live_server, browser_id=cookie.browser_id)) == expected  # no more
    visitor.watch.assert_clean()


# --- asked again ------------------------------------------------------------------------------


def test_banner_reappears_after_a_notice_version_bump(visit, live_server, monkeypatch):
    visitor = visit()
    page = visitor.page
    visitor.open("/")
    answer(page, True, "Reject all")
    expect(page.get_by_role("status")).to_be_visible()  # answered (and the cookie stored)
    visitor.open("/")
    expect(banner(page)).to_have_count(0)

    monkeypatch.setattr("app.web.consent.current_notice_version", lambda: "2099.1.1")
    visitor.open("/")
    expect(banner(page)).to_be_visible()
    answer(page, True, "Reject all")
    expect(page.get_by_role("status")).to_be_visible()  # answered (and the cookie stored)
    visitor.open("/")
    expect(banner(page)).to_have_count(0)
    cookie = consent_cookie(visitor, live_server)
    assert cookie.notice_version == "2099.1.1"
    visitor.watch.assert_clean()


# --- signing in -------------------------------------------------------------------------------


@JS
def test_sign_in_merges_the_browser_choices(visit, live_server, javascript):
    email, user_id = new_account(live_server, country="DE")
    visitor = visit(java_script_enabled=javascript)
    page = visitor.page
    visitor.open("/login")
    page.get_by_text("Choose", exact=True).click()
    banner(page).get_by_role("switch", name="Preferences").check()
    answer(page, javascript, "Save my choices")
    expect(page.get_by_role("status")).to_contain_text("Allowed: Preferences.")
    browser_id = consent_cookie(visitor, live_server).browser_id

    visitor.sign_in(email, PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
    expect(banner(page)).to_have_count(0)
    assert_only_necessary_cookies(visitor)
    (merged,) = receipts(live_server, user_id=user_id)
    assert (merged.source, merged.browser_id) == ("merge", browser_id)
    assert merged.choices == {"preferences": True, "analytics": False, "advertising": False}
    assert consent_cookie(visitor, live_server).receipt_id == merged.receipt_id

    visitor.open("/preferences/cookies")
    history = page.get_by_role("table", name="Receipts, newest first")
    expect(history).to_contain_text("when you signed in")
    if javascript:
        assert_no_axe_violations(page)
    visitor.watch.assert_clean()


def test_do_not_sell_in_california(visit, live_server):
    email, user_id = new_account(live_server, country="US", region="CA")
    visitor = visit()
    page = visitor.page
    visitor.sign_in(email, PASSWORD)
    expect(banner(page)).to_contain_text("unless you say no")
    assert_no_axe_violations(page)
    footer = page.locator("footer")
    with page.expect_navigation():
        footer.get_by_role("link", name="Do Not Sell or Share My Personal Information").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Do Not Sell or Share My Personal Information"
    )
    assert_no_axe_violations(page)
    with page.expect_navigation():
        page.get_by_role("button", name="Do not sell or share my personal information").click()
    expect(page.get_by_role("status")).to_contain_text("we do not sell or share")
    (receipt,) = receipts(live_server, user_id=user_id)
    assert receipt.choices == {"preferences": True, "analytics": True, "advertising": False}
    assert (receipt.jurisdiction, receipt.consent_model) == ("US-CA", "opt_out")
    assert_only_necessary_cookies(visitor)
    visitor.watch.assert_clean()
