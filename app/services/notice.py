"""The privacy notice: its versions, what changed in each, and who has seen the changes.

The notice is rendered from the data map; `notice.yaml` beside it lists the published versions
(newest last), each with the fingerprint of the data map it was published with, so a change to
the data map cannot go out without a new version (a unit test checks it). Each version is
recorded in `notice_versions` with a snapshot of its data map, so the notice as it was stays
readable after the map moves on.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from functools import cache, lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.datamap import (
    DATAMAP_PATH,
    Category,
    DataMap,
    LegalBasis,
    Purpose,
    Recipient,
    Safeguard,
    parse_datamap,
)
from app.extensions import db
from app.models import NoticeVersion, User
from app.services.audit import record_event

log = logging.getLogger(__name__)

NOTICE_PATH = DATAMAP_PATH.with_name("notice.yaml")
VERSION_PATTERN = re.compile(r"[0-9A-Za-z][0-9A-Za-z.\-]{0,31}")
FINGERPRINT_PATTERN = re.compile(r"[0-9a-f]{64}")
NOTICE_KEYS = {"minimum_age", "security", "versions"}
VERSION_KEYS = {"version", "date", "fingerprint", "changes"}
# The legal basis a person may object to (the data map's key for it).
LEGITIMATE_INTERESTS = "legitimate_interests"


class NoticeError(ValueError):
    """notice.yaml is malformed; the message names the entry at fault."""


@dataclass(frozen=True)
class NoticeVersionInfo:
    version: str
    date: date
    fingerprint: str
    changes: tuple[str, ...]

    @property
    def effective_from(self) -> datetime:
        """The version applies from the start of its day, in UTC."""
        return datetime.combine(self.date, time.min, tzinfo=UTC)


@dataclass(frozen=True)
class Notice:
    minimum_age: int
    security: tuple[str, ...]
    versions: tuple[NoticeVersionInfo, ...]

    @property
    def current(self) -> NoticeVersionInfo:
        return self.versions[-1]

    def find(self, version: str) -> NoticeVersionInfo | None:
        return next((v for v in self.versions if v.version == version), None)


# --- notice.yaml ------------------------------------------------------------------------------


def _texts(entry: str, raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise NoticeError(f"notice {entry}: needs a list of items, each with a text")
    texts = []
    for item in raw:
        text = item.get("text") if isinstance(item, dict) else None
        if not isinstance(text, str) or not text.strip() or set(item) != {"text"}:
            raise NoticeError(f"notice {entry}: each item needs exactly one non-empty 'text'")
        texts.append(text)
    return tuple(texts)


def _parse_date(entry: str, raw: Any) -> date:
    if isinstance(raw, date) and not isinstance(raw, datetime):
        return raw  # YAML reads an unquoted 2026-11-21 as a date already
    if isinstance(raw, str):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    raise NoticeError(f"notice version {entry}: date must be an ISO date (YYYY-MM-DD)")


def _parse_version(raw: Any, index: int) -> NoticeVersionInfo:
    if not isinstance(raw, dict):
        raise NoticeError(f"notice version #{index + 1} is not a mapping")
    entry = str(raw.get("version") or f"#{index + 1}")
    unknown = set(raw) - VERSION_KEYS
    if unknown:
        raise NoticeError(f"notice version {entry}: unknown key(s) {sorted(unknown)}")
    version = raw.get("version")
    if not isinstance(version, str) or not VERSION_PATTERN.fullmatch(version):
        raise NoticeError(
            f"notice version {entry}: version must be a quoted string of up to 32 letters, "
            "digits, dots and dashes"
        )
    fingerprint = raw.get("fingerprint")
    if not isinstance(fingerprint, str) or not FINGERPRINT_PATTERN.fullmatch(fingerprint):
        raise NoticeError(
            f"notice version {entry}: fingerprint must be the 64 hex digits of a sha256"
        )
    return NoticeVersionInfo(
        version=version,
        date=_parse_date(entry, raw.get("date")),
        fingerprint=fingerprint,
        changes=_texts(f"version {entry}: changes", raw.get("changes")),
    )


def parse_notice(document: Any) -> Notice:
    """Build and validate a Notice from the parsed notice.yaml."""
    if not isinstance(document, dict):
        raise NoticeError("notice.yaml must be a mapping at the top level")
    unknown = set(document) - NOTICE_KEYS
    if unknown:
        raise NoticeError(f"notice.yaml: unknown key(s) {sorted(unknown)}")
    minimum_age = document.get("minimum_age")
    if not isinstance(minimum_age, int) or isinstance(minimum_age, bool) or minimum_age < 1:
        raise NoticeError("notice.yaml: minimum_age must be a whole number of years")
    raw_versions = document.get("versions")
    if not isinstance(raw_versions, list) or not raw_versions:
        raise NoticeError("notice.yaml: versions must list at least one version")
    versions = tuple(_parse_version(raw, i) for i, raw in enumerate(raw_versions))
    names = [v.version for v in versions]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise NoticeError(f"notice version {duplicates[0]}: listed more than once")
    for earlier, later in pairwise(versions):
        if later.date < earlier.date:
            raise NoticeError(
                f"notice version {later.version}: dated before {earlier.version}; "
                "list versions oldest first"
            )
    return Notice(
        minimum_age=minimum_age,
        security=_texts("security", document.get("security")),
        versions=versions,
    )


def load_notice(path: Path = NOTICE_PATH) -> Notice:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise NoticeError(f"{path.name} is not valid YAML: {exc}") from exc
    return parse_notice(document)


@cache
def get_notice() -> Notice:
    """The notice of this deployment (read once per process, on first use)."""
    return load_notice()


# --- the data map a version was published with ------------------------------------------------


def datamap_fingerprint(path: Path = DATAMAP_PATH) -> str:
    """sha256 of the data map file's bytes, exactly as they are: any edit changes it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def next_version_name(notice: Notice, today: date) -> str:
    """year.month.number, the first number not yet used this month."""
    names = {v.version for v in notice.versions}
    number = 1
    while f"{today.year}.{today.month}.{number}" in names:
        number += 1
    return f"{today.year}.{today.month}.{number}"


def version_entry_for(notice: Notice, fingerprint: str, today: date) -> str:
    """The notice.yaml lines a developer adds for a new version (the command prints them)."""
    return (
        f'  - version: "{next_version_name(notice, today)}"\n'
        f'    date: "{today.isoformat()}"\n'
        f'    fingerprint: "{fingerprint}"\n'
        "    changes:\n"
        "      - text: >-\n"
        "          What changed for the people whose data we hold, in plain words.\n"
    )


def fingerprint_problem(notice: Notice, fingerprint: str, today: date) -> str | None:
    """Why the current version does not match the data map, and exactly what to add; or None."""
    current = notice.current
    if current.fingerprint == fingerprint:
        return None
    return (
        f"app/datamap/datamap.yaml has changed since privacy-notice version {current.version} "
        f"was published (its fingerprint is now {fingerprint}, the notice says "
        f"{current.fingerprint}).\n"
        "Add a new version at the end of `versions:` in app/datamap/notice.yaml, saying what "
        "changed:\n\n"
        f"{version_entry_for(notice, fingerprint, today)}\n"
        "If that version is not yet published (nobody has seen it), update its fingerprint "
        "instead. `.venv/bin/flask --app wsgi notice fingerprint` prints the current value."
    )


@lru_cache(maxsize=16)
def parse_snapshot(snapshot: str) -> DataMap | None:
    """The data map stored with a version, or None when it cannot be read any more (the
    models or the map's format have moved on since)."""
    if not snapshot.strip():
        return None
    try:
        return parse_datamap(yaml.safe_load(snapshot))
    except (yaml.YAMLError, ValueError, TypeError, AttributeError, KeyError) as exc:
        log.info("a stored data map snapshot no longer parses: %s", exc)
        return None


# --- what the notice says, drawn from the data map ---------------------------------------------


@dataclass(frozen=True)
class NoticeFacts:
    """The data map read across categories, the way the notice's sections need it."""

    bases: tuple[tuple[LegalBasis, tuple[Purpose, ...]], ...]
    recipients: tuple[tuple[Recipient, tuple[Category, ...]], ...]
    transfer_countries: tuple[str, ...]
    transfer_safeguards: tuple[Safeguard, ...]
    objectable_purposes: tuple[Purpose, ...]
    deletable_categories: tuple[Category, ...]
    retained_categories: tuple[Category, ...]


def _is_country_code(code: str) -> bool:
    return len(code) == 2 and code.isalpha()


def notice_facts(datamap: DataMap) -> NoticeFacts:
    """Only what the categories use: a purpose or recipient no category has is not stated."""
    purposes: dict[str, Purpose] = {}
    recipients: dict[str, list[Category]] = {}
    for category in datamap:
        for purpose in category.purposes:
            purposes.setdefault(purpose.key, purpose)
        for recipient in category.recipients:
            recipients.setdefault(recipient.key, []).append(category)
    used_purposes = [p for p in datamap.purposes.values() if p.key in purposes]
    bases = tuple(
        (basis, tuple(p for p in used_purposes if p.basis.key == basis.key))
        for basis in datamap.legal_bases.values()
        if any(p.basis.key == basis.key for p in used_purposes)
    )
    used_recipients = [r for r in datamap.recipients.values() if r.key in recipients]
    abroad = [r for r in used_recipients if _is_country_code(r.country)]
    return NoticeFacts(
        bases=bases,
        recipients=tuple((r, tuple(recipients[r.key])) for r in used_recipients),
        transfer_countries=tuple(sorted({r.country.upper() for r in abroad})),
        transfer_safeguards=tuple({r.safeguard.key: r.safeguard for r in abroad}.values()),
        objectable_purposes=tuple(p for p in used_purposes if p.basis.key == LEGITIMATE_INTERESTS),
        deletable_categories=tuple(c for c in datamap if c.item_deletion),
        retained_categories=tuple(c for c in datamap if c.erasure.rule == "retain"),
    )


# --- versions recorded in the database --------------------------------------------------------


def record_versions(notice: Notice, datamap_text: str, fingerprint: str) -> list[str]:
    """Record each version of `notice` not yet in `notice_versions`; commits; the names added.

    The current version is stored with `datamap_text`, the data map it is rendered from, but
    only when the fingerprints agree: otherwise the snapshot would not be what was published.
    Older versions never recorded here get an empty snapshot (this installation never saw
    them). An existing row is never changed: it is what was recorded while it was current.
    """
    known = set(db.session.scalars(select(NoticeVersion.version)))
    current = notice.current
    added = []
    for info in notice.versions:
        if info.version in known:
            continue
        snapshot = ""
        if info is current:
            if info.fingerprint != fingerprint:
                log.warning(
                    "notice version %s does not match the data map (%s); not recorded",
                    info.version,
                    fingerprint,
                )
                continue
            snapshot = datamap_text
        db.session.add(
            NoticeVersion(
                version=info.version,
                published_on=info.date.isoformat(),
                fingerprint=info.fingerprint,
                snapshot=snapshot,
            )
        )
        added.append(info.version)
    if not added:
        return []
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # another worker recorded them at the same moment: nothing lost
        return []
    return added


def stored_version(version: str) -> NoticeVersion | None:
    return db.session.scalar(select(NoticeVersion).where(NoticeVersion.version == version))


# --- the "what changed" notice ----------------------------------------------------------------


def unseen_versions(
    notice: Notice, seen: str | None, created_at: datetime | None
) -> tuple[NoticeVersionInfo, ...]:
    """The versions whose changes a person has not dismissed and that came after their account.

    Empty when they have dismissed the current version, or when their account is newer than
    every version they have not seen (they read the notice as it is when they signed up).
    """
    if seen == notice.current.version:
        return ()
    versions = notice.versions
    names = [v.version for v in versions]
    if seen in names:
        versions = versions[names.index(seen) + 1 :]
    if created_at is not None:
        versions = tuple(v for v in versions if v.effective_from > created_at)
    return versions


def dismiss_notice(user: User, version: str) -> bool:
    """Mark `version` as seen by `user`, with its audit event; False if it already was.

    The caller commits.
    """
    if user.notice_version_seen == version:
        return False
    user.notice_version_seen = version
    record_event(
        "notice.dismissed",
        actor_type="user",
        actor_id=user.id,
        subject_user_id=user.id,
        target=f"notice:{version}",
        details={"version": version},
    )
    return True
