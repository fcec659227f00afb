"""The media store: image files (generated images, uploads) on disk under `DATA_DIR/media`.

Rows in the database hold only a storage key; the bytes live here. A key is chosen by the store,
never by a user, and looks like `ab/cd/abcd<28 more hex digits>.png`:

- random, so a key reveals nothing about its owner and cannot be guessed from another key;
- fanned out over two directory levels, so no directory grows to hundreds of thousands of
  entries (the heavy demo user alone has thousands of images);
- checked against that exact shape before any file is touched, so a key read back from the
  database or from a URL can never name a path outside the store (`../`, absolute paths).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import BinaryIO

from flask import current_app

# "ab/cd/abcd…(32 hex digits).ext": the two directory levels repeat the name's first digits.
_KEY_PATTERN = re.compile(
    r"(?P<a>[0-9a-f]{2})/(?P<b>[0-9a-f]{2})/"
    r"(?P=a)(?P=b)[0-9a-f]{28}"
    r"\.[a-z0-9]{1,8}"
)
_EXTENSION_PATTERN = re.compile(r"[a-z0-9]{1,8}")


def media_root() -> Path:
    """The store's directory, from the app's settings (so tests get their own)."""
    return Path(current_app.config["SETTINGS"].media_dir)


def _normalise_extension(extension: str) -> str:
    # Accept ".PNG" as well as "png", but nothing that could add a path part to the name.
    ext = extension.strip().lstrip(".").lower()
    if not _EXTENSION_PATTERN.fullmatch(ext):
        raise ValueError(f"not a file extension: {extension!r}")
    return ext


def new_key(extension: str) -> str:
    """A fresh random key (128 bits, so collisions are not a practical concern)."""
    name = secrets.token_hex(16)
    return f"{name[:2]}/{name[2:4]}/{name}.{_normalise_extension(extension)}"


def path_for(key: str) -> Path:
    """The file for `key`; raises ValueError for anything that is not a key this store made.

    Validation is by exact shape rather than by cleaning the input up: a key that needs
    cleaning did not come from this store, and guessing what it meant is how traversal bugs
    start.
    """
    if not isinstance(key, str) or not _KEY_PATTERN.fullmatch(key):
        raise ValueError(f"not a media storage key: {key!r}")
    root = media_root()
    path = root.joinpath(*key.split("/"))
    # The pattern already rules out escapes; this guards against a future pattern change.
    # Lexical, without a system call: an export checks thousands of keys.
    if not os.path.normpath(path).startswith(os.path.normpath(root) + os.sep):
        raise ValueError(f"media storage key escapes the store: {key!r}")
    return path


def store_bytes(data: bytes, extension: str) -> str:
    """Write `data` as a new file and return its key.

    The bytes go to a temporary file in the target directory, are flushed to disk, and only
    then renamed into place: a reader (or a crash) never sees a half-written image under a
    real key.
    """
    key = new_key(extension)
    target = path_for(key)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temp_name).replace(target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(temp_name).unlink()
        raise
    return key


def open_stream(key: str) -> BinaryIO:
    """Open the file for reading (the caller closes it); FileNotFoundError if it is gone."""
    return path_for(key).open("rb")


def exists(key: str) -> bool:
    """Whether the file for `key` is present (a malformed key raises, it does not say no)."""
    return path_for(key).is_file()


def delete(key: str) -> bool:
    """Remove the file; True if it was there, False if it was already gone.

    Idempotent on purpose: erasure jobs may run twice (after a crash or a retry), and the
    second run must succeed. Empty fan-out directories are left in place, because removing
    them would race with a concurrent `store_bytes` creating a file in the same directory.
    """
    try:
        path_for(key).unlink()
    except FileNotFoundError:
        return False
    return True
