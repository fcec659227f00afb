"""What is held about a person, counted per data-map category without loading any rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, literal, select, union_all

from app.datamap import Category, get_datamap
from app.extensions import db
from app.models.types import UTCDateTime


@dataclass(frozen=True)
class Holding:
    category: Category
    count: int
    newest: datetime | None


def summarise_holdings(user_id: int) -> list[Holding]:
    """One aggregate query over every database category, in data-map order."""
    categories = get_datamap().database_categories
    selects = []
    for category in categories:
        model = category.model
        user_col = getattr(model, category.user_column)
        time_col = getattr(model, category.time_column) if category.time_column else None
        selects.append(
            select(
                literal(category.key).label("key"),
                func.count().label("n"),
                (func.max(time_col) if time_col is not None else literal(None)).label("newest"),
            ).where(user_col == user_id)
        )
    rows = db.session.execute(union_all(*selects)).all()
    by_key = {row.key: row for row in rows}
    decode = UTCDateTime().process_result_value
    dialect = db.session.get_bind().dialect
    holdings = []
    for category in categories:
        row = by_key[category.key]
        newest = row.newest
        if isinstance(newest, str):  # SQLite returns MAX() of a datetime column as text
            newest = datetime.fromisoformat(newest)
        holdings.append(Holding(category, int(row.n), decode(newest, dialect)))
    return holdings
