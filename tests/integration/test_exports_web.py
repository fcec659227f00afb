"""/exports: asking for a copy of your data, following its progress, and downloading it.

Requests go through the real form and the real builder (jobs run inline, right after the
commit). Tests that need an export in one particular state make the row directly, with a small
file in DATA_DIR/exports/ where a ready export needs one.
"""

from __future__ import annotations

import hashlib
import io
import re
import secrets
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from app.datamap import get_datamap
from app.extensions import db
from app.models import AuditEvent, Export, GeneratedImage, Job, Prompt, User, utcnow
from app.services import media
from app.services.exports import BUILD_JOB, exportable_categories
from tests.support.mailbox import SMTPServer
from tests.support.web import csrf_token, html_problems, login, post_form, text_of, title_of

HX = {"HX-Request": "true"}
BASE_URL = "http://127.0.0.1:5000"
MARCH = datetime(2025, 3, 15, 12, 0, tzinfo=UTC)
APRIL = datetime(2025, 4, 20, 9, 30, tzinfo=UTC)


# --- helpers ----------------------------------------------------------------------------------


def _add_prompts(app: Flask, user_id: int, at: datetime, count: int, images: int = 0) -> None:
    """`count` prompts at `at`, the first with `images` generated images (files on disk)."""
    with app.app_context():
        for number in range(count):
            prompt = Prompt(user_id=user_id, text=f"a quiet harbour, take {number}", created_at=at)
            db.session.add(prompt)
            db.session.flush()
            for _ in range(images if number == 0 else 0):
                data = secrets.token_bytes(300)
                db.session.add(
                    GeneratedImage(
                        user_id=user_id,
                        prompt_id=prompt.id,
                        storage_key=media.store_bytes(data, "png"),
                        content_type="image/png",
                        byte_size=len(data),
                        model="gpt-image-2",
                        width=64,
                        height=64,
                        created_at=at,
                    )
                )
        db.session.commit()


def _make_export(
    app: Flask,
    user_id: int,
    status: str,
    *,
    content: bytes | None = None,
    created_at: datetime = MARCH,
    **fields: Any,
) -> int:
    """An export row in `status`; with `content`, its archive file in DATA_DIR/exports/."""
    values: dict[str, Any] = {
        "categories": [c.key for c in exportable_categories_in(app)],
        "created_at": created_at,
        "progress": 100 if status == Export.READY else 0,
        "summary": {},
    }
    if content is not None:
        name = f"{secrets.token_hex(16)}.zip"
        folder = app.config["SETTINGS"].data_dir / "exports"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
        values.update(
            file_name=name,
            byte_size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            finished_at=created_at + timedelta(minutes=1),
            expires_at=utcnow() + timedelta(days=7),
        )
    values.update(fields)
    with app.app_context():
        export = Export(user_id=user_id, status=status, **values)
        db.session.add(export)
        db.session.commit()
        return export.id


def exportable_categories_in(app: Flask) -> list[Any]:
    with app.app_context():
        return exportable_categories()


def _export(app: Flask, export_id: int) -> Export:
    with app.app_context():
        row = db.session.get(Export, export_id)
        assert row is not None
        db.session.expunge(row)
        return row


def _exports(app: Flask, user_id: int) -> list[Export]:
    with app.app_context():
        rows = list(
            db.session.scalars(select(Export).where(Export.user_id == user_id).order_by(Export.id))
        )
        db.session.expunge_all()
        return rows


def _count(app: Flask, model: type, *conditions: Any) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0


def _events(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        rows = list(
            db.session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        )
        db.session.expunge_all()
        return rows


def _ask(client: FlaskClient, data: dict[str, Any] | None = None) -> TestResponse:
    token = csrf_token(client, "/exports")
    return client.post("/exports", data={"scope": "all", **(data or {}), "csrf_token": token})


def _download(client: FlaskClient, url: str, **kwargs: Any) -> TestResponse:
    """GET a download, read it whole and close the file behind it (as a browser would)."""
    response = client.get(url, **kwargs)
    response.get_data()
    response.close()
    return response


def _age_fresh_sign_in(client: FlaskClient, minutes: float) -> None:
    with client.session_transaction() as session:
        session["fresh_at"] = int(time.time() - minutes * 60)


def _estimate_rows(page: str) -> dict[str, int]:
    """The estimate table: records per category key (and "media"), as the person reads them."""
    return {
        key: int(number.replace(",", ""))
        for key, number in re.findall(
            r'<tr data-category="([a-z_]+)"><th scope="row">[^<]*</th><td class="num">([^<]*)</td>',
            page,
        )
    }


def _item(page: str, export_id: int) -> str:
    match = re.search(rf'<li class="export[^"]*" id="export-{export_id}".*?</li>', page, re.DOTALL)
    assert match, f"export {export_id} is not listed"
    return match.group(0)


@pytest.fixture
def signed_in(client: FlaskClient, user: User) -> FlaskClient:
    login(client, user.email, user.password)
    return client


# --- the page ---------------------------------------------------------------------------------


def test_signed_out_visitors_are_asked_to_sign_in(client: FlaskClient) -> None:
    response = client.get("/exports")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_page_explains_an_export_and_offers_all_my_data(app: Flask, signed_in: FlaskClient) -> None:
    response = signed_in.get("/exports")
    assert response.status_code == 200
    assert title_of(response) == "Download your data"
    page = text_of(response)
    assert "What an export is" in page
    assert "as JSON" in page and "CSV" in page and "index.html" in page
    assert "original images and uploads" in page
    assert "download it for 7 days, after entering your password again" in page
    body = response.get_data(as_text=True)
    assert re.search(r'id="scope-all" name="scope" value="all"\s+checked>', body)
    # One checkbox per exportable kind of data, named as the data map names it.
    for category in exportable_categories_in(app):
        assert f'value="{category.key}"' in body
        assert f'<label for="category-{category.key}">{category.name}</label>' in body
    assert 'value="cookies"' not in body  # kept in the browser: nothing of it on our servers
    # The default choice is already estimated, and the button asks for exactly that.
    assert "What your export will contain" in page
    assert '<button type="submit">Ask for this export</button>' in body
    assert 'aria-current="page">Download</a>' in body
    problems, _ = html_problems(body)
    assert problems == []


def test_navigation_and_data_pages_lead_here(signed_in: FlaskClient) -> None:
    assert 'href="/exports" aria-current="page"' in signed_in.get("/exports").get_data(as_text=True)
    data_page = signed_in.get("/data").get_data(as_text=True)
    assert re.search(r'<a href="/exports">Download<span class="visually-hidden">', data_page)


def test_the_estimate_counts_what_the_database_holds(
    app: Flask, signed_in: FlaskClient, user: User, make_user: Callable[..., User]
) -> None:
    _add_prompts(app, user.id, MARCH, 3, images=2)
    _add_prompts(app, user.id, APRIL, 4, images=1)
    other = make_user(email="bo@example.com")
    _add_prompts(app, other.id, APRIL, 5, images=3)  # never counted for Ann

    everything = signed_in.get("/exports").get_data(as_text=True)
    rows = _estimate_rows(everything)
    for category in exportable_categories_in(app):
        owner = getattr(category.model, category.user_column)
        assert rows[category.key] == _count(app, category.model, owner == user.id), category.key
    assert rows["prompts"] == 7
    assert rows["images"] == 3
    assert rows["media"] == 3

    query = "scope=chosen&category=prompts&category=images&from=2025-04-01&to=2025-04-30"
    april = signed_in.get(f"/exports?{query}")
    assert april.status_code == 200
    assert _estimate_rows(april.get_data(as_text=True)) == {"prompts": 4, "images": 1, "media": 1}
    text = text_of(april)
    assert "2 kinds of data, from April 1, 2025 until April 30, 2025:" in text
    assert "5 records" in text and "1 image or file" in text
    # The form keeps the choice, and the request button asks for exactly what is shown.
    body = april.get_data(as_text=True)
    assert re.search(r'id="scope-chosen" name="scope" value="chosen"[^>]*checked', body)
    assert re.search(r'id="category-prompts" name="category" value="prompts"\s+checked', body)
    assert re.search(r'id="category-usage" name="category" value="usage"\s+>', body)
    main = body[body.index("<main") :]  # (the cookie banner above has hidden fields too)
    hidden = re.findall(r'<input type="hidden" name="([a-z]+)" value="([^"]*)">', main)
    assert hidden == [
        ("scope", "chosen"),
        ("category", "prompts"),
        ("category", "images"),
        ("from", "2025-04-01"),
        ("to", "2025-04-30"),
    ]


def test_the_estimate_updates_in_place_with_htmx(app: Flask, signed_in: FlaskClient) -> None:
    page = signed_in.get("/exports").get_data(as_text=True)
    assert 'hx-get="/exports/preview" hx-trigger="change" hx-target="#export-estimate"' in page

    query = "scope=chosen&category=prompts"
    fragment = signed_in.get(f"/exports/preview?{query}", headers=HX)
    assert fragment.status_code == 200
    assert "HX-Request" in fragment.headers["Vary"]
    body = fragment.get_data(as_text=True)
    assert "<html" not in body and "<h1" not in body
    assert body.lstrip().startswith('<h3 class="estimate-heading">What your export will contain')
    assert _estimate_rows(body) == {"prompts": 0, "media": 0}

    # Without htmx (JavaScript off), the same address is the whole page with the estimate.
    full = signed_in.get(f"/exports/preview?{query}")
    assert full.status_code == 200
    assert "HX-Request" in full.headers["Vary"]
    assert title_of(full) == "Download your data"
    assert _estimate_rows(full.get_data(as_text=True)) == {"prompts": 0, "media": 0}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("scope=chosen", "Choose at least one kind of data, or choose “All my data”."),
        ("scope=chosen&category=prompts&category=passwords", "Choose the kinds of data from"),
        ("scope=everything", "Choose the kinds of data from the list on the page."),
        ("from=2025-02-30", "Enter dates as year-month-day, for example 2025-03-31."),
        ("from=yesterday", "Enter dates as year-month-day, for example 2025-03-31."),
        ("from=2025-05-01&to=2025-04-01", "The “From” date must be on or before the “Until” date."),
    ],
)
def test_a_choice_that_cannot_be_made_is_explained(
    signed_in: FlaskClient, query: str, message: str
) -> None:
    page = signed_in.get(f"/exports?{query}")
    assert page.status_code == 400
    assert message in text_of(page)
    assert "Ask for this export" not in text_of(page)
    # While the person is still choosing, htmx shows the explanation where the estimate was.
    fragment = signed_in.get(f"/exports/preview?{query}", headers=HX)
    assert fragment.status_code == 200
    assert message in text_of(fragment)


# --- asking for an export ---------------------------------------------------------------------


def test_asking_builds_the_export_and_emails_a_link(
    smtp_app: Flask, smtp_server: SMTPServer, user: User
) -> None:
    _add_prompts(smtp_app, user.id, MARCH, 2, images=1)
    client = smtp_app.test_client()
    login(client, user.email, user.password)

    response = _ask(client)
    assert response.status_code == 303
    assert response.headers["Location"] == "/exports"
    (export,) = _exports(smtp_app, user.id)
    assert export.categories == [c.key for c in exportable_categories_in(smtp_app)]
    assert _count(smtp_app, Job, Job.kind == BUILD_JOB) == 1
    (requested,) = _events(smtp_app, "export.requested")
    assert requested.subject_user_id == user.id
    assert requested.target == f"export:{export.id}"
    # Jobs run inline here, so the archive was built as soon as the request was committed.
    assert export.status == Export.READY

    page = client.get("/exports")
    text = text_of(page)
    assert "Your export is being prepared. We will email you when it is ready." in text
    item = _item(page.get_data(as_text=True), export.id)
    assert "Ready to download." in item
    assert export.sha256 in item
    assert f'href="/exports/{export.id}/download"' in item
    assert "hx-trigger" not in item

    (mail,) = smtp_server.wait_for(1)
    assert mail.rcpt_tos == (user.email,)
    assert mail.message["Subject"] == "Your data export is ready to download"
    assert f"{BASE_URL}/exports" in mail.text
    assert f'<a href="{BASE_URL}/exports">' in mail.html
    assert "you will be asked for your password again" in mail.text
    assert "You can download it for 7 days." in mail.text
    link = re.search(re.escape(BASE_URL) + r"(/\S+)", mail.text)
    assert link
    assert client.get(link.group(1)).status_code == 200


def test_asking_for_only_some_data_and_days(app: Flask, signed_in: FlaskClient, user: User) -> None:
    data = {"scope": "chosen", "category": ["images", "prompts"], "from": "2025-03-01"}
    assert _ask(signed_in, data).status_code == 303
    (export,) = _exports(app, user.id)
    assert export.categories == ["prompts", "images"]  # in the data map's order
    assert export.date_from.isoformat() == "2025-03-01"
    assert export.date_to is None
    item = text_of(signed_in.get("/exports"))
    assert "Prompts, Generated images, from March 1, 2025" in item


@pytest.mark.app_settings(jobs_mode="queue")  # recorded only: the first export stays queued
def test_a_second_export_while_one_is_in_progress_is_refused(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    assert _ask(signed_in).status_code == 303
    (first,) = _exports(app, user.id)
    assert first.status == Export.QUEUED
    page = signed_in.get("/exports")
    assert "An export is being prepared now." in text_of(page)

    again = _ask(signed_in, {"scope": "chosen", "category": ["prompts"]})
    assert again.status_code == 409
    text = text_of(again)
    assert "You already have an export being prepared" in text
    assert "No second export was started." in text
    assert "Waiting to start." in _item(again.get_data(as_text=True), first.id)
    assert [e.id for e in _exports(app, user.id)] == [first.id]
    assert _count(app, Job, Job.kind == BUILD_JOB) == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"scope": "chosen"}, "Choose at least one kind of data"),
        ({"scope": "chosen", "category": ["prompts", "users"]}, "Choose the kinds of data"),
        ({"scope": "chosen", "category": ["cookies"]}, "Choose the kinds of data"),
        ({"scope": "some"}, "Choose the kinds of data"),
        ({"from": "2025-13-01"}, "Enter dates as year-month-day"),
        ({"to": "31.03.2025"}, "Enter dates as year-month-day"),
        ({"from": "2025-04-02", "to": "2025-04-01"}, "The “From” date must be on or before"),
    ],
)
def test_bad_requests_are_refused_and_nothing_is_created(
    app: Flask, signed_in: FlaskClient, user: User, data: dict[str, Any], message: str
) -> None:
    response = _ask(signed_in, data)
    assert response.status_code == 400
    text = text_of(response)
    assert message in text
    assert "No export was started." in text
    assert _exports(app, user.id) == []
    assert _count(app, Job) == 0
    assert _events(app, "export.requested") == []


def test_a_request_without_the_form_token_is_refused(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    response = signed_in.post("/exports", data={"scope": "all"})
    assert response.status_code == 400
    assert title_of(response) == "This form has expired"
    assert _exports(app, user.id) == []


@pytest.mark.app_settings(rate_limits=True, export_rate_limit="2 per hour")
def test_requests_are_rate_limited_per_person(
    app: Flask, client: FlaskClient, user: User, make_user: Callable[..., User]
) -> None:
    login(client, user.email, user.password)
    assert _ask(client).status_code == 303
    assert _ask(client).status_code == 303
    refused = _ask(client)
    assert refused.status_code == 429
    assert title_of(refused) == "Too many attempts"
    assert len(_exports(app, user.id)) == 2
    # Another person is not held back by Ann's requests.
    other = make_user(email="bo@example.com")
    other_client = app.test_client()
    login(other_client, other.email, other.password)
    assert _ask(other_client).status_code == 303


# --- the list and its progress ----------------------------------------------------------------


def test_the_page_lists_every_state_newest_first(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    expired = _make_export(
        app,
        user.id,
        Export.EXPIRED,
        created_at=MARCH,
        expires_at=datetime(2025, 3, 22, 12, 1, tzinfo=UTC),
    )
    failed = _make_export(app, user.id, Export.FAILED, created_at=MARCH + timedelta(days=10))
    ready = _make_export(
        app, user.id, Export.READY, content=b"PK" * 1000, created_at=MARCH + timedelta(days=20)
    )
    building = _make_export(
        app, user.id, Export.BUILDING, progress=40, created_at=MARCH + timedelta(days=30)
    )
    page = signed_in.get("/exports").get_data(as_text=True)
    positions = [page.index(f'id="export-{n}"') for n in (building, ready, failed, expired)]
    assert positions == sorted(positions)

    item = text_of_html(_item(page, building))
    assert "Being prepared: 40% done." in item
    assert "Refresh to see progress" in item
    assert re.search(r'<progress max="100" value="40" aria-labelledby="[^"]+">40%</progress>', page)

    item = _item(page, ready)
    assert "Ready to download." in item
    assert "2 KB" in item  # 2,000 bytes
    assert hashlib.sha256(b"PK" * 1000).hexdigest() in item
    assert "Available until" in item
    assert f'href="/exports/{ready}/download"' in item

    item = text_of_html(_item(page, failed))
    assert "This export could not be prepared." in item
    assert "Ask for a new export below" in item

    item = text_of_html(_item(page, expired))
    assert "Expired. It was deleted on Mar 22, 2025, 12:01:00 PM." in item
    assert 'href="/exports#request">Ask for a new export</a>' in _item(page, expired)


def text_of_html(fragment: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment)).replace(" .", ".")


def test_a_ready_export_past_its_time_shows_as_expired(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    export_id = _make_export(
        app, user.id, Export.READY, content=b"zip", expires_at=utcnow() - timedelta(minutes=1)
    )
    item = _item(signed_in.get("/exports").get_data(as_text=True), export_id)
    assert "Expired." in item
    assert "/download" not in item


def test_the_status_polls_while_building_and_stops_when_ready(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    export_id = _make_export(app, user.id, Export.BUILDING, progress=25)
    url = f"/exports/{export_id}/status"
    page = signed_in.get("/exports").get_data(as_text=True)
    polling = f'hx-get="{url}" hx-trigger="load delay:2s" hx-swap="outerHTML"'
    assert polling in _item(page, export_id)
    assert '<div id="export-announcer" class="visually-hidden" aria-live="polite">' in page

    building = signed_in.get(url, headers=HX)
    assert building.status_code == 200
    assert "HX-Request" in building.headers["Vary"]
    body = building.get_data(as_text=True)
    assert "<html" not in body
    assert body.lstrip().startswith(f'<li class="export export-building" id="export-{export_id}"')
    assert f'hx-get="{url}" hx-trigger="load delay:2s"' in body
    assert "Being prepared: 25% done." in body
    assert "hx-swap-oob" not in body  # nothing to announce yet

    with app.app_context():
        row = db.session.get(Export, export_id)
        assert row is not None
        row.status, row.progress = Export.READY, 100
        row.expires_at = utcnow() + timedelta(days=7)
        db.session.commit()
    ready = signed_in.get(url, headers=HX)
    body = ready.get_data(as_text=True)
    assert "hx-trigger" not in body and "hx-get" not in body  # polling stops here
    assert "Ready to download." in body
    announcement = '<div hx-swap-oob="innerHTML:#export-announcer">Your export is ready'
    assert announcement in body

    # Without htmx the same address is the whole page (JavaScript off: a plain refresh).
    full = signed_in.get(url)
    assert full.status_code == 200
    assert title_of(full) == "Download your data"
    assert "HX-Request" in full.headers["Vary"]


def test_another_persons_export_is_not_found(
    app: Flask, signed_in: FlaskClient, make_user: Callable[..., User]
) -> None:
    other = make_user(email="bo@example.com")
    export_id = _make_export(app, other.id, Export.READY, content=b"Bo's archive")
    for path in (f"/exports/{export_id}/download", f"/exports/{export_id}/status"):
        response = signed_in.get(path)
        assert response.status_code == 404, path
        assert title_of(response) == "Page not found"
        assert signed_in.get(path, headers=HX).status_code == 404
    assert f"export-{export_id}" not in signed_in.get("/exports").get_data(as_text=True)
    assert _export(app, export_id).downloaded_at is None


@pytest.mark.parametrize(
    "path",
    ["/exports/999999/download", "/exports/abc/download", "/exports/-1/download", "/exports/1.5"],
)
def test_tampered_addresses_are_not_found(signed_in: FlaskClient, path: str) -> None:
    assert signed_in.get(path).status_code == 404


# --- downloading ------------------------------------------------------------------------------


ARCHIVE = b"PK\x03\x04" + bytes(range(256)) * 4


def test_the_owner_downloads_the_archive(app: Flask, signed_in: FlaskClient, user: User) -> None:
    export_id = _make_export(app, user.id, Export.READY, content=ARCHIVE)
    response = _download(signed_in, f"/exports/{export_id}/download")
    assert response.status_code == 200
    assert response.data == ARCHIVE
    assert response.headers["Content-Type"] == "application/zip"
    disposition = response.headers["Content-Disposition"]
    assert disposition == "attachment; filename=privacy-export-2025-03-15.zip"
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.headers["Accept-Ranges"] == "bytes"

    first = _export(app, export_id).downloaded_at
    assert first is not None
    (event,) = _events(app, "export.downloaded")
    assert (event.actor_type, event.actor_id) == ("user", user.id)
    assert event.subject_user_id == user.id
    assert event.target == f"export:{export_id}"
    assert event.details == {}  # ids only

    assert _download(signed_in, f"/exports/{export_id}/download").data == ARCHIVE
    assert _export(app, export_id).downloaded_at == first  # the first download is kept
    assert len(_events(app, "export.downloaded")) == 2
    assert "First downloaded" in text_of(signed_in.get("/exports"))


def test_downloads_can_be_resumed_with_ranges(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    export_id = _make_export(app, user.id, Export.READY, content=ARCHIVE)
    url = f"/exports/{export_id}/download"
    head = _download(signed_in, url, headers={"Range": "bytes=0-99"})
    assert head.status_code == 206
    assert head.headers["Content-Range"] == f"bytes 0-99/{len(ARCHIVE)}"
    assert head.data == ARCHIVE[:100]
    rest = _download(signed_in, url, headers={"Range": "bytes=100-"})
    assert rest.status_code == 206
    assert head.data + rest.data == ARCHIVE
    # One download, however many parts it came in.
    assert len(_events(app, "export.downloaded")) == 1


def test_the_download_needs_the_password_again(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    export_id = _make_export(app, user.id, Export.READY, content=ARCHIVE)
    url = f"/exports/{export_id}/download"
    _age_fresh_sign_in(signed_in, minutes=11)
    response = signed_in.get(url)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/reauth?next={url}"
    assert _export(app, export_id).downloaded_at is None

    reauth = signed_in.get(response.headers["Location"])
    assert title_of(reauth) == "Confirm it is you"
    confirmed = post_form(
        signed_in,
        "/reauth",
        {"password": user.password, "next": url},
        form_page=response.headers["Location"],
    )
    assert confirmed.status_code == 303
    assert confirmed.headers["Location"] == url
    download = _download(signed_in, url)
    assert download.status_code == 200
    assert download.data == ARCHIVE
    assert _export(app, export_id).downloaded_at is not None


def test_an_expired_export_says_so_and_offers_a_new_one(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    gone = _make_export(
        app, user.id, Export.EXPIRED, expires_at=datetime(2025, 3, 22, 12, 0, tzinfo=UTC)
    )
    late = _make_export(
        app, user.id, Export.READY, content=ARCHIVE, expires_at=utcnow() - timedelta(seconds=1)
    )
    for export_id in (gone, late):
        response = _download(signed_in, f"/exports/{export_id}/download")
        assert response.status_code == 410
        assert title_of(response) == "This export has expired"
        text = text_of(response)
        assert "can be downloaded for 7 days after they are ready" in text
        assert 'href="/exports#request">Ask for a new export</a>' in response.get_data(as_text=True)
        assert ARCHIVE not in response.data
    page = text_of_html(_download(signed_in, f"/exports/{gone}/download").get_data(as_text=True))
    assert "was deleted on Mar 22, 2025, 12:00:00 PM." in page
    assert _events(app, "export.downloaded") == []


@pytest.mark.parametrize(
    ("status", "title"),
    [
        (Export.QUEUED, "This export is not ready yet"),
        (Export.BUILDING, "This export is not ready yet"),
        (Export.FAILED, "This export could not be prepared"),
    ],
)
def test_an_export_that_is_not_ready_cannot_be_downloaded(
    app: Flask, signed_in: FlaskClient, user: User, status: str, title: str
) -> None:
    export_id = _make_export(app, user.id, status)
    response = _download(signed_in, f"/exports/{export_id}/download")
    assert response.status_code == 409
    assert title_of(response) == title
    assert _events(app, "export.downloaded") == []


def test_a_ready_export_whose_file_is_missing_is_not_served(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    export_id = _make_export(app, user.id, Export.READY, content=ARCHIVE)
    folder: Path = app.config["SETTINGS"].data_dir / "exports"
    for path in folder.glob("*.zip"):
        path.unlink()
    response = _download(signed_in, f"/exports/{export_id}/download")
    assert response.status_code == 410
    assert _export(app, export_id).downloaded_at is None


# --- the whole way, with the real builder -----------------------------------------------------


def test_request_build_and_download_give_a_complete_archive(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    _add_prompts(app, user.id, MARCH, 2, images=2)
    assert _ask(signed_in).status_code == 303
    (export,) = _exports(app, user.id)
    assert export.status == Export.READY
    response = _download(signed_in, f"/exports/{export.id}/download")
    assert response.status_code == 200
    assert hashlib.sha256(response.data).hexdigest() == export.sha256
    assert len(response.data) == export.byte_size
    with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
        names = set(archive.namelist())
    assert {"manifest.json", "index.html", "data/prompts.json"} <= names
    assert sum(name.startswith("media/") for name in names) == 2
    assert {c.key for c in get_datamap().database_categories} >= set(export.categories)
