"""Writing an export archive: a ZIP streamed to disk, with memory flat whatever the data size.

Layout (also described in the README and in the archive's own index.html):

    index.html                  what is in the archive and the facts the right of access requires
    data/<category>.json        every record, the data map's exported fields only
    data/<category>.csv         the same records as a table (UTF-8 with a byte-order mark)
    media/<category>/<name>     the original files, byte for byte
    manifest.json               path, size and SHA-256 of every other file, written last

Rows are read in keyset batches on the category's (user, time, id) index and written as they
come; the CSV of a category is written to an unnamed temporary file beside the archive while its
JSON is streamed into the ZIP (a ZIP takes one entry at a time), then copied in. Media files are
copied in 1 MiB chunks, stored without compression (images are compressed already). Every entry
is hashed as it is written, so the manifest needs no second pass over the data.

Only the fields the data map marks `exported` are ever selected: hidden fields (password hashes,
payment tokens) never leave the database, so they cannot end up in a file by mistake.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Any

from flask import current_app, render_template
from flask_babel import force_locale, get_locale
from flask_babel import gettext as _
from sqlalchemy import JSON, ColumnElement, TypeDecorator, and_, or_, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.types import TypeEngine

from app.datamap import Category, get_datamap
from app.extensions import db
from app.services import media
from app.services.records import is_single_record, start_of_day

SCHEMA_VERSION = 1
BATCH_SIZE = 1000
COPY_CHUNK = 1024 * 1024
WRITEBACK_BYTES = 32 * 1024 * 1024
MAX_NAME_BYTES = 120  # of a media file's own name: well under every file system's 255
INDEX_TEMPLATE = "exports/archive_index.html"
CSV_ENCODING = "utf-8-sig"  # a byte-order mark, so spreadsheet programs read UTF-8 right
_SAFE_EXTENSION = re.compile(r"[A-Za-z0-9]{1,10}")

Progress = Callable[[int], None]


# --- values -----------------------------------------------------------------------------------


def json_value(value: Any) -> Any:
    """A value as JSON has it: times ISO-8601 with their offset, dates ISO."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def csv_cell(value: Any) -> str:
    """A value as one CSV cell: nested values (settings, lists) as JSON text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=json_value)
    return str(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=json_value)


# One encoder for every record (json.dumps would build a new one per call).
_encode = json.JSONEncoder(ensure_ascii=False, default=json_value).encode


def _iso(value: datetime | date | None) -> str | None:
    return None if value is None else value.isoformat()


def _bool_cell(value: bool | None) -> str:
    return "" if value is None else ("true" if value else "false")


@dataclass(frozen=True)
class RecordShape:
    """How one category's rows become JSON records and CSV rows, decided once per column
    from its type rather than once per value (a big export has millions of values)."""

    fields: tuple[str, ...]
    to_json: tuple[tuple[int, Callable[[Any], Any]], ...]  # (position, converter)
    to_csv: tuple[tuple[int, Callable[[Any], Any]], ...]  # applied after to_json


def _value_kind(column_type: TypeEngine[Any]) -> type | None:
    """The Python type of a column's values, None when its type does not say.

    A TypeDecorator (UTCDateTime) reports `object`: its underlying type knows. JSON reports
    `object` too, as its values may be of any JSON kind.
    """
    if isinstance(column_type, TypeDecorator):
        column_type = column_type.impl_instance
    if isinstance(column_type, JSON):
        return JSON
    try:
        return column_type.python_type
    except NotImplementedError:
        return None


def record_shape(category: Category) -> RecordShape:
    columns = sa_inspect(category.model).columns
    to_json, to_csv = [], []
    for position, name in enumerate(category.exported):
        kind = _value_kind(columns[name].type)
        if kind is JSON:
            to_csv.append((position, csv_cell))  # nested values as JSON text
        elif kind is None:  # leave its values alone: json_value and csv_cell cope
            continue
        elif issubclass(kind, date):  # datetime too
            to_json.append((position, _iso))
        elif issubclass(kind, bool):
            to_csv.append((position, _bool_cell))
    return RecordShape(tuple(category.exported), tuple(to_json), tuple(to_csv))


# --- writers ----------------------------------------------------------------------------------


class HashingSink:
    """Counts and hashes the bytes on their way to the real file."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.size = 0
        self._digest = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self._digest.update(data)
        self.size += len(data)
        self.target.write(data)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


class JsonRecordsWriter:
    """`{"schema_version": 1, ..., "records": [...]}` written record by record.

    The header is written first and the closing brackets last, so a category of any size
    is never held in memory: one record per line, in the order given.
    """

    def __init__(self, sink: Any, header: Mapping[str, Any]) -> None:
        self.sink = sink
        self.count = 0
        opening = _dumps({**header, "records": []})
        assert opening.endswith("[]}")
        self.sink.write((opening[:-2] + "\n").encode("utf-8"))

    def write_batch(self, records: Iterable[Mapping[str, Any]]) -> None:
        encoded = [_encode(record) for record in records]
        if not encoded:
            return
        text = ",\n".join(encoded) + "\n"
        self.sink.write((("," + text) if self.count else text).encode("utf-8"))
        self.count += len(encoded)

    def close(self) -> None:
        self.sink.write(b"]}\n")


class CsvRowsWriter:
    """A header row, then one row per record (RFC 4180 quoting, CRLF, UTF-8 with BOM)."""

    def __init__(self, sink: Any, fields: Sequence[str]) -> None:
        self.sink = sink
        self.fields = tuple(fields)
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer)
        self.sink.write("\ufeff".encode())
        self._writer.writerow(self.fields)
        self._flush()

    def write_batch(self, records: Iterable[Mapping[str, Any]]) -> None:
        self.write_rows([csv_cell(record.get(name)) for name in self.fields] for record in records)

    def write_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        """Rows of cells already in CSV form (None is written as an empty cell)."""
        self._writer.writerows(rows)
        self._flush()

    def _flush(self) -> None:
        text = self._buffer.getvalue()
        if text:
            self.sink.write(text.encode("utf-8"))
            self._buffer.seek(0)
            self._buffer.truncate()


# --- file names -------------------------------------------------------------------------------


def _allowed(char: str) -> bool:
    # Letters, digits and marks in any script; no separators, controls or bidi overrides.
    return unicodedata.category(char)[0] in {"L", "N", "M"} or char in "-_.() "


def _truncate_utf8(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")[:limit]
    return encoded.decode("utf-8", errors="ignore")


def safe_filename(name: str, extension: str | None = None) -> str:
    """A file name that stays one plain name inside its folder, whatever it was given.

    Only the last path part is kept ("../../etc/passwd" is "passwd"), characters that are
    not letters, digits, marks or `-_.() ` become "_", leading dots and spaces go, and the
    length is capped. `extension` is added when the name has no usable one of its own.
    """
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(char if _allowed(char) else "_" for char in name)
    name = re.sub(r"_{2,}", "_", name).strip(" .")
    stem, dot, ext = name.rpartition(".")
    if not dot or not _SAFE_EXTENSION.fullmatch(ext):
        stem, ext = name, ""
    stem = stem.strip(" .") or "file"
    ext = ext or (extension or "")
    suffix = f".{ext}" if ext else ""
    stem = _truncate_utf8(stem, MAX_NAME_BYTES - len(suffix)).strip(" .") or "file"
    return stem + suffix


@dataclass(frozen=True)
class FileNaming:
    """How a file category's files are named: after the original name, else after the item
    they were made from (an image's prompt), else after their own id."""

    original_name: str | None  # column with the name it was uploaded under
    link: str | None  # column pointing at the item it was made from, e.g. "prompt_id"

    @property
    def link_label(self) -> str:
        return (self.link or "").removesuffix("_id")


def file_naming(category: Category) -> FileNaming:
    columns = sa_inspect(category.model).columns
    original = "original_filename" if "original_filename" in columns else None
    tables = {
        c.model.__table__.name: c for c in get_datamap().database_categories if c is not category
    }
    link = None
    for column in columns:
        if column.key == category.user_column:
            continue
        if any(fk.column.table.name in tables for fk in column.foreign_keys):
            link = column.key
            break
    return FileNaming(original, link)


def media_path(category: Category, naming: FileNaming, row: Any) -> str:
    """The file's path in the archive, e.g. `media/images/12-prompt-7.png`."""
    key: str = row._file
    extension = key.rpartition(".")[2]
    item_id = row._id
    if naming.original_name:
        name = f"{item_id}-{safe_filename(row._original, extension)}"
    elif naming.link and getattr(row, "_link", None) is not None:
        name = f"{item_id}-{naming.link_label}-{row._link}.{extension}"
    else:
        name = f"{item_id}.{extension}"
    return f"media/{category.key}/{name}"


# --- reading a category -----------------------------------------------------------------------


def category_conditions(
    category: Category, user_id: int, date_from: date | None, date_to: date | None
) -> list[ColumnElement[bool]]:
    """Whose records, and which days (inclusive, UTC) by the category's time column.

    A one-row-per-person category (the account, the plan) is a current state rather than
    an event, so it is exported whatever the date range.
    """
    model = category.model
    conditions: list[ColumnElement[bool]] = [getattr(model, category.user_column) == user_id]
    if is_single_record(category):
        return conditions
    time_col = getattr(model, category.time_column)
    if date_from:
        conditions.append(time_col >= start_of_day(date_from))
    if date_to:
        conditions.append(time_col < start_of_day(date_to + timedelta(days=1)))
    return conditions


def _columns(category: Category, naming: FileNaming | None) -> list[Any]:
    model = category.model
    columns = [model.id.label("_id"), getattr(model, category.time_column).label("_time")]
    columns += [getattr(model, name).label(name) for name in category.exported]
    if naming is not None:
        columns.append(getattr(model, category.file_column).label("_file"))
        if naming.original_name:
            columns.append(getattr(model, naming.original_name).label("_original"))
        if naming.link:
            columns.append(getattr(model, naming.link).label("_link"))
    return columns


def row_batches(
    category: Category,
    user_id: int,
    date_from: date | None,
    date_to: date | None,
    batch_size: int = BATCH_SIZE,
) -> Iterator[Sequence[Any]]:
    """The person's rows, oldest first, in batches: each batch is one short range scan of
    the (user, time, id) index, starting after the last row of the one before."""
    model = category.model
    time_col = getattr(model, category.time_column)
    naming = file_naming(category) if category.file_column else None
    base = select(*_columns(category, naming)).where(
        *category_conditions(category, user_id, date_from, date_to)
    )
    last: tuple[Any, int] | None = None
    while True:
        query = base
        if last is not None:
            moment, item_id = last
            query = query.where(
                time_col >= moment,
                or_(time_col > moment, and_(time_col == moment, model.id > item_id)),
            )
        rows = db.session.execute(query.order_by(time_col, model.id).limit(batch_size)).all()
        if not rows:
            return
        yield rows
        if len(rows) < batch_size:
            return
        last = (rows[-1]._time, rows[-1]._id)


# --- the archive ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveRequest:
    user_id: int
    locale: str
    categories: tuple[Category, ...]
    date_from: date | None
    date_to: date | None
    generated_at: datetime


@dataclass
class CategoryContents:
    category: Category
    count: int
    json_path: str
    csv_path: str
    media_files: int = 0
    media_folder: str | None = None


@dataclass
class ArchiveResult:
    counts: dict[str, int]
    media_files: int
    byte_size: int
    sha256: str  # of the whole archive file


class _Zip:
    """A ZIP on disk whose every entry is hashed as written, for the manifest.

    The manifest's lines wait in an unnamed temporary file rather than in a list, so memory
    does not grow with the number of files (zipfile itself keeps one small ZipInfo per entry
    for the central directory, which it writes at the end).
    """

    def __init__(self, path: Path, generated_at: datetime, manifest_lines: IO[bytes]) -> None:
        self.date_time = generated_at.timetuple()[:6]
        self.listed = 0
        self.manifest_lines = manifest_lines
        self.file = path.open("wb")
        # zipfile sees a stream it cannot seek in, so it writes strictly front to back (sizes
        # go in data descriptors): the archive's own hash is taken on the way to disk rather
        # than by reading the whole file back afterwards.
        self.stream = _ForwardOnly(self.file)
        self.zip = zipfile.ZipFile(self.stream, "w", allowZip64=True)
        self.temp_dir = path.parent  # for the build's other temporary files: same disk

    @contextmanager
    def entry(
        self, name: str, *, compress: bool = True, size: int | None = None
    ) -> Iterator[HashingSink]:
        info = zipfile.ZipInfo(name, date_time=self.date_time)
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        if size is not None:
            info.file_size = size
        # Unknown size: ZIP64 headers from the start, so an entry may grow past 4 GiB.
        with self.zip.open(info, "w", force_zip64=size is None) as raw:
            sink = HashingSink(raw)
            yield sink
        line = _encode({"path": name, "size": sink.size, "sha256": sink.sha256})
        self.manifest_lines.write(((",\n  " if self.listed else "  ") + line).encode("utf-8"))
        self.listed += 1

    def close(self) -> None:
        try:
            self.zip.close()
            self.file.flush()
            os.fsync(self.file.fileno())  # on disk before the caller renames it into place
        finally:
            self.file.close()


class _ForwardOnly(HashingSink):
    """The archive file as a plain stream: no seek or tell, hashed and counted as written.

    Every WRITEBACK_BYTES it asks the kernel to start writing what came so far to disk, so
    the fsync before the rename (which stays: it is what makes READY safe) finds little left
    to do, instead of hundreds of megabytes at once at the very end.
    """

    def __init__(self, target: IO[bytes]) -> None:
        super().__init__(target)
        self._written_back = 0

    def write(self, data: bytes) -> int:  # type: ignore[override]
        super().write(data)
        if self.size - self._written_back >= WRITEBACK_BYTES:
            self._start_writeback()
        return len(data)  # zipfile keeps its own offset from this

    def _start_writeback(self) -> None:
        self.target.flush()
        if hasattr(os, "posix_fadvise"):  # not on macOS; the final fsync does it all there
            # On Linux, DONTNEED starts writing the range back without waiting for it; pages
            # not yet on disk stay in memory (and whatever is already written may be dropped:
            # the archive is read once, when it is downloaded).
            length = self.size - self._written_back
            os.posix_fadvise(
                self.target.fileno(), self._written_back, length, os.POSIX_FADV_DONTNEED
            )
        self._written_back = self.size

    def flush(self) -> None:
        self.target.flush()


def copy_media_file(archive: _Zip, name: str, source: Path) -> bool:
    """Copy one stored file into the archive as it is; False if it is no longer there."""
    try:
        handle = source.open("rb")
    except FileNotFoundError:
        return False
    size = os.fstat(handle.fileno()).st_size
    with handle, archive.entry(name, compress=False, size=size) as sink:
        while chunk := handle.read(COPY_CHUNK):
            sink.write(chunk)
    return True


class _Counter:
    def __init__(self, report: Progress) -> None:
        self.done = 0
        self.report = report

    def add(self, number: int) -> None:
        self.done += number
        self.report(self.done)


def write_archive(target: Path, request: ArchiveRequest, on_progress: Progress) -> ArchiveResult:
    """Write the whole archive to `target` (which the caller then moves into place)."""
    progress = _Counter(on_progress)
    # Unnamed temporary files beside the archive: gone when closed, even after a crash.
    with (
        force_locale(request.locale),
        tempfile.TemporaryFile(dir=target.parent) as media_list,
        tempfile.TemporaryFile(dir=target.parent) as manifest_lines,
    ):
        archive = _Zip(target, request.generated_at, manifest_lines)
        try:
            contents = [
                _write_category(archive, category, request, media_list, progress)
                for category in request.categories
            ]
            media_files = _copy_media(archive, media_list, progress)
            _write_index(archive, request, contents)
            _write_manifest(archive, request)
        finally:
            archive.close()
    counts = {c.category.key: c.count for c in contents}
    return ArchiveResult(counts, media_files, archive.stream.size, archive.stream.sha256)


def _header(category: Category, request: ArchiveRequest, fields: Sequence[str]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "category": category.key,
        "name": _(category.name),
        "generated_at": request.generated_at.isoformat(),
        "user_id": request.user_id,
        "fields": list(fields),
    }


def _write_category(
    archive: _Zip,
    category: Category,
    request: ArchiveRequest,
    media_list: IO[bytes],
    progress: _Counter,
) -> CategoryContents:
    naming = file_naming(category) if category.file_column else None
    shape = record_shape(category)
    fields = list(shape.fields) + (["file"] if naming else [])
    contents = CategoryContents(
        category,
        0,
        json_path=f"data/{category.key}.json",
        csv_path=f"data/{category.key}.csv",
        media_folder=f"media/{category.key}/" if naming else None,
    )
    # The CSV waits in an unnamed file on the same disk (gone on close, even after a crash).
    with tempfile.TemporaryFile(dir=archive.temp_dir) as csv_file:
        csv_writer = CsvRowsWriter(csv_file, fields)
        with archive.entry(contents.json_path) as json_sink:
            json_writer = JsonRecordsWriter(json_sink, _header(category, request, fields))
            for rows in row_batches(category, request.user_id, request.date_from, request.date_to):
                records, cells = _convert(
                    rows,
                    category,
                    shape=shape,
                    naming=naming,
                    media_list=media_list,
                    contents=contents,
                )
                json_writer.write_batch(records)
                csv_writer.write_rows(cells)
                progress.add(len(records))
            json_writer.close()
        contents.count = json_writer.count
        csv_file.seek(0)
        with archive.entry(contents.csv_path) as sink:
            while chunk := csv_file.read(COPY_CHUNK):
                sink.write(chunk)
    return contents


def _convert(
    rows: Sequence[Any],
    category: Category,
    *,
    shape: RecordShape,
    naming: FileNaming | None,
    media_list: IO[bytes],
    contents: CategoryContents,
) -> tuple[list[dict[str, Any]], list[list[Any]]]:
    """A batch of rows as JSON records and CSV rows; notes each file to copy afterwards."""
    fields, width = shape.fields, len(shape.fields)
    records, cells = [], []
    noted = []
    for row in rows:
        values = list(row[2 : 2 + width])  # after _id and _time, see _columns
        for position, convert in shape.to_json:
            values[position] = convert(values[position])
        record = dict(zip(fields, values, strict=True))
        for position, convert in shape.to_csv:
            values[position] = convert(values[position])
        if naming is not None:
            path = media_path(category, naming, row)
            source = media.path_for(row._file)
            if source.is_file():
                noted.append(f"{source}\t{path}\n")
            else:  # gone from the store: the record says so rather than naming a missing file
                path = None
            record["file"] = path
            values.append(path)
        records.append(record)
        cells.append(values)
    if noted:
        media_list.write("".join(noted).encode())
        contents.media_files += len(noted)
    return records, cells


def _copy_media(archive: _Zip, media_list: IO[bytes], progress: _Counter) -> int:
    """The files noted while the records were written, so both always agree."""
    media_list.seek(0)
    copied = 0
    for line in media_list:
        source, _tab, name = line.decode().rstrip("\n").partition("\t")
        if copy_media_file(archive, name, Path(source)):
            copied += 1
        progress.add(1)
    return copied


def _country_name(code: str) -> str:
    if code == "local":
        return _("your own country")
    locale = get_locale()
    return locale.territories.get(code.upper(), code) if locale else code


def _field_label(name: str) -> str:
    # The labels the data pages use, so a field reads the same in the archive.
    from app.web.data import FIELD_LABELS  # noqa: PLC0415

    return str(FIELD_LABELS.get(name, name))


def _rights() -> list[tuple[str, Any, Any]]:
    # The same words as the privacy notice (app/web/policy.py), so they read (and are
    # translated) the same way in both places.
    from app.web.policy import RIGHTS  # noqa: PLC0415

    return [(right.key, right.title, right.text) for right in RIGHTS]


def _write_index(archive: _Zip, request: ArchiveRequest, contents: list[CategoryContents]) -> None:
    from app.services.notice import notice_facts  # noqa: PLC0415

    datamap = get_datamap()
    included = {c.category.key for c in contents}
    html = render_template(
        INDEX_TEMPLATE,
        request=request,
        contents=contents,
        datamap=datamap,
        facts=notice_facts(datamap),
        not_included=[c for c in datamap if c.key not in included],
        hidden=[c for c in datamap if c.hidden],
        rights=_rights(),
        country_name=_country_name,
        field_label=_field_label,
        privacy_center_url=current_app.config["SETTINGS"].base_url,
    )
    with archive.entry("index.html") as sink:
        sink.write(html.encode("utf-8"))


def app_version() -> str:
    try:
        return version("privacy-center")
    except PackageNotFoundError:
        return "0.1.0"


def _write_manifest(archive: _Zip, request: ArchiveRequest) -> None:
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "app_version": app_version(),
        "user_id": request.user_id,
        "generated_at": request.generated_at.isoformat(),
        "categories": [c.key for c in request.categories],
        "date_from": json_value(request.date_from),
        "date_to": json_value(request.date_to),
        "files": [],
    }
    # One file per line: readable, whatever the number of files.
    head = json.dumps(manifest, ensure_ascii=False, indent=1)
    assert head.endswith('"files": []\n}')
    lines = archive.manifest_lines
    lines.seek(0)
    with archive.entry("manifest.json") as sink:
        sink.write((head[: -len("[]\n}")] + "[\n").encode("utf-8"))
        while chunk := lines.read(COPY_CHUNK):
            sink.write(chunk)
        sink.write(b"\n ]\n}\n")
