"""/data and /data/<category>: what a person sees of their own records, and nothing else.

The helpers at the top build small, exact data sets (a person's prompts with image files on
disk, uploads, a card with its provider token); the demo seed is used where realistic variety
matters (every category, two people).
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import event, func, select
from werkzeug.test import TestResponse

from app.datamap import get_datamap
from app.extensions import db
from app.models import (
    AuditEvent,
    DeviceRecord,
    GeneratedImage,
    Invoice,
    PaymentMethod,
    ProcessingChoice,
    Prompt,
    SupportMessage,
    Upload,
    User,
)
from app.services import media
from app.services.choices import MODEL_IMPROVEMENT, current_choice
from app.services.demo import seed_demo
from tests.support.web import csrf_from_html, html_problems, login, text_of, title_of

BASE_TIME = datetime(2025, 3, 15, 12, 0, tzinfo=UTC)
HX = {"HX-Request": "true"}


# --- building data ----------------------------------------------------------------------------


def image_bytes(width: int = 64, height: int = 48, image_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buffer, image_format)
    return buffer.getvalue()


def add_prompt(
    app: Flask,
    user_id: int,
    text: str,
    *,
    at: datetime = BASE_TIME,
    images: int = 0,
    language: str | None = "en",
) -> tuple[int, list[int]]:
    """A prompt and its generated images (real PNG files in the media store)."""
    with app.app_context():
        prompt = Prompt(user_id=user_id, text=text, language=language, created_at=at)
        db.session.add(prompt)
        db.session.flush()
        image_ids = []
        for number in range(images):
            data = image_bytes(256, 192)
            image = GeneratedImage(
                user_id=user_id,
                prompt_id=prompt.id,
                storage_key=media.store_bytes(data, "png"),
                content_type="image/png",
                byte_size=len(data),
                model="gpt-image-2",
                width=256,
                height=192,
                settings={"steps": 30, "guidance": 7.5, "style": "watercolor"},
                created_at=at + timedelta(seconds=10 + number),
            )
            db.session.add(image)
            db.session.flush()
            image_ids.append(image.id)
        db.session.commit()
        return prompt.id, image_ids


def add_prompts(app: Flask, user_id: int, count: int, *, start: datetime = BASE_TIME) -> list[int]:
    """`count` prompts in one go, several sharing a timestamp (ties are ordered by id)."""
    with app.app_context():
        prompts = [
            Prompt(
                user_id=user_id,
                text=f"prompt number {n:03d}",
                language="en",
                created_at=start + timedelta(minutes=n // 3),
            )
            for n in range(count)
        ]
        db.session.add_all(prompts)
        db.session.commit()
        return [p.id for p in prompts]


def add_upload(app: Flask, user_id: int, filename: str, *, prompt_id: int | None = None) -> int:
    with app.app_context():
        data = image_bytes(300, 200, "JPEG")
        upload = Upload(
            user_id=user_id,
            prompt_id=prompt_id,
            storage_key=media.store_bytes(data, "jpg"),
            original_filename=filename,
            content_type="image/jpeg",
            byte_size=len(data),
            width=300,
            height=200,
            created_at=BASE_TIME,
        )
        db.session.add(upload)
        db.session.commit()
        return upload.id


def add_support_message(app: Flask, user_id: int, subject: str, body: str) -> int:
    with app.app_context():
        message = SupportMessage(
            user_id=user_id,
            ticket="T-1",
            direction="in",
            subject=subject,
            body=body,
            created_at=BASE_TIME,
        )
        db.session.add(message)
        db.session.commit()
        return message.id


def add_card(app: Flask, user_id: int, token: str) -> None:
    with app.app_context():
        db.session.add(
            PaymentMethod(
                user_id=user_id,
                brand="Visa",
                last4="4242",
                exp_month=8,
                exp_year=2031,
                provider="stripe",
                provider_token=token,
                is_default=True,
                created_at=BASE_TIME,
            )
        )
        db.session.commit()


def storage_key(app: Flask, model: Any, item_id: int) -> str:
    with app.app_context():
        key = db.session.scalar(select(model.storage_key).where(model.id == item_id))
        assert key is not None
        return key


def file_exists(app: Flask, key: str) -> bool:
    with app.app_context():
        return media.exists(key)


# --- reading pages ----------------------------------------------------------------------------


def record_ids(response: TestResponse) -> list[int]:
    return [int(n) for n in re.findall(r'<tr id="record-(\d+)"', response.get_data(as_text=True))]


def load_more_href(response: TestResponse) -> str | None:
    match = re.search(r'id="load-more-link" href="([^"]+)"', response.get_data(as_text=True))
    return html.unescape(match.group(1)) if match else None


def assert_clean_page(response: TestResponse) -> None:
    problems, _attrs = html_problems(response.get_data(as_text=True))
    assert not problems, problems


@contextmanager
def counting_queries(app: Flask) -> Iterator[list[str]]:
    statements: list[str] = []
    with app.app_context():
        engine = db.engine

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


@pytest.fixture
def signed_in(client: FlaskClient, user: User) -> FlaskClient:
    login(client, user.email, user.password)
    return client


@pytest.fixture
def other(make_user: Callable[..., User]) -> User:
    return make_user(email="bob@example.com", name="Bob Other")


# --- the overview -----------------------------------------------------------------------------


def test_signed_out_visitors_are_sent_to_sign_in(client: FlaskClient) -> None:
    for path in ("/data", "/data/prompts", "/data/prompts/1/thumbnail"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login?next="), path


def test_overview_has_one_card_per_category_in_data_map_order(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    add_prompt(app, user.id, "a fox", images=2)
    response = signed_in.get("/data")
    assert response.status_code == 200
    assert title_of(response) == "Your data"
    page = response.get_data(as_text=True)
    keys = re.findall(r'<section class="card data-card" id="category-([a-z_]+)"', page)
    assert keys == [c.key for c in get_datamap()]
    assert_clean_page(response)

    prompts = _card(page, "prompts")
    assert "1 record" in prompts
    assert "Create and edit the images you ask for" in prompts
    assert "legal basis: Legitimate interests" in prompts
    assert "unless you delete a prompt sooner" in prompts
    assert re.search(r"Cloud hosting provider\.\s*<span[^>]*>Where: United States\.", prompts)
    assert "Standard Contractual Clauses" in prompts
    assert "You give it to us." in prompts
    assert 'href="/data/prompts"' in prompts
    assert "Delete items" in prompts
    assert "Object to model improvement" in prompts
    assert 'href="/data/prompts#model-improvement"' in prompts
    assert "2 records" in _card(page, "images")

    invoices = _card(page, "invoices")
    assert "0 records" in invoices
    assert re.search(
        r"Tax authorities and courts, only when the law requires it\.\s*<span[^>]*>"
        r"Where: your own country\.",
        invoices,
    )
    assert "Delete items" not in invoices
    assert "Object to model improvement" not in invoices

    cookies = _card(page, "cookies")
    assert "kept in your browser, not on our servers" in cookies
    assert "Cookie settings" in cookies
    assert "/data/cookies" not in page


def _card(page: str, key: str) -> str:
    match = re.search(rf'id="category-{key}".*?</section>', page, re.DOTALL)
    assert match, f"no card for {key}"
    return html.unescape(match.group(0))


def test_overview_cost_does_not_grow_with_the_records_held(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    add_prompts(app, user.id, 3)
    signed_in.get("/data")  # warm: the session's user and the choice are loaded the same way
    with counting_queries(app) as few:
        assert signed_in.get("/data").status_code == 200
    add_prompts(app, user.id, 300)
    with counting_queries(app) as many:
        page = signed_in.get("/data")
    assert "303 records" in text_of(page)
    assert len(many) == len(few)
    # Aggregated: far fewer statements than categories, none of them per category.
    assert len(many) < len(get_datamap().database_categories) // 2, many


def test_overview_links_each_category_of_the_overview_page(signed_in: FlaskClient) -> None:
    page = signed_in.get("/").get_data(as_text=True)
    for category in get_datamap().database_categories:
        assert f'href="/data/{category.key}"' in page


# --- a category's records ---------------------------------------------------------------------


def test_every_category_page_shows_exactly_this_persons_records(
    app: Flask, client: FlaskClient
) -> None:
    with app.app_context():
        seed_demo(echo=lambda *_: None)
    people = {}
    with app.app_context():
        for email in ("demo@example.com", "demo2@example.com"):
            user = db.session.scalar(select(User).where(User.email == email))
            assert user is not None
            people[email] = _holdings(user.id)
    for me, them in (
        ("demo@example.com", "demo2@example.com"),
        ("demo2@example.com", "demo@example.com"),
    ):
        client.get("/")  # a fresh sign-in for each person
        login(client, me, "demo-password")
        mine, theirs = people[me], people[them]
        for category in get_datamap().database_categories:
            response = client.get(f"/data/{category.key}")
            assert response.status_code == 200, category.key
            page = text_of(response)
            expected = mine["ids"][category.key]
            if len(expected) > 1 or category.key not in {
                "account",
                "subscription",
                "marketing_address",
            }:
                assert record_ids(response) == expected[:50], category.key
            for secret in theirs["strings"]:
                assert secret not in page, f"{them}'s {secret!r} on {me}'s {category.key} page"
        for secret in theirs["strings"]:
            assert secret not in text_of(client.get("/data"))
        client.post("/logout", data={"csrf_token": csrf_from_html(response.get_data(as_text=True))})


def _holdings(user_id: int) -> dict[str, Any]:
    """Per category, the person's ids newest first; and strings only they have."""
    ids = {}
    for category in get_datamap().database_categories:
        model = category.model
        time_col = getattr(model, category.time_column)
        ids[category.key] = list(
            db.session.scalars(
                select(model.id)
                .where(getattr(model, category.user_column) == user_id)
                .order_by(time_col.desc(), model.id.desc())
            )
        )
    strings = set(db.session.scalars(select(Prompt.text).where(Prompt.user_id == user_id)))
    strings |= set(
        db.session.scalars(select(DeviceRecord.ip_address).where(DeviceRecord.user_id == user_id))
    )
    strings |= set(db.session.scalars(select(Invoice.number).where(Invoice.user_id == user_id)))
    strings |= set(
        db.session.scalars(select(Upload.original_filename).where(Upload.user_id == user_id))
    )
    user = db.session.get(User, user_id)
    strings |= {user.email, user.name}
    return {"ids": ids, "strings": strings}


def test_hidden_fields_are_named_but_their_values_never_appear(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    token = "pm_SECRETsecretSECRET123456"
    add_card(app, user.id, token)
    with app.app_context():
        password_hash = db.session.scalar(select(User.password_hash).where(User.id == user.id))
    assert password_hash
    pages = ["/data", *(f"/data/{c.key}" for c in get_datamap().database_categories)]
    for path in pages:
        body = signed_in.get(path).get_data(as_text=True)
        assert token not in body, path
        assert password_hash not in body, path
        assert password_hash[-20:] not in body, path

    cards = text_of(signed_in.get("/data/payment_methods"))
    assert "Also held, never shown" in cards
    assert "The payment processor's reference to the card" in cards
    assert "Showing or exporting it would help nobody" in cards
    assert "4242" in cards
    account = text_of(signed_in.get("/data/account"))
    assert "Password" in account
    assert "only as a one-way hash" in account
    assert "ann@example.com" in account


def test_values_are_written_for_people(app: Flask, signed_in: FlaskClient, user: User) -> None:
    add_card(app, user.id, "pm_x")
    add_prompt(app, user.id, "a fox", images=1)
    with app.app_context():
        db.session.get(User, user.id).country = "DE"
        db.session.add(
            Invoice(
                user_id=user.id,
                number="INV-1",
                description="Pro plan",
                amount_cents=1999,
                tax_cents=319,
                currency="EUR",
                status="paid",
                issued_at=BASE_TIME,
            )
        )
        db.session.commit()
    invoices = text_of(signed_in.get("/data/invoices"))
    assert "€19.99" in invoices
    assert "€3.19" in invoices
    assert "Mar 15, 2025" in invoices
    assert "1999" not in invoices
    cards = text_of(signed_in.get("/data/payment_methods"))
    assert re.search(r"Default card.*Yes", cards, re.DOTALL)
    images = signed_in.get("/data/images").get_data(as_text=True)
    assert re.search(r"<dt>Guidance</dt><dd>7.5</dd>", images)
    assert re.search(r"<dt>Style</dt><dd>watercolor</dd>", images)
    account = signed_in.get("/data/account")
    assert "Germany" in text_of(account)
    assert "<table" not in account.get_data(as_text=True)  # one record: a list, not a table
    assert '<dl class="meta record-list">' in account.get_data(as_text=True)


def test_prompts_in_another_language_say_so(app: Flask, signed_in: FlaskClient, user: User) -> None:
    add_prompt(app, user.id, "桜の木の下で本を読む少女", language="ja")
    page = signed_in.get("/data/prompts").get_data(as_text=True)
    assert '<th scope="row" dir="auto" lang="ja">桜の木の下で本を読む少女</th>' in page
    assert "Japanese" in page


def test_pages_of_120_prompts_give_each_once_newest_first(
    app: Flask, signed_in: FlaskClient, user: User, other: User
) -> None:
    ids = add_prompts(app, user.id, 120)
    add_prompts(app, other.id, 10)
    with app.app_context():
        expected = list(
            db.session.scalars(
                select(Prompt.id)
                .where(Prompt.user_id == user.id)
                .order_by(Prompt.created_at.desc(), Prompt.id.desc())
            )
        )
    assert sorted(expected) == sorted(ids)

    seen: list[int] = []
    path: str | None = "/data/prompts"
    pages = 0
    while path:
        response = signed_in.get(path)
        assert response.status_code == 200
        assert "<html" in response.get_data(as_text=True)  # a plain link gives a whole page
        seen += record_ids(response)
        pages += 1
        path = load_more_href(response)
        if path:
            assert path.startswith("/data/prompts?cursor=")
    assert pages == 3
    assert seen == expected
    assert "That is everything." in text_of(response)
    assert "Back to the newest" in text_of(response)


def test_load_more_with_htmx_returns_only_the_rows_and_the_next_control(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    add_prompts(app, user.id, 120)
    first = signed_in.get("/data/prompts")
    assert "HX-Request" in first.headers.get("Vary", "")
    first_ids = record_ids(first)
    more = signed_in.get(load_more_href(first), headers=HX)
    body = more.get_data(as_text=True)
    assert more.status_code == 200
    assert "HX-Request" in more.headers["Vary"]
    assert "<html" not in body and "<main" not in body and "<thead" not in body
    assert body.lstrip().startswith("<tr")
    assert len(record_ids(more)) == 50
    assert not set(record_ids(more)) & set(first_ids)
    # The control replaces itself out of band, pointing at the page after this one.
    assert '<div id="load-more" class="load-more" hx-swap-oob="true">' in body
    third = load_more_href(more)
    assert third and third != load_more_href(first)
    assert "50 more records shown." in body

    last = signed_in.get(third, headers=HX)
    assert len(record_ids(last)) == 20
    assert load_more_href(last) is None
    assert "That is everything." in last.get_data(as_text=True)
    assert "20 more records shown." in last.get_data(as_text=True)


def test_the_load_more_link_carries_the_search(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    add_prompts(app, user.id, 70)
    first = signed_in.get("/data/prompts?q=number&from=2025-03-01&to=2025-03-31")
    href = load_more_href(first)
    assert href and "q=number" in href and "from=2025-03-01" in href and "to=2025-03-31" in href
    assert len(record_ids(signed_in.get(href))) == 20


@pytest.mark.parametrize(
    ("query", "title"),
    [
        ("cursor=abc", "This page link is not valid"),
        ("cursor=", "This page link is not valid"),
        ("cursor=MjAyNS0wMy0zMVQxMDowMDowMHwxMg", "This page link is not valid"),  # naive time
        ("from=2025-13-01", "That is not a date"),
        ("to=yesterday", "That is not a date"),
        ("from=2025-04-01&to=2025-03-31", "The dates are the wrong way round"),
        ("q=" + "x" * 201, "The search is too long"),
    ],
)
def test_malformed_page_requests_get_a_400_page(
    signed_in: FlaskClient, query: str, title: str
) -> None:
    response = signed_in.get(f"/data/prompts?{query}")
    assert response.status_code == 400
    assert title_of(response) == title
    assert "Traceback" not in text_of(response)


@pytest.mark.parametrize(
    "path",
    [
        "/data/nothing",
        "/data/cookies",
        "/data/Prompts",
        "/data/prompts/999999",
        "/data/nothing/1/thumbnail",
        "/data/prompts/1/thumbnail",  # prompts have no file
        "/data/images/999999/thumbnail",
        "/data/images/999999/file",
    ],
)
def test_unknown_categories_and_items_get_a_404_page(signed_in: FlaskClient, path: str) -> None:
    response = signed_in.get(path)
    assert response.status_code == 404
    assert title_of(response) == "Page not found"


def test_search_finds_emoji_and_non_latin_text_and_takes_wildcards_literally(
    app: Flask, signed_in: FlaskClient, user: User, other: User
) -> None:
    texts = [
        "A Fox in the snow 🦊",
        "桜の木の下で本を読む少女",
        "سوق قديم في مراكش",
        "100% cotton shirt",
        "100 percent wool",
        "under_score",
        "underXscore",
    ]
    ids = {text: add_prompt(app, user.id, text)[0] for text in texts}
    add_prompt(app, other.id, "Bob's fox 🦊")

    def found(q: str) -> set[int]:
        response = signed_in.get("/data/prompts", query_string={"q": q})
        assert response.status_code == 200
        return set(record_ids(response))

    assert found("🦊") == {ids["A Fox in the snow 🦊"]}
    assert found("fox") == {ids["A Fox in the snow 🦊"]}  # case does not matter
    assert found("FOX IN") == {ids["A Fox in the snow 🦊"]}
    assert found("本を読む") == {ids["桜の木の下で本を読む少女"]}
    assert found("مراكش") == {ids["سوق قديم في مراكش"]}
    assert found("100%") == {ids["100% cotton shirt"]}
    assert found("%") == {ids["100% cotton shirt"]}
    assert found("r_s") == {ids["under_score"]}
    assert found("nothing like this") == set()
    empty = text_of(signed_in.get("/data/prompts?q=nothing+like+this"))
    assert "Nothing matches." in empty


def test_the_date_filter_includes_both_days(app: Flask, signed_in: FlaskClient, user: User) -> None:
    before = add_prompt(app, user.id, "before", at=datetime(2025, 2, 28, 23, 59, 59, tzinfo=UTC))
    first = add_prompt(app, user.id, "first", at=datetime(2025, 3, 1, 0, 0, tzinfo=UTC))
    last = add_prompt(app, user.id, "last", at=datetime(2025, 3, 31, 23, 59, 59, tzinfo=UTC))
    after = add_prompt(app, user.id, "after", at=datetime(2025, 4, 1, 0, 0, tzinfo=UTC))
    response = signed_in.get("/data/prompts?from=2025-03-01&to=2025-03-31")
    assert record_ids(response) == [last[0], first[0]]
    assert record_ids(signed_in.get("/data/prompts?from=2025-04-01")) == [after[0]]
    assert record_ids(signed_in.get("/data/prompts?to=2025-02-28")) == [before[0]]
    page = response.get_data(as_text=True)
    assert 'value="2025-03-01"' in page and 'value="2025-03-31"' in page


def test_prompt_rows_show_their_images_without_a_query_per_prompt(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    for n in range(3):
        add_prompt(app, user.id, f"small {n}", images=1)
    signed_in.get("/data/prompts")
    with counting_queries(app) as few:
        signed_in.get("/data/prompts")
    for n in range(40):
        add_prompt(app, user.id, f"big {n}", images=2, at=BASE_TIME + timedelta(hours=n))
    with counting_queries(app) as many:
        page = signed_in.get("/data/prompts").get_data(as_text=True)
    assert len(many) == len(few)
    assert page.count('<img src="/data/images/') == 2 * 40 + 3
    assert 'alt="big 39" width="160" height="120"' in page


def test_thumbnails_and_files_are_served_only_to_their_owner(
    app: Flask, signed_in: FlaskClient, user: User, other: User
) -> None:
    _prompt, (image_id,) = add_prompt(app, user.id, "a fox", images=1)
    upload_id = add_upload(app, user.id, "holiday.jpg")
    _theirs, (their_image,) = add_prompt(app, other.id, "bob", images=1)
    their_upload = add_upload(app, other.id, "bob.jpg")

    response = signed_in.get(f"/data/images/{image_id}/thumbnail")
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    with Image.open(io.BytesIO(response.data)) as thumbnail:
        assert thumbnail.size == (160, 120)

    upload = signed_in.get(f"/data/uploads/{upload_id}/thumbnail")
    assert upload.status_code == 200
    assert upload.mimetype == "image/jpeg"
    assert upload.headers["Cache-Control"] == "private, no-store"

    original = signed_in.get(f"/data/images/{image_id}/file")
    assert original.status_code == 200
    assert original.mimetype == "image/png"
    assert original.headers["Cache-Control"] == "private, no-store"
    with app.app_context():
        key = storage_key(app, GeneratedImage, image_id)
        assert original.data == media.path_for(key).read_bytes()
    original.close()
    upload_file = signed_in.get(f"/data/uploads/{upload_id}/file")
    assert "holiday.jpg" in upload_file.headers["Content-Disposition"]
    upload_file.close()

    for path in (
        f"/data/images/{their_image}/thumbnail",
        f"/data/images/{their_image}/file",
        f"/data/uploads/{their_upload}/thumbnail",
        f"/data/uploads/{their_upload}/file",
    ):
        assert signed_in.get(path).status_code == 404, path

    images_page = signed_in.get("/data/images").get_data(as_text=True)
    assert (
        f'<img src="/data/images/{image_id}/thumbnail" alt="a fox" width="160" height="120"'
        in images_page
    )
    uploads_page = signed_in.get("/data/uploads").get_data(as_text=True)
    assert 'alt="holiday.jpg" width="160" height="107"' in uploads_page


def test_category_pages_are_safe_to_show(app: Flask, signed_in: FlaskClient, user: User) -> None:
    add_prompt(app, user.id, "a fox", images=1)
    add_upload(app, user.id, "holiday.jpg")
    add_support_message(app, user.id, "Hello", "A question")
    for category in get_datamap().database_categories:
        response = signed_in.get(f"/data/{category.key}")
        assert response.headers["Cache-Control"] == "private, no-store"
        assert_clean_page(response)


# --- the model-improvement switch -------------------------------------------------------------


def test_the_switch_is_on_the_prompts_page_and_its_state_on_the_images_page(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    prompts = signed_in.get("/data/prompts").get_data(as_text=True)
    assert 'id="model-improvement"' in prompts
    assert 'role="switch" aria-checked="true" name="allowed" value="0"' in prompts
    assert "Use my prompts and images to improve models" in prompts
    assert "You have not changed this." in prompts
    images = text_of(signed_in.get("/data/images"))
    assert "Your prompts and images may be used to improve models." in images
    assert 'href="/data/prompts#model-improvement"' in signed_in.get("/data/images").get_data(
        as_text=True
    )
    assert "improve models" not in text_of(signed_in.get("/data/invoices"))


def test_switching_off_is_one_click_recorded_with_time_and_source(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    token = csrf_from_html(signed_in.get("/data/prompts").get_data(as_text=True))
    response = signed_in.post("/data/model-improvement", data={"csrf_token": token, "allowed": "0"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/data/prompts#model-improvement"
    with app.app_context():
        choice = current_choice(user.id, MODEL_IMPROVEMENT)
        assert (choice.allowed, choice.source) == (False, "page")
        assert choice.since is not None
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "choice.recorded"))
        assert event is not None and event.subject_user_id == user.id
    page = signed_in.get("/data/prompts")
    body = page.get_data(as_text=True)
    assert "will no longer be used to improve models" in text_of(page)  # the flash
    assert 'role="switch" aria-checked="false" name="allowed" value="1"' in body
    assert "Last changed on" in text_of(page) and "on this site" in text_of(page)
    assert "Your prompts and images are not used to improve models." in text_of(
        signed_in.get("/data/images")
    )
    assert "(now off)" in text_of(signed_in.get("/data"))


def test_the_switch_swaps_itself_in_place_with_htmx(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    token = csrf_from_html(signed_in.get("/data/prompts").get_data(as_text=True))
    response = signed_in.post(
        "/data/model-improvement", data={"csrf_token": token, "allowed": "0"}, headers=HX
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in body
    assert body.lstrip().startswith('<div id="model-improvement-control"')
    assert 'aria-checked="false"' in body
    assert 'id="data-live" hx-swap-oob="innerHTML"' in body
    again = signed_in.post(
        "/data/model-improvement", data={"csrf_token": token, "allowed": "1"}, headers=HX
    )
    assert 'aria-checked="true"' in again.get_data(as_text=True)
    with app.app_context():
        assert current_choice(user.id, MODEL_IMPROVEMENT).allowed is True
        assert db.session.scalar(select(func.count()).select_from(ProcessingChoice)) == 2


@pytest.mark.parametrize("value", ["", "2", "yes", "off"])
def test_the_switch_refuses_anything_but_on_or_off(
    app: Flask, signed_in: FlaskClient, user: User, value: str
) -> None:
    token = csrf_from_html(signed_in.get("/data/prompts").get_data(as_text=True))
    response = signed_in.post(
        "/data/model-improvement", data={"csrf_token": token, "allowed": value}
    )
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ProcessingChoice)) == 0


def test_the_switch_needs_the_forms_token(app: Flask, signed_in: FlaskClient) -> None:
    assert signed_in.post("/data/model-improvement", data={"allowed": "0"}).status_code == 400
    assert signed_in.get("/data/model-improvement").status_code == 404


def test_a_missing_or_unreadable_file_is_not_found_rather_than_an_error(
    app: Flask, signed_in: FlaskClient, user: User
) -> None:
    _prompt, (broken, gone) = add_prompt(app, user.id, "a fox", images=2)
    with app.app_context():
        media.path_for(storage_key(app, GeneratedImage, broken)).write_bytes(b"not an image")
        media.delete(storage_key(app, GeneratedImage, gone))
    assert signed_in.get(f"/data/images/{broken}/thumbnail").status_code == 404
    assert signed_in.get(f"/data/images/{gone}/thumbnail").status_code == 404
    assert signed_in.get(f"/data/images/{gone}/file").status_code == 404
