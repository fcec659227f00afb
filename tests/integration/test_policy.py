"""The privacy notice at /policy: built from the data map, kept in versions, and the banner
that tells signed-in people what changed until they dismiss it."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest
from babel.dates import format_date
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.datamap import DATAMAP_PATH, get_datamap
from app.extensions import db
from app.models import AuditEvent, NoticeVersion, User
from app.services.notice import Notice, NoticeVersionInfo, get_notice, record_versions
from tests.support.web import csrf_token, html_problems, login, post_form, text_of, title_of

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)
BANNER_TITLE = "We have updated our privacy notice"


def _long_date(day: date, locale: str = "en") -> str:
    return format_date(day, "long", locale=locale)


@pytest.fixture
def old_user(make_user: Callable[..., User]) -> User:
    """An account opened before the current notice version took effect."""
    return make_user(email="old@example.com", name="Olga Old", created_at=LONG_AGO)


def _stored(app: Flask) -> dict[str, NoticeVersion]:
    with app.app_context():
        rows = db.session.scalars(select(NoticeVersion)).all()
        db.session.expunge_all()
    return {row.version: row for row in rows}


def _add_version(app: Flask, version: str, snapshot: str, published_on: str = "2000-01-01") -> None:
    with app.app_context():
        db.session.add(
            NoticeVersion(
                version=version, published_on=published_on, fingerprint="0" * 64, snapshot=snapshot
            )
        )
        db.session.commit()


# --- the notice -------------------------------------------------------------------------------


@pytest.mark.app_settings(
    controller_name="Acme Images Ltd",
    controller_email="privacy@acme.test",
    controller_address="1 Harbour Road, Dublin D02 X285, Ireland",
    dpo_email="dpo@acme.test",
)
def test_notice_states_every_fact_of_the_data_map(client: FlaskClient) -> None:
    response = client.get("/policy")
    assert response.status_code == 200
    page = text_of(response)
    assert title_of(response) == "Privacy notice"
    current = get_notice().current
    assert f"Version {current.version}, in effect since {_long_date(current.date)}." in page
    for fact in ("Acme Images Ltd", "1 Harbour Road, Dublin D02 X285, Ireland"):
        assert fact in page
    assert 'href="mailto:privacy@acme.test"' in page
    assert 'href="mailto:dpo@acme.test"' in page

    datamap = get_datamap()
    for category in datamap:
        assert category.name in page, category.key
        assert category.description in page, category.key
        assert category.retention.text in page, category.key
        for purpose in category.purposes:
            assert purpose.name in page, (category.key, purpose.key)
            assert purpose.basis.name in page
        for recipient in category.recipients:
            assert recipient.name in page, recipient.key
            assert recipient.safeguard.name in page
    for basis in datamap.legal_bases.values():
        if any(p.basis.key == basis.key for c in datamap for p in c.purposes):
            assert basis.description in page
    # Countries by name, in the reader's language.
    assert "Where: United States. Protection: Standard Contractual Clauses" in page
    assert "these countries: United States." in page
    assert "children under 13" in page
    assert "We do not sell personal data" in page


def test_without_a_dpo_the_notice_says_whom_to_write_to(client: FlaskClient) -> None:
    page = text_of(client.get("/policy"))
    assert "We have not appointed one." in page
    assert "1209 Orange St., Wilmington, DE 19801, USA" in page


def test_notice_page_is_safe_and_its_contents_links_all_land(client: FlaskClient) -> None:
    response = client.get("/policy")
    body = response.get_data(as_text=True)
    problems, html_attrs = html_problems(body)
    assert not problems, problems
    assert html_attrs.get("lang") == "en"
    ids = set(re.findall(r'\sid="([^"]+)"', body))
    anchors = re.findall(r'href="#([^"]+)"', body)
    assert len(anchors) > 20
    assert set(anchors) <= ids, sorted(set(anchors) - ids)
    for key in ("rights", "children", "transfers", "security", "no-sale", "changes"):
        assert key in anchors
    assert response.headers["Cache-Control"] == "private, no-store"


def test_every_right_links_to_a_page_that_answers(
    client: FlaskClient, user: User, app: Flask
) -> None:
    login(client, user.email, user.password)
    body = client.get("/policy").get_data(as_text=True)
    rights = body[body.index('id="rights"') : body.index('id="children"')]
    links = re.findall(r'<ul class="right-links">(.*?)</ul>', rights, re.DOTALL)
    hrefs = {href for block in links for href in re.findall(r'href="([^"]+)"', block)}
    assert hrefs, "no right links to where it is exercised"
    assert "/data" in hrefs or "/data/" in " ".join(hrefs)
    for href in hrefs:
        assert client.get(href).status_code == 200, href
    for title in (
        "See your data",
        "Correct your data",
        "Delete your data",
        "Restrict the use of your data",
        "Take your data elsewhere",
        "Object",
        "Withdraw your consent",
        "Complain to a supervisory authority",
    ):
        assert f">{title}</h3>" in rights


def test_notice_in_german(client: FlaskClient, german: Callable[[str], str]) -> None:
    response = client.get("/policy", headers={"Accept-Language": "de"})
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert '<html lang="de"' in body
    page = text_of(response)
    assert "Vereinigte Staaten" in page  # country names come from Babel's German
    assert german("Account details") in page


def test_notice_renders_in_german_without_a_catalog_check(client: FlaskClient) -> None:
    response = client.get("/policy", headers={"Accept-Language": "de-AT,de;q=0.9"})
    assert response.status_code == 200
    assert '<html lang="de"' in response.get_data(as_text=True)
    assert _long_date(get_notice().current.date, "de") in text_of(response)


# --- versions ---------------------------------------------------------------------------------


def test_versions_page_lists_each_version_with_its_changes(client: FlaskClient) -> None:
    response = client.get("/policy/versions")
    assert response.status_code == 200
    page = text_of(response)
    for version in get_notice().versions:
        assert f"Version {version.version}" in page
        assert _long_date(version.date) in page
        for change in version.changes:
            assert change in page
        assert f'href="/policy/versions/{version.version}"' in page


def test_first_notice_request_records_the_shipped_versions(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    current = get_notice().current
    # The fingerprint check itself is the unit suite's; here: what gets recorded, and when.
    monkeypatch.setattr("app.web.policy.datamap_fingerprint", lambda: current.fingerprint)
    assert _stored(app) == {}
    assert client.get("/policy/versions").status_code == 200
    stored = _stored(app)
    assert set(stored) == {v.version for v in get_notice().versions}
    assert stored[current.version].snapshot == DATAMAP_PATH.read_text(encoding="utf-8")
    assert stored[current.version].published_on == current.date.isoformat()

    response = client.get(f"/policy/versions/{current.version}")
    assert response.status_code == 200
    page = text_of(response)
    assert "This is the current version." in page
    for category in get_datamap():
        assert category.name in page


def _notice_of(*versions: tuple[str, str]) -> Notice:
    return Notice(
        minimum_age=13,
        security=("Encrypted.",),
        versions=tuple(
            NoticeVersionInfo(name, date.fromisoformat(day), fp * 64, ("Changed.",))
            for name, day, fp in ((n, d, str(i)) for i, (n, d) in enumerate(versions, start=1))
        ),
    )


def test_recording_never_overwrites_and_skips_a_mismatched_current_version(app: Flask) -> None:
    notice = _notice_of(("2026.1.1", "2026-01-01"), ("2026.2.1", "2026-02-01"))
    with app.app_context():
        # The current version does not match the data map: it is not recorded (yet).
        assert record_versions(notice, "map text", "9" * 64) == ["2026.1.1"]
        assert record_versions(notice, "map text", "2" * 64) == ["2026.2.1"]
        # Nothing changes an existing row, whatever the files say later.
        assert record_versions(notice, "another map text", "2" * 64) == []
    stored = _stored(app)
    assert stored["2026.1.1"].snapshot == ""  # never current here: no copy
    assert stored["2026.2.1"].snapshot == "map text"


def test_a_version_is_shown_from_its_own_snapshot(app: Flask, client: FlaskClient) -> None:
    old_map = DATAMAP_PATH.read_text(encoding="utf-8").replace(
        "name: Prompts", "name: Typed requests"
    )
    _add_version(app, "2000.1.1", old_map)
    response = client.get("/policy/versions/2000.1.1")
    assert response.status_code == 200
    page = text_of(response)
    assert title_of(response) == "Privacy notice, version 2000.1.1"
    assert "Typed requests" in page
    assert ">Prompts<" not in response.get_data(as_text=True)
    current = get_notice().current
    assert f"was replaced on {_long_date(current.date)}" in page
    assert not html_problems(response.get_data(as_text=True))[0]


def test_a_snapshot_that_no_longer_parses_is_shown_as_recorded(
    app: Flask, client: FlaskClient
) -> None:
    ancient = "version: 0\nkinds_of_data:\n  - prompts <kept a year>\n"
    _add_version(app, "1999.1.1", ancient, "1999-01-01")
    response = client.get("/policy/versions/1999.1.1")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "can no longer be laid out as a notice" in text_of(response)
    assert "<pre" in body
    assert "kinds_of_data:\n  - prompts &lt;kept a year&gt;" in body  # raw, and escaped


def test_a_version_without_a_copy_says_so(app: Flask, client: FlaskClient) -> None:
    _add_version(app, "1998.1.1", "", "1998-01-01")
    page = text_of(client.get("/policy/versions/1998.1.1"))
    assert "has no copy of this version" in page


@pytest.mark.parametrize("version", ["1900.1.1", "x" * 40, "..", "2026.11.1%00", "2026.11.1%0A"])
def test_unknown_version_is_404(client: FlaskClient, version: str) -> None:
    response = client.get(f"/policy/versions/{version}")
    assert response.status_code == 404
    assert title_of(response) == "Page not found"


# --- the "what changed" banner ----------------------------------------------------------------


def test_banner_shows_what_changed_to_an_older_account(client: FlaskClient, old_user: User) -> None:
    login(client, old_user.email, old_user.password)
    response = client.get("/")
    page = text_of(response)
    assert BANNER_TITLE in page
    for change in get_notice().current.changes:
        assert change in page
    body = response.get_data(as_text=True)
    banner = body[body.index('id="notice-banner"') :]
    assert 'href="/policy"' in banner
    assert 'action="/policy/notice/dismiss"' in banner
    assert 'name="csrf_token"' in banner
    assert 'hx-post="/policy/notice/dismiss"' in banner
    # On every page, not only the overview.
    assert BANNER_TITLE in text_of(client.get("/policy/versions"))


def test_no_banner_for_a_new_account_or_a_visitor(client: FlaskClient, user: User) -> None:
    assert BANNER_TITLE not in text_of(client.get("/policy"))
    login(client, user.email, user.password)
    assert BANNER_TITLE not in text_of(client.get("/"))


def test_dismissing_hides_the_banner_and_records_it(
    app: Flask, client: FlaskClient, old_user: User
) -> None:
    login(client, old_user.email, old_user.password)
    response = post_form(client, "/policy/notice/dismiss", {"next": "/policy"}, form_page="/")
    assert response.status_code == 303
    assert response.headers["Location"] == "/policy"
    assert BANNER_TITLE not in text_of(client.get("/"))
    current = get_notice().current.version
    with app.app_context():
        assert db.session.get(User, old_user.id).notice_version_seen == current
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "notice.dismissed")
        ).all()
        assert [(e.subject_user_id, e.actor_id, e.details) for e in events] == [
            (old_user.id, old_user.id, {"version": current})
        ]
    # Dismissing again changes nothing and records nothing more.
    post_form(client, "/policy/notice/dismiss", {"next": "/"}, form_page="/")
    with app.app_context():
        count = len(
            db.session.scalars(
                select(AuditEvent).where(AuditEvent.action == "notice.dismissed")
            ).all()
        )
    assert count == 1


def test_dismissing_with_htmx_removes_the_banner_in_place(
    app: Flask, client: FlaskClient, old_user: User
) -> None:
    login(client, old_user.email, old_user.password)
    token = csrf_token(client, "/")
    response = client.post(
        "/policy/notice/dismiss",
        data={"next": "/"},
        headers={"HX-Request": "true", "X-CSRFToken": token},
    )
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "<html" not in body
    assert BANNER_TITLE not in body
    assert 'role="status"' in body
    assert 'id="notice-banner"' in body  # takes the banner's place
    assert "HX-Request" in response.headers.get("Vary", "")
    with app.app_context():
        assert db.session.get(User, old_user.id).notice_version_seen is not None


@pytest.mark.parametrize(
    "next_url", ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:x"]
)
def test_dismiss_never_redirects_off_site(
    client: FlaskClient, old_user: User, next_url: str
) -> None:
    login(client, old_user.email, old_user.password)
    response = post_form(client, "/policy/notice/dismiss", {"next": next_url}, form_page="/")
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


def test_dismiss_needs_the_form_token_and_a_post(
    app: Flask, client: FlaskClient, old_user: User
) -> None:
    login(client, old_user.email, old_user.password)
    assert client.post("/policy/notice/dismiss", data={"next": "/"}).status_code == 400
    assert client.get("/policy/notice/dismiss").status_code == 405
    with app.app_context():
        assert db.session.get(User, old_user.id).notice_version_seen is None
    assert BANNER_TITLE in text_of(client.get("/"))


def test_dismiss_signed_out_changes_nothing(app: Flask, client: FlaskClient) -> None:
    response = post_form(client, "/policy/notice/dismiss", {"next": "/"}, form_page="/login")
    assert response.status_code in {302, 303}
    assert "/login" in response.headers["Location"]
    with app.app_context():
        assert db.session.scalars(select(AuditEvent)).all() == []


# --- your rights where you are ---------------------------------------------------------------


def _place_section(client: FlaskClient) -> str:
    html = client.get("/policy").get_data(as_text=True)
    start = html.index('id="your-place"')
    return text_of_fragment(html[start : html.index("</section>", start)])


def text_of_fragment(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


@pytest.mark.parametrize(
    ("place", "says", "does_not_say"),
    [
        (
            "US-CA",
            [
                "Your region: California, United States.",
                "Opt out of the sale or sharing of your personal information",
                "within 45 days",
                "up to 45 days longer",
                "California Privacy Protection Agency (CPPA)",
                "https://cppa.ca.gov/webapplications/complaint",
            ],
            ["Restrict the use of your data"],
        ),
        (
            "DE",
            [
                "Your region: Germany.",
                "Restrict the use of your data",
                "within 1 month",
                "up to 2 months longer",
                "the data protection authority where you live or work",
            ],
            ["Opt out of the sale", "still being checked"],
        ),
        ("BR", ["Your region: Brazil.", "within 15 days", "ANPD"], ["longer"]),
        ("US-OR", ["Oregon, United States", "still being checked by our lawyers"], []),
    ],
)
def test_the_notice_shows_the_rights_where_the_reader_is(
    client: FlaskClient,
    make_user: Callable[..., User],
    place: str,
    says: list[str],
    does_not_say: list[str],
) -> None:
    country, _, region = place.partition("-")
    person = make_user(country=country, region=region or None)
    login(client, person.email, person.password)
    section = _place_section(client)
    for text in says:
        assert text in section
    for text in does_not_say:
        assert text not in section
    assert "Change it on your profile page" in section


def test_a_visitor_from_nowhere_known_gets_every_right(client: FlaskClient) -> None:
    section = _place_section(client)
    assert "Your region: Not known (the strictest rules applied)." in section
    assert "Wherever you are, you have these rights with us:" in section
    assert "Opt out of the sale or sharing" in section and "Restrict the use" in section
    assert "Change your region" in section
