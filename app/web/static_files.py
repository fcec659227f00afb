"""Static CSS and JavaScript, sent gzip-compressed to browsers that accept it.

Static files hold no secret, so they go compressed to anyone; pages are compressed only in
answer to requests no other site can have made (`page_compression`, on BREACH).

Each file is compressed once per version of it (its modification time and size) and kept in
memory; the compressed bytes are deterministic (no time in the gzip header), so every worker
of a deployment gives the same ETag.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from threading import Lock

from flask import Flask, Response, request
from werkzeug.security import safe_join

# Text that compresses well; images (the favicon included) are left as they are.
COMPRESSIBLE_SUFFIXES = frozenset({".css", ".js"})


@dataclass(frozen=True)
class CompressedFile:
    version: tuple[int, int]  # modification time (ns) and size of the file it was made from
    body: bytes
    etag: str
    modified: datetime


class GzipCache:
    """The compressed form of each static text file, made when first asked for."""

    def __init__(self) -> None:
        self._files: dict[str, CompressedFile] = {}
        self._lock = Lock()

    def get(self, path: str) -> CompressedFile:
        stat = Path(path).stat()
        version = (stat.st_mtime_ns, stat.st_size)
        cached = self._files.get(path)
        if cached is not None and cached.version == version:
            return cached
        body = gzip.compress(Path(path).read_bytes(), compresslevel=9, mtime=0)
        made = CompressedFile(
            version=version,
            body=body,
            etag="gz-" + hashlib.sha256(body).hexdigest()[:32],
            modified=datetime.fromtimestamp(stat.st_mtime, UTC),
        )
        with self._lock:
            self._files[path] = made
        return made


def install(app: Flask) -> None:
    """Wrap the app's `static` view: gzip for CSS and JS when the browser accepts it."""
    send_plain: Callable[..., Response] = app.view_functions["static"]
    cache = GzipCache()

    def static(filename: str) -> Response:
        if Path(filename).suffix.lower() not in COMPRESSIBLE_SUFFIXES:
            return send_plain(filename=filename)
        path = safe_join(str(app.static_folder), filename)
        if _accepts_gzip() and path is not None and Path(path).is_file():
            response = _gzipped(cache.get(path), filename)
        else:
            response = send_plain(filename=filename)
        # Caches between here and the browser must keep the two forms apart.
        response.vary.add("Accept-Encoding")
        return response

    app.view_functions["static"] = static


def _accepts_gzip() -> bool:
    return request.accept_encodings["gzip"] > 0


def _gzipped(compressed: CompressedFile, filename: str) -> Response:
    response = Response(compressed.body, mimetype=mimetypes.guess_type(filename)[0])
    response.content_encoding = "gzip"
    response.set_etag(compressed.etag)
    response.last_modified = compressed.modified
    # As Flask sends static files: the browser may keep them, and asks again each time.
    response.cache_control.no_cache = True
    return response.make_conditional(request)
