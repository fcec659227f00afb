"""Building export archives: complete, only the person's own data, verified, crash-safe, expiring.

The demo seed gives realistic variety (every category, prompts in many scripts, image files on
disk, two people). Each test reads the archive the way the person would: as a ZIP file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import zipfile
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.datamap import Category, get_datamap
from app.extensions import db
from app.jobs import RQ_QUEUE_NAME, run_due_jobs
from app.models import (
    AuditEvent,
    EmailChange,
    Export,
    GeneratedImage,
    Job,
    OutboundMail,
    PaymentMethod,
    ProcessingChoice,
    Prompt,
    Upload,
    User,
    utcnow,
)
from app.services import archive, archive_writer, exports, media
from app.services.archive import category_conditions, json_value
from app.services.demo import seed_demo
from tests.support.rq_worker import run_rq_worker_burst

DEMO = "demo@example.com"
DEMO2 = "demo2@example.com"
NONCE_HASH = "5eed" * 16


# --- helpers ----------------------------------------------------------------------------------


def _user_id(email: str) -> int:
    user_id = db.session.scalar(select(User.id).where(User.email == email))
    assert user_id is not None
    return user_id


def _seed(app: Flask) -> tuple[int, int]:
    """The demo accounts, plus rows in the categories the seed leaves empty."""
    with app.app_context():
        seed_demo(echo=lambda *_: None)
        demo, demo2 = _user_id(DEMO), _user_id(DEMO2)
        now = utcnow()
        db.session.add_all(
            [
                ProcessingChoice(
                    user_id=demo, purpose="improve_models", allowed=False, source="page"
                ),
                EmailChange(
                    user_id=demo,
                    old_email=DEMO,
                    new_email="alex.morgan@example.org",
                    nonce_hash=NONCE_HASH,
                    expires_at=now + timedelta(days=1),
                ),
            ]
        )
        db.session.commit()
    return demo, demo2


def _request(user_id: int, categories: list[str] | None = None, **dates: date | None) -> int:
    export = exports.request_export(
        user_id, categories or [], dates.get("date_from"), dates.get("date_to")
    )
    db.session.commit()
    return export.id


def _export(export_id: int) -> Export:
    export = db.session.get(Export, export_id)
    assert export is not None
    db.session.refresh(export)
    return export


def _job_for(export_id: int) -> Job:
    job = db.session.scalars(
        select(Job).where(
            Job.kind == exports.BUILD_JOB, Job.payload["export_id"].as_integer() == export_id
        )
    ).one()
    db.session.refresh(job)
    return job


def _open_archive(export: Export) -> zipfile.ZipFile:
    path = exports.export_file_path(export)
    assert path is not None, f"export {export.id} has no archive to serve ({export.status})"
    return zipfile.ZipFile(path)


def _entries(archive_file: zipfile.ZipFile) -> dict[str, bytes]:
    return {name: archive_file.read(name) for name in archive_file.namelist()}


def _json(entries: dict[str, bytes], key: str) -> dict[str, Any]:
    return json.loads(entries[f"data/{key}.json"].decode("utf-8"))


def _db_records(category: Category, user_id: int, **dates: date | None) -> list[dict[str, Any]]:
    """The person's records as the archive should hold them, read straight from the tables."""
    model = category.model
    time_col = getattr(model, category.time_column)
    conditions = category_conditions(
        category, user_id, dates.get("date_from"), dates.get("date_to")
    )
    rows = db.session.execute(
        select(*(getattr(model, name) for name in category.exported))
        .where(*conditions)
        .order_by(time_col, model.id)
    ).all()
    return [
        {name: json_value(value) for name, value in zip(category.exported, row, strict=True)}
        for row in rows
    ]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _temp_files(app: Flask) -> list[Path]:
    tmp = app.config["SETTINGS"].data_dir / "exports" / "tmp"
    return sorted(tmp.iterdir()) if tmp.is_dir() else []


def _archives(app: Flask) -> list[Path]:
    return sorted((app.config["SETTINGS"].data_dir / "exports").glob("*.zip"))


def _assert_manifest_matches(entries: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    manifest = json.loads(entries["manifest.json"])
    listed = {item["path"]: item for item in manifest["files"]}
    assert len(listed) == len(manifest["files"])  # no file listed twice
    assert set(listed) == set(entries) - {"manifest.json"}
    for path, item in listed.items():
        assert item["size"] == len(entries[path]), path
        assert item["sha256"] == _sha256(entries[path]), path
    return listed


# --- the archive holds everything of the person, and nothing of anyone else --------------------


@pytest.mark.app_settings(jobs_mode="queue")
def test_the_archive_holds_every_record_and_file_of_the_person_and_nothing_of_another(
    app: Flask,
) -> None:
    demo, demo2 = _seed(app)
    with app.app_context():
        export_id = _request(demo)
        # What the tables hold now is what the archive must hold (the build itself then adds
        # an email record and changes the export's status).
        expected = {c.key: _db_records(c, demo) for c in exports.exportable_categories()}
        files = {
            model.__tablename__: {
                item_id: media.path_for(key).read_bytes()
                for item_id, key in db.session.execute(
                    select(model.id, model.storage_key).where(model.user_id == demo)
                )
            }
            for model in (GeneratedImage, Upload)
        }
        password_hash = db.session.scalar(select(User.password_hash).where(User.id == demo))
        tokens = db.session.scalars(
            select(PaymentMethod.provider_token).where(PaymentMethod.user_id == demo)
        ).all()
        other_prompts = db.session.scalars(select(Prompt.text).where(Prompt.user_id == demo2)).all()
        other_ids = {
            key: set(db.session.scalars(select(model.id).where(model.user_id == demo2)))
            for key, model in (("prompts", Prompt), ("images", GeneratedImage), ("uploads", Upload))
        }

        assert run_due_jobs() == 1
        export = _export(export_id)
        assert export.status == Export.READY
        assert export.progress == 100
        entries = _entries(_open_archive(export))
        path = exports.export_file_path(export)
        assert path is not None
        archive_bytes = path.read_bytes()

    # Every record of every category, field for field, in time order.
    assert expected["email_changes"] and expected["processing_choices"]
    for key, records in expected.items():
        document = _json(entries, key)
        assert document["schema_version"] == 1
        assert document["category"] == key
        assert document["user_id"] == demo
        got = [{k: v for k, v in r.items() if k != "file"} for r in document["records"]]
        if key == "exports":  # built while this very export was in progress
            assert [r["status"] for r in got] == ["building"]
            continue
        assert got == records, key
        assert export.summary[key] == len(records)
        # The CSV holds the same records, cell for cell: times as in the JSON, nested
        # values (image settings, lists) as JSON text.
        table = entries[f"data/{key}.csv"].decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(table, newline="")))
        assert rows[0] == document["fields"], key
        assert rows[1:] == [
            [archive.csv_cell(record[name]) for name in document["fields"]]
            for record in document["records"]
        ], key

    # Media: every file, byte for byte, listed in the manifest, named after its item.
    listed = _assert_manifest_matches(entries)
    for key, table in (("images", "generated_images"), ("uploads", "uploads")):
        records = _json(entries, key)["records"]
        assert {r["id"] for r in records} == set(files[table])
        assert not {r["id"] for r in records} & other_ids[key]
        for record in records:
            original = files[table][record["id"]]
            assert record["file"].startswith(f"media/{key}/{record['id']}-")
            assert entries[record["file"]] == original
            assert listed[record["file"]]["sha256"] == _sha256(original)
            assert listed[record["file"]]["size"] == len(original)
    media_entries = [name for name in entries if name.startswith("media/")]
    assert len(media_entries) == len(files["generated_images"]) + len(files["uploads"])
    prompts = _json(entries, "prompts")["records"]
    assert not {p["id"] for p in prompts} & other_ids["prompts"]
    images = _json(entries, "images")["records"]
    assert all(i["file"].endswith(f"-prompt-{i['prompt_id']}.png") for i in images)

    # Text in every script survives, as characters rather than escapes.
    raw_prompts = entries["data/prompts.json"]
    for text in ("🦊", "مراكش", "桜の木", "熊猫", "한옥", "Schwarzwald"):
        assert text.encode() in raw_prompts
    assert b"\\u" not in raw_prompts
    assert entries["data/prompts.csv"].startswith("\ufeff".encode())

    # Nothing of the other person, and no hidden field, anywhere in the archive.
    everything = b"".join(entries.values())
    assert DEMO2.encode() not in everything
    assert not [text for text in other_prompts if text.encode() in everything]
    for secret in (password_hash, *tokens, NONCE_HASH):
        assert secret.encode() not in everything
        assert secret.encode() not in archive_bytes
    for hidden in ("password_hash", "provider_token", "nonce_hash"):
        assert f'"{hidden}":'.encode() not in everything

    # The manifest says whose archive it is, when and from which version.
    manifest = json.loads(entries["manifest.json"])
    assert manifest["user_id"] == demo
    assert manifest["schema_version"] == 1
    assert manifest["app_version"]
    assert manifest["categories"] == [c.key for c in exports.exportable_categories()]
    assert (manifest["date_from"], manifest["date_to"]) == (None, None)

    # index.html: every category, its files, and what is held but not exported.
    index = entries["index.html"].decode("utf-8")
    assert index.startswith("<!doctype html>")
    for category in get_datamap():
        assert category.name in index
    for key in expected:
        assert f'href="data/{key}.json"' in index
        assert f'href="data/{key}.csv"' in index
    for reason in ("only as a one-way hash", "only our payment processor charge the card"):
        assert reason in index
    assert "Held but not included, and why" in index
    for right in ("See your data", "Correct your data", "Take your data elsewhere", "Object"):
        assert right in index
    assert "Complain to a supervisory authority" in index
    assert app.config["SETTINGS"].controller_email in index
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", index)  # nothing from elsewhere
    assert "<script" not in index


@pytest.mark.app_settings(jobs_mode="inline")
def test_a_ready_export_is_verified_audited_and_announced_by_email(app: Flask) -> None:
    demo, _demo2 = _seed(app)
    with app.app_context():
        export_id = _request(demo)  # inline: built during the commit
        export = _export(export_id)
        path = exports.export_file_path(export)
        assert path is not None
        assert export.status == Export.READY
        assert re.fullmatch(r"[0-9a-f]{32}\.zip", export.file_name or "")
        assert export.byte_size == path.stat().st_size
        assert export.sha256 == _sha256(path.read_bytes())
        assert export.finished_at is not None and export.started_at is not None
        assert export.expires_at == export.finished_at + timedelta(days=7)
        assert export.summary["prompts"] == 240
        actions = db.session.scalars(
            select(AuditEvent.action).where(AuditEvent.target == f"export:{export_id}")
        ).all()
        assert actions == ["export.requested", "export.ready"]
        mail = db.session.scalars(
            select(OutboundMail).where(OutboundMail.template == "export_ready")
        ).one()
        assert (mail.to_address, mail.user_id, mail.status) == (DEMO, demo, OutboundMail.SENT)
        assert _job_for(export_id).status == Job.DONE
    assert _temp_files(app) == []
    (message,) = (app.config["SETTINGS"].mail_outbox_dir).glob("*.eml")
    assert "http://127.0.0.1:5000/exports" in message.read_text()


@pytest.mark.app_settings(jobs_mode="inline")
def test_the_archive_index_is_in_the_persons_language(
    app: Flask, german: Callable[[str], str]
) -> None:
    _demo, demo2 = _seed(app)  # the second demo person reads German
    with app.app_context():
        entries = _entries(_open_archive(_export(_request(demo2, ["images"]))))
    index = entries["index.html"].decode()
    assert '<html lang="de" dir="ltr">' in index
    assert german("Generated images") in index
    assert _json(entries, "images")["name"] == german("Generated images")


# --- choosing what goes in --------------------------------------------------------------------


@pytest.mark.app_settings(jobs_mode="inline")
def test_a_date_range_keeps_the_records_of_those_days_only(app: Flask) -> None:
    demo, _demo2 = _seed(app)
    today = utcnow().date()
    dates = {"date_from": today - timedelta(days=120), "date_to": today - timedelta(days=30)}
    with app.app_context():
        export = _export(_request(demo, **dates))
        entries = _entries(_open_archive(export))
        datamap = get_datamap()
        expected = {
            key: _db_records(datamap.get(key), demo, **dates)  # type: ignore[arg-type]
            for key in ("prompts", "images", "sessions", "devices", "invoices")
        }
        everything = {
            key: _db_records(datamap.get(key), demo)  # type: ignore[arg-type]
            for key in expected
        }
    for key, records in expected.items():
        got = [{k: v for k, v in r.items() if k != "file"} for r in _json(entries, key)["records"]]
        assert got == records, key
        assert 0 < len(records) < len(everything[key]), key  # the range really filtered
    times = [r["created_at"][:10] for r in _json(entries, "prompts")["records"]]
    assert min(times) >= dates["date_from"].isoformat()
    assert max(times) <= dates["date_to"].isoformat()
    # The account is a state, not an event: it is there whatever the dates.
    assert len(_json(entries, "account")["records"]) == 1
    images = _json(entries, "images")["records"]
    assert sorted(n for n in entries if n.startswith("media/images/")) == sorted(
        i["file"] for i in images
    )
    manifest = json.loads(entries["manifest.json"])
    assert manifest["date_from"] == dates["date_from"].isoformat()
    assert manifest["date_to"] == dates["date_to"].isoformat()
    _assert_manifest_matches(entries)


@pytest.mark.app_settings(jobs_mode="inline")
def test_only_the_chosen_categories_are_in_the_archive(app: Flask) -> None:
    demo, _demo2 = _seed(app)
    with app.app_context():
        export = _export(_request(demo, ["invoices", "prompts"]))
        assert export.categories == ["prompts", "invoices"]  # data-map order
        entries = _entries(_open_archive(export))
    assert sorted(entries) == [
        "data/invoices.csv",
        "data/invoices.json",
        "data/prompts.csv",
        "data/prompts.json",
        "index.html",
        "manifest.json",
    ]
    index = entries["index.html"].decode()
    assert "These kinds of data are not in this archive:" in index
    assert "You did not choose this kind of data for this export." in index
    assert "They are kept in your browser, not by us" in index  # cookies
    _assert_manifest_matches(entries)


@pytest.mark.app_settings(jobs_mode="queue")
def test_a_second_export_while_one_is_in_progress_is_refused_and_records_nothing(
    app: Flask,
) -> None:
    demo, demo2 = _seed(app)
    with app.app_context():
        first = _request(demo)
        with pytest.raises(exports.ExportInProgressError):
            exports.request_export(demo, ["prompts"], None, None)
        db.session.rollback()
        assert db.session.scalar(select(func.count()).select_from(Export)) == 1
        assert db.session.scalar(select(func.count()).select_from(Job)) == 1
        _request(demo2)  # someone else is not held up
        assert run_due_jobs() == 2
        assert _export(first).status == Export.READY
        _request(demo)  # once the first is done, another may be asked for
        assert db.session.scalar(select(func.count()).select_from(Export)) == 3


@pytest.mark.parametrize(
    ("categories", "dates", "error"),
    [
        (["prompts", "no_such_thing"], {}, exports.UnknownCategoryError),
        (["cookies"], {}, exports.UnknownCategoryError),  # in the data map, but no data file
        ([], {"date_from": date(2025, 5, 2), "date_to": date(2025, 5, 1)}, ValueError),
    ],
)
@pytest.mark.app_settings(jobs_mode="queue")
def test_a_bad_request_is_refused_and_records_nothing(
    app: Flask, user: User, categories: list[str], dates: dict[str, date], error: type
) -> None:
    with app.app_context():
        with pytest.raises(error):
            exports.request_export(
                user.id, categories, dates.get("date_from"), dates.get("date_to")
            )
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(Export)) == 0
        assert db.session.scalar(select(func.count()).select_from(Job)) == 0
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == 0


def test_the_estimate_counts_what_the_archive_will_hold(app: Flask) -> None:
    demo, _demo2 = _seed(app)
    with app.app_context():
        estimate = exports.estimate_export(demo, [], None, None)
        for category in exports.exportable_categories():
            assert estimate.counts[category.key] == len(_db_records(category, demo))
        media_bytes = sum(
            db.session.scalar(select(func.sum(m.byte_size)).where(m.user_id == demo)) or 0
            for m in (GeneratedImage, Upload)
        )
        assert estimate.media_files == 70
        assert estimate.approx_bytes > media_bytes
        only = exports.estimate_export(demo, ["prompts"], date(2000, 1, 1), date(2000, 1, 2))
        assert only.counts == {"prompts": 0}
        assert (only.media_files, only.records) == (0, 0)


@pytest.mark.app_settings(jobs_mode="inline")
def test_progress_is_reported_while_building(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    demo, _demo2 = _seed(app)
    monkeypatch.setattr(exports, "PROGRESS_INTERVAL_ITEMS", 20)
    seen: list[int] = []

    class Watching(exports._Progress):
        def __call__(self, done: int) -> None:
            super().__call__(done)
            seen.append(db.session.scalars(select(Export.progress)).one())

    monkeypatch.setattr(exports, "_Progress", Watching)
    with app.app_context():
        export = _export(_request(demo))
        assert export.status == Export.READY
        assert export.progress == 100
    assert seen == sorted(seen)
    assert any(0 < percent < 99 for percent in seen)
    # The last figure counts the media files too, which the writer process reports.
    assert seen[-1] == 99


# --- crashes ----------------------------------------------------------------------------------


FAULTY_WRITER = Path(__file__).resolve().parents[1] / "support" / "faulty_archive_writer.py"


@pytest.fixture
def faulty_writer(monkeypatch: pytest.MonkeyPatch) -> Callable[[str | None], None]:
    """Start the archive writer with a fault after 5 media files ("fail" or "die"), or none."""

    def use(fault: str | None) -> None:
        command = [*archive_writer.WRITER_COMMAND[:3], str(FAULTY_WRITER), f"--{fault}-after", "5"]
        if fault is None:
            monkeypatch.undo()
        else:
            monkeypatch.setattr(archive_writer, "WRITER_COMMAND", command)

    return use


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("fail", "ArchiveWriterError: OSError: [Errno 28] No space left on device"),
        ("die", "ArchiveWriterError: the writer stopped (killed by signal 9)"),
    ],
)
@pytest.mark.app_settings(jobs_mode="inline")
def test_a_build_that_fails_midway_leaves_nothing_to_download_and_finishes_on_retry(
    app: Flask, faulty_writer: Callable[[str | None], None], fault: str, error: str
) -> None:
    demo, _demo2 = _seed(app)
    faulty_writer(fault)
    with app.app_context():
        export_id = _request(demo)  # the first attempt runs, and fails, during the commit
        export = _export(export_id)
        assert export.status == Export.QUEUED
        assert exports.export_file_path(export) is None
        job = _job_for(export_id)
        assert job.status == Job.QUEUED
        assert job.last_error is not None and job.last_error.startswith(error)
        assert _archives(app) == []
        assert _temp_files(app) == []

        # A crashed process may still leave a half-written file; the retry replaces it.
        exports.temp_dir().mkdir(parents=True, exist_ok=True)
        exports.temp_path(export_id).write_bytes(b"PK\x03\x04 half an archive")
        faulty_writer(None)
        job.run_after = utcnow() - timedelta(seconds=1)
        db.session.commit()
        assert run_due_jobs() == 1

        export = _export(export_id)
        assert export.status == Export.READY
        entries = _entries(_open_archive(export))
        assert _job_for(export_id).status == Job.DONE
    _assert_manifest_matches(entries)
    assert len([n for n in entries if n.startswith("media/")]) == 70
    assert len(_archives(app)) == 1
    assert _temp_files(app) == []


@pytest.mark.app_settings(jobs_mode="inline")
def test_a_failure_while_encoding_stops_the_writer_process(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo, _demo2 = _seed(app)
    writers: list[archive_writer.ArchiveWriter] = []
    real_convert = archive._convert
    with_files: list[str] = []

    class Recorded(archive_writer.ArchiveWriter):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            writers.append(self)

    def convert_then_fail(*args: Any, **kwargs: Any) -> Any:
        if kwargs["naming"] is not None:
            with_files.append(args[1].key)
            if len(with_files) == 2:  # the writer has media files to copy by now
                raise ConnectionResetError("the database went away")
        return real_convert(*args, **kwargs)

    monkeypatch.setattr(archive, "ArchiveWriter", Recorded)
    monkeypatch.setattr(archive, "_convert", convert_then_fail)
    with app.app_context():
        export_id = _request(demo)
        job = _job_for(export_id)
        assert job.last_error is not None and job.last_error.startswith("ConnectionResetError")
        assert _export(export_id).status == Export.QUEUED
    (writer,) = writers
    assert writer.process.returncode is not None  # stopped and reaped: no orphan, no zombie
    assert all(spool.closed for spool in writer.spools.values())
    assert _archives(app) == []
    assert _temp_files(app) == []


@pytest.mark.app_settings(jobs_mode="inline")
def test_the_last_failed_attempt_marks_the_export_failed_without_personal_data(
    app: Flask, faulty_writer: Callable[[str | None], None]
) -> None:
    demo, _demo2 = _seed(app)
    faulty_writer("fail")
    with app.app_context():
        export = exports.request_export(demo, [], None, None)
        db.session.flush()
        _job_for(export.id).max_attempts = 1
        db.session.commit()
        export = _export(export.id)
        assert export.status == Export.FAILED
        assert export.error == "The archive could not be built (ArchiveWriterError)."
        assert export.finished_at is not None
        assert exports.export_file_path(export) is None
        assert _job_for(export.id).status == Job.FAILED
        assert db.session.scalar(
            select(AuditEvent.action).where(AuditEvent.action == "export.failed")
        )
        assert exports.export_in_progress(demo) is None  # a new one may be asked for
    assert _archives(app) == []
    assert _temp_files(app) == []


@pytest.mark.app_settings(jobs_mode="queue")
def test_a_build_killed_while_running_is_finished_by_the_sweeper(app: Flask) -> None:
    demo, _demo2 = _seed(app)
    with app.app_context():
        export_id = _request(demo)
        # The worker took the job, wrote part of the archive (and, in an unlucky moment,
        # had even renamed a finished one), and was killed before marking anything done.
        job = _job_for(export_id)
        job.status, job.attempts = Job.RUNNING, 1
        job.locked_at = utcnow() - timedelta(minutes=30)
        export = _export(export_id)
        export.status, export.progress, export.started_at = Export.BUILDING, 40, utcnow()
        export.file_name = "0" * 32 + ".zip"
        db.session.commit()
        exports.temp_dir().mkdir(parents=True, exist_ok=True)
        exports.temp_path(export_id).write_bytes(b"PK\x03\x04 killed here")
        (exports.exports_dir() / export.file_name).write_bytes(b"never marked ready")
        assert exports.export_file_path(export) is None  # nothing to download meanwhile

    result = app.test_cli_runner().invoke(args=["requests", "process-due"])

    assert result.exit_code == 0, result.output
    assert "ran 1 due job(s)" in result.output
    with app.app_context():
        export = _export(export_id)
        assert export.status == Export.READY
        assert export.file_name != "0" * 32 + ".zip"
        entries = _entries(_open_archive(export))
        assert _job_for(export_id).status == Job.DONE
        assert _job_for(export_id).attempts == 2
    _assert_manifest_matches(entries)
    assert [p.name for p in _archives(app)] == [export.file_name]
    assert _temp_files(app) == []


# --- expiry and removal -----------------------------------------------------------------------


@pytest.mark.app_settings(jobs_mode="inline")
def test_expired_exports_lose_their_file_and_say_so(app: Flask) -> None:
    demo, demo2 = _seed(app)
    with app.app_context():
        old, fresh = _request(demo, ["prompts"]), _request(demo2, ["prompts"])
        export = _export(old)
        path = exports.export_file_path(export)
        assert path is not None and export.expires_at is not None
        assert exports.expire_due_exports() == 0  # not yet
        assert exports.expire_due_exports(now=export.expires_at + timedelta(seconds=1)) == 2
        export = _export(old)
        assert export.status == Export.EXPIRED
        assert exports.export_file_path(export) is None
        assert not path.exists()
        assert _export(fresh).status == Export.EXPIRED
        assert (
            db.session.scalar(select(func.count()).where(AuditEvent.action == "export.expired"))
            == 2
        )
        assert exports.expire_due_exports(now=export.expires_at + timedelta(days=1)) == 0
    assert _archives(app) == []


@pytest.mark.app_settings(jobs_mode="inline")
def test_the_sweeper_command_expires_exports(app: Flask) -> None:
    demo, _demo2 = _seed(app)
    with app.app_context():
        export_id = _request(demo, ["prompts"])
        _export(export_id).expires_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["requests", "process-due"])
    assert result.exit_code == 0, result.output
    assert "expired 1 export(s)" in result.output
    assert _archives(app) == []
    with app.app_context():
        assert _export(export_id).status == Export.EXPIRED


@pytest.mark.app_settings(jobs_mode="inline")
def test_leftover_files_are_removed_after_a_day_and_ready_archives_are_kept(
    app: Flask, user: User
) -> None:
    with app.app_context():
        ready = _export(_request(user.id, ["account"]))
        ready_path = exports.export_file_path(ready)
        assert ready_path is not None
        tmp = exports.temp_dir()
        stale_part, fresh_part = tmp / "export-991.zip.part", tmp / "export-992.zip.part"
        orphan = exports.exports_dir() / ("f" * 32 + ".zip")
        for path in (stale_part, fresh_part, orphan):
            path.write_bytes(b"left behind")
        two_days_ago = (utcnow() - timedelta(days=2)).timestamp()
        for path in (stale_part, orphan, ready_path):
            os.utime(path, (two_days_ago, two_days_ago))
        exports.expire_due_exports()
    assert not stale_part.exists()
    assert not orphan.exists()
    assert fresh_part.exists()  # may belong to a build running right now
    assert ready_path.exists()  # old, but still READY and not expired


@pytest.mark.app_settings(jobs_mode="queue")
def test_an_export_whose_job_gave_up_is_marked_failed_by_the_sweeper(
    app: Flask, user: User
) -> None:
    with app.app_context():
        export_id = _request(user.id)
        job = _job_for(export_id)
        job.status = Job.FAILED
        db.session.commit()
        exports.expire_due_exports()
        export = _export(export_id)
        assert export.status == Export.FAILED
        assert exports.export_in_progress(user.id) is None


@pytest.mark.app_settings(jobs_mode="inline")
def test_deleting_a_persons_exports_removes_every_file(app: Flask) -> None:
    demo, demo2 = _seed(app)
    with app.app_context():
        mine = _export(_request(demo, ["prompts"]))
        theirs = _export(_request(demo2, ["prompts"]))
        mine_path = exports.export_file_path(mine)
        assert mine_path is not None
        assert exports.delete_user_exports(demo) == 1
        db.session.commit()
        assert _export(mine.id).status == Export.EXPIRED
        assert not mine_path.exists()
        assert exports.export_file_path(_export(theirs.id)) is not None


# --- Redis and RQ -----------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.usefixtures("restore_signals")
def test_an_export_is_built_by_a_real_rq_worker(
    make_app: Callable[..., Flask], redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis import Redis
    from rq import Queue

    app = make_app(jobs_mode="rq", redis_url=redis_url)
    demo, _demo2 = _seed(app)
    with app.app_context():
        export_id = _request(demo)
        assert _export(export_id).status == Export.QUEUED
    connection = Redis.from_url(redis_url)
    queue = Queue(RQ_QUEUE_NAME, connection=connection)
    assert queue.count == 1

    # The worker builds its own app from the environment, as `jobs work` does in production.
    try:
        run_rq_worker_burst(app, monkeypatch, redis_url, queue)
    finally:
        connection.close()
    with app.app_context():
        export = _export(export_id)
        assert export.status == Export.READY
        entries = _entries(_open_archive(export))
        assert _job_for(export_id).status == Job.DONE
        assert (
            db.session.scalars(
                select(OutboundMail.status).where(OutboundMail.template == "export_ready")
            ).one()
            == OutboundMail.SENT
        )
    _assert_manifest_matches(entries)
    assert len(_json(entries, "prompts")["records"]) == 240
