"""/admin/requests: the privacy team's queue, one request's page, and the team's answers.

Requests are made and confirmed through the service (the confirmation token comes out of the
emailed link); tests that need a request in a particular state (overdue, due soon) set its
dates directly. Each staff action goes through the real form, CSRF token included.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from app.extensions import db
from app.jurisdictions import OPT_IN, Period, Rules, by_code
from app.models import AuditEvent, DataRequest, Prompt, RequestEvent, User, utcnow
from app.services import requests as request_service
from app.services.audit import verify_chain
from app.services.profile import mask_email
from app.web.place import deadline_rule
from tests.support.mailbox import outbox_messages_to, plain_text
from tests.support.web import csrf_token, html_problems, login, post_form, text_of, title_of

DEMO = "demo@example.com"
STAFF = "staff@example.com"
CONFIRM_LINK = re.compile(r"/requests/confirm/([A-Za-z0-9_.\-]+)")
ROW = re.compile(r'<tr data-request="(\d+)">')
DETAILS = "My billing country is wrong: it says Germany, it should say Austria."


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def seeded(app: Flask, make_user: Callable[..., User]) -> Flask:
    """The two accounts these tests need, as the demo seed makes them (without its data:
    seeding the demo images costs seconds per test), and a few prompts of the person."""
    demo = make_user(email=DEMO, password="demo-password", name="Dana Demo", country="DE")
    make_user(email=STAFF, password="staff-password", name="Sam Staff", is_staff=True)
    with app.app_context():
        db.session.add_all(
            Prompt(user_id=demo.id, text=text, language="en")
            for text in ("a lighthouse at dusk, oil painting", "my cat as an astronaut")
        )
        db.session.commit()
    return app


@pytest.fixture
def staff(seeded: Flask, client: FlaskClient) -> FlaskClient:
    response = login(client, STAFF, "staff-password")
    assert response.status_code == 303
    return client


@pytest.fixture
def demo_user(seeded: Flask, client: FlaskClient) -> FlaskClient:
    response = login(client, DEMO, "demo-password")
    assert response.status_code == 303
    return client


def _user_id(app: Flask, email: str) -> int:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == email))
        assert user is not None
        return user.id


def _outbox(app: Flask, address: str) -> list[EmailMessage]:
    return outbox_messages_to(app.config["SETTINGS"].mail_outbox_dir, address)


def _confirm_token(app: Flask, request_id: int) -> str:
    """The token of the confirmation link emailed for `request_id`."""
    with app.app_context():
        for message in reversed(_outbox(app, DEMO)):
            for token in CONFIRM_LINK.findall(plain_text(message)):
                try:
                    found = request_service.request_for_verify_token(token)
                except request_service.RequestError:
                    continue
                if found.id == request_id:
                    return token
    raise AssertionError(f"no confirmation link for request {request_id}")


def _make_request(
    app: Flask,
    kind: str = "correct",
    *,
    details: str | None = DETAILS,
    confirm: bool = True,
    locale: str | None = None,
) -> int:
    """A request by the demo user, confirmed through its emailed link unless told not to."""
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == DEMO))
        assert user is not None
        if locale:
            user.locale = locale
            db.session.commit()
        request_id = request_service.create_for_user(user, kind, details=details).id
    if confirm:
        token = _confirm_token(app, request_id)
        with app.app_context():
            request_service.confirm(token)
    return request_id


def _request(app: Flask, request_id: int) -> DataRequest:
    with app.app_context():
        found = db.session.get(DataRequest, request_id)
        assert found is not None
        db.session.expunge(found)
        return found


def _set(app: Flask, request_id: int, **fields: Any) -> None:
    with app.app_context():
        found = db.session.get(DataRequest, request_id)
        assert found is not None
        for name, value in fields.items():
            setattr(found, name, value)
        db.session.commit()


def _events(app: Flask, request_id: int) -> list[tuple[str, str, dict[str, Any]]]:
    with app.app_context():
        return [
            (e.kind, e.actor_type, dict(e.details or {}))
            for e in db.session.scalars(
                select(RequestEvent)
                .where(RequestEvent.request_id == request_id)
                .order_by(RequestEvent.id)
            )
        ]


def _staff_audit(app: Flask, request_id: int) -> list[AuditEvent]:
    with app.app_context():
        rows = list(
            db.session.scalars(
                select(AuditEvent)
                .where(AuditEvent.target == f"request:{request_id}")
                .where(AuditEvent.actor_type == "staff")
                .order_by(AuditEvent.id)
            )
        )
        for row in rows:
            db.session.expunge(row)
        return rows


def _chain_is_intact(app: Flask) -> bool:
    with app.app_context():
        report = verify_chain()
        return report.checked > 0 and report.ok


def _rows(response: TestResponse) -> list[int]:
    return [int(n) for n in ROW.findall(response.get_data(as_text=True))]


def _act(client: FlaskClient, request_id: int, action: str, **data: str) -> TestResponse:
    return post_form(
        client,
        f"/admin/requests/{request_id}/{action}",
        data,
        form_page=f"/admin/requests/{request_id}",
    )


def _mails(app: Flask, template_subject: str) -> list[EmailMessage]:
    return [m for m in _outbox(app, DEMO) if template_subject in str(m["Subject"])]


# --- who may see it ---------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in(seeded: Flask, client: FlaskClient) -> None:
    request_id = _make_request(seeded)
    token = csrf_token(client, "/login")
    for path in ("/admin/requests", f"/admin/requests/{request_id}"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login"), path
    for action in ("step", "complete", "refuse", "extend"):
        response = client.post(f"/admin/requests/{request_id}/{action}", data={"csrf_token": token})
        assert response.status_code == 302, action
        assert response.headers["Location"].startswith("/login"), action
    assert _request(seeded, request_id).status == DataRequest.OPEN


def test_people_who_are_not_staff_get_403_everywhere(seeded: Flask, demo_user: FlaskClient) -> None:
    request_id = _make_request(seeded)
    for path in (
        "/admin/requests",
        "/admin/requests?status=open",
        f"/admin/requests/{request_id}",
        f"/admin/requests/{request_id}/refuse",
        "/admin/requests/999999",
    ):
        response = demo_user.get(path)
        assert response.status_code == 403, path
        assert title_of(response) == "This is not open to you", path
    token = csrf_token(demo_user, "/")
    posts = {
        "step": {"step": "data_checked"},
        "complete": {},
        "refuse": {"reason": "unfounded"},
        "extend": {"reason": "complex"},
    }
    for action, data in posts.items():
        response = demo_user.post(
            f"/admin/requests/{request_id}/{action}", data={**data, "csrf_token": token}
        )
        assert response.status_code == 403, action
    assert _request(seeded, request_id).status == DataRequest.OPEN
    assert _staff_audit(seeded, request_id) == []
    assert "Privacy team" not in text_of(demo_user.get("/"))


def test_staff_see_the_team_link_and_a_clean_queue(seeded: Flask, staff: FlaskClient) -> None:
    request_id = _make_request(seeded)
    page = staff.get("/")
    assert 'href="/admin/requests"' in page.get_data(as_text=True)
    assert "Privacy team" in text_of(page)
    queue = staff.get("/admin/requests")
    assert queue.status_code == 200
    assert title_of(queue) == "Request queue"
    assert _rows(queue) == [request_id]
    body = queue.get_data(as_text=True)
    assert "<caption>" in body
    assert 'scope="col"' in body
    assert f'href="/admin/requests/{request_id}"' in body
    text = text_of(queue)
    assert "Correct my data" in text
    assert "In progress" not in text  # the team's words for the states, not the person's
    assert "Open" in text
    assert "DE" in text
    assert 'class="overdue"' not in body
    problems, _attrs = html_problems(body)
    assert problems == []
    detail = staff.get(f"/admin/requests/{request_id}")
    assert detail.status_code == 200
    assert html_problems(detail.get_data(as_text=True))[0] == []


def test_empty_queue_says_so(seeded: Flask, staff: FlaskClient) -> None:
    response = staff.get("/admin/requests")
    assert response.status_code == 200
    assert "There are no requests." in text_of(response)
    filtered = staff.get("/admin/requests?status=refused")
    assert "No request matches these filters." in text_of(filtered)


# --- the filters ------------------------------------------------------------------------------


def test_filters_by_status_kind_and_due_date(seeded: Flask, staff: FlaskClient) -> None:
    correct = _make_request(seeded, "correct")
    question = _make_request(seeded, "question", details="Do you sell my data?")
    overdue = _make_request(seeded, "restrict", details="Stop using my prompts for now.")
    soon = _make_request(seeded, "object", details="I object to model training.")
    unconfirmed = _make_request(seeded, "correct", confirm=False)
    now = utcnow()
    _set(seeded, overdue, due_at=now - timedelta(days=2))
    _set(seeded, soon, due_at=now + timedelta(days=3))

    everything = _rows(staff.get("/admin/requests"))
    assert set(everything) == {correct, question, overdue, soon, unconfirmed}
    assert everything[:2] == [overdue, soon]  # the most urgent first

    assert set(_rows(staff.get("/admin/requests?status=open"))) == {
        correct,
        question,
        overdue,
        soon,
    }
    assert _rows(staff.get("/admin/requests?status=unverified")) == [unconfirmed]
    assert set(_rows(staff.get("/admin/requests?kind=correct"))) == {correct, unconfirmed}
    assert _rows(staff.get("/admin/requests?kind=correct&status=open")) == [correct]
    assert _rows(staff.get("/admin/requests?due=overdue")) == [overdue]
    assert _rows(staff.get("/admin/requests?due=soon")) == [soon]
    assert _rows(staff.get("/admin/requests?status=&kind=&due=")) == everything

    page = staff.get("/admin/requests?due=overdue")
    row = page.get_data(as_text=True).split(f'<tr data-request="{overdue}">')[1]
    assert "Overdue" in row.split("</tr>")[0]  # in words, not only a colour
    assert 'value="overdue" selected' in page.get_data(as_text=True)


def test_the_filter_form_works_with_htmx_too(seeded: Flask, staff: FlaskClient) -> None:
    request_id = _make_request(seeded)
    response = staff.get("/admin/requests?status=open", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "<h1" not in response.get_data(as_text=True)
    assert _rows(response) == [request_id]
    assert "HX-Request" in response.headers.get("Vary", "")


@pytest.mark.parametrize(
    "query",
    ["status=nonsense", "kind=access", "kind=<script>", "due=tomorrow", "status=OPEN"],
)
def test_unknown_filter_values_get_400(seeded: Flask, staff: FlaskClient, query: str) -> None:
    response = staff.get(f"/admin/requests?{query}")
    assert response.status_code == 400
    assert title_of(response) == "This filter cannot be used"


# --- one request ------------------------------------------------------------------------------


def test_detail_shows_the_request_but_not_the_persons_content(
    seeded: Flask, staff: FlaskClient
) -> None:
    request_id = _make_request(seeded)
    demo_id = _user_id(seeded, DEMO)
    with seeded.app_context():
        prompts = list(
            db.session.scalars(select(Prompt.text).where(Prompt.user_id == demo_id).limit(20))
        )
    assert prompts
    response = staff.get(f"/admin/requests/{request_id}")
    assert response.status_code == 200
    text = text_of(response)
    assert title_of(response) == f"Request {request_id}: Correct my data"
    assert DETAILS in text
    assert mask_email(DEMO) in text
    assert DEMO not in text
    for prompt in prompts:
        assert prompt not in text
    assert "/data/" not in response.get_data(as_text=True)
    assert f"Account {demo_id}" in text
    assert "1 month, extendable by 2 months" in text
    assert "Request confirmed by email" in text  # the timeline
    assert "Data checked" in text  # a step still to do
    assert "Refuse the request" in text
    assert "Extend the deadline" in text
    assert "Mark the request done" in text


def test_a_request_by_email_shows_no_account_and_a_masked_address(
    seeded: Flask, staff: FlaskClient
) -> None:
    with seeded.app_context():
        request_id = request_service.create_by_email(
            "question", "someone.else@example.org", details="Which data do you hold?"
        ).id
    response = staff.get(f"/admin/requests/{request_id}")
    text = text_of(response)
    assert "No account: made by email" in text
    assert mask_email("someone.else@example.org") in text
    assert "someone.else@example.org" not in text
    assert "not open, so there is nothing to do" in text
    assert "Refuse the request" not in text


def test_a_jurisdiction_without_extension_says_so_and_offers_none(
    seeded: Flask, staff: FlaskClient
) -> None:
    request_id = _make_request(seeded)
    _set(seeded, request_id, jurisdiction="BR")
    text = text_of(staff.get(f"/admin/requests/{request_id}"))
    assert "15 days, with no extension" in text
    assert "ANPD" in text
    assert "Extend the deadline" not in text
    response = _act(staff, request_id, "extend", reason="complex")
    assert response.status_code == 409


def test_deletion_requests_show_the_cooling_off_not_actions(
    seeded: Flask, staff: FlaskClient
) -> None:
    request_id = _make_request(seeded, "delete_account", details=None)
    found = _request(seeded, request_id)
    assert found.status == DataRequest.WAITING
    text = text_of(staff.get(f"/admin/requests/{request_id}"))
    assert "The cooling-off period ends on" in text
    assert "Deletions run automatically" in text
    for words in ("Mark the request done", "Refuse the request", "Extend the deadline"):
        assert words not in text
    assert _act(staff, request_id, "complete").status_code == 409
    assert _request(seeded, request_id).status == DataRequest.WAITING


def test_unknown_request_is_404(seeded: Flask, staff: FlaskClient) -> None:
    assert staff.get("/admin/requests/999999").status_code == 404
    assert staff.get("/admin/requests/99999999999999999999").status_code == 404
    assert staff.get("/admin/requests/abc").status_code == 404
    token = csrf_token(staff, "/admin/requests")
    for action in ("step", "complete", "refuse", "extend"):
        response = staff.post(
            f"/admin/requests/999999/{action}",
            data={"csrf_token": token, "reason": "complex", "step": "answered"},
        )
        assert response.status_code == 404, action


# --- the team's actions -----------------------------------------------------------------------


def test_refusing_tells_the_person_why_in_their_language(
    seeded: Flask, staff: FlaskClient, german_catalog: Any
) -> None:
    request_id = _make_request(seeded, locale="de")

    def german(msgid: str) -> str:
        return german_catalog.gettext(msgid) if german_catalog is not None else msgid

    response = _act(staff, request_id, "refuse", reason="no_data")
    assert response.status_code == 303
    assert response.headers["Location"] == f"/admin/requests/{request_id}"
    page = staff.get(response.headers["Location"])
    assert "The request is refused." in text_of(page)

    found = _request(seeded, request_id)
    assert found.status == DataRequest.REFUSED
    assert found.refusal_reason == "no_data"
    assert found.completed_at is not None

    kind = german("Correct my data")
    subject = german("We cannot do what you asked: %(kind)s") % {"kind": kind}
    (mail,) = [m for m in _outbox(seeded, DEMO) if m["Subject"] == subject]
    assert mail["Content-Language"] == "de"
    body = " ".join(plain_text(mail).split())
    assert german("We hold no data of the kind the request is about.") in body
    assert (
        german(
            "You can appeal: ask us to look at it again from your requests page, and someone "
            "who did not decide the first time will review it."
        )
        in body
    )
    assert (
        german("You can also complain to the data protection authority where you live or work.")
        in body
    )

    assert ("refused", "staff", {"reason": "no_data"}) in _events(seeded, request_id)
    (audit,) = _staff_audit(seeded, request_id)
    assert audit.action == "request.refused"
    assert audit.actor_id == _user_id(seeded, STAFF)
    assert _chain_is_intact(seeded)

    # Refused is final: the actions are gone, and a second answer is a conflict.
    text = text_of(page)
    assert "Refuse the request" not in text
    assert "The request is manifestly unfounded." not in text
    again = _act(staff, request_id, "complete")
    assert again.status_code == 409
    assert title_of(again) == "This request cannot be changed now"


def test_extending_moves_the_due_date_once_and_tells_the_person(
    seeded: Flask, staff: FlaskClient
) -> None:
    request_id = _make_request(seeded)
    before = _request(seeded, request_id)
    assert before.due_at is not None
    expected = by_code(before.jurisdiction).rules.extension.after(before.due_at)

    response = _act(staff, request_id, "extend", reason="complex")
    assert response.status_code == 303
    after = _request(seeded, request_id)
    assert after.due_at == expected
    assert after.extended_at is not None
    assert after.extension_reason == "complex"
    assert after.status == DataRequest.OPEN

    (mail,) = _mails(seeded, "We need more time for your request: Correct my data")
    assert "The request is complex and needs more time to answer fully." in " ".join(
        plain_text(mail).split()
    )
    text = text_of(staff.get(f"/admin/requests/{request_id}"))
    assert "Deadline extended" in text
    assert "Extend the deadline" not in text

    again = _act(staff, request_id, "extend", reason="many_requests")
    assert again.status_code == 409
    assert _request(seeded, request_id).due_at == expected
    assert [e.action for e in _staff_audit(seeded, request_id)] == ["request.extended"]
    assert _chain_is_intact(seeded)


def test_completing_closes_the_request_and_emails_the_person(
    seeded: Flask, staff: FlaskClient
) -> None:
    request_id = _make_request(seeded)
    sent_before = len(_outbox(seeded, DEMO))
    response = _act(staff, request_id, "complete")
    assert response.status_code == 303
    found = _request(seeded, request_id)
    assert found.status == DataRequest.DONE
    assert found.completed_at is not None
    messages = _outbox(seeded, DEMO)
    assert len(messages) == sent_before + 1
    assert "The privacy team answered your request." in plain_text(messages[-1])
    assert ("completed", "staff", {"outcome": "done"}) in _events(seeded, request_id)
    (audit,) = _staff_audit(seeded, request_id)
    assert audit.action == "request.completed"
    assert _chain_is_intact(seeded)


def test_marking_a_step_done_puts_it_on_the_timeline(seeded: Flask, staff: FlaskClient) -> None:
    request_id = _make_request(seeded)
    response = _act(staff, request_id, "step", step="data_checked")
    assert response.status_code == 303
    page = text_of(staff.get(response.headers["Location"]))
    assert "Recorded on the timeline: Data checked." in page
    timeline = page.split("Timeline", 1)[1]
    assert "Step done" in timeline
    assert "Data checked" in timeline
    assert ("step_done", "staff", {"step": "data_checked"}) in _events(seeded, request_id)
    # Done steps leave the list of steps to do; a second click records nothing more.
    assert 'value="data_checked"' not in staff.get(f"/admin/requests/{request_id}").get_data(
        as_text=True
    )
    assert _act(staff, request_id, "step", step="data_checked").status_code == 303
    steps = [e for e in _events(seeded, request_id) if e[0] == "step_done"]
    assert len(steps) == 1
    (audit,) = _staff_audit(seeded, request_id)
    assert audit.action == "request.step_done"
    assert audit.details.get("step") == "data_checked"
    assert _chain_is_intact(seeded)
    assert _request(seeded, request_id).status == DataRequest.OPEN


@pytest.mark.parametrize(
    ("action", "data"),
    [
        ("refuse", {"reason": "because"}),
        ("refuse", {}),
        ("extend", {"reason": "identity"}),
        ("step", {"step": "account_deleted"}),  # a step of another kind
        ("step", {}),
    ],
)
def test_choices_not_on_offer_get_400(
    seeded: Flask, staff: FlaskClient, action: str, data: dict[str, str]
) -> None:
    request_id = _make_request(seeded)
    response = _act(staff, request_id, action, **data)
    assert response.status_code == 400
    assert _request(seeded, request_id).status == DataRequest.OPEN
    assert _staff_audit(seeded, request_id) == []


def test_actions_without_the_form_token_are_refused(seeded: Flask, staff: FlaskClient) -> None:
    request_id = _make_request(seeded)
    response = staff.post(f"/admin/requests/{request_id}/complete")
    assert response.status_code == 400
    assert _request(seeded, request_id).status == DataRequest.OPEN


def test_actions_need_a_recent_password(seeded: Flask, staff: FlaskClient) -> None:
    request_id = _make_request(seeded)
    token = csrf_token(staff, f"/admin/requests/{request_id}")
    with staff.session_transaction() as session:
        session["fresh_at"] = 0
    response = staff.post(f"/admin/requests/{request_id}/complete", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/reauth")
    assert _request(seeded, request_id).status == DataRequest.OPEN
    # After the password, the browser lands on the action's address: back to the request.
    landed = staff.get(f"/admin/requests/{request_id}/complete")
    assert landed.status_code == 303
    assert landed.headers["Location"] == f"/admin/requests/{request_id}"
    assert _request(seeded, request_id).status == DataRequest.OPEN


# --- words ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "extension", "words"),
    [
        (Period(months=1), Period(months=2), "1 month, extendable by 2 months"),
        (Period(days=45), Period(days=45), "45 days, extendable by 45 days"),
        (Period(days=15), Period(), "15 days, with no extension"),
        (Period(months=1, days=1), Period(days=1), "1 month and 1 day, extendable by 1 day"),
    ],
)
def test_deadline_rules_read_as_people_say_them(
    app: Flask, response: Period, extension: Period, words: str
) -> None:
    with app.test_request_context():
        assert deadline_rule(Rules(OPT_IN, response=response, extension=extension)) == words
