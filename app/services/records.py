"""Reading the records held about a person, one data-map category at a time.

Pages are keyset-paginated on (time, id), newest first: every page, the hundredth as much as
the first, is one range scan of the category's (user_id, time, id) index, and a record added
while someone is reading never shifts the next page the way OFFSET would.

Only the fields the data map marks as shown ever leave this module; hidden fields (password
hashes, provider tokens) are never selected at all.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from PIL import Image, ImageOps
from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import RelationshipDirection

from app.datamap import Category, get_datamap
from app.extensions import db
from app.services import media

PAGE_SIZE = 50
MAX_SEARCH_LENGTH = 200
THUMBNAIL_SIZE = 160
ALT_TEXT_LENGTH = 150
_MAX_CURSOR_LENGTH = 120
_CURSOR_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Content types the store holds and a browser may be told to render; anything else is a
# download, never an inline document.
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})


# --- errors -----------------------------------------------------------------------------------


class RecordQueryError(ValueError):
    """What the person asked for (cursor, dates, search) is malformed: a 400, not a 500."""


class InvalidCursorError(RecordQueryError):
    pass


class InvalidDateError(RecordQueryError):
    pass


class DateRangeError(RecordQueryError):
    pass


class SearchTooLongError(RecordQueryError):
    pass


class UnknownCategoryError(LookupError):
    """No records page for this key: not in the data map, or not held in the database."""


class ItemNotFoundError(LookupError):
    """No such item for this person: unknown, deleted, or someone else's (all look alike)."""


# --- cursors and filters ----------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """The last record of a page: the next page starts strictly after it."""

    time: datetime
    id: int

    def encode(self) -> str:
        raw = f"{self.time.astimezone(UTC).isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    @classmethod
    def decode(cls, value: str) -> Cursor:
        """Strict: anything that is not exactly what `encode` makes is refused."""
        if not value or len(value) > _MAX_CURSOR_LENGTH or not _CURSOR_ALPHABET.fullmatch(value):
            raise InvalidCursorError(value)
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
            moment, item_id = raw.split("|")
            cursor = cls(datetime.fromisoformat(moment), int(item_id))
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise InvalidCursorError(value) from None
        if cursor.time.tzinfo is None or cursor.id < 1 or cursor.id >= 2**63:
            raise InvalidCursorError(value)
        if cursor.encode() != value:  # e.g. "+02:00" offsets, leading zeros, padding
            raise InvalidCursorError(value)
        return cursor


@dataclass(frozen=True)
class RecordFilter:
    search: str | None = None
    date_from: date | None = None
    date_to: date | None = None

    @property
    def active(self) -> bool:
        return bool(self.search or self.date_from or self.date_to)


def parse_date(value: str | None) -> date | None:
    """An ISO date (2025-03-31) or nothing; anything else raises InvalidDateError."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if not _ISO_DATE.fullmatch(value):
        raise InvalidDateError(value)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidDateError(value) from None


def parse_filter(search: str | None, date_from: str | None, date_to: str | None) -> RecordFilter:
    """The search and date filter as typed into the page, checked."""
    text = (search or "").strip()
    if len(text) > MAX_SEARCH_LENGTH:
        raise SearchTooLongError(text[:20])
    start, end = parse_date(date_from), parse_date(date_to)
    if start and end and start > end:
        raise DateRangeError(f"{start} > {end}")
    return RecordFilter(text or None, start, end)


def start_of_day(day: date) -> datetime:
    """Midnight UTC: dates on these pages are days in UTC, as the times are shown."""
    return datetime.combine(day, time(0), tzinfo=UTC)


# --- what a page holds ------------------------------------------------------------------------


@dataclass(frozen=True)
class Thumbnail:
    category: str  # whose file it is (the thumbnail URL names this category)
    item_id: int
    width: int
    height: int
    alt: str | None  # the prompt or file name it shows; None: the page says what it is


@dataclass(frozen=True)
class Record:
    id: int
    time: datetime | None
    values: dict[str, Any]  # the data map's shown fields, in its order, and nothing else
    thumbnail: Thumbnail | None = None
    attachments: tuple[Thumbnail, ...] = ()


@dataclass(frozen=True)
class RecordPage:
    records: list[Record]
    next_cursor: str | None
    filter: RecordFilter = field(default_factory=RecordFilter)


@dataclass(frozen=True)
class AttachedFiles:
    """Files of another category that belong to each item (a prompt's generated images)."""

    category: Category
    parent_column: Any  # the child's column that points at the parent's id
    cascades: bool  # deleting the parent deletes these too


# --- the data map, as models -------------------------------------------------------------------


def records_category(key: str) -> Category:
    """The category whose records `/data/<key>` lists; UnknownCategoryError otherwise."""
    category = get_datamap().get(key)
    if category is None or not category.in_database:
        raise UnknownCategoryError(key)
    if category.time_column is None:  # a data-map mistake, caught by a unit test
        raise UnknownCategoryError(key)
    return category


def is_single_record(category: Category) -> bool:
    """One row per person (the account itself, the plan): shown as a list, not a table."""
    column = getattr(category.model, category.user_column).property.columns[0]
    return bool(column.primary_key or column.unique)


def _file_categories() -> dict[type, Category]:
    return {c.model: c for c in get_datamap().database_categories if c.file_column}


def attached_files(category: Category) -> tuple[AttachedFiles, ...]:
    """Other categories' files that hang off this category's items, from the model's
    one-to-many relationships (so a new kind of attachment needs no change here)."""
    files = _file_categories()
    found = []
    for relationship in sa_inspect(category.model).relationships:
        child = files.get(relationship.mapper.class_)
        if relationship.direction is not RelationshipDirection.ONETOMANY or child is None:
            continue
        (column,) = relationship.remote_side
        cascades = any(fk.ondelete == "CASCADE" for fk in column.foreign_keys)
        found.append(AttachedFiles(child, column, cascades))
    return tuple(found)


def _describing_parent(category: Category) -> tuple[Any, Any] | None:
    """(link column, text column) of the item this file was made from (an image's prompt)."""
    by_model = {c.model: c for c in get_datamap().database_categories}
    for relationship in sa_inspect(category.model).relationships:
        parent = by_model.get(relationship.mapper.class_)
        is_parent = relationship.direction is RelationshipDirection.MANYTOONE
        if is_parent and parent is not None and parent.search_column:
            (link,) = relationship.local_columns
            return link, getattr(parent.model, parent.search_column)
    return None


def _columns(model: type, names: Iterable[str]) -> dict[str, Any]:
    return {name: getattr(model, name) for name in names}


# --- reading pages ----------------------------------------------------------------------------


def read_page(
    category: Category,
    user_id: int,
    *,
    cursor: Cursor | None = None,
    record_filter: RecordFilter | None = None,
    limit: int = PAGE_SIZE,
) -> RecordPage:
    """One page of this person's records in the category, newest first."""
    record_filter = record_filter or RecordFilter()
    model = category.model
    time_col = getattr(model, category.time_column)
    id_col = model.id
    query = _base_select(category).where(getattr(model, category.user_column) == user_id)
    query = _apply_filter(query, category, record_filter, time_col)
    if cursor is not None:
        # (time, id) < (t, i), written portably. The first term is implied by the second; it
        # is there so that the planner starts the index range at t instead of filtering
        # every newer row (which would make the hundredth page a hundred times dearer).
        query = query.where(
            time_col <= cursor.time,
            or_(time_col < cursor.time, and_(time_col == cursor.time, id_col < cursor.id)),
        )
    rows = db.session.execute(query.order_by(time_col.desc(), id_col.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    records = _records(category, rows, user_id)
    next_cursor = None
    if more and records:
        last = records[-1]
        assert last.time is not None
        next_cursor = Cursor(last.time, last.id).encode()
    return RecordPage(records, next_cursor, record_filter)


def read_item(category: Category, user_id: int, item_id: int) -> Record:
    model = category.model
    row = db.session.execute(
        _base_select(category).where(
            model.id == item_id, getattr(model, category.user_column) == user_id
        )
    ).first()
    if row is None:
        raise ItemNotFoundError(f"{category.key}:{item_id}")
    return _records(category, [row], user_id)[0]


def _base_select(category: Category) -> Select[Any]:
    model = category.model
    wanted = {"_id": model.id, "_time": getattr(model, category.time_column)}
    wanted.update(_columns(model, category.shown))
    if category.search_column:
        wanted["_text"] = getattr(model, category.search_column)
    if category.file_column:
        wanted.update(_columns(model, ("width", "height")))
        if "original_filename" in sa_inspect(model).columns:
            wanted["original_filename"] = model.original_filename
    return select(*(column.label(name) for name, column in wanted.items()))


def _apply_filter(
    query: Select[Any], category: Category, record_filter: RecordFilter, time_col: Any
) -> Select[Any]:
    if record_filter.search and category.search_column:
        column = getattr(category.model, category.search_column)
        # autoescape: a "%" or "_" typed by the person is a character, not a wildcard.
        query = query.where(column.icontains(record_filter.search, autoescape=True))
    if record_filter.date_from:
        query = query.where(time_col >= start_of_day(record_filter.date_from))
    if record_filter.date_to:
        query = query.where(time_col < start_of_day(record_filter.date_to + timedelta(days=1)))
    return query


def _records(category: Category, rows: Sequence[Any], user_id: int) -> list[Record]:
    thumbnails = _own_thumbnails(category, rows)
    texts = {row._id: row._text for row in rows} if category.search_column else {}
    attachments = _attachment_thumbnails(category, user_id, texts or [row._id for row in rows])
    return [
        Record(
            id=row._id,
            time=row._time,
            values={name: getattr(row, name) for name in category.shown},
            thumbnail=thumbnails.get(row._id),
            attachments=tuple(attachments.get(row._id, ())),
        )
        for row in rows
    ]


def fit(width: int, height: int, box: int = THUMBNAIL_SIZE) -> tuple[int, int]:
    """The size of an image scaled down (never up) to fit a box x box square."""
    if width <= 0 or height <= 0:
        return box, box
    scale = min(1.0, box / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _alt(text: str | None) -> str | None:
    if not text:
        return None
    text = " ".join(text.split())
    return text if len(text) <= ALT_TEXT_LENGTH else text[: ALT_TEXT_LENGTH - 1] + "…"


def _own_thumbnails(category: Category, rows: Sequence[Any]) -> dict[int, Thumbnail]:
    if not category.file_column or not rows:
        return {}
    alts: dict[int, str | None] = {}
    if "original_filename" in rows[0]._fields:
        alts = {row._id: row.original_filename for row in rows}
    else:
        alts = _parent_texts(category, [row._id for row in rows])
    return {
        row._id: Thumbnail(
            category.key, row._id, *fit(row.width, row.height), _alt(alts.get(row._id))
        )
        for row in rows
    }


def _parent_texts(category: Category, ids: list[int]) -> dict[int, str | None]:
    """One query for the page: each file's describing text (an image's prompt)."""
    parent = _describing_parent(category)
    if parent is None or not ids:
        return {}
    link, text_col = parent
    model = category.model
    query = (
        select(model.id, text_col)
        .join(text_col.class_, text_col.class_.id == link)
        .where(model.id.in_(ids))
    )
    return {row[0]: row[1] for row in db.session.execute(query)}


def _attachment_thumbnails(
    category: Category, user_id: int, parents: dict[int, str | None] | list[int]
) -> dict[int, list[Thumbnail]]:
    """Every attached file of the page's items in one query per attachment kind (no N+1).

    `parents` maps each item id to the text that describes its files (a prompt's text).
    """
    found: dict[int, list[Thumbnail]] = {}
    ids = list(parents)
    texts = parents if isinstance(parents, dict) else {}
    if not ids:
        return found
    for attached in attached_files(category):
        child = attached.category
        parent_col = getattr(child.model, attached.parent_column.key)
        query = (
            select(child.model.id, parent_col, child.model.width, child.model.height)
            .where(parent_col.in_(ids), getattr(child.model, child.user_column) == user_id)
            .order_by(getattr(child.model, child.time_column), child.model.id)
        )
        for child_id, parent_id, width, height in db.session.execute(query):
            thumbnail = Thumbnail(
                child.key, child_id, *fit(width, height), _alt(texts.get(parent_id))
            )
            found.setdefault(parent_id, []).append(thumbnail)
    return found


# --- aggregates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CategoryTotals:
    count: int
    newest: datetime | None


def category_totals(category: Category, user_id: int) -> CategoryTotals:
    """How many records and the newest, in one aggregate over the category's index."""
    model = category.model
    time_col = getattr(model, category.time_column)
    count, newest = db.session.execute(
        select(func.count(), func.max(time_col)).where(
            getattr(model, category.user_column) == user_id
        )
    ).one()
    if isinstance(newest, str):  # SQLite returns MAX() of a datetime column as text
        newest = datetime.fromisoformat(newest)
    if isinstance(newest, datetime) and newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)
    return CategoryTotals(int(count), newest)


# --- files ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredFile:
    storage_key: str
    content_type: str
    download_name: str


def stored_file(category: Category, user_id: int, item_id: int) -> StoredFile:
    """The file behind an item, only for its owner; ItemNotFoundError for anything else."""
    if not category.file_column:
        raise ItemNotFoundError(f"{category.key}:{item_id}")
    model = category.model
    names: ColumnElement[Any] | Any = (
        model.original_filename
        if "original_filename" in sa_inspect(model).columns
        else getattr(model, category.file_column)
    )
    row = db.session.execute(
        select(getattr(model, category.file_column), model.content_type, names).where(
            model.id == item_id, getattr(model, category.user_column) == user_id
        )
    ).first()
    if row is None:
        raise ItemNotFoundError(f"{category.key}:{item_id}")
    key, content_type, name = row
    if name == key:  # no file name of its own: name it after the item
        extension = key.rpartition(".")[2]
        name = f"{category.key}-{item_id}.{extension}"
    return StoredFile(key, content_type, name)


def thumbnail_bytes(stored: StoredFile, box: int = THUMBNAIL_SIZE) -> tuple[bytes, str]:
    """A small copy of the image, made on request (about 2 ms for the platform's sizes).

    Not cached on purpose: a cached copy would be one more file to find and erase when the
    person deletes the image or the account.
    """
    try:
        with media.open_stream(stored.storage_key) as handle:
            return _shrink(handle, box)
    except OSError:  # gone from the store, or not an image Pillow can read
        raise ItemNotFoundError(stored.storage_key) from None


def _shrink(handle: Any, box: int) -> tuple[bytes, str]:
    with Image.open(handle) as image:
        image.draft("RGB", (box * 2, box * 2))  # JPEG: decode at a reduced size, much faster
        small = ImageOps.exif_transpose(image)
        small.thumbnail((box, box))
        output = io.BytesIO()
        if image.format == "JPEG":
            small.convert("RGB").save(output, "JPEG", quality=80)
            return output.getvalue(), "image/jpeg"
        if small.mode not in {"RGB", "RGBA", "L", "LA", "P"}:
            small = small.convert("RGBA")
        small.save(output, "PNG")
        return output.getvalue(), "image/png"
