"""The archive writer process: what it puts in the ZIP, what it reports, and how it fails."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.services import archive_writer
from app.services.archive_writer import ArchiveWriter, ArchiveWriterError
from app.services.zip_writer import run_writer

GENERATED_AT = datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC)


def _media(folder: Path) -> dict[str, bytes]:
    files = {
        "media/images/1-prompt-7.png": b"\x89PNG\r\n" + bytes(range(256)) * 5000,
        "media/uploads/2-Überraschung 🦊.jpg": b"\xff\xd8" + b"jpeg" * 1000,
        "media/uploads/3-empty.txt": b"",
    }
    for number, content in enumerate(files.values()):
        (folder / f"stored-{number}").write_bytes(content)
    return files


def test_the_archive_holds_every_entry_as_sent_and_a_manifest_of_them(tmp_path: Path) -> None:
    files = _media(tmp_path)
    target = tmp_path / "archive.zip"
    heard: list[int] = []
    with ArchiveWriter(target, GENERATED_AT) as writer:
        writer.copy_media(
            [(str(tmp_path / f"stored-{n}"), name) for n, name in enumerate(files)]
            + [(str(tmp_path / "gone"), "media/images/9-prompt-9.png")]
        )
        with writer.spooled("json", "data/prompts.json") as spool:
            spool.write('{"records": ["桜 🌸"]}\n'.encode())
        with writer.spooled("csv", "data/prompts.csv") as spool:
            spool.write("\ufefftext\r\n桜 🌸\r\n".encode())
        with writer.spooled("json", "index.html") as spool:
            spool.write(b"<!doctype html><title>Your data</title>")
        result = writer.finish({"schema_version": 1, "user_id": 7}, on_media=heard.append)

    data = target.read_bytes()
    assert (result.byte_size, result.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert result.media_copied == 3  # the fourth file had gone from the store
    assert heard[-1] == 4
    with zipfile.ZipFile(target) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert names[-1] == "manifest.json"
        for name, content in files.items():
            assert archive.read(name) == content
            assert archive.getinfo(name).compress_type == zipfile.ZIP_STORED
        assert json.loads(archive.read("data/prompts.json")) == {"records": ["桜 🌸"]}
        assert archive.read("data/prompts.csv").decode("utf-8-sig") == "text\r\n桜 🌸\r\n"
        assert archive.getinfo("data/prompts.json").compress_type == zipfile.ZIP_DEFLATED
        assert archive.getinfo("index.html").date_time == (2026, 3, 1, 12, 30, 4)  # even seconds
        manifest = json.loads(archive.read("manifest.json"))
        listed = {
            name: {"path": name, "size": len(c), "sha256": hashlib.sha256(c).hexdigest()}
            for name in names[:-1]
            for c in [archive.read(name)]
        }
    assert manifest["schema_version"] == 1 and manifest["user_id"] == 7
    assert manifest["files"] == [listed[name] for name in names[:-1]]


def test_a_builder_that_fails_stops_the_writer_and_leaves_no_whole_archive(
    tmp_path: Path,
) -> None:
    files = _media(tmp_path)
    target = tmp_path / "archive.zip"
    with pytest.raises(ConnectionResetError), ArchiveWriter(target, GENERATED_AT) as writer:
        writer.copy_media([(str(tmp_path / f"stored-{n}"), name) for n, name in enumerate(files)])
        raise ConnectionResetError("the database went away")
    assert writer.process.returncode is not None
    assert all(spool.closed for spool in writer.spools.values())
    if target.exists():  # unless the writer was stopped before it even opened it
        with pytest.raises(zipfile.BadZipFile):
            zipfile.ZipFile(target)


def test_a_file_the_writer_cannot_read_fails_the_build_with_its_reason(tmp_path: Path) -> None:
    (tmp_path / "a-folder").mkdir()  # where a stored file should be
    target = tmp_path / "archive.zip"
    with ArchiveWriter(target, GENERATED_AT) as writer:
        writer.copy_media([(str(tmp_path / "a-folder"), "media/images/1.png")])
        with pytest.raises(ArchiveWriterError, match=r"^IsADirectoryError: \[Errno 21\]"):
            writer.finish({}, on_media=lambda done: None)
    assert writer.process.returncode == 1
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(target)


def test_input_that_ends_before_finish_leaves_no_central_directory(tmp_path: Path) -> None:
    files = _media(tmp_path)
    target = tmp_path / "archive.zip"
    commands = "".join(
        json.dumps(["media", str(tmp_path / f"stored-{n}"), name]) + "\n"
        for n, name in enumerate(files)
    )
    out = io.BytesIO()
    status = run_writer(target, (2026, 1, 1, 0, 0, 0), io.BytesIO(commands.encode()), out)
    assert status == 1
    last = json.loads(out.getvalue().splitlines()[-1])
    assert last == {"error": "EOFError: the builder stopped before the archive was finished"}
    assert target.stat().st_size > sum(len(c) for c in files.values())  # the copies were made
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(target)


def test_a_writer_that_dies_without_a_word_is_reported_with_its_last_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crash = "import sys; sys.stderr.write('noise\\n' * 1000 + 'MemoryError\\n'); sys.exit(3)"
    monkeypatch.setattr(archive_writer, "WRITER_COMMAND", [sys.executable, "-I", "-S", "-c", crash])
    with ArchiveWriter(tmp_path / "archive.zip", GENERATED_AT) as writer:
        writer.process.wait()
        with pytest.raises(
            ArchiveWriterError, match=r"^the writer stopped \(exit status 3\) MemoryError$"
        ):
            writer.copy_media([(str(tmp_path / "x"), "media/x")] * 20000)
    assert not (tmp_path / "archive.zip").exists()
