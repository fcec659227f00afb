"""Reading records: page cursors, the search and date filter, thumbnail sizes, field labels."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from app.datamap import load_datamap
from app.services.records import (
    MAX_SEARCH_LENGTH,
    Cursor,
    DateRangeError,
    InvalidCursorError,
    InvalidDateError,
    RecordFilter,
    SearchTooLongError,
    fit,
    parse_date,
    parse_filter,
)
from app.web.data import FIELD_LABELS


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def test_a_cursor_survives_the_round_trip_through_a_url() -> None:
    cursor = Cursor(datetime(2025, 3, 31, 23, 59, 58, 123456, tzinfo=UTC), 4711)
    encoded = cursor.encode()
    assert set(encoded) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert Cursor.decode(encoded) == cursor


def test_a_cursor_in_another_time_zone_is_written_in_utc() -> None:
    berlin = timezone(timedelta(hours=2))
    cursor = Cursor(datetime(2025, 4, 1, 1, 0, tzinfo=berlin), 7)
    decoded = Cursor.decode(cursor.encode())
    assert decoded.time == datetime(2025, 3, 31, 23, 0, tzinfo=UTC)
    assert decoded.time.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "abc",
        "not base64!",
        "a" * 200,
        _b64("2025-03-31T10:00:00+00:00"),  # no id
        _b64("2025-03-31T10:00:00+00:00|12|3"),  # one part too many
        _b64("2025-03-31T10:00:00+00:00|x"),  # id not a number
        _b64("2025-03-31T10:00:00+00:00|0"),  # ids start at 1
        _b64("2025-03-31T10:00:00+00:00|-5"),
        _b64(f"2025-03-31T10:00:00+00:00|{2**63}"),  # beyond any database integer
        _b64("2025-03-31T10:00:00|12"),  # no time zone
        _b64("2025-03-31T12:00:00+02:00|12"),  # right moment, but not how we write it
        _b64("2025-03-31T10:00:00+00:00|012"),  # leading zero
        _b64("2025-02-30T10:00:00+00:00|12"),  # no such day
        _b64("yesterday|12"),
        _b64("2025-03-31T10:00:00+00:00|12") + "==",  # padding we never send
        base64.urlsafe_b64encode(b"\xff\xfe|1").decode().rstrip("="),  # not text
    ],
)
def test_anything_but_our_own_cursor_is_refused(raw: str) -> None:
    with pytest.raises(InvalidCursorError):
        Cursor.decode(raw)


def test_filters_are_trimmed_and_dates_read() -> None:
    assert parse_filter("  fox  ", "2025-03-01", "2025-03-31") == RecordFilter(
        "fox", date(2025, 3, 1), date(2025, 3, 31)
    )
    assert parse_filter(None, None, None) == RecordFilter()
    assert parse_filter("   ", "", " ") == RecordFilter()
    assert not RecordFilter().active
    assert RecordFilter(date_to=date(2025, 1, 1)).active


def test_one_day_is_a_valid_range() -> None:
    assert parse_filter(None, "2025-03-01", "2025-03-01").date_from == date(2025, 3, 1)


@pytest.mark.parametrize(
    "value", ["2025-13-01", "2025-02-30", "31.03.2025", "yesterday", "2025-3-1"]
)
def test_a_date_that_is_not_a_date_is_refused(value: str) -> None:
    with pytest.raises(InvalidDateError):
        parse_date(value)
    with pytest.raises(InvalidDateError):
        parse_filter(None, None, value)


def test_from_after_to_is_refused() -> None:
    with pytest.raises(DateRangeError):
        parse_filter(None, "2025-04-01", "2025-03-31")


def test_a_search_longer_than_the_limit_is_refused() -> None:
    assert parse_filter("x" * MAX_SEARCH_LENGTH, None, None).search == "x" * MAX_SEARCH_LENGTH
    with pytest.raises(SearchTooLongError):
        parse_filter("x" * (MAX_SEARCH_LENGTH + 1), None, None)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((256, 256), (160, 160)),
        ((256, 192), (160, 120)),
        ((192, 256), (120, 160)),
        ((1024, 100), (160, 16)),
        ((100, 80), (100, 80)),  # never scaled up
        ((0, 0), (160, 160)),
    ],
)
def test_thumbnails_fit_a_160_pixel_square(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert fit(*size) == expected


def test_every_field_the_data_map_shows_or_names_has_a_label_for_people() -> None:
    datamap = load_datamap()
    missing = sorted(
        {
            f"{category.key}.{name}"
            for category in datamap.database_categories
            for name in (*category.shown, *category.hidden)
            if name not in FIELD_LABELS
        }
    )
    assert not missing, f"add a label to FIELD_LABELS in app/web/data.py for: {missing}"


def test_every_category_in_the_database_has_a_time_to_order_its_records_by() -> None:
    untimed = [c.key for c in load_datamap().database_categories if not c.time_column]
    assert not untimed, f"records pages need a time_column for: {untimed}"
