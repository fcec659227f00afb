"""`seed_demo`: the demo accounts, their data and files, idempotency, and the heavy account.

Self-contained on purpose (its own app, database and data folder; no conftest fixtures). The
accounts are seeded once per backend — SQLite always, PostgreSQL when one answers — and the
tests read what that run produced. Tests that change the data put it back as they found it
and come last.
"""

from __future__ import annotations

import ipaddress
import logging.config
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from flask import Flask
from PIL import Image
from sqlalchemy import create_engine, delete, func, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from app import create_app
from app.config import normalise_database_url
from app.extensions import db
from app.migrations_cli import upgrade_database
from app.models import (
    BillingAddress,
    DeviceRecord,
    GeneratedImage,
    Invoice,
    PaymentMethod,
    Prompt,
    SessionActivity,
    Subscription,
    SupportMessage,
    Upload,
    UsageEvent,
    User,
    utcnow,
)
from app.services import demo, media
from app.services.auth import find_user_by_email, verify_password

HEAVY_N = 300
PLATFORM_MODELS: tuple[Any, ...] = (
    Prompt,
    GeneratedImage,
    Upload,
    UsageEvent,
    SessionActivity,
    DeviceRecord,
    PaymentMethod,
    BillingAddress,
    Invoice,
    Subscription,
    SupportMessage,
)
PASSWORDS = {
    "demo@example.com": "demo-password",
    "demo2@example.com": "demo-password",
    "staff@example.com": "staff-password",
    "heavy@example.com": "demo-password",
}
DOCUMENTATION_NETWORKS = [
    ipaddress.ip_network(network)
    for network in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
]


# --- harness ----------------------------------------------------------------------------------


@dataclass
class Seeded:
    app: Flask
    data_dir: Path
    report: str
    echoed: list[str] = field(default_factory=list)


def _build_app(data_dir: Path, database_url: str) -> Flask:
    app = create_app({"data_dir": data_dir, "database_url": database_url, "jobs_mode": "inline"})
    # Alembic's env.py calls logging.config.fileConfig, which in-process would disable every
    # existing logger and replace pytest's log handlers for the rest of the run.
    with app.app_context(), mock.patch.object(logging.config, "fileConfig", lambda *_a, **_k: 0):
        upgrade_database()
        db.session.remove()
    return app


def _dispose(app: Flask) -> None:
    with app.app_context():
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()


def _postgres_admin(sql: str) -> str:
    """Run CREATE/DROP DATABASE on the local server; returns the server URL."""
    url = normalise_database_url(
        os.environ.get("TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    engine = create_engine(
        url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 2}, poolclass=NullPool
    )
    try:
        with engine.connect() as connection:
            connection.execute(text(sql))
    finally:
        engine.dispose()
    return url


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ],
)
def database_for_seed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('demo-seed-sqlite')}/seed.sqlite3"
        return
    name = f"pc_test_seed_{secrets.token_hex(6)}"  # a throwaway database, dropped below
    try:
        server = _postgres_admin(f'CREATE DATABASE "{name}"')
    except OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable ({str(exc).splitlines()[0]})")
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def seeded(database_for_seed: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    data_dir = tmp_path_factory.mktemp("demo-seed-data")
    app = _build_app(data_dir, database_for_seed)
    try:
        echoed: list[str] = []
        with app.app_context():
            report = demo.seed_demo(heavy=HEAVY_N, echo=echoed.append)
        yield Seeded(app, data_dir, report, echoed)
    finally:
        _dispose(app)


@pytest.fixture
def ctx(seeded: Seeded) -> Iterator[Seeded]:
    """The seeded app with an app context (and so a fresh database session) for one test."""
    with seeded.app.app_context():
        yield seeded
        db.session.remove()


def account(email: str) -> User:
    user = find_user_by_email(email)
    assert user is not None, f"{email} was not created"
    return user


def rows(model: Any, user: User) -> list[Any]:
    return list(db.session.scalars(select(model).where(model.user_id == user.id)))


def count(model: Any, user: User) -> int:
    query = select(func.count()).select_from(model).where(model.user_id == user.id)
    return db.session.scalar(query) or 0


def snapshot(data_dir: Path) -> tuple[dict[str, int], list[str]]:
    """Rows per table and the media files on disk: what a no-op run must leave unchanged."""
    tables = {
        table.name: db.session.scalar(select(func.count()).select_from(table)) or 0
        for table in db.metadata.sorted_tables
    }
    files = sorted(str(path) for path in (data_dir / "media").rglob("*") if path.is_file())
    return tables, files


def open_image(key: str) -> Image.Image:
    with media.open_stream(key) as stream:
        image = Image.open(stream)
        image.load()
    return image


# --- accounts ---------------------------------------------------------------------------------


def test_report_names_every_account_created(seeded: Seeded) -> None:
    for email in PASSWORDS:
        assert f"created {email}" in seeded.report
    assert any("heavy@example.com" in line for line in seeded.echoed)


def test_accounts_sign_in_with_the_published_passwords(ctx: Seeded) -> None:
    for email, password in PASSWORDS.items():
        user = account(email)
        assert verify_password(user, password)
        assert not verify_password(user, "wrong-password")
        assert user.password_hash != password


def test_only_staff_is_staff_and_staff_has_no_platform_data(ctx: Seeded) -> None:
    staff = account("staff@example.com")
    assert staff.is_staff
    assert {model.__tablename__: count(model, staff) for model in PLATFORM_MODELS} == {
        model.__tablename__: 0 for model in PLATFORM_MODELS
    }
    for email in ("demo@example.com", "demo2@example.com", "heavy@example.com"):
        assert not account(email).is_staff


def test_profiles_match_the_design(ctx: Seeded) -> None:
    main, second = account("demo@example.com"), account("demo2@example.com")
    assert (main.name, main.locale, main.country) == ("Alex Morgan", "en", "DE")
    assert (second.locale, second.country, second.region) == ("de", "US", "CA")
    assert second.name != main.name


# --- the main demo account --------------------------------------------------------------------


def test_main_demo_account_has_every_kind_of_data(ctx: Seeded) -> None:
    user = account("demo@example.com")
    counts = {model.__tablename__: count(model, user) for model in PLATFORM_MODELS}

    assert counts["prompts"] >= 200
    assert counts["generated_images"] >= 50
    assert counts["uploads"] == 10
    assert counts["payment_methods"] == 2
    assert counts["billing_addresses"] == 1
    assert counts["subscriptions"] == 1
    assert counts["invoices"] == 12
    assert counts["session_activity"] >= 52
    assert counts["usage_events"] >= counts["generated_images"]
    assert 52 <= counts["device_records"] <= 3 * 53


def test_prompts_span_a_year_in_many_languages_with_emoji(ctx: Seeded) -> None:
    prompts = rows(Prompt, account("demo@example.com"))
    now = utcnow()

    assert {"en", "de", "fr", "es", "ja", "ar", "zh"} <= {p.language for p in prompts}
    assert any(ord(char) >= 0x1F300 for p in prompts for char in p.text)  # emoji
    assert any(p.negative_text for p in prompts)
    assert any(p.negative_text is None for p in prompts)
    times = [p.created_at for p in prompts]
    assert all(t.tzinfo is not None and t.utcoffset() == timedelta(0) for t in times)
    assert now - timedelta(days=366) <= min(times) and max(times) <= now
    assert max(times) - min(times) > timedelta(days=300)
    assert len({t.strftime("%Y-%m") for t in times}) >= 11  # spread, not bunched


def test_device_records_cover_the_year_from_documentation_addresses(ctx: Seeded) -> None:
    records = rows(DeviceRecord, account("demo@example.com"))
    addresses = [ipaddress.ip_address(record.ip_address) for record in records]

    assert all(any(a in net for net in DOCUMENTATION_NETWORKS) for a in addresses)
    assert {a.version for a in addresses} == {4, 6}
    assert 2 <= len({record.device_identifier for record in records}) <= 4
    assert len({record.browser for record in records}) >= 2
    weeks = {record.accessed_at.isocalendar()[:2] for record in records}
    assert len(weeks) >= 35


def test_usage_events_name_features_and_credits(ctx: Seeded) -> None:
    events = rows(UsageEvent, account("demo@example.com"))
    assert {"text_to_image", "image_edit"} <= {event.feature for event in events}
    assert {event.feature for event in events} <= {
        "text_to_image",
        "image_edit",
        "upscale",
        "variation",
    }
    assert all(event.credits_used > 0 for event in events)


def test_billing_is_complete_and_consistent(ctx: Seeded) -> None:
    user = account("demo@example.com")
    subscription = rows(Subscription, user)[0]
    assert subscription.status == "active"
    assert subscription.credit_balance > 0
    assert subscription.renews_at is not None and subscription.renews_at > utcnow()

    invoices = sorted(rows(Invoice, user), key=lambda invoice: invoice.issued_at)
    assert {invoice.currency for invoice in invoices} == {"EUR"}
    assert {invoice.status for invoice in invoices} == {"paid"}
    assert {invoice.payment_method_label for invoice in invoices} == {"Visa •••• 4242"}
    assert all(0 < invoice.tax_cents < invoice.amount_cents for invoice in invoices)
    months = [invoice.issued_at.strftime("%Y-%m") for invoice in invoices]
    assert len(set(months)) == 12  # one a month

    address = rows(BillingAddress, user)[0]
    assert (address.name, address.country) == ("Alex Morgan", "DE")


def test_invoice_numbers_are_unique_across_accounts(ctx: Seeded) -> None:
    numbers = list(db.session.scalars(select(Invoice.number)))
    assert len(numbers) == len(set(numbers)) >= 12 + 6 + 12


def test_no_payment_method_holds_more_than_the_last_four_digits(ctx: Seeded) -> None:
    methods = list(db.session.scalars(select(PaymentMethod)))
    assert methods
    for method in methods:
        assert re.fullmatch(r"\d{4}", method.last4)
        assert method.provider == "stripe"
        assert method.provider_token.startswith("pm_")
        for value in (method.brand, method.provider, method.provider_token):
            assert not re.search(r"\d{5,}", value), value
    labels = db.session.scalars(select(Invoice.payment_method_label))
    assert all(not re.search(r"\d{5,}", label or "") for label in labels)


def test_support_threads_have_both_directions(ctx: Seeded) -> None:
    messages = rows(SupportMessage, account("demo@example.com"))
    tickets: dict[str, set[str]] = {}
    for message in messages:
        tickets.setdefault(message.ticket, set()).add(message.direction)
    assert len(tickets) >= 2
    assert all(directions == {"in", "out"} for directions in tickets.values())


# --- files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("email", ["demo@example.com", "demo2@example.com", "heavy@example.com"])
def test_generated_images_are_real_pngs_linked_to_own_prompts(ctx: Seeded, email: str) -> None:
    user = account(email)
    own_prompts = {prompt.id for prompt in rows(Prompt, user)}
    images = rows(GeneratedImage, user)
    assert images

    for image in images:
        assert image.prompt_id in own_prompts
        assert media.path_for(image.storage_key).stat().st_size == image.byte_size
        picture = open_image(image.storage_key)
        assert picture.format == "PNG"
        assert picture.size == (image.width, image.height)
        assert image.content_type == "image/png"
        assert {"steps", "seed", "guidance", "style", "sampler"} <= set(image.settings)
        assert image.model
    assert len({image.storage_key for image in images}) == len(images)


def test_uploads_are_real_jpegs_with_original_names(ctx: Seeded) -> None:
    user = account("demo@example.com")
    uploads = rows(Upload, user)
    own_prompts = {prompt.id for prompt in rows(Prompt, user)}

    assert "IMG_2041.jpg" in {upload.original_filename for upload in uploads}
    for upload in uploads:
        assert upload.prompt_id is None or upload.prompt_id in own_prompts
        assert media.path_for(upload.storage_key).stat().st_size == upload.byte_size
        picture = open_image(upload.storage_key)
        assert picture.format == "JPEG"
        assert picture.size == (upload.width, upload.height)
        assert upload.content_type == "image/jpeg"
        assert upload.byte_size < 20_000  # small files keep the demo light


def test_heavy_image_files_have_distinct_bytes(ctx: Seeded) -> None:
    images = rows(GeneratedImage, account("heavy@example.com"))
    contents = {media.path_for(image.storage_key).read_bytes() for image in images}
    assert len(contents) == len(images)


def test_heavy_images_weigh_what_generated_images_do(ctx: Seeded) -> None:
    """Benchmarks on the heavy account copy realistic bytes, not 2 KB gradients."""
    images = rows(GeneratedImage, account("heavy@example.com"))
    sizes = [media.path_for(image.storage_key).stat().st_size for image in images]
    assert min(sizes) > 100 * 1024
    assert all(image.byte_size == size for image, size in zip(images, sizes, strict=True))
    assert all(open_image(image.storage_key).format == "PNG" for image in images)
    # The ordinary demo accounts keep small files: they are seeded in every test run.
    demo_images = rows(GeneratedImage, account("demo@example.com"))
    assert max(image.byte_size for image in demo_images) < 20 * 1024


# --- the second account and the heavy one -----------------------------------------------------


def test_second_account_has_its_own_smaller_and_different_data(ctx: Seeded) -> None:
    main, second = account("demo@example.com"), account("demo2@example.com")
    assert count(Prompt, second) == 40
    assert count(GeneratedImage, second) == 10
    assert count(Upload, second) == 3
    assert 0 < count(Invoice, second) < count(Invoice, main)

    def values(model: Any, column: str, user: User) -> set[Any]:
        return {getattr(row, column) for row in rows(model, user)}

    for model, column in [
        (Prompt, "text"),
        (GeneratedImage, "storage_key"),
        (Upload, "storage_key"),
        (Upload, "original_filename"),
        (Invoice, "number"),
        (DeviceRecord, "ip_address"),
        (DeviceRecord, "device_identifier"),
        (PaymentMethod, "provider_token"),
        (SupportMessage, "ticket"),
    ]:
        theirs, mine = values(model, column, second), values(model, column, main)
        assert theirs and mine, (model.__tablename__, column)
        assert not theirs & mine, (model.__tablename__, column)


def test_heavy_account_scales_with_n(ctx: Seeded) -> None:
    heavy = account("heavy@example.com")
    assert count(Prompt, heavy) == HEAVY_N
    assert count(GeneratedImage, heavy) == HEAVY_N // 10
    assert count(Subscription, heavy) == 1
    assert count(DeviceRecord, heavy) > 0
    assert count(UsageEvent, heavy) >= HEAVY_N // 10


# --- running again ----------------------------------------------------------------------------


def test_a_second_run_changes_nothing_and_says_so(ctx: Seeded) -> None:
    before = snapshot(ctx.data_dir)

    report = demo.seed_demo(heavy=HEAVY_N, echo=lambda _line: None)

    assert "nothing changed" in report
    assert "created" not in report
    db.session.remove()
    assert snapshot(ctx.data_dir) == before


def test_the_cli_command_is_idempotent_too(ctx: Seeded) -> None:
    before = snapshot(ctx.data_dir)
    db.session.remove()

    result = ctx.app.test_cli_runner().invoke(args=["demo", "seed", "--heavy", str(HEAVY_N)])

    assert result.exit_code == 0, result.output
    assert "nothing changed" in result.output
    assert snapshot(ctx.data_dir) == before


def test_an_incomplete_heavy_account_is_removed_and_rebuilt(ctx: Seeded) -> None:
    heavy = account("heavy@example.com")
    old_keys = [image.storage_key for image in rows(GeneratedImage, heavy)]
    # What a crash between two batches leaves: everything but the final subscription row.
    db.session.execute(delete(Subscription).where(Subscription.user_id == heavy.id))
    db.session.commit()
    echoed: list[str] = []

    report = demo.seed_demo(heavy=HEAVY_N, echo=echoed.append)

    assert "created heavy@example.com" in report
    assert any("incomplete" in line for line in echoed)
    assert not any(media.exists(key) for key in old_keys)
    rebuilt = account("heavy@example.com")
    assert count(Prompt, rebuilt) == HEAVY_N
    assert count(GeneratedImage, rebuilt) == HEAVY_N // 10
    assert count(Subscription, rebuilt) == 1
    assert all(media.exists(image.storage_key) for image in rows(GeneratedImage, rebuilt))


def test_an_erased_demo_account_is_seeded_again_with_new_invoice_numbers(ctx: Seeded) -> None:
    second = account("demo2@example.com")
    old_numbers = {invoice.number for invoice in rows(Invoice, second)}
    for model in (GeneratedImage, Upload):
        for item in rows(model, second):
            media.delete(item.storage_key)
    # Erasure keeps invoices (tax law) without the account, so their numbers stay taken.
    db.session.execute(update(Invoice).where(Invoice.user_id == second.id).values(user_id=None))
    db.session.execute(delete(User).where(User.id == second.id))
    db.session.commit()

    report = demo.seed_demo(echo=lambda _line: None)

    assert "created demo2@example.com" in report
    again = account("demo2@example.com")
    new_numbers = {invoice.number for invoice in rows(Invoice, again)}
    assert len(new_numbers) == len(old_numbers)
    assert not new_numbers & old_numbers
    assert count(Prompt, again) == 40


# --- failure ----------------------------------------------------------------------------------


def test_a_crash_leaves_no_partial_account_and_no_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _build_app(tmp_path, f"sqlite:///{tmp_path}/crash.sqlite3")

    def fail(_builder: object) -> None:
        raise RuntimeError("simulated crash while building the account")

    monkeypatch.setattr(demo._AccountBuilder, "_add_support", fail)
    try:
        with app.app_context():
            with pytest.raises(RuntimeError, match="simulated crash"):
                demo.seed_demo(echo=lambda _line: None)
            db.session.remove()
            assert db.session.scalar(select(func.count()).select_from(User)) == 0
            assert db.session.scalar(select(func.count()).select_from(Prompt)) == 0
            assert [p for p in (tmp_path / "media").rglob("*") if p.is_file()] == []
    finally:
        _dispose(app)


def test_timestamps_are_timezone_aware_utc(ctx: Seeded) -> None:
    user = account("demo@example.com")
    for model, column in [
        (GeneratedImage, "created_at"),
        (Upload, "created_at"),
        (SessionActivity, "started_at"),
        (Invoice, "issued_at"),
        (SupportMessage, "created_at"),
    ]:
        for row in rows(model, user):
            assert getattr(row, column).tzinfo is not None
            assert getattr(row, column).utcoffset() == UTC.utcoffset(None)
