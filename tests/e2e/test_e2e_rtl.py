"""Arabic reads from right to left: the whole layout mirrors, the navigation included."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import update

from app.extensions import db
from app.models import User
from tests.e2e.axe import assert_no_axe_violations

pytestmark = pytest.mark.e2e

STAFF_EMAIL = "staff@example.com"


@pytest.fixture
def staff_in_english_afterwards(live_server):
    yield
    with live_server.app.app_context():
        db.session.execute(update(User).where(User.email == STAFF_EMAIL).values(locale="en"))
        db.session.commit()
        db.session.remove()


def _nav_link_lefts(page) -> list[float]:
    """Where each link of the main menu starts, from the left edge, in menu order."""
    boxes = [link.bounding_box() for link in page.locator("header nav a").all()]
    assert all(boxes), "a navigation link has no box on screen"
    return [box["x"] for box in boxes]


def test_arabic_mirrors_the_page_and_its_navigation(
    visit, staff_in_english_afterwards, tmp_path: Path
):
    visitor = visit()
    page = visitor.page
    visitor.sign_in(STAFF_EMAIL, "staff-password")
    english = _nav_link_lefts(page)
    assert english == sorted(english), "in English the menu runs left to right"

    # Chosen from the menu in the header, by keyboard, and saved to the account.
    page.get_by_label("Language").select_option("ar")
    page.locator("form.language-menu").get_by_role("button").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    html = page.locator("html")
    expect(html).to_have_attribute("dir", "rtl")
    expect(html).to_have_attribute("lang", "ar")
    arabic = _nav_link_lefts(page)
    assert arabic == sorted(arabic, reverse=True), f"the menu should run right to left: {arabic}"
    page.screenshot(path=str(tmp_path / "overview-ar.png"), full_page=True)
    assert (tmp_path / "overview-ar.png").stat().st_size > 10_000
    assert_no_axe_violations(page)
    visitor.watch.assert_clean()
