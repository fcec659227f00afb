"""WCAG 2.2 AA in states a plain visit does not reach (forms sent with mistakes), and the
keyboard path into the page. Every page as it opens: test_e2e_every_page.py."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.axe import assert_no_axe_violations

pytestmark = pytest.mark.e2e

DEMO_EMAIL = "demo@example.com"


def test_login_with_a_refused_password_has_no_violations(visit):
    visitor = visit()
    visitor.watch.expect_status("/login", 401)
    visitor.sign_in(DEMO_EMAIL, "not-the-password")
    expect(visitor.page.get_by_role("alert")).to_be_visible()
    assert_no_axe_violations(visitor.page)
    visitor.watch.assert_clean()


def test_login_with_empty_fields_has_no_violations(visit):
    visitor = visit()
    page = visitor.page
    visitor.open("/login")
    visitor.watch.expect_status("/login", 400)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    # Each field says what is wrong, and the message is tied to its field.
    email = page.get_by_label("Email address")
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(email).to_have_accessible_description("Enter your email address.")
    expect(page.get_by_label("Password")).to_have_accessible_description("Enter your password.")
    assert_no_axe_violations(page)
    visitor.watch.assert_clean()


@pytest.mark.parametrize("path", ["/", "/login"])
def test_first_tab_reaches_the_skip_link_which_moves_focus_to_main(visit, path):
    visitor = visit()
    page = visitor.page
    visitor.open(path)

    page.keyboard.press("Tab")
    skip_link = page.get_by_role("link", name="Skip to main content")
    expect(skip_link).to_be_focused()
    # Hidden until focused, then on screen where a sighted keyboard user sees it.
    box = skip_link.bounding_box()
    assert box is not None and box["y"] >= 0 and box["x"] >= 0, f"skip link off screen: {box}"

    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    # The next Tab continues inside the main content, not back in the header.
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.querySelector('main').contains(document.activeElement)")
    visitor.watch.assert_clean()


def test_a_request_form_sent_with_mistakes_has_no_violations(visit):
    visitor = visit()
    page = visitor.page
    visitor.open("/requests/new/question")
    page.get_by_label("Your email address").fill("not an address")
    visitor.watch.expect_status("/requests/new/question", 400)
    with page.expect_navigation():
        page.get_by_role("button", name="Send the request").click()
    expect(page.get_by_label("Your email address")).to_have_attribute("aria-invalid", "true")
    assert_no_axe_violations(page)
    visitor.watch.assert_clean()
