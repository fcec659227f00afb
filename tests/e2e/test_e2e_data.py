"""Your data in a real browser: browsing prompts, loading more, deleting in place, objecting.

Tests that change the demo account put it back (the switch) or touch one prompt only, so the
other browser tests still see the seeded account they expect.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.axe import assert_no_axe_violations

pytestmark = pytest.mark.e2e

DEMO_EMAIL = "demo@example.com"
SWITCH = "Use my prompts and images to improve models"


def rows(page: Page):
    return page.locator("#records-body > tr")


def row_ids(page: Page) -> list[str]:
    return [row.get_attribute("id") or "" for row in rows(page).all()]


def newest_prompt(live_server) -> tuple[int, str]:
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Prompt

    user_id = live_server.user_id(DEMO_EMAIL)
    with live_server.app.app_context():
        row = db.session.execute(
            select(Prompt.id, Prompt.text)
            .where(Prompt.user_id == user_id)
            .order_by(Prompt.created_at.desc(), Prompt.id.desc())
            .limit(1)
        ).one()
        db.session.remove()
    return row.id, row.text


def prompt_exists(live_server, prompt_id: int) -> bool:
    from app.extensions import db
    from app.models import Prompt

    with live_server.app.app_context():
        found = db.session.get(Prompt, prompt_id) is not None
        db.session.remove()
    return found


def model_improvement_allowed(live_server) -> bool:
    from app.extensions import db
    from app.services.choices import MODEL_IMPROVEMENT, current_choice

    with live_server.app.app_context():
        allowed = current_choice(live_server.user_id(DEMO_EMAIL), MODEL_IMPROVEMENT).allowed
        db.session.remove()
    return allowed


def test_browse_prompts_and_load_more_in_place_with_javascript(visit, live_server):
    visitor = visit()
    page = visitor.page
    visitor.sign_in()
    visitor.open("/data")
    page.locator("#category-prompts").get_by_role("link", name="View your records").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Prompts")
    url = page.url
    expect(rows(page)).to_have_count(50)
    first_page = row_ids(page)
    expect(page.locator("#records-body img").first).to_have_attribute(
        "src", re.compile(r"/data/images/\d+/thumbnail")
    )

    page.get_by_role("link", name="Load more").click()
    expect(rows(page)).to_have_count(100)
    assert page.url == url, "loading more must not navigate"
    assert row_ids(page)[:50] == first_page
    assert len(set(row_ids(page))) == 100
    expect(page.locator("#data-live")).to_have_text("50 more records shown.")
    # The new control took the old one's place, and keeps the keyboard where it was.
    expect(page.locator("#load-more-link")).to_have_count(1)
    expect(page.locator("#load-more-link")).to_be_focused()
    visitor.watch.assert_clean()


def test_load_more_is_a_plain_link_without_javascript(visit):
    visitor = visit(java_script_enabled=False)
    page = visitor.page
    visitor.sign_in()
    visitor.open("/data/prompts")
    expect(rows(page)).to_have_count(50)
    first_page = row_ids(page)
    with page.expect_navigation():
        page.get_by_role("link", name="Load more").click()
    assert "/data/prompts?cursor=" in page.url
    expect(page.get_by_role("heading", level=1)).to_have_text("Prompts")
    expect(rows(page)).to_have_count(50)
    assert not set(row_ids(page)) & set(first_page)
    expect(page.get_by_role("link", name="Back to the newest")).to_be_visible()
    visitor.watch.assert_clean()


def test_delete_a_prompt_in_place(visit, live_server):
    prompt_id, text = newest_prompt(live_server)
    visitor = visit()
    page = visitor.page
    visitor.sign_in()
    visitor.open("/data/prompts")
    url = page.url
    row = page.locator(f"#record-{prompt_id}")
    expect(row).to_contain_text(text)

    row.get_by_role("link", name=re.compile(r"^Delete")).click()
    # The row becomes its own confirmation, saying what goes; "Keep" has the focus.
    expect(row).to_have_class("confirm-row")
    expect(row).to_contain_text("Delete this for good?")
    expect(row).to_contain_text(text)
    expect(row.get_by_role("link", name="Keep")).to_be_focused()

    row.get_by_role("link", name="Keep").click()
    expect(row).not_to_have_class("confirm-row")
    expect(row).to_contain_text(text)

    row.get_by_role("link", name=re.compile(r"^Delete")).click()
    row.get_by_role("button", name="Delete").click()
    expect(page.locator(f"#record-{prompt_id}")).to_have_count(0)
    expect(page.locator("#data-live")).to_have_text("Deleted.")
    assert page.url == url
    expect(rows(page)).to_have_count(49)
    assert not prompt_exists(live_server, prompt_id)
    visitor.watch.assert_clean()


def test_switch_off_model_improvement_and_see_it_on_the_prompts_page(visit, live_server):
    assert model_improvement_allowed(live_server)
    visitor = visit()
    page = visitor.page
    visitor.sign_in()
    visitor.open("/data/prompts")
    switch = page.get_by_role("switch", name=SWITCH)
    expect(switch).to_have_attribute("aria-checked", "true")
    try:
        switch.click()
        expect(switch).to_have_attribute("aria-checked", "false")
        expect(switch).to_be_focused()
        expect(page.locator("#data-live")).to_contain_text("will no longer be used")
        expect(page.locator("#model-improvement-since")).to_contain_text("Last changed on")
        assert not model_improvement_allowed(live_server)

        visitor.open("/data/prompts")
        expect(page.get_by_role("switch", name=SWITCH)).to_have_attribute("aria-checked", "false")
        visitor.open("/data/images")
        expect(page.locator(".choice-status")).to_contain_text(
            "Your prompts and images are not used to improve models."
        )
        page.locator(".choice-status").get_by_role("link", name=re.compile("^Change")).click()
        expect(page).to_have_url(re.compile(r"/data/prompts#model-improvement$"))
        visitor.watch.assert_clean()
    finally:
        visitor.open("/data/prompts")
        switch = page.get_by_role("switch", name=SWITCH)
        if switch.get_attribute("aria-checked") == "false":
            switch.click()
            expect(switch).to_have_attribute("aria-checked", "true")
    assert model_improvement_allowed(live_server)


def test_the_switch_works_without_javascript(visit, live_server):
    visitor = visit(java_script_enabled=False)
    page = visitor.page
    visitor.sign_in()
    visitor.open("/data/prompts")
    with page.expect_navigation():
        page.get_by_role("switch", name=SWITCH).click()
    expect(page).to_have_url(re.compile(r"/data/prompts#model-improvement$"))
    expect(page.get_by_role("switch", name=SWITCH)).to_have_attribute("aria-checked", "false")
    expect(page.locator(".flashes")).to_contain_text("will no longer be used")
    with page.expect_navigation():
        page.get_by_role("switch", name=SWITCH).click()
    expect(page.get_by_role("switch", name=SWITCH)).to_have_attribute("aria-checked", "true")
    assert model_improvement_allowed(live_server)
    visitor.watch.assert_clean()


def _a_prompt_with_images(live_server) -> int:
    from sqlalchemy import select

    from app.extensions import db
    from app.models import GeneratedImage

    user_id = live_server.user_id(DEMO_EMAIL)
    with live_server.app.app_context():
        prompt_id = db.session.scalar(
            select(GeneratedImage.prompt_id)
            .where(GeneratedImage.user_id == user_id)
            .order_by(GeneratedImage.id)
            .limit(1)
        )
        db.session.remove()
    assert prompt_id is not None
    return prompt_id


@pytest.mark.parametrize(
    "path",
    [
        "/data",
        "/data/prompts",
        "/data/images",
        "/data/uploads",
        "/data/account",
        "/data/payment_methods",
        "delete-confirmation",
        "bulk-confirmation",
    ],
)
def test_your_data_pages_have_no_accessibility_violations(visit, live_server, path):
    visitor = visit()
    visitor.sign_in()
    if path == "delete-confirmation":
        path = f"/data/prompts/{_a_prompt_with_images(live_server)}/delete"
    elif path == "bulk-confirmation":
        path = (
            f"/data/prompts/delete-older?before={(datetime.now(UTC) - timedelta(days=60)).date()}"
        )
    visitor.open(path)
    assert_no_axe_violations(visitor.page)
    visitor.watch.assert_clean()


def test_the_inline_confirmation_has_no_accessibility_violations(visit, live_server):
    visitor = visit()
    page = visitor.page
    visitor.sign_in()
    visitor.open("/data/prompts")
    row = rows(page).first
    row.get_by_role("link", name=re.compile(r"^Delete")).click()
    expect(row).to_have_class("confirm-row")
    assert_no_axe_violations(page)
    row.get_by_role("link", name="Keep").click()
    expect(row).not_to_have_class("confirm-row")
    visitor.watch.assert_clean()
