"""Correcting your details in a real browser, and changing the sign-in address by the emailed link.

Uses the second demo account so the main demo user's numbers stay as the other tests expect;
its address and language are put back afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from tests.e2e.axe import assert_no_axe_violations
from tests.support.mailbox import outbox_messages_to, plain_text

pytestmark = pytest.mark.e2e

DEMO2_EMAIL = "demo2@example.com"
DEMO_PASSWORD = "demo-password"
NEW_EMAIL = "jonas.becker@example.org"


def _set_account(live_server, user_id: int, **columns: object) -> None:
    from app.extensions import db
    from app.models import User

    with live_server.app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None
        for name, value in columns.items():
            setattr(user, name, value)
        db.session.commit()
        db.session.remove()


@pytest.fixture
def demo2(live_server) -> Iterator[int]:
    """The second demo user, in English for this test (its saved language is German, whose
    catalog is translated separately), restored afterwards whatever the test did."""
    from app.extensions import db
    from app.models import User

    user_id = live_server.user_id(DEMO2_EMAIL)
    with live_server.app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None
        saved = {
            name: getattr(user, name) for name in ("email", "locale", "name", "country", "region")
        }
        db.session.remove()
    _set_account(live_server, user_id, locale="en")
    yield user_id
    _set_account(live_server, user_id, **saved)


def _messages_to(live_server, address: str) -> list[EmailMessage]:
    return outbox_messages_to(live_server.app.config["SETTINGS"].mail_outbox_dir, address)


def test_change_the_sign_in_address_by_the_emailed_link(visit, live_server, demo2):
    from app.extensions import db
    from app.models import User

    visitor = visit()
    page = visitor.page
    visitor.sign_in(DEMO2_EMAIL, DEMO_PASSWORD)
    page.get_by_role("link", name="Correct your details").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your details")
    expect(page.get_by_label("Name", exact=True)).to_have_value("Jonas Becker")
    assert_no_axe_violations(page)
    visitor.watch.assert_clean()

    # A wrong password: told so next to the field, and nothing is sent.
    visitor.watch.expect_status("/profile/email", 400)
    page.get_by_label("New email address").fill(NEW_EMAIL)
    page.get_by_label("Your current password").fill("not-the-password")
    with page.expect_navigation():
        page.get_by_role("button", name="Send the confirmation link").click()
    password = page.get_by_label("Your current password")
    expect(password).to_have_attribute("aria-invalid", "true")
    expect(password).to_have_accessible_description(
        re.compile("That password is not right. Try again.")
    )
    assert_no_axe_violations(page)
    assert _messages_to(live_server, NEW_EMAIL) == []

    page.get_by_label("Your current password").fill(DEMO_PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Send the confirmation link").click()
    expect(page.get_by_role("status")).to_contain_text(
        f"We sent a confirmation link to {NEW_EMAIL}."
    )
    expect(
        page.get_by_text(f"A change to {NEW_EMAIL} is waiting for confirmation.")
    ).to_be_visible()
    visitor.watch.assert_clean()

    (confirmation,) = _messages_to(live_server, NEW_EMAIL)
    (notice,) = _messages_to(live_server, DEMO2_EMAIL)[-1:]
    assert "j***@example.org" in plain_text(notice)
    link = re.search(
        re.escape(live_server.url) + r"/profile/email/confirm/\S+", plain_text(confirmation)
    )
    assert link, plain_text(confirmation)

    # The link is opened in another browser, by whoever reads that mailbox.
    reader = visit()
    reader.open(link.group(0))
    expect(reader.page.get_by_role("heading", level=1)).to_have_text(
        "Confirm your new sign-in address"
    )
    expect(reader.page.locator(".lead")).to_have_text(
        f"Change your sign-in address from d***@example.com to {NEW_EMAIL}."
    )
    assert_no_axe_violations(reader.page)
    # Opening it changed nothing yet.
    assert live_server.user_id(DEMO2_EMAIL) == demo2
    with reader.page.expect_navigation():
        reader.page.get_by_role("button", name="Change my sign-in address").click()
    expect(reader.page.get_by_role("heading", level=1)).to_have_text("Sign in")
    expect(reader.page.get_by_role("status")).to_contain_text(
        f"Your sign-in address is now {NEW_EMAIL}."
    )
    reader.watch.assert_clean()
    with live_server.app.app_context():
        assert (
            db.session.scalar(select(User.id).where(func.lower(User.email) == NEW_EMAIL)) == demo2
        )
        db.session.remove()

    # The first browser was signed out with every other session of the account.
    visitor.open("/profile")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")

    # The new address signs in; the old one does not.
    visitor.watch.expect_status("/login", 401)
    visitor.sign_in(DEMO2_EMAIL, DEMO_PASSWORD)
    expect(page.get_by_role("alert")).to_be_visible()
    visitor.sign_in(NEW_EMAIL, DEMO_PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
    visitor.open("/profile")
    expect(page.get_by_text(NEW_EMAIL, exact=True)).to_be_visible()
    visitor.watch.assert_clean()


def test_correct_the_name_and_country_by_keyboard(visit, live_server, demo2):
    visitor = visit()
    page = visitor.page
    visitor.sign_in(DEMO2_EMAIL, DEMO_PASSWORD)
    visitor.open("/profile")
    page.get_by_label("Name", exact=True).fill("Jonas B. Becker")
    page.locator("#country").select_option("CA")
    page.get_by_label("State or region code").fill("on")
    with page.expect_navigation():
        page.get_by_label("State or region code").press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Your details are saved.")
    expect(page.get_by_label("Name", exact=True)).to_have_value("Jonas B. Becker")
    expect(page.locator("#country")).to_have_value("CA")
    expect(page.get_by_label("State or region code")).to_have_value("ON")
    assert_no_axe_violations(page)
    visitor.watch.assert_clean()
