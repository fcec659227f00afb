"""The privacy notice's versions: notice.yaml is valid, matches the data map, and who sees what."""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.datamap import DATAMAP_PATH, get_datamap
from app.datamap.babel_extract import extract_datamap
from app.services.api_keys import key_label, matching_key_index
from app.services.notice import (
    NOTICE_PATH,
    Notice,
    NoticeError,
    NoticeVersionInfo,
    datamap_fingerprint,
    fingerprint_problem,
    get_notice,
    load_notice,
    next_version_name,
    notice_facts,
    parse_notice,
    parse_snapshot,
    unseen_versions,
)

FINGERPRINT = "a" * 64
TODAY = date(2026, 11, 21)


@cache
def _shipped_document() -> dict[str, Any]:
    return yaml.safe_load(NOTICE_PATH.read_text(encoding="utf-8"))


@pytest.fixture
def document() -> dict[str, Any]:
    return copy.deepcopy(_shipped_document())


def _version(name: str, day: date, changes: tuple[str, ...] = ("Something changed.",)) -> Any:
    return NoticeVersionInfo(name, day, FINGERPRINT, changes)


def _notice(*versions: NoticeVersionInfo) -> Notice:
    return Notice(minimum_age=13, security=("Encrypted.",), versions=versions)


# --- the shipped files ------------------------------------------------------------------------


def test_the_notice_was_published_with_this_data_map() -> None:
    """Fails when datamap.yaml changes without a new notice version; says what to add."""
    problem = fingerprint_problem(load_notice(), datamap_fingerprint(), datetime.now(UTC).date())
    assert problem is None, problem


def test_shipped_notice_parses_with_its_facts() -> None:
    notice = load_notice()
    assert notice.minimum_age == 13
    assert notice.security, "the notice states no security measure"
    assert notice.current is notice.versions[-1]
    assert all(version.changes for version in notice.versions)
    assert get_notice() == notice


def test_notice_wording_reaches_the_translation_catalog() -> None:
    with NOTICE_PATH.open("rb") as handle:
        extracted = {text for _, _, text, _ in extract_datamap(handle, {}, [], {})}
    notice = load_notice()
    assert set(notice.security) <= extracted
    assert {change for v in notice.versions for change in v.changes} <= extracted
    assert notice.current.version not in extracted
    assert notice.current.fingerprint not in extracted


# --- the fingerprint --------------------------------------------------------------------------


def test_fingerprint_is_the_sha256_of_the_exact_bytes(tmp_path: Path) -> None:
    copy_path = tmp_path / "datamap.yaml"
    copy_path.write_bytes(DATAMAP_PATH.read_bytes())
    assert datamap_fingerprint(copy_path) == datamap_fingerprint()
    # Even a change no reader would notice is a change: nothing is normalised.
    copy_path.write_bytes(DATAMAP_PATH.read_bytes() + b"\n")
    assert datamap_fingerprint(copy_path) != datamap_fingerprint()


def test_a_changed_data_map_names_exactly_what_to_add() -> None:
    notice = _notice(_version("2026.11.1", date(2026, 11, 1)))
    new = "b" * 64
    problem = fingerprint_problem(notice, new, TODAY)
    assert problem is not None
    assert "app/datamap/notice.yaml" in problem
    assert "2026.11.1" in problem  # the version that no longer matches
    assert 'version: "2026.11.2"' in problem  # the next free name this month
    assert f'fingerprint: "{new}"' in problem
    assert 'date: "2026-11-21"' in problem
    assert "flask --app wsgi notice fingerprint" in problem
    assert fingerprint_problem(notice, FINGERPRINT, TODAY) is None


def test_the_suggested_entry_is_valid_notice_yaml(document: dict[str, Any]) -> None:
    notice = parse_notice(document)
    problem = fingerprint_problem(notice, "c" * 64, TODAY)
    assert problem is not None
    entry = problem[problem.index("  - version:") :].split("\n\n")[0]
    document["versions"].extend(yaml.safe_load(entry))
    extended = parse_notice(document)
    assert extended.current.fingerprint == "c" * 64
    assert fingerprint_problem(extended, "c" * 64, TODAY) is None


def test_next_version_name_skips_names_in_use() -> None:
    notice = _notice(_version("2026.11.1", date(2026, 11, 1)), _version("2026.11.2", TODAY))
    assert next_version_name(notice, TODAY) == "2026.11.3"
    assert next_version_name(notice, date(2027, 1, 5)) == "2027.1.1"


# --- notice.yaml mistakes ---------------------------------------------------------------------


def _out_of_order(document: dict[str, Any]) -> None:
    earlier = {**copy.deepcopy(document["versions"][-1]), "version": "1999.1.1"}
    document["versions"].append({**earlier, "date": "1999-01-01"})


BREAKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "no versions": lambda d: d.update(versions=[]),
    "unquoted version": lambda d: d["versions"][-1].update(version=2026.11),
    "long version": lambda d: d["versions"][-1].update(version="v" * 33),
    "bad date": lambda d: d["versions"][-1].update(date="21/11/2026"),
    "short fingerprint": lambda d: d["versions"][-1].update(fingerprint="abc"),
    "no changes": lambda d: d["versions"][-1].update(changes=[]),
    "change without text": lambda d: d["versions"][-1].update(changes=[{"txt": "typo"}]),
    "unknown key": lambda d: d["versions"][-1].update(author="someone"),
    "duplicate": lambda d: d["versions"].append(copy.deepcopy(d["versions"][-1])),
    "out of order": _out_of_order,
    "no minimum age": lambda d: d.pop("minimum_age"),
    "no security": lambda d: d.update(security=[]),
    "unknown top-level key": lambda d: d.update(contact="x"),
}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("no versions", "at least one version"),
        ("unquoted version", "quoted string"),
        ("long version", "up to 32"),
        ("bad date", "ISO date"),
        ("short fingerprint", "sha256"),
        ("no changes", "changes"),
        ("change without text", "text"),
        ("unknown key", "author"),
        ("duplicate", "more than once"),
        ("out of order", "oldest first"),
        ("no minimum age", "minimum_age"),
        ("no security", "security"),
        ("unknown top-level key", "contact"),
    ],
)
def test_mistakes_in_notice_yaml_are_named(
    document: dict[str, Any], change: str, named: str
) -> None:
    BREAKS[change](document)
    with pytest.raises(NoticeError) as excinfo:
        parse_notice(document)
    assert named in str(excinfo.value)


def test_dates_may_be_written_quoted_or_not(document: dict[str, Any]) -> None:
    document["versions"][-1]["date"] = date(2026, 11, 21)
    assert parse_notice(document).current.date == date(2026, 11, 21)


def test_invalid_yaml_is_reported(tmp_path: Path) -> None:
    broken = tmp_path / "notice.yaml"
    broken.write_text("versions: [\n", encoding="utf-8")
    with pytest.raises(NoticeError, match="not valid YAML"):
        load_notice(broken)


# --- who sees the "what changed" notice -------------------------------------------------------

V1 = _version("2026.1.1", date(2026, 1, 10), ("First change.",))
V2 = _version("2026.6.1", date(2026, 6, 1), ("Second change.",))
V3 = _version("2026.11.1", date(2026, 11, 21), ("Third change.",))
THREE = _notice(V1, V2, V3)


@pytest.mark.parametrize(
    ("seen", "created", "expected"),
    [
        (None, datetime(2025, 1, 1, tzinfo=UTC), [V1, V2, V3]),
        (None, datetime(2026, 3, 1, tzinfo=UTC), [V2, V3]),
        ("2026.1.1", datetime(2025, 1, 1, tzinfo=UTC), [V2, V3]),
        ("2026.6.1", datetime(2025, 1, 1, tzinfo=UTC), [V3]),
        ("2026.11.1", datetime(2025, 1, 1, tzinfo=UTC), []),
        # An account opened after the current version read the notice as it is.
        (None, datetime(2026, 11, 21, 9, 0, tzinfo=UTC), []),
        (None, datetime(2026, 11, 20, 23, 59, tzinfo=UTC), [V3]),
        # A version no longer listed counts as none seen.
        ("2020.1.1", datetime(2026, 3, 1, tzinfo=UTC), [V2, V3]),
    ],
)
def test_unseen_versions(seen: str | None, created: datetime, expected: list[Any]) -> None:
    assert list(unseen_versions(THREE, seen, created)) == expected


# --- what the notice states, from the data map ------------------------------------------------


def test_facts_come_from_the_data_map() -> None:
    datamap = get_datamap()
    facts = notice_facts(datamap)
    used_recipients = {r.key for c in datamap for r in c.recipients}
    assert {r.key for r, _ in facts.recipients} == used_recipients
    assert facts.transfer_countries == ("US",)
    assert [s.key for s in facts.transfer_safeguards] == ["scc"]
    assert {c.key for c in facts.deletable_categories} == {
        c.key for c in datamap if c.item_deletion
    }
    assert "improve_models" in {p.key for p in facts.objectable_purposes}
    assert all(p.basis.key == "legitimate_interests" for p in facts.objectable_purposes)
    stated = {p.key for _, purposes in facts.bases for p in purposes}
    assert stated == {p.key for c in datamap for p in c.purposes}


def test_a_snapshot_that_no_longer_parses_is_none() -> None:
    assert parse_snapshot(DATAMAP_PATH.read_text(encoding="utf-8")) is not None
    assert parse_snapshot("") is None
    assert parse_snapshot("categories: [\n") is None  # not YAML
    assert parse_snapshot("version: 1\ncategories: []\n") is None  # not a data map any more
    assert parse_snapshot("- just\n- a list\n") is None


# --- API keys ---------------------------------------------------------------------------------


def test_api_key_matching() -> None:
    keys = ("first-key", "second-key")
    assert matching_key_index("second-key", keys) == 1
    assert matching_key_index("first-key", keys) == 0
    assert matching_key_index("second-ke", keys) is None
    assert matching_key_index("", keys) is None
    assert matching_key_index("", ("",)) is None  # an empty key never opens anything
    assert matching_key_index("first-key", ()) is None
    assert matching_key_index("clé-ünïcode", keys) is None
    assert key_label("first-key") != "first-key"
    assert key_label("first-key") == key_label("first-key")


def test_extractor_reads_notice_yaml_from_bytes() -> None:
    source = b"security:\n  - text: Locked doors.\nversions: []\n"
    assert [m[2] for m in extract_datamap(io.BytesIO(source), {}, [], {})] == ["Locked doors."]
