"""The media store: keys it makes, keys it refuses, and files that appear whole or not at all.

Self-contained (its own app on a temporary directory) so it does not depend on conftest.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from app import create_app
from app.services import media

KEY_SHAPE = re.compile(r"[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{32}\.[a-z0-9]+")


@pytest.fixture
def media_app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        {
            "data_dir": tmp_path,
            "database_url": f"sqlite:///{tmp_path}/t.sqlite3",
            "jobs_mode": "inline",
        }
    )
    with app.app_context():
        yield app


def files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def test_store_returns_a_fanned_out_key_and_the_bytes_round_trip(media_app: Flask) -> None:
    key = media.store_bytes(b"\x89PNG fake image bytes", "png")

    assert KEY_SHAPE.fullmatch(key)
    first, second, name = key.split("/")
    assert name.startswith(first + second)  # the directories are the name's first digits
    path = media.path_for(key)
    assert path == media_app.config["SETTINGS"].media_dir / first / second / name
    assert media.exists(key)
    with media.open_stream(key) as stream:
        assert stream.read() == b"\x89PNG fake image bytes"


def test_keys_are_random_and_unique(media_app: Flask) -> None:
    keys = {media.store_bytes(b"same bytes", "jpg") for _ in range(20)}
    assert len(keys) == 20


def test_extension_is_normalised(media_app: Flask) -> None:
    assert media.store_bytes(b"x", ".PNG").endswith(".png")


@pytest.mark.parametrize("extension", ["", "../png", "p/ng", "png\x00", "a.b", "waytoolongext"])
def test_store_refuses_an_extension_that_could_change_the_path(
    media_app: Flask, extension: str
) -> None:
    with pytest.raises(ValueError, match="extension"):
        media.store_bytes(b"x", extension)
    assert files_under(media_app.config["SETTINGS"].media_dir) == []


def test_delete_removes_the_file_and_is_idempotent(media_app: Flask) -> None:
    key = media.store_bytes(b"bytes", "png")

    assert media.delete(key) is True
    assert not media.exists(key)
    assert not media.path_for(key).exists()
    assert media.delete(key) is False  # a retried erasure job must not fail
    with pytest.raises(FileNotFoundError):
        media.open_stream(key)


def test_delete_of_a_key_that_never_existed_is_fine(media_app: Flask) -> None:
    assert media.delete("ab/cd/abcd" + "0" * 28 + ".png") is False


VALID_NAME = "abcd0123456789abcdef" + "0" * 12  # 32 hex digits, starting "abcd"


@pytest.mark.parametrize(
    "key",
    [
        "../x",
        "../../etc/passwd",
        "/etc/passwd",
        "/ab/cd/" + VALID_NAME + ".png",
        "ab/cd/../../" + VALID_NAME + ".png",
        "ab/cd/" + VALID_NAME + ".png/..",
        "ab\\cd\\" + VALID_NAME + ".png",
        "ab/ce/" + VALID_NAME + ".png",  # directories do not match the name
        "AB/CD/" + VALID_NAME.upper() + ".png",
        "ab/cd/" + VALID_NAME,  # no extension
        "ab/cd/" + VALID_NAME + ".png\x00.txt",
        "ab/cd/" + VALID_NAME[:-1] + ".png",  # too short
        "ab/cd/" + VALID_NAME + ".png\n",
        "ab/cd/" + VALID_NAME + "..png",
        "",
    ],
)
def test_malformed_keys_are_refused_everywhere(media_app: Flask, key: str) -> None:
    for operation in (media.path_for, media.exists, media.delete, media.open_stream):
        with pytest.raises(ValueError, match="key"):
            operation(key)


def test_a_valid_looking_key_is_accepted(media_app: Flask) -> None:
    key = "ab/cd/" + VALID_NAME + ".png"
    assert media.path_for(key).is_relative_to(media_app.config["SETTINGS"].media_dir)
    assert media.exists(key) is False


def test_a_failed_write_leaves_nothing_behind(
    media_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(media.os, "fsync", disk_full)

    with pytest.raises(OSError, match="No space"):
        media.store_bytes(b"half an image", "png")
    assert files_under(media_app.config["SETTINGS"].media_dir) == []


def test_no_temporary_files_remain_after_a_store(media_app: Flask) -> None:
    key = media.store_bytes(b"bytes", "png")
    assert files_under(media_app.config["SETTINGS"].media_dir) == [media.path_for(key)]
