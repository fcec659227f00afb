"""The main flows by keyboard alone: Tab, Shift+Tab, Enter, Space and typing, never a click.

Sign in, ask for an export and download it (re-entering the password), unsubscribe from a
marketing email's link, and ask for the account to be deleted and confirm it by the emailed
link. At each stop the focused element must show where the focus is (an outline or a ring).

Its own server and database: the demo user's account is scheduled for deletion here.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.e2e.conftest import (
    DEMO_EMAIL,
    DEMO_PASSWORD,
    LiveServer,
    Visitor,
    send_newsletter,
    serve_app,
    visitors_of,
)
from tests.support.mailbox import outbox_messages_to, plain_text

pytestmark = pytest.mark.e2e

MAX_PRESSES = 150  # more than any page here has focusable elements


@pytest.fixture(scope="module")
def keyboard_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with serve_app(tmp_path_factory.mktemp("e2e-keyboard")) as server:
        yield server


@pytest.fixture
def visit_keyboard(
    new_context: Callable[..., BrowserContext], keyboard_site: LiveServer
) -> Iterator[Callable[..., Visitor]]:
    with visitors_of(keyboard_site, new_context) as visit:
        yield visit


def _is_focused(target: Locator) -> bool:
    return bool(target.evaluate("element => element === document.activeElement"))


def _focus_ring(page: Page) -> str:
    """How the focused element shows its focus: the outline, or a box shadow; "" if neither."""
    return str(
        page.evaluate(
            """() => {
                const style = getComputedStyle(document.activeElement);
                if (style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0) {
                    return `outline ${style.outlineWidth} ${style.outlineStyle}`;
                }
                return style.boxShadow !== "none" ? `box-shadow ${style.boxShadow}` : "";
            }"""
        )
    )


def tab_to(page: Page, target: Locator, *, backwards: bool = False) -> None:
    """Press Tab (or Shift+Tab) until `target` has the focus, which it must visibly show."""
    key = "Shift+Tab" if backwards else "Tab"
    for _ in range(MAX_PRESSES):
        page.keyboard.press(key)
        if _is_focused(target):
            assert _focus_ring(page), f"{target} has the focus but does not show it"
            return
    raise AssertionError(f"{key} never reached {target}")


def press(page: Page, key: str = "Enter") -> None:
    """Press a key that loads the next page, and wait for it."""
    with page.expect_navigation():
        page.keyboard.press(key)


def _heading(page: Page) -> Locator:
    return page.get_by_role("heading", level=1)


def _sign_in(visitor: Visitor) -> None:
    page = visitor.page
    visitor.open("/login")
    tab_to(page, page.get_by_label("Email address"))
    page.keyboard.type(DEMO_EMAIL)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(DEMO_PASSWORD)
    press(page)
    expect(_heading(page)).to_have_text("Overview")


def _go_by_menu(page: Page, name: str) -> None:
    tab_to(page, page.get_by_role("navigation", name="Main").get_by_role("link", name=name))
    press(page)


def _fresh_password_every_time(site: LiveServer, monkeypatch: pytest.MonkeyPatch) -> int:
    """From now on the password typed at sign-in no longer counts as recent."""
    settings = site.app.config["SETTINGS"]
    changed = dataclasses.replace(settings, fresh_login_minutes=0)
    monkeypatch.setitem(site.app.config, "SETTINGS", changed)
    return settings.fresh_login_minutes


def _outbox_link(site: LiveServer, address: str, pattern: str) -> str:
    outbox = site.app.config["SETTINGS"].mail_outbox_dir
    for message in reversed(outbox_messages_to(outbox, address)):
        found = re.search(re.escape(site.url) + pattern, plain_text(message))
        if found:
            return found.group(0).removeprefix(site.url)
    raise AssertionError(f"no link like {pattern} in the mail to {address}")


def test_sign_in_ask_for_an_export_and_download_it_by_keyboard(
    visit_keyboard: Callable[..., Visitor],
    keyboard_site: LiveServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    visitor = visit_keyboard()
    page = visitor.page
    _sign_in(visitor)
    _go_by_menu(page, "Download")
    expect(_heading(page)).to_have_text("Download your data")

    # "All my data" is chosen already; the button asks for it (the build runs at once here).
    tab_to(page, page.get_by_role("button", name="Ask for this export"))
    press(page)
    expect(page.get_by_role("status").first).to_contain_text("Your export is being prepared.")
    ready = page.locator(".export-list > li").first
    expect(ready).to_contain_text("Ready to download.")

    # Later: the download asks for the password again, typed after a step back.
    minutes = _fresh_password_every_time(keyboard_site, monkeypatch)
    tab_to(page, ready.get_by_role("link", name=re.compile("^Download")))
    press(page)
    expect(_heading(page)).to_have_text("Confirm it is you")
    monkeypatch.setitem(
        keyboard_site.app.config,
        "SETTINGS",
        dataclasses.replace(keyboard_site.app.config["SETTINGS"], fresh_login_minutes=minutes),
    )
    tab_to(page, page.get_by_role("button", name="Continue"))
    tab_to(page, page.get_by_label("Password"), backwards=True)
    page.keyboard.type(DEMO_PASSWORD)
    with page.expect_download() as download:
        page.keyboard.press("Enter")
    assert re.fullmatch(r"privacy-export-\d{4}-\d{2}-\d{2}\.zip", download.value.suggested_filename)
    visitor.watch.assert_clean()


def test_unsubscribe_from_a_marketing_email_link_by_keyboard(
    visit_keyboard: Callable[..., Visitor], keyboard_site: LiveServer
) -> None:
    from app.extensions import db
    from app.services import marketing

    address = "keyboard-reader@example.org"
    subscriber_id = send_newsletter(keyboard_site, address)

    visitor = visit_keyboard()
    page = visitor.page
    visitor.open(_outbox_link(keyboard_site, address, r"/unsubscribe/[A-Za-z0-9_.\-]+(?=\s)"))
    expect(_heading(page)).to_have_text("Unsubscribe from “Newsletter”")
    tab_to(page, page.get_by_role("button", name="Unsubscribe", exact=True))
    press(page, "Space")
    expect(_heading(page)).to_have_text("You are unsubscribed")
    expect(page.get_by_role("status")).to_contain_text(
        "We will send no more “Newsletter” emails to k***@example.org."
    )
    with keyboard_site.app.app_context():
        states = {s.topic.key: s.status for s in marketing.topic_states(subscriber_id)}
        db.session.remove()
    assert states["newsletter"] == "unsubscribed"
    assert states["offers"] == "subscribed"
    visitor.watch.assert_clean()


def test_ask_for_deletion_and_confirm_it_by_the_emailed_link_by_keyboard(
    visit_keyboard: Callable[..., Visitor], keyboard_site: LiveServer
) -> None:
    visitor = visit_keyboard()
    page = visitor.page
    _sign_in(visitor)
    _go_by_menu(page, "Requests")
    tab_to(page, page.get_by_role("link", name="New request"))
    press(page)
    tab_to(page, page.get_by_role("link", name="Delete my account"))
    press(page)
    expect(_heading(page)).to_contain_text("Delete my account")
    tab_to(page, page.get_by_role("button", name="Ask for my account to be deleted"))
    press(page)
    expect(page.get_by_text("check your email", exact=False).first).to_be_visible()

    visitor.open(_outbox_link(keyboard_site, DEMO_EMAIL, r"/requests/confirm/\S+"))
    tab_to(page, page.get_by_role("button", name="Confirm the request"))
    press(page)
    expect(page.get_by_text("Your account will be deleted on", exact=False).first).to_be_visible()
    visitor.watch.assert_clean()
