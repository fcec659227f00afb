"""From a marketing email's link, on a phone, with JavaScript on and off: unsubscribe, undo,
then choose topics without signing in, including a double opt-in by the emailed link.

Each run uses its own newsletter-only address, so the demo accounts are not touched.
"""

from __future__ import annotations

import re
from email.message import EmailMessage

import pytest
from playwright.sync_api import expect

from tests.e2e.axe import assert_no_axe_violations
from tests.e2e.conftest import send_newsletter
from tests.support.mailbox import outbox_messages_to, plain_text

pytestmark = pytest.mark.e2e

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


def _messages_to(live_server, address: str) -> list[EmailMessage]:
    return outbox_messages_to(live_server.app.config["SETTINGS"].mail_outbox_dir, address)


def _link(live_server, message: EmailMessage, path: str) -> str:
    found = re.search(re.escape(live_server.url) + path, plain_text(message))
    assert found, plain_text(message)
    return found.group(0).removeprefix(live_server.url)


def _send_newsletter(live_server, address: str) -> EmailMessage:
    send_newsletter(live_server, address)
    (message,) = _messages_to(live_server, address)
    return message


def _statuses(live_server, address: str) -> dict[str, str]:
    from sqlalchemy import select

    from app.extensions import db
    from app.models import TopicSubscription
    from app.services import marketing

    with live_server.app.app_context():
        subscriber = marketing.find_subscriber(address)
        assert subscriber is not None
        rows = db.session.scalars(
            select(TopicSubscription).where(TopicSubscription.subscriber_id == subscriber.id)
        )
        statuses = {row.topic: row.status for row in rows}
        db.session.remove()
    return statuses


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_from_the_email_link_on_a_phone(visit, live_server, javascript):
    address = f"phone-{'js' if javascript else 'plain'}@example.org"
    newsletter = _send_newsletter(live_server, address)
    assert newsletter["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = _link(live_server, newsletter, r"/unsubscribe/[A-Za-z0-9_.\-]+(?=\s)")

    visitor = visit(java_script_enabled=javascript, **PHONE)
    page = visitor.page
    visitor.open(unsubscribe)
    expect(page.get_by_role("heading", level=1)).to_have_text("Unsubscribe from “Newsletter”")
    expect(
        page.get_by_text("we stop sending “Newsletter” emails to p***@example.org")
    ).to_be_visible()
    if javascript:
        assert_no_axe_violations(page)

    # Unsubscribe: one tap.
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are unsubscribed")
    expect(page.get_by_role("status")).to_contain_text(
        "We will send no more “Newsletter” emails to p***@example.org."
    )
    assert _statuses(live_server, address) == {"newsletter": "unsubscribed", "offers": "subscribed"}
    if javascript:
        assert_no_axe_violations(page)

    # Undo: back without a new confirmation.
    page.get_by_role("button", name="Undo").click()
    expect(page.get_by_role("status")).to_contain_text(
        "Undone. You will get these emails again: Newsletter."
    )
    expect(page.get_by_role("heading", level=1)).to_have_text("Unsubscribe from “Newsletter”")
    assert _statuses(live_server, address) == {"newsletter": "subscribed", "offers": "subscribed"}

    # Every topic, without signing in.
    page.get_by_role("link", name="Choose which emails you get instead").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Marketing emails")
    expect(page.get_by_text(f"Choose which marketing emails we send to {address}.")).to_be_visible()
    if javascript:
        assert_no_axe_violations(page)

    offers = page.get_by_role("switch", name="Offers and discounts")
    expect(offers).to_have_attribute("aria-checked", "true")
    offers.click()
    offers = page.get_by_role("switch", name="Offers and discounts")
    expect(offers).to_have_attribute("aria-checked", "false")
    saved = "Saved: you will no longer get “Offers and discounts” emails."
    if javascript:
        expect(page.locator("#marketing-live")).to_have_text(saved)
        expect(offers).to_be_focused()
    else:
        expect(page.locator(".flashes")).to_contain_text(saved)

    page.get_by_role("switch", name="Research invitations").click()
    research = page.get_by_role("switch", name="Research invitations")
    expect(research).to_have_attribute("aria-checked", "true")
    expect(page.locator("#topic-research-status")).to_contain_text("Waiting for you to confirm")
    expect(page.locator("#marketing-history")).to_contain_text(
        "Research invitations: asked for (waiting for confirmation), on this site"
    )
    if javascript:
        assert_no_axe_violations(page)
    assert _statuses(live_server, address)["research"] == "pending"

    # The double opt-in: the link in the confirmation email, then one button.
    confirmation = _messages_to(live_server, address)[-1]
    assert confirmation["Subject"] == "Confirm that you want “Research invitations” emails"
    visitor.open(_link(live_server, confirmation, r"/preferences/marketing/confirm/\S+"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your subscription")
    if javascript:
        assert_no_axe_violations(page)
    page.get_by_role("button", name="Yes, send me these emails").click()
    expect(page.locator(".flashes")).to_contain_text(
        f"Confirmed: you will get “Research invitations” emails at {address}."
    )
    expect(page.locator("#topic-research-status")).to_contain_text("You get these emails")
    assert _statuses(live_server, address) == {
        "newsletter": "subscribed",
        "offers": "unsubscribed",
        "research": "subscribed",
    }
    visitor.watch.assert_clean()


def test_a_damaged_link_offers_a_new_one_by_email(visit, live_server):
    address = "damaged-link@example.org"
    newsletter = _send_newsletter(live_server, address)
    unsubscribe = _link(live_server, newsletter, r"/unsubscribe/[A-Za-z0-9_.\-]+(?=\s)")
    visitor = visit(**PHONE)
    page = visitor.page
    visitor.open(unsubscribe[:-5], status=400)
    expect(page.get_by_role("heading", level=1)).to_have_text("This link is not valid")
    assert_no_axe_violations(page)

    page.get_by_label("Your email address").fill(address)
    page.get_by_role("button", name="Email me a link").click()
    expect(page.get_by_role("status")).to_contain_text(
        f"If {address} is on our mailing list, a link to choose its marketing emails"
    )
    message = _messages_to(live_server, address)[-1]
    visitor.open(_link(live_server, message, r"/preferences/marketing/link/\S+"))
    expect(page.get_by_text(f"Choose which marketing emails we send to {address}.")).to_be_visible()
    visitor.watch.assert_clean()
