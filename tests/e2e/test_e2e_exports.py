"""Download your data in a real browser: ask, watch it get ready, download after the password.

Uses the second demo account (so the main demo user's numbers stay as the other tests expect),
in English, put back afterwards. Requests are only recorded while a test runs (jobs mode
`queue`), and the test runs the build itself once the page shows the export waiting: that way
the page is certainly seen polling before the export is ready, whatever the machine's speed.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.axe import assert_no_axe_violations

pytestmark = pytest.mark.e2e

DEMO2_EMAIL = "demo2@example.com"
DEMO_PASSWORD = "demo-password"


def _settings(live_server, monkeypatch: pytest.MonkeyPatch, **changes: object) -> None:
    """Change some settings of the running app for this test (restored by monkeypatch)."""
    settings = live_server.app.config["SETTINGS"]
    monkeypatch.setitem(
        live_server.app.config, "SETTINGS", dataclasses.replace(settings, **changes)
    )


@pytest.fixture
def demo2(live_server, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """The second demo user in English, with builds recorded but not run until the test says."""
    from app.extensions import db
    from app.models import Export, User

    user_id = live_server.user_id(DEMO2_EMAIL)
    with live_server.app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None
        saved_locale, user.locale = user.locale, "en"
        db.session.commit()
        db.session.remove()
    _settings(live_server, monkeypatch, jobs_mode="queue")
    yield user_id
    with live_server.app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None
        user.locale = saved_locale
        # A test that stopped half way must not leave an export "in progress" for the next.
        for export in db.session.query(Export).filter(
            Export.user_id == user_id, Export.status.in_(Export.IN_PROGRESS)
        ):
            export.status = Export.FAILED
        db.session.commit()
        db.session.remove()


def _build_waiting_export(live_server, user_id: int) -> int:
    """Run the recorded build job of the person's waiting export, as a worker would."""
    from sqlalchemy import select

    from app.extensions import db
    from app.jobs import run_job_in_app
    from app.models import Export, Job
    from app.services.exports import BUILD_JOB

    with live_server.app.app_context():
        export_id = db.session.scalar(
            select(Export.id).where(Export.user_id == user_id, Export.status == Export.QUEUED)
        )
        assert export_id is not None, "no export is waiting"
        job_id = db.session.scalar(
            select(Job.id).where(
                Job.kind == BUILD_JOB, Job.payload["export_id"].as_integer() == export_id
            )
        )
        db.session.remove()
    assert job_id is not None
    run_job_in_app(live_server.app, job_id)
    return export_id


def _check_archive(data: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        assert {"manifest.json", "index.html"} <= names
        manifest = json.loads(archive.read("manifest.json"))
    listed = {entry["path"] for entry in manifest["files"]}
    assert "index.html" in listed
    assert any(name.startswith("media/") for name in names)


def _estimate(page: Page):
    return page.locator("#export-estimate .estimate-summary")


def test_ask_watch_it_get_ready_and_download_after_the_password(
    visit, live_server, demo2, monkeypatch
):
    visitor = visit()
    page = visitor.page
    visitor.sign_in(DEMO2_EMAIL, DEMO_PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Download").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Download your data")
    expect(page.get_by_label("All my data")).to_be_checked()
    expect(_estimate(page)).to_contain_text("All your data:")
    assert_no_axe_violations(page)

    # Choosing updates what the archive will hold, in place.
    page.get_by_label("Only the kinds of data I choose").check()
    page.get_by_label("Prompts", exact=True).check()
    expect(_estimate(page)).to_contain_text("1 kind of data:")
    page.get_by_label("Generated images").check()
    expect(_estimate(page)).to_contain_text("2 kinds of data:")
    page.get_by_label("All my data").check()
    expect(_estimate(page)).to_contain_text("All your data:")

    with page.expect_navigation():
        page.get_by_role("button", name="Ask for this export").click()
    expect(page.get_by_role("status").first).to_contain_text(
        "Your export is being prepared. We will email you when it is ready."
    )
    waiting = page.locator(".export-list > li").first
    expect(waiting).to_contain_text("Waiting to start.")
    assert_no_axe_violations(page)
    page.evaluate("() => { window.stillTheSamePage = true }")

    _build_waiting_export(live_server, demo2)
    ready = page.locator(".export-list > li").first
    expect(ready).to_contain_text("Ready to download.")
    expect(page.locator("#export-announcer")).to_have_text("Your export is ready to download.")
    assert page.evaluate("() => window.stillTheSamePage") is True, "htmx, not a reload"
    assert ready.get_attribute("hx-trigger") is None  # polling stopped
    assert_no_axe_violations(page)
    visitor.watch.assert_clean()

    # Ten minutes later: the download asks for the password first, then starts by itself.
    minutes = live_server.app.config["SETTINGS"].fresh_login_minutes
    _settings(live_server, monkeypatch, fresh_login_minutes=0)
    with page.expect_navigation():
        ready.get_by_role("link", name=re.compile("^Download")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm it is you")
    _settings(live_server, monkeypatch, fresh_login_minutes=minutes)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    with page.expect_download() as download_info:
        page.get_by_label("Password").press("Enter")
    download = download_info.value
    assert re.fullmatch(r"privacy-export-\d{4}-\d{2}-\d{2}\.zip", download.suggested_filename)
    path = download.path()
    assert path is not None
    _check_archive(path.read_bytes())
    visitor.watch.assert_clean()


def test_the_same_without_javascript(visit, live_server, demo2):
    visitor = visit(java_script_enabled=False)
    page = visitor.page
    visitor.sign_in(DEMO2_EMAIL, DEMO_PASSWORD)
    visitor.open("/exports")
    page.get_by_label("Only the kinds of data I choose").check()
    page.get_by_label("Prompts", exact=True).check()
    page.get_by_label("Generated images").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Show what it will contain").click()
    expect(_estimate(page)).to_contain_text("2 kinds of data:")
    expect(page.locator('#export-estimate tr[data-category="prompts"]')).to_be_visible()

    with page.expect_navigation():
        page.get_by_role("button", name="Ask for this export").click()
    item = page.locator(".export-list > li").first
    expect(item).to_contain_text("Waiting to start.")
    expect(item).to_contain_text("Prompts, Generated images")

    _build_waiting_export(live_server, demo2)
    with page.expect_navigation():
        item.get_by_role("link", name="Refresh to see progress").click()
    item = page.locator(".export-list > li").first
    expect(item).to_contain_text("Ready to download.")
    with page.expect_download() as download_info:
        item.get_by_role("link", name=re.compile("^Download")).click()
    path = download_info.value.path()
    assert path is not None
    _check_archive(path.read_bytes())
    visitor.watch.assert_clean()


def test_an_expired_export_page_has_no_violations(visit, live_server, demo2):
    from app.extensions import db
    from app.models import Export

    with live_server.app.app_context():
        export = Export(
            user_id=demo2,
            status=Export.EXPIRED,
            categories=["prompts"],
            created_at=datetime(2025, 3, 1, 9, 0, tzinfo=UTC),
            expires_at=datetime(2025, 3, 8, 9, 5, tzinfo=UTC),
        )
        db.session.add(export)
        db.session.commit()
        export_id = export.id
        db.session.remove()
    visitor = visit()
    visitor.sign_in(DEMO2_EMAIL, DEMO_PASSWORD)
    visitor.open(f"/exports/{export_id}/download", 410)
    page = visitor.page
    expect(page.get_by_role("heading", level=1)).to_have_text("This export has expired")
    assert_no_axe_violations(page)
    page.get_by_role("link", name="Ask for a new export").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Download your data")
    expect(page.locator(f"#export-{export_id}")).to_contain_text("It was deleted on")
    assert_no_axe_violations(page)
    visitor.watch.assert_clean()
