"""Deleting single items, and a person's items older than a date, where the data map allows it.

The rows and the audit event are one transaction (the caller commits). The files go after
the commit, through a recorded job: a crash before the commit deletes nothing, a crash after
it leaves a job that the sweeper runs again, and deleting a file twice is harmless.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, func, select

from app.datamap import Category, get_datamap
from app.extensions import db
from app.jobs import job_handler, record_job
from app.services import media
from app.services.audit import record_event
from app.services.records import (
    AttachedFiles,
    ItemNotFoundError,
    attached_files,
    start_of_day,
)

MEDIA_DELETE_JOB = "media.delete_files"
BULK_BATCH_SIZE = 500  # rows per DELETE: memory stays flat whatever the person holds
KEYS_PER_JOB = 500
# The shown field that names an item best on a confirmation page, in order of preference.
LABEL_FIELDS = ("original_filename", "subject", "text")


class NotDeletableError(LookupError):
    """The data map does not let a person delete single items of this category."""


class CountChangedError(RuntimeError):
    """What would be deleted is no longer what the person confirmed."""

    def __init__(self, counts: BulkCounts) -> None:
        super().__init__("the number of items changed since the confirmation")
        self.counts = counts


@dataclass(frozen=True)
class ItemPreview:
    """What deleting one item removes: the item, and the files that go with it."""

    category: Category
    item_id: int
    label_field: str | None  # the shown field that names the item (prompt text, file name)
    label: str | None
    time: datetime | None
    attached: tuple[tuple[Category, int], ...]  # (category, how many) that go with it


@dataclass(frozen=True)
class BulkCounts:
    items: int
    attached: tuple[tuple[Category, int], ...]

    def as_details(self, category: Category) -> dict[str, int]:
        return {category.key: self.items, **{c.key: n for c, n in self.attached}}


def _require_item_deletion(category: Category) -> None:
    if not (category.in_database and category.item_deletion):
        raise NotDeletableError(category.key)


def _cascading(category: Category) -> tuple[AttachedFiles, ...]:
    return tuple(a for a in attached_files(category) if a.cascades)


def _owner(category: Category) -> Any:
    return getattr(category.model, category.user_column)


def _child_column(attached: AttachedFiles) -> Any:
    return getattr(attached.category.model, attached.parent_column.key)


def can_bulk_delete(category: Category) -> bool:
    """Whether to offer "delete everything older than a date": for items that carry files
    made from them (prompts and their images), where clearing out old work is what people
    ask for."""
    return category.item_deletion and category.in_database and bool(_cascading(category))


def kept_references(category: Category) -> tuple[Category, ...]:
    """Categories whose records point at this one's items but stay when an item goes (an
    upload used with a prompt keeps existing, its link is cleared): the confirmation says so."""
    table = category.model.__table__
    kept = []
    for other in get_datamap().database_categories:
        if other.key == category.key:
            continue
        for fk in other.model.__table__.foreign_keys:
            if fk.column.table is table and fk.ondelete != "CASCADE":
                kept.append(other)
                break
    return tuple(kept)


# --- single items -----------------------------------------------------------------------------


def preview_item_deletion(category: Category, user_id: int, item_id: int) -> ItemPreview:
    _require_item_deletion(category)
    model = category.model
    label_field = next((f for f in LABEL_FIELDS if f in category.shown), None)
    columns = [getattr(model, category.time_column)] if category.time_column else []
    if label_field:
        columns.append(getattr(model, label_field))
    row = db.session.execute(
        select(model.id, *columns).where(model.id == item_id, _owner(category) == user_id)
    ).first()
    if row is None:
        raise ItemNotFoundError(f"{category.key}:{item_id}")
    moment = row[1] if category.time_column else None
    label = row[-1] if label_field else None
    attached = tuple(
        (
            a.category,
            db.session.scalar(
                select(func.count()).where(
                    _child_column(a) == item_id, _owner(a.category) == user_id
                )
            )
            or 0,
        )
        for a in _cascading(category)
    )
    return ItemPreview(category, item_id, label_field, label, moment, attached)


def delete_item(category: Category, user_id: int, item_id: int) -> dict[str, int]:
    """Delete one of the person's items and whatever cascades with it; the caller commits.

    Returns how many rows went per category key. Raises ItemNotFoundError when the item is
    not the person's or is already gone; if that is found out only after the attached rows
    went (another request deleted the item at the same moment), the caller rolls back.
    """
    _require_item_deletion(category)
    model = category.model
    if not db.session.scalar(
        select(func.count()).where(model.id == item_id, _owner(category) == user_id)
    ):
        raise ItemNotFoundError(f"{category.key}:{item_id}")
    removed = _delete_batch(category, user_id, [item_id])
    if removed.pop(category.key) != 1:
        raise ItemNotFoundError(f"{category.key}:{item_id}")
    record_event(
        "data.item_deleted",
        actor_type="user",
        actor_id=user_id,
        subject_user_id=user_id,
        target=f"{category.key}:{item_id}",
        details=removed,  # counts only, never the prompt or file name
    )
    return {category.key: 1, **removed}


# --- everything older than a date -------------------------------------------------------------


def count_older_than(category: Category, user_id: int, before: date) -> BulkCounts:
    """How many items (and attached files) were created before `before` (a UTC day)."""
    _require_bulk(category)
    items = _older_than(category, user_id, before)
    total = db.session.scalar(select(func.count()).select_from(items.subquery())) or 0
    attached = tuple(
        (
            a.category,
            db.session.scalar(
                select(func.count()).where(
                    _child_column(a).in_(items), _owner(a.category) == user_id
                )
            )
            or 0,
        )
        for a in _cascading(category)
    )
    return BulkCounts(total, attached)


def delete_older_than(
    category: Category, user_id: int, before: date, *, expected: BulkCounts
) -> BulkCounts:
    """Delete every item created before `before`, in batches; the caller commits.

    The counts are checked again first: if they are not what the person confirmed,
    CountChangedError carries the new counts and nothing is deleted.
    """
    current = count_older_than(category, user_id, before)
    if current != expected:
        raise CountChangedError(current)
    removed = {category.key: 0, **{a.category.key: 0 for a in _cascading(category)}}
    for ids in _batches_older_than(category, user_id, before):
        for key, count in _delete_batch(category, user_id, ids).items():
            removed[key] += count
    result = BulkCounts(
        removed[category.key],
        tuple((a.category, removed[a.category.key]) for a in _cascading(category)),
    )
    record_event(
        "data.items_deleted",
        actor_type="user",
        actor_id=user_id,
        subject_user_id=user_id,
        target=f"{category.key}:before:{before.isoformat()}",
        details=result.as_details(category),
    )
    return result


def _require_bulk(category: Category) -> None:
    if not can_bulk_delete(category) or not category.time_column:
        raise NotDeletableError(category.key)


def _older_than(category: Category, user_id: int, before: date) -> Any:
    model = category.model
    return select(model.id).where(
        _owner(category) == user_id,
        getattr(model, category.time_column) < start_of_day(before),
    )


def _batches_older_than(category: Category, user_id: int, before: date) -> Iterator[list[int]]:
    # Each batch is deleted before the next is read, so "the first N" is always new rows.
    # In index order (user, time, id): each batch is a short range scan, never a sort.
    time_col = getattr(category.model, category.time_column)
    query = _older_than(category, user_id, before).order_by(time_col, category.model.id)
    while True:
        ids = list(db.session.scalars(query.limit(BULK_BATCH_SIZE)))
        if not ids:
            return
        yield ids


def _delete_batch(category: Category, user_id: int, ids: Sequence[int]) -> dict[str, int]:
    """Delete these items of the person and what cascades with them; queue their files.

    DELETE ... RETURNING gives the storage keys of exactly the rows that went, so a file
    added a moment before is never missed and a row someone else deleted is not counted.
    """
    removed: dict[str, int] = {}
    keys: list[str] = []
    for attached in _cascading(category):
        child = attached.category
        deleted = db.session.execute(
            delete(child.model)
            .where(_child_column(attached).in_(ids), _owner(child) == user_id)
            .returning(getattr(child.model, child.file_column))
            .execution_options(synchronize_session=False)
        ).all()
        removed[child.key] = len(deleted)
        keys.extend(key for (key,) in deleted)
    model = category.model
    statement = (
        delete(model)
        .where(model.id.in_(ids), _owner(category) == user_id)
        .execution_options(synchronize_session=False)
    )
    if category.file_column:
        deleted = db.session.execute(
            statement.returning(getattr(model, category.file_column))
        ).all()
        keys.extend(key for (key,) in deleted)
        removed[category.key] = len(deleted)
    else:
        removed[category.key] = db.session.execute(statement).rowcount  # type: ignore[attr-defined]
    queue_file_removal(keys)
    return removed


# --- the files --------------------------------------------------------------------------------


def queue_file_removal(keys: list[str]) -> None:
    for start in range(0, len(keys), KEYS_PER_JOB):
        record_job(MEDIA_DELETE_JOB, {"keys": keys[start : start + KEYS_PER_JOB]})


@job_handler(MEDIA_DELETE_JOB)
def delete_files(payload: dict[str, Any]) -> None:
    """Remove files from the media store; a file already gone counts as done."""
    for key in payload["keys"]:
        media.delete(key)
