"""Deleting an account, end to end, as the person does it: in Chromium, with the mail going
through a real SMTP server and the erasure run by the sweeper command.

This module has its own server and database (the shared one keeps demo@ for other tests):
the main demo user asks for deletion, re-enters the password, confirms by the emailed link,
cancels once, asks again, and once the cooling-off is over the sweeper erases the account.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from playwright.sync_api import BrowserContext, expect
from sqlalchemy import select, update

from app.extensions import db
from app.models import DataRequest, utcnow
from app.services import media
from app.services.audit import verify_chain
from app.web import auth as auth_views
from tests.e2e.axe import assert_no_axe_violations
from tests.e2e.conftest import (
    DEMO_EMAIL,
    DEMO_PASSWORD,
    LiveServer,
    Visitor,
    serve_app,
    visitors_of,
)
from tests.support.erasure import facts_about, holdings, traces
from tests.support.mailbox import Received, SMTPServer

DEMO2_EMAIL = "demo2@example.com"
LINK = re.compile(r"https?://\S+/requests/(?:confirm|cancel)/\S+")


@pytest.fixture(scope="module")
def smtp() -> Iterator[SMTPServer]:
    server = SMTPServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def deletion_server(
    tmp_path_factory: pytest.TempPathFactory, smtp: SMTPServer
) -> Iterator[LiveServer]:
    with serve_app(
        tmp_path_factory.mktemp("e2e-deletion"), smtp_host=smtp.host, smtp_port=smtp.port
    ) as server:
        yield server


@pytest.fixture
def visit_deletion(
    new_context: Callable[..., BrowserContext], deletion_server: LiveServer
) -> Iterator[Callable[..., Visitor]]:
    with visitors_of(deletion_server, new_context) as visit:
        yield visit


def _mail_to(smtp: SMTPServer, address: str, count: int) -> list[Received]:
    """The first `count` messages to `address`, waiting for them to arrive."""
    deadline = len(smtp.messages) + 10
    for expected in range(len(smtp.messages) + 1, deadline + 1):
        received = [m for m in smtp.messages if address in m.rcpt_tos]
        if len(received) >= count:
            return received[:count]
        smtp.wait_for(expected)
    raise AssertionError(f"fewer than {count} message(s) reached {address}")


def _link_in(message: Received) -> str:
    match = LINK.search(message.text)
    assert match, f"no request link in: {message.text}"
    return match.group(0)


def _ask_for_deletion(visitor: Visitor) -> None:
    visitor.open("/requests/new/delete_account")
    page = visitor.page
    expect(page.get_by_role("heading", level=1)).to_contain_text("Delete my account")
    expect(page.get_by_text("Invoices and transactions").first).to_be_visible()
    page.get_by_role("button", name="Ask for my account to be deleted").click()
    expect(page.get_by_text("check your email", exact=False).first).to_be_visible()


def _confirm_by_link(
    visitor: Visitor, link: str, expected: str = "Your account will be deleted on"
) -> None:
    visitor.open(link)
    visitor.page.get_by_role("button", name="Confirm the request").click()
    expect(visitor.page.get_by_text(expected, exact=False).first).to_be_visible()


def test_a_person_deletes_their_account_and_only_what_the_law_keeps_remains(
    visit_deletion: Callable[..., Visitor],
    deletion_server: LiveServer,
    smtp: SMTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = deletion_server.app
    demo_id = deletion_server.user_id(DEMO_EMAIL)
    demo2_id = deletion_server.user_id(DEMO2_EMAIL)
    with app.app_context():
        facts = facts_about(demo_id, DEMO_PASSWORD)
        demo2_before = holdings(demo2_id)
        db.session.remove()

    person = visit_deletion()
    person.sign_in()
    # Some time later: the password typed at sign-in no longer counts as fresh.
    monkeypatch.setattr(auth_views, "FRESH_KEY", "fresh_at_later")
    person.open("/requests/new/delete_account")
    page = person.page
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm it is you")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Ask for my account to be deleted").click()
    expect(page.get_by_text("check your email", exact=False).first).to_be_visible()

    (verify,) = _mail_to(smtp, DEMO_EMAIL, 1)
    assert "Delete my account" in verify.message["Subject"]
    confirm_link = _link_in(verify)
    # Opening the link changes nothing; the button on its page confirms.
    with app.app_context():
        assert db.session.scalar(select(DataRequest.status)) == DataRequest.UNVERIFIED
        db.session.remove()
    _confirm_by_link(person, confirm_link)
    scheduled = _mail_to(smtp, DEMO_EMAIL, 2)[1]
    assert "will be deleted on" in scheduled.message["Subject"]

    # Changing their mind once: the cancel link in the email.
    person.open(_link_in(scheduled))
    page.get_by_role("button", name="Cancel the deletion").click()
    expect(page.get_by_text("will not be deleted", exact=False).first).to_be_visible()
    cancelled = _mail_to(smtp, DEMO_EMAIL, 3)[2]
    assert cancelled.message["Subject"] == "Your account will not be deleted"

    # And asking again, for good; the banner offers a way back on every page.
    _ask_for_deletion(person)
    _confirm_by_link(person, _link_in(_mail_to(smtp, DEMO_EMAIL, 4)[3]))
    person.open("/")
    expect(
        page.get_by_text("Your account is scheduled for deletion on", exact=False)
    ).to_be_visible()

    # The cooling-off period passes; the sweeper runs.
    with app.app_context():
        db.session.execute(
            update(DataRequest)
            .where(DataRequest.status == DataRequest.WAITING)
            .values(cooling_off_until=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
        result = app.test_cli_runner().invoke(args=["requests", "process-due"])
        assert result.exit_code == 0, result.output
        assert "ran 1 account erasure(s)" in result.output
        db.session.remove()

    goodbye = _mail_to(smtp, DEMO_EMAIL, 6)[5]
    assert goodbye.message["Subject"] == "Your account has been deleted"
    assert "Invoices and transactions" in goodbye.text
    assert "Tax and accounting law" in goodbye.text

    # The old session is over, and the password no longer opens anything.
    person.open("/data")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    stranger = visit_deletion()
    stranger.watch.expect_status("/login", 401)
    stranger.sign_in()
    expect(stranger.page.get_by_text("The email address or password is not right")).to_be_visible()

    with app.app_context():
        assert traces(facts.needles) == []
        assert [key for key in facts.file_keys if media.exists(key)] == []
        assert holdings(demo2_id) == demo2_before
        assert verify_chain().ok
        db.session.remove()


def test_the_privacy_team_answers_a_request_by_keyboard_on_accessible_pages(
    visit_deletion: Callable[..., Visitor], deletion_server: LiveServer, smtp: SMTPServer
) -> None:
    app = deletion_server.app
    with app.app_context():
        from app.models import User
        from app.services import requests as request_service

        person = db.session.get(User, deletion_server.user_id(DEMO2_EMAIL))
        assert person is not None
        made = request_service.create_for_user(person, "correct", details="Mein Name ist falsch.")
        request_id = made.id
        db.session.remove()
    link = _link_in(_mail_to(smtp, DEMO2_EMAIL, 1)[0])
    owner = visit_deletion()
    _confirm_by_link(owner, link, expected="The privacy team will answer by")

    staff = visit_deletion()
    staff.sign_in("staff@example.com", "staff-password")
    staff.open("/admin/requests")
    page = staff.page
    assert_no_axe_violations(page)
    page.get_by_role("link", name=f"Request {request_id}", exact=True).focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.get_by_text("Mein Name ist falsch.")).to_be_visible()
    assert_no_axe_violations(page)
    page.get_by_role("button", name="Mark the request done").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.get_by_text("The request is done", exact=False).first).to_be_visible()
    assert_no_axe_violations(page)
    done = _mail_to(smtp, DEMO2_EMAIL, 3)[2]
    assert done.message["Content-Language"] == "de"
