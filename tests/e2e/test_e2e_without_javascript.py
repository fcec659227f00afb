"""With JavaScript off, everything is a plain form: signing in and out, and the language menu."""

from __future__ import annotations

import pytest
from babel.messages.pofile import read_po
from playwright.sync_api import expect

from app.config import PROJECT_ROOT

pytestmark = pytest.mark.e2e

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"
WELCOME_HEADING = "Your privacy, in your hands"
GERMAN_CATALOG = PROJECT_ROOT / "translations" / "de" / "LC_MESSAGES" / "messages.po"


def german(*msgids: str) -> list[str]:
    """The German catalog's translations of these English texts (each must be translated)."""
    with GERMAN_CATALOG.open("rb") as handle:
        catalog = read_po(handle, locale="de")
    translations = []
    for msgid in msgids:
        message = catalog.get(msgid)
        assert message is not None, f"{msgid!r} is not in {GERMAN_CATALOG}"
        assert message.string and not message.fuzzy, f"{msgid!r} has no German translation yet"
        translations.append(message.string)
    return translations


def test_sign_in_and_out_work_without_javascript(visit):
    visitor = visit(java_script_enabled=False)
    page = visitor.page
    visitor.open("/")
    # The page's own scripts really are off: htmx never loaded itself.
    assert page.evaluate("() => typeof window.htmx") == "undefined"

    visitor.sign_in(DEMO_EMAIL, DEMO_PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
    expect(page.locator('tr[data-category="prompts"]')).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(WELCOME_HEADING)
    expect(page.get_by_role("status")).to_contain_text("You are signed out.")
    visitor.watch.assert_clean()


def test_language_menu_switches_to_german_without_javascript(visit, live_server):
    visitor = visit(java_script_enabled=False)
    page = visitor.page
    visitor.open("/login")
    expect(page.locator("html")).to_have_attribute("lang", "en")

    page.get_by_label("Language").select_option("de")
    page.locator("form.language-menu").get_by_role("button").click()

    # Back on the page the menu was used on, now in German.
    assert page.url == f"{live_server.url}/login"
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.locator("#language-select")).to_have_value("de")
    visitor.watch.assert_clean()

    if not GERMAN_CATALOG.exists():
        pytest.skip(f"no German catalog yet ({GERMAN_CATALOG}): German wording not checked")
    assert live_server.translation_problem is None, live_server.translation_problem
    sign_in, email_label = german("Sign in", "Email address")
    expect(page.get_by_role("heading", level=1)).to_have_text(sign_in)
    expect(page.get_by_label(email_label)).to_be_visible()

    # The choice is remembered: the next page is German too.
    visitor.open("/")
    (heading,) = german(WELCOME_HEADING)
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)
