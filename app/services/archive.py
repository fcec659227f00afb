"""Writing an export archive: a ZIP streamed to disk, with memory flat whatever the data size.

Layout (also described in the README and in the archive's own index.html):

    index.html                  what is in the archive and the facts the right of access requires
    data/<category>.json        every record, the data map's exported fields only
    data/<category>.csv         the same records as a table (UTF-8 with a byte-order mark)
    media/<category>/<name>     the original files, byte for byte
    manifest.json               path, size and SHA-256 of every other file, written last

Rows are read in keyset batches on the category's (user, time, id) index and encoded as they
come, into two unnamed spool files (JSON and CSV). A writer process (archive_writer.py,
zip_writer.py) owns the ZIP: it copies the media files each batch names, stored without
compression (images are compressed already), while this process goes on with the records, and
compresses each category's JSON and CSV in when they are complete. Every entry is hashed as it
is written, so the manifest needs no second pass over the data.

Only the fields the data map marks `exported` are ever selected: hidden fields (password hashes,
payment tokens) never leave the database, so they cannot end up in a file by mistake.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from flask import current_app, render_template
from flask_babel import force_locale, get_locale
from flask_babel import gettext as _
from sqlalchemy import JSON, ColumnElement, TypeDecorator, and_, or_, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.types import TypeEngine

from app.datamap import Category, get_datamap
from app.extensions import db
from app.services import media
from app.services.archive_writer import ArchiveWriter
from app.services.records import is_single_record, start_of_day

SCHEMA_VERSION = 1
BATCH_SIZE = 1000
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


def write_archive(target: Path, request: ArchiveRequest, on_progress: Progress) -> ArchiveResult:
    """Write the whole archive to `target` (which the caller then moves into place).

    This process reads and encodes the records while a writer process (archive_writer.py)
    copies the media files they name into the ZIP, so the two halves of the work overlap.
    """
    with force_locale(request.locale), ArchiveWriter(target, request.generated_at) as writer:
        progress = _ItemsDone(on_progress, writer)
        # Categories with files first, so the writer copies them while the rest is encoded.
        files_first = sorted(request.categories, key=lambda category: not category.file_column)
        written = {c.key: _write_category(writer, c, request, progress) for c in files_first}
        contents = [written[category.key] for category in request.categories]
        _write_index(writer, request, contents)
        result = writer.finish(_manifest(request), on_media=progress.media)
    counts = {c.category.key: c.count for c in contents}
    return ArchiveResult(counts, result.media_copied, result.byte_size, result.sha256)


class _ItemsDone:
    """Records encoded here plus media files the writer has copied, as one number."""

    def __init__(self, report: Progress, writer: ArchiveWriter) -> None:
        self.report = report
        self.writer = writer
        self.records = 0

    def add_records(self, number: int) -> None:
        self.records += number
        self.report(self.records + self.writer.media_done)

    def media(self, media_done: int) -> None:
        self.report(self.records + media_done)


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
    writer: ArchiveWriter, category: Category, request: ArchiveRequest, progress: _ItemsDone
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
    with (
        writer.spooled("json", contents.json_path) as json_file,
        writer.spooled("csv", contents.csv_path) as csv_file,
    ):
        json_writer = JsonRecordsWriter(json_file, _header(category, request, fields))
        csv_writer = CsvRowsWriter(csv_file, fields)
        for rows in row_batches(category, request.user_id, request.date_from, request.date_to):
            records, cells, files = _convert(rows, category, shape=shape, naming=naming)
            writer.copy_media(files)
            contents.media_files += len(files)
            json_writer.write_batch(records)
            csv_writer.write_rows(cells)
            progress.add_records(len(records))
        json_writer.close()
    contents.count = json_writer.count
    return contents


def _convert(
    rows: Sequence[Any], category: Category, *, shape: RecordShape, naming: FileNaming | None
) -> tuple[list[dict[str, Any]], list[list[Any]], list[tuple[str, str]]]:
    """A batch of rows as JSON records and CSV rows, and the files they name (to copy)."""
    fields, width = shape.fields, len(shape.fields)
    records, cells = [], []
    files = []
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
                files.append((str(source), path))
            else:  # gone from the store: the record says so rather than naming a missing file
                path = None
            record["file"] = path
            values.append(path)
        records.append(record)
        cells.append(values)
    return records, cells, files


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


def _write_index(
    writer: ArchiveWriter, request: ArchiveRequest, contents: list[CategoryContents]
) -> None:
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
    with writer.spooled("json", "index.html") as file:
        file.write(html.encode("utf-8"))


def app_version() -> str:
    try:
        return version("privacy-center")
    except PackageNotFoundError:
        return "0.1.0"


def _manifest(request: ArchiveRequest) -> dict[str, Any]:
    """manifest.json but its `files`, which the writer adds: every entry with its SHA-256."""
    return {
        "schema_version": SCHEMA_VERSION,
        "app_version": app_version(),
        "user_id": request.user_id,
        "generated_at": request.generated_at.isoformat(),
        "categories": [c.key for c in request.categories],
        "date_from": json_value(request.date_from),
        "date_to": json_value(request.date_to),
    }
