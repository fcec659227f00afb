"""What an erasure must leave behind, for the integration and browser tests: what was held
about a person before, and where any of it can still be found afterwards."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, cast, func, select

from app.datamap import get_datamap
from app.extensions import db
from app.models import (
    BillingAddress,
    DeviceRecord,
    EmailChange,
    GeneratedImage,
    Invoice,
    Prompt,
    SupportMessage,
    Upload,
    User,
)


@dataclass
class Facts:
    """What was held about the person before the erasure, to look for afterwards."""

    user_id: int
    email: str
    password: str
    session_version: int
    needles: set[str]  # texts that identify the person or that they wrote
    file_keys: list[str]  # their files in the media store
    invoices: dict[int, datetime]  # id: issued_at


def facts_about(user_id: int, password: str) -> Facts:
    user = db.session.get(User, user_id)
    assert user is not None
    needles = {user.email, user.name}
    for column in (
        DeviceRecord.ip_address,
        DeviceRecord.device_identifier,
        Prompt.text,
        Upload.original_filename,
        SupportMessage.subject,
        SupportMessage.body,
        BillingAddress.line1,
        EmailChange.new_email,
    ):
        owner = column.class_.user_id
        needles |= set(db.session.scalars(select(column).where(owner == user_id)))
    keys = [
        key
        for model in (GeneratedImage, Upload)
        for key in db.session.scalars(select(model.storage_key).where(model.user_id == user_id))
    ]
    invoices = dict(
        db.session.execute(
            select(Invoice.id, Invoice.issued_at).where(Invoice.user_id == user_id)
        ).all()
    )
    assert keys and invoices and len(needles) > 4
    return Facts(user_id, user.email, password, user.session_version, needles, keys, invoices)


def holdings(user_id: int) -> dict[str, int]:
    """Rows per data map category held for the person."""
    counts = {}
    for category in get_datamap().database_categories:
        column = getattr(category.model, category.user_column)
        counts[category.key] = (
            db.session.scalar(
                select(func.count()).select_from(category.model).where(column == user_id)
            )
            or 0
        )
    return counts


def traces(needles: set[str]) -> list[str]:
    """Every value in every table that contains one of `needles` (any case; also as JSON
    writes non-ASCII text)."""
    forms = {form.lower() for n in needles for form in (n, json.dumps(n)[1:-1]) if n}
    found = []
    for table in db.metadata.sorted_tables:
        columns = [cast(column, String) for column in table.c]
        for row in db.session.execute(select(*columns)):
            for column, value in zip(table.c, row, strict=True):
                if value is not None and any(form in value.lower() for form in forms):
                    found.append(f"{table.name}.{column.name}: {value[:80]}")
    return found
