"""The privacy notice in a real browser: accessible, keyboard-navigable, and the banner about
what changed, dismissed in place."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.axe import assert_no_axe_violations

pytestmark = pytest.mark.e2e

DEMO_EMAIL = "demo@example.com"
STAFF_EMAIL = "staff@example.com"
STAFF_PASSWORD = "staff-password"
BANNER_TITLE = "We have updated our privacy notice"


@pytest.mark.parametrize("path", ["/policy", "/policy/versions"])
def test_notice_pages_have_no_violations(visit, path):
    visitor = visit()
    visitor.open(path)
    expect(visitor.page.get_by_role("heading", level=1)).to_be_visible()
    assert_no_axe_violations(visitor.page)
    visitor.watch.assert_clean()


def test_notice_with_the_banner_has_no_violations(visit):
    visitor = visit()
    visitor.sign_in(DEMO_EMAIL, "demo-password")
    # The demo accounts are a year old: older than the current notice version.
    visitor.open("/policy")
    banner = visitor.page.get_by_role("region", name=BANNER_TITLE)
    expect(banner).to_be_visible()
    assert_no_axe_violations(visitor.page)
    visitor.watch.assert_clean()


def test_contents_links_move_keyboard_focus_to_their_section(visit):
    visitor = visit()
    page = visitor.page
    visitor.open("/policy")

    # From the top, by keyboard: skip link, then into the page, to the first contents entry.
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    contents = page.get_by_role("navigation", name="Contents")
    first = contents.get_by_role("link").first
    for _ in range(5):
        page.keyboard.press("Tab")
        if first.evaluate("link => link === document.activeElement"):
            break
    expect(first).to_be_focused()

    for name, section in (("Your rights", "#rights"), ("Prompts", "#data-prompts")):
        contents.get_by_role("link", name=name, exact=True).focus()
        page.keyboard.press("Enter")
        expect(page.locator(section)).to_be_focused()
        expect(page.locator(section)).to_be_in_viewport()
        # The next Tab goes on from that section (into it, or past it when it has no link),
        # not back to the contents at the top.
        page.keyboard.press("Tab")
        onwards = page.evaluate(
            """(selector) => {
                const section = document.querySelector(selector);
                const position = section.compareDocumentPosition(document.activeElement);
                return Boolean(position & (Node.DOCUMENT_POSITION_CONTAINED_BY
                                           | Node.DOCUMENT_POSITION_FOLLOWING));
            }""",
            section,
        )
        assert onwards, f"Tab after {name} went back before {section}"
    visitor.watch.assert_clean()


def test_banner_is_dismissed_in_place_and_stays_dismissed(visit, live_server):
    visitor = visit()
    page = visitor.page
    visitor.sign_in(STAFF_EMAIL, STAFF_PASSWORD)
    visitor.open("/policy/versions")
    banner = page.get_by_role("region", name=BANNER_TITLE)
    expect(banner).to_be_visible()

    with page.expect_response(lambda r: r.url.endswith("/policy/notice/dismiss")) as answer:
        banner.get_by_role("button", name="Dismiss this notice").click()
    assert answer.value.status == 200  # htmx swapped the answer in: no page load
    expect(page.get_by_role("region", name=BANNER_TITLE)).to_have_count(0)
    assert page.url == f"{live_server.url}/policy/versions"
    expect(page.locator("#notice-banner")).to_be_focused()  # focus is not lost to the page top

    page.reload()
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    expect(page.get_by_role("region", name=BANNER_TITLE)).to_have_count(0)
    visitor.watch.assert_clean()
