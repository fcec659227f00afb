"""The archive's writers and names: JSON and CSV that keep every script and survive any text,
and media file names that always stay inside their folder."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import PurePosixPath
from types import SimpleNamespace

import pytest

from app.datamap import DataMap, load_datamap
from app.services.archive import (
    MAX_NAME_BYTES,
    CsvRowsWriter,
    JsonRecordsWriter,
    csv_cell,
    file_naming,
    json_value,
    media_path,
    safe_filename,
)
from app.services.zip_writer import HashingSink

AWKWARD_TEXTS = [
    "a watercolor fox in a misty forest at dawn 🦊",
    "سوق قديم في مراكش عند الغروب، ألوان دافئة",
    "桜の木の下で本を読む少女、水彩画風 🌸",
    "一只熊猫在竹林里吃竹子",
    "commas, \"double quotes\" and 'single' ones",
    "line one\nline two\r\nline three",
    "tab\there; semicolon; backslash \\ and a NUL-free end",
    "=1+1 looks like a formula",
    "",
]


def _json_document(records: list[dict[str, object]], batch: int = 2) -> tuple[bytes, dict]:
    out = io.BytesIO()
    writer = JsonRecordsWriter(out, {"schema_version": 1, "category": "prompts", "fields": ["t"]})
    for start in range(0, len(records), batch):
        writer.write_batch(records[start : start + batch])
    writer.close()
    raw = out.getvalue()
    return raw, json.loads(raw.decode("utf-8"))


def test_json_keeps_every_script_and_emoji_as_written() -> None:
    records = [{"id": i, "text": text} for i, text in enumerate(AWKWARD_TEXTS)]
    raw, document = _json_document(records)
    assert document["records"] == records
    assert document["schema_version"] == 1
    assert document["category"] == "prompts"
    # Readable in any text editor: the characters themselves, not \\u escapes.
    for text in ("🦊", "مراكش", "桜の木", "熊猫"):
        assert text.encode("utf-8") in raw
    assert b"\\u" not in raw


def test_json_with_no_records_is_still_a_whole_document() -> None:
    raw, document = _json_document([])
    assert document["records"] == []
    assert raw.endswith(b"]}\n")


@pytest.mark.parametrize("batch", [1, 3, 100])
def test_json_is_the_same_whatever_the_batch_size(batch: int) -> None:
    records = [{"id": i, "text": AWKWARD_TEXTS[i % len(AWKWARD_TEXTS)]} for i in range(10)]
    assert _json_document(records, batch)[1]["records"] == records


def test_json_times_carry_their_offset_and_dates_are_iso() -> None:
    moment = datetime(2025, 3, 31, 14, 5, 7, tzinfo=UTC)
    berlin = datetime(2025, 3, 31, 16, 5, tzinfo=timezone(timedelta(hours=2)))
    assert json_value(moment) == "2025-03-31T14:05:07+00:00"
    assert json_value(berlin) == "2025-03-31T16:05:00+02:00"
    assert json_value(date(2025, 1, 2)) == "2025-01-02"
    assert json_value({"steps": 20}) == {"steps": 20}
    _raw, document = _json_document([{"at": moment, "settings": {"style": "水彩"}}])
    assert document["records"] == [
        {"at": "2025-03-31T14:05:07+00:00", "settings": {"style": "水彩"}}
    ]


def _csv_rows(fields: list[str], records: list[dict[str, object]]) -> tuple[bytes, list[list[str]]]:
    out = io.BytesIO()
    writer = CsvRowsWriter(out, fields)
    writer.write_batch(records[:3])
    writer.write_batch(records[3:])
    raw = out.getvalue()
    return raw, list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def test_csv_round_trips_commas_quotes_newlines_and_every_script() -> None:
    records = [{"id": i, "text": text} for i, text in enumerate(AWKWARD_TEXTS)]
    raw, rows = _csv_rows(["id", "text"], records)
    assert raw.startswith("\ufeff".encode())  # spreadsheet programs then read it as UTF-8
    assert rows[0] == ["id", "text"]
    assert rows[1:] == [[str(i), text] for i, text in enumerate(AWKWARD_TEXTS)]
    assert "مراكش".encode() in raw


def test_csv_cells_for_nested_and_empty_values() -> None:
    moment = datetime(2025, 3, 31, 14, 5, tzinfo=UTC)
    record = {
        "settings": {"style": "ukiyo-e 浮世絵", "steps": 20},
        "categories": ["prompts", "images"],
        "allowed": False,
        "line2": None,
        "at": moment,
    }
    _raw, rows = _csv_rows(list(record), [record])
    settings, categories, allowed, line2, at = rows[1]
    assert json.loads(settings) == {"style": "ukiyo-e 浮世絵", "steps": 20}
    assert json.loads(categories) == ["prompts", "images"]
    assert (allowed, line2, at) == ("false", "", "2025-03-31T14:05:00+00:00")
    assert csv_cell(True) == "true"
    assert csv_cell(0) == "0"


def test_hashing_sink_hashes_and_counts_what_it_passes_on() -> None:
    out = io.BytesIO()
    sink = HashingSink(out)
    for part in (b"abc", "ü🦊".encode(), b""):
        sink.write(part)
    data = out.getvalue()
    assert data == "abcü🦊".encode()
    assert sink.size == len(data)
    assert sink.sha256 == hashlib.sha256(data).hexdigest()


# --- file names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("../../etc/passwd", "passwd.jpg"),
        ("..\\..\\Windows\\win.ini", "win.ini"),
        ("/etc/shadow", "shadow.jpg"),
        ("..", "file.jpg"),
        ("../", "file.jpg"),
        ("", "file.jpg"),
        (".bashrc", "bashrc.jpg"),
        ("IMG_2041.JPG", "IMG_2041.JPG"),
        (
            "WhatsApp Image 2025-02-08 at 19.41.07.jpeg",
            "WhatsApp Image 2025-02-08 at 19.41.07.jpeg",
        ),
        ("写真 (1).png", "写真 (1).png"),
        ("صورة.jpg", "صورة.jpg"),
        ("a\x00b\x1fc.jpg", "a_b_c.jpg"),
        ("cv\u202egpj.exe", "cv_gpj.exe"),  # a right-to-left override cannot disguise it
        ("what?*<>|:.jpg", "what_.jpg"),
        ("name.with a space", "name.with a space.jpg"),
    ],
)
def test_safe_filename(original: str, expected: str) -> None:
    assert safe_filename(original, "jpg") == expected


def test_safe_filename_caps_the_length_in_bytes_and_keeps_the_extension() -> None:
    name = safe_filename("長" * 300 + ".png", "jpg")
    assert name.endswith(".png")
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    assert name.startswith("長")


@pytest.fixture(scope="module")
def datamap() -> DataMap:
    return load_datamap()


@pytest.mark.parametrize(
    "original",
    [
        "../../etc/passwd",
        "../../../../tmp/x.jpg",
        "..\\..\\boot.ini",
        "/absolute.png",
        "..",
        "a/../../b",
    ],
)
def test_an_upload_never_leaves_media_uploads(datamap: DataMap, original: str) -> None:
    uploads = datamap.get("uploads")
    assert uploads is not None
    row = SimpleNamespace(_id=7, _file="ab/cd/abcd" + "0" * 28 + ".jpg", _original=original)
    path = media_path(uploads, file_naming(uploads), row)
    assert path.startswith("media/uploads/7-")
    parts = PurePosixPath(path).parts
    assert parts[:2] == ("media", "uploads")
    assert len(parts) == 3
    assert ".." not in parts
    assert "\\" not in path


def test_images_are_named_after_their_prompt(datamap: DataMap) -> None:
    images = datamap.get("images")
    assert images is not None
    naming = file_naming(images)
    key = "ab/cd/abcd" + "1" * 28 + ".png"
    assert media_path(images, naming, SimpleNamespace(_id=12, _file=key, _link=7)) == (
        "media/images/12-prompt-7.png"
    )
    # An image whose prompt was deleted is named after itself only.
    assert media_path(images, naming, SimpleNamespace(_id=13, _file=key, _link=None)) == (
        "media/images/13.png"
    )
