"""Signing in and out as a person would, and seeing the real numbers of what is held."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

pytestmark = pytest.mark.e2e

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"
GENERIC_ERROR = "The email address or password is not right. Check both and try again."


def counts_in_database(live_server, email: str) -> dict[str, int]:
    """Records per data-map category for this person, counted straight from the tables."""
    from app.datamap import get_datamap
    from app.extensions import db

    user_id = live_server.user_id(email)
    with live_server.app.app_context():
        counts = {
            category.key: db.session.scalar(
                select(func.count())
                .select_from(category.model)
                .where(getattr(category.model, category.user_column) == user_id)
            )
            for category in get_datamap().database_categories
        }
        db.session.remove()
    return counts


def counts_on_page(page: Page) -> dict[str, int]:
    counts = {}
    for row in page.locator("tr[data-category]").all():
        number = row.locator("td.num").inner_text().strip()
        assert re.fullmatch(r"\d{1,3}(,\d{3})*", number), f"not a count: {number!r}"
        counts[row.get_attribute("data-category")] = int(number.replace(",", ""))
    return counts


def test_demo_user_signs_in_sees_real_counts_and_signs_out(visit, live_server):
    visitor = visit()
    page = visitor.page
    visitor.sign_in(DEMO_EMAIL, DEMO_PASSWORD)

    assert page.url == f"{live_server.url}/"
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
    expect(page.get_by_role("status")).to_contain_text("You are signed in.")
    visitor.watch.assert_clean()

    shown = counts_on_page(page)
    held = counts_in_database(live_server, DEMO_EMAIL)
    assert shown == held, "the overview does not show what the database holds"
    # The demo account is a realistic one: this is what its owner would expect to see.
    assert shown["prompts"] >= 200
    assert shown["images"] >= 50
    assert shown["uploads"] == 10
    assert shown["invoices"] == 12
    assert shown["payment_methods"] == 2
    assert shown["account"] == 1

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your privacy, in your hands")
    expect(page.get_by_role("status")).to_contain_text("You are signed out.")
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    expect(page.locator("header").get_by_role("link", name="Sign in")).to_be_visible()
    visitor.watch.assert_clean()

    # Signed out for real: coming back shows the welcome page, not the overview.
    visitor.open("/")
    expect(page.locator("tr[data-category]")).to_have_count(0)
    expect(page.get_by_role("heading", level=1)).to_have_text("Your privacy, in your hands")


@pytest.mark.parametrize(
    ("email", "password"),
    [(DEMO_EMAIL, "not-the-password"), ("nobody@example.com", DEMO_PASSWORD)],
    ids=["wrong-password", "unknown-address"],
)
def test_wrong_credentials_show_one_generic_error(visit, email, password):
    visitor = visit()
    page = visitor.page
    visitor.watch.expect_status("/login", 401)
    visitor.sign_in(email, password)

    # The same words whether the address exists or not: nothing tells who has an account.
    expect(page.get_by_role("alert")).to_have_text(GENERIC_ERROR)
    expect(page.get_by_label("Password")).to_have_value("")
    expect(page.get_by_label("Email address")).to_have_value(email)
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    visitor.watch.assert_clean()

    visitor.open("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your privacy, in your hands")
    expect(page.locator("tr[data-category]")).to_have_count(0)
