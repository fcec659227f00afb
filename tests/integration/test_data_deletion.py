"""Deleting single items and "everything older than": what goes, what stays, and the proof."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.extensions import db
from app.models import (
    AuditEvent,
    GeneratedImage,
    Invoice,
    Job,
    Prompt,
    SupportMessage,
    Upload,
    User,
)
from app.services.audit import verify_chain
from app.services.deletion import MEDIA_DELETE_JOB, delete_files
from tests.integration.test_data_pages import (
    BASE_TIME,
    HX,
    add_prompt,
    add_support_message,
    add_upload,
    file_exists,
    record_ids,
    storage_key,
)
from tests.support.web import csrf_from_html, login, text_of, title_of

SECRET_PROMPT = "my secret birthday surprise for Sam 🎂"


@pytest.fixture
def signed_in(client: FlaskClient, user: User) -> FlaskClient:
    login(client, user.email, user.password)
    return client


@pytest.fixture
def other(make_user) -> User:
    return make_user(email="bob@example.com", name="Bob Other")


def words(response: object) -> str:
    """The page as read: tags dropped, spaces collapsed."""
    page = text_of(response)  # type: ignore[arg-type]
    return " ".join(re.sub(r"<[^>]+>", " ", page).split()).replace(" ,", ",")


def _token(client: FlaskClient, path: str = "/data/prompts") -> str:
    return csrf_from_html(client.get(path).get_data(as_text=True))


def _count(app: Flask, model: object, **where: object) -> int:
    with app.app_context():
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return db.session.scalar(query) or 0


def _audit(app: Flask) -> list[AuditEvent]:
    with app.app_context():
        events = list(db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
        db.session.expunge_all()
        return events


# --- the confirmation -------------------------------------------------------------------------


def test_the_confirmation_says_exactly_what_goes_and_what_stays(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    prompt_id, image_ids = add_prompt(app, user.id, SECRET_PROMPT, images=2)
    add_upload(app, user.id, "reference.jpg", prompt_id=prompt_id)
    response = signed_in.get(f"/data/prompts/{prompt_id}/delete")
    assert response.status_code == 200
    assert title_of(response) == "Delete this for good?"
    page = words(response)
    assert f"Prompt: {SECRET_PROMPT}" in page
    assert "and its 2 generated images" in page
    for image_id in image_ids:
        assert f"/data/images/{image_id}/thumbnail" in response.get_data(as_text=True)
    assert "Your “Uploaded reference images” stay" in page
    assert "your invoices, your credit balance and your other records are not affected" in page
    assert _count(app, Prompt) == 1  # looking changes nothing


def test_confirmations_name_an_upload_by_file_and_a_message_by_subject(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    upload_id = add_upload(app, user.id, "IMG_2041.jpg")
    message_id = add_support_message(app, user.id, "Refund please", "The long body text")
    _prompt, (image_id,) = add_prompt(app, user.id, "a fox", images=1)
    assert "File name: IMG_2041.jpg" in words(signed_in.get(f"/data/uploads/{upload_id}/delete"))
    support = words(signed_in.get(f"/data/support/{message_id}/delete"))
    assert "Subject: Refund please" in support
    image = signed_in.get(f"/data/images/{image_id}/delete")
    assert "This item from “Generated images”" in text_of(image)
    assert f"/data/images/{image_id}/thumbnail" in image.get_data(as_text=True)


# --- deleting one item ------------------------------------------------------------------------


def test_deleting_a_prompt_removes_it_its_images_and_their_files_and_audits_it(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    prompt_id, image_ids = add_prompt(app, user.id, SECRET_PROMPT, images=2)
    keep_id, _ = add_prompt(app, user.id, "keep me", images=1)
    upload_id = add_upload(app, user.id, "reference.jpg", prompt_id=prompt_id)
    keys = [storage_key(app, GeneratedImage, image_id) for image_id in image_ids]
    assert all(file_exists(app, key) for key in keys)

    response = signed_in.post(
        f"/data/prompts/{prompt_id}/delete", data={"csrf_token": _token(signed_in)}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/data/prompts"
    assert "Deleted." in text_of(signed_in.get("/data/prompts"))

    assert _count(app, Prompt, id=prompt_id) == 0
    assert _count(app, GeneratedImage, prompt_id=prompt_id) == 0
    assert _count(app, Prompt, id=keep_id) == 1
    assert _count(app, GeneratedImage, prompt_id=keep_id) == 1
    assert not any(file_exists(app, key) for key in keys)  # the job ran after the commit
    with app.app_context():
        upload = db.session.get(Upload, upload_id)
        assert upload is not None and upload.prompt_id is None  # the upload stays
        job = db.session.scalar(select(Job).where(Job.kind == MEDIA_DELETE_JOB))
        assert job is not None and job.status == Job.DONE
        assert sorted(job.payload["keys"]) == sorted(keys)

    (event,) = _audit(app)
    assert event.action == "data.item_deleted"
    assert (event.actor_type, event.actor_id, event.subject_user_id) == ("user", user.id, user.id)
    assert event.target == f"prompts:{prompt_id}"
    assert event.details == {"images": 2}
    stored = json.dumps([event.target, event.details], ensure_ascii=False)
    assert "birthday" not in stored and "reference.jpg" not in stored
    with app.app_context():
        assert verify_chain().ok


def test_deleting_an_image_keeps_its_prompt(app: Flask, signed_in: FlaskClient, user: User) -> None:
    prompt_id, (first, second) = add_prompt(app, user.id, "a fox", images=2)
    key = storage_key(app, GeneratedImage, first)
    response = signed_in.post(
        f"/data/images/{first}/delete", data={"csrf_token": _token(signed_in)}
    )
    assert response.status_code == 303
    assert _count(app, GeneratedImage, id=first) == 0
    assert _count(app, GeneratedImage, id=second) == 1
    assert _count(app, Prompt, id=prompt_id) == 1
    assert not file_exists(app, key)
    assert _audit(app)[0].target == f"images:{first}"


def test_deleting_a_support_message(app: Flask, signed_in: FlaskClient, user: User) -> None:
    message_id = add_support_message(app, user.id, "Refund please", "Body")
    signed_in.post(f"/data/support/{message_id}/delete", data={"csrf_token": _token(signed_in)})
    assert _count(app, SupportMessage) == 0
    assert _audit(app)[0].details == {}


def test_with_htmx_the_row_turns_into_a_confirmation_and_then_disappears(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    prompt_id, _ = add_prompt(app, user.id, SECRET_PROMPT, images=1)
    page = signed_in.get("/data/prompts").get_data(as_text=True)
    assert f'hx-get="/data/prompts/{prompt_id}/delete" hx-target="closest tr"' in page

    confirm = signed_in.get(f"/data/prompts/{prompt_id}/delete", headers=HX)
    body = confirm.get_data(as_text=True)
    assert "<html" not in body
    assert body.lstrip().startswith(f'<tr id="record-{prompt_id}" class="confirm-row">')
    assert f'hx-post="/data/prompts/{prompt_id}/delete"' in body
    assert "and its 1 generated image" in text_of(confirm)

    keep = signed_in.get(f"/data/prompts/{prompt_id}", headers=HX)
    assert keep.get_data(as_text=True).lstrip().startswith(f'<tr id="record-{prompt_id}">')
    assert "<html" not in keep.get_data(as_text=True)

    deleted = signed_in.post(
        f"/data/prompts/{prompt_id}/delete",
        data={"csrf_token": csrf_from_html(body)},
        headers=HX,
    )
    assert deleted.status_code == 200
    gone = deleted.get_data(as_text=True)
    assert "<tr" not in gone and "<html" not in gone
    assert '<div id="data-live" hx-swap-oob="innerHTML">Deleted.</div>' in gone
    assert _count(app, Prompt) == 0
    assert 'id="data-live"' in signed_in.get("/data/prompts").get_data(as_text=True)


def test_someone_elses_item_is_not_found_and_nothing_changes(
    app: Flask, signed_in: FlaskClient, user: User, other: User
) -> None:
    their_prompt, (their_image,) = add_prompt(app, other.id, "Bob's prompt", images=1)
    key = storage_key(app, GeneratedImage, their_image)
    token = _token(signed_in)
    for path in (f"/data/prompts/{their_prompt}/delete", f"/data/images/{their_image}/delete"):
        assert signed_in.get(path).status_code == 404
        response = signed_in.post(path, data={"csrf_token": token})
        assert response.status_code == 404
        assert title_of(response) == "Page not found"
        assert signed_in.post(path, data={"csrf_token": token}, headers=HX).status_code == 404
    assert _count(app, Prompt, id=their_prompt) == 1
    assert _count(app, GeneratedImage, id=their_image) == 1
    assert file_exists(app, key)
    assert _audit(app) == []


def test_an_item_deleted_already_is_not_found(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    prompt_id, _ = add_prompt(app, user.id, "once")
    token = _token(signed_in)
    path = f"/data/prompts/{prompt_id}/delete"
    assert signed_in.post(path, data={"csrf_token": token}).status_code == 303
    assert signed_in.post(path, data={"csrf_token": token}).status_code == 404
    assert signed_in.get(path).status_code == 404
    assert len(_audit(app)) == 1


@pytest.mark.parametrize("category", ["account", "invoices", "usage", "payment_methods"])
def test_categories_without_single_item_deletion_offer_none(
    app: Flask, signed_in: FlaskClient, user: User, category: str
) -> None:
    token = _token(signed_in)
    assert signed_in.get(f"/data/{category}/{user.id}/delete").status_code == 404
    assert (
        signed_in.post(f"/data/{category}/{user.id}/delete", data={"csrf_token": token}).status_code
        == 404
    )
    assert "/delete" not in signed_in.get(f"/data/{category}").get_data(as_text=True)
    assert _count(app, User) == 1


def test_deleting_needs_the_forms_token(app: Flask, signed_in: FlaskClient, user: User) -> None:
    prompt_id, _ = add_prompt(app, user.id, "safe")
    assert signed_in.post(f"/data/prompts/{prompt_id}/delete").status_code == 400
    assert _count(app, Prompt) == 1


def test_the_file_removal_job_can_run_twice(app: Flask, user: User) -> None:
    _prompt, (image_id,) = add_prompt(app, user.id, "a fox", images=1)
    key = storage_key(app, GeneratedImage, image_id)
    with app.app_context():
        delete_files({"keys": [key]})
        delete_files({"keys": [key]})
        assert not file_exists(app, key)


# --- everything older than a date -------------------------------------------------------------


def _old_and_new(app: Flask, user_id: int) -> tuple[list[int], list[int]]:
    old = [
        add_prompt(
            app, user_id, f"old {n}", at=datetime(2025, 1, 10 + n, tzinfo=UTC), images=n % 2
        )[0]
        for n in range(3)
    ]
    new = [
        add_prompt(
            app, user_id, "exactly on the day", at=datetime(2025, 2, 1, tzinfo=UTC), images=1
        )[0],
        add_prompt(app, user_id, "newer", at=datetime(2025, 3, 1, tzinfo=UTC))[0],
    ]
    return old, new


def test_bulk_deletion_shows_the_count_then_deletes_exactly_that(
    app: Flask, signed_in: FlaskClient, user: User, other: User
) -> None:
    old, new = _old_and_new(app, user.id)
    add_prompt(app, other.id, "Bob's old one", at=datetime(2024, 1, 1, tzinfo=UTC), images=1)
    with app.app_context():
        old_keys = list(
            db.session.scalars(
                select(GeneratedImage.storage_key).where(GeneratedImage.prompt_id.in_(old))
            )
        )
    assert len(old_keys) == 1

    prompts_page = signed_in.get("/data/prompts").get_data(as_text=True)
    assert 'action="/data/prompts/delete-older"' in prompts_page
    assert "Delete all my prompts older than" in prompts_page

    confirm = signed_in.get("/data/prompts/delete-older?before=2025-02-01")
    assert confirm.status_code == 200
    page = text_of(confirm)
    assert title_of(confirm) == "Delete your prompts from before February 1, 2025?"
    assert "3 prompts" in page
    assert "1 generated image made from them" in page
    assert "Prompts from February 1, 2025 onwards." in page
    assert _count(app, Prompt, user_id=user.id) == 5  # looking changes nothing

    response = signed_in.post(
        "/data/prompts/delete-older?before=2025-02-01",
        data={
            "csrf_token": csrf_from_html(confirm.get_data(as_text=True)),
            "expected_prompts": "3",
            "expected_images": "1",
        },
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/data/prompts"
    assert "Deleted 3 prompts and 1 image." in text_of(signed_in.get("/data/prompts"))

    with app.app_context():
        left = set(db.session.scalars(select(Prompt.id).where(Prompt.user_id == user.id)))
    assert left == set(new)
    assert _count(app, Prompt, user_id=other.id) == 1
    assert _count(app, GeneratedImage, user_id=other.id) == 1
    assert not any(file_exists(app, key) for key in old_keys)
    (event,) = _audit(app)
    assert event.action == "data.items_deleted"
    assert event.target == "prompts:before:2025-02-01"
    assert event.details == {"prompts": 3, "images": 1}
    assert "old" not in json.dumps(event.details)


def test_bulk_deletion_of_many_prompts_goes_in_batches(
    app: Flask, signed_in: FlaskClient, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.services import deletion

    monkeypatch.setattr(deletion, "BULK_BATCH_SIZE", 7)
    for n in range(30):
        add_prompt(app, user.id, f"p{n}", at=BASE_TIME - timedelta(days=n + 1), images=n % 3 == 0)
    confirm = signed_in.get("/data/prompts/delete-older?before=2025-03-15")
    assert "30 prompts" in text_of(confirm)
    assert "10 generated images made from them" in text_of(confirm)
    signed_in.post(
        "/data/prompts/delete-older?before=2025-03-15",
        data={
            "csrf_token": csrf_from_html(confirm.get_data(as_text=True)),
            "expected_prompts": "30",
            "expected_images": "10",
        },
    )
    assert _count(app, Prompt) == 0
    assert _count(app, GeneratedImage) == 0
    assert [e.details for e in _audit(app)] == [{"prompts": 30, "images": 10}]


def test_bulk_deletion_refuses_when_the_numbers_changed(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    _old_and_new(app, user.id)
    confirm = signed_in.get("/data/prompts/delete-older?before=2025-02-01")
    response = signed_in.post(
        "/data/prompts/delete-older?before=2025-02-01",
        data={
            "csrf_token": csrf_from_html(confirm.get_data(as_text=True)),
            "expected_prompts": "2",
            "expected_images": "1",
        },
    )
    assert response.status_code == 200
    assert "The numbers changed since you looked, so nothing was deleted." in text_of(response)
    assert "3 prompts" in text_of(response)
    assert _count(app, Prompt) == 5
    assert _audit(app) == []


def test_bulk_deletion_asks_for_the_password_again(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    _old_and_new(app, user.id)
    token = _token(signed_in)
    with signed_in.session_transaction() as session:
        session["fresh_at"] = int(time.time()) - 3600
    path = "/data/prompts/delete-older?before=2025-02-01"
    confirm = signed_in.get(path)
    assert confirm.status_code == 303
    assert confirm.headers["Location"].startswith("/reauth?next=")
    post = signed_in.post(
        path, data={"csrf_token": token, "expected_prompts": "3", "expected_images": "1"}
    )
    assert post.status_code == 303
    assert post.headers["Location"].startswith("/reauth?next=")
    assert _count(app, Prompt) == 5

    reauth = signed_in.post(
        confirm.headers["Location"],
        data={"csrf_token": token, "password": user.password, "next": path},
    )
    assert reauth.headers["Location"] == path
    assert signed_in.get(path).status_code == 200


@pytest.mark.parametrize(
    ("query", "status"),
    [("", 400), ("?before=", 400), ("?before=2025-02-30", 400), ("?before=soon", 400)],
)
def test_bulk_deletion_needs_a_real_date(signed_in: FlaskClient, query: str, status: int) -> None:
    response = signed_in.get(f"/data/prompts/delete-older{query}")
    assert response.status_code == status
    assert title_of(response) == "That is not a date"


@pytest.mark.parametrize("category", ["images", "uploads", "support", "invoices", "nothing"])
def test_bulk_deletion_is_only_for_prompts(signed_in: FlaskClient, category: str) -> None:
    assert signed_in.get(f"/data/{category}/delete-older?before=2025-01-01").status_code == 404


def test_bulk_deletion_with_nothing_to_delete_says_so(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    _old_and_new(app, user.id)
    response = signed_in.get("/data/prompts/delete-older?before=2024-01-01")
    assert "There is nothing to delete." in text_of(response)
    assert 'name="expected_prompts"' not in response.get_data(as_text=True)


def test_invoices_are_untouched_by_any_deletion(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    with app.app_context():
        db.session.add(
            Invoice(
                user_id=user.id,
                number="INV-1",
                description="Pro",
                amount_cents=100,
                currency="EUR",
                status="paid",
                issued_at=datetime(2024, 1, 1, tzinfo=UTC),
            )
        )
        db.session.commit()
    old, _ = _old_and_new(app, user.id)
    signed_in.post(f"/data/prompts/{old[0]}/delete", data={"csrf_token": _token(signed_in)})
    assert _count(app, Invoice) == 1
    assert record_ids(signed_in.get("/data/invoices"))
