"""Cookie consent: the purposes and their cookies, the consent ledger, the consent cookie.

- The purposes and cookies are data (`app/datamap/cookies.yaml`), validated at start-up.
- Every decision is a consent receipt (`ConsentRecord`), only ever inserted: the current state
  of an account or a browser is its newest receipt, by (created_at, id).
- The browser keeps its state in a small signed first-party cookie (format in the README), so
  a visitor who decided costs no database query on later pages.
- Global Privacy Control (`Sec-GPC: 1`) switches the purposes marked `sale_or_sharing` off.

Plain functions with explicit arguments: no `request`, no templates. Callers commit.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import hmac
import io
import json
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from itsdangerous import BadSignature, Signer
from sqlalchemy import select

from app.datamap import DATAMAP_PATH, KEY_PATTERN
from app.extensions import db
from app.jurisdictions import Jurisdiction
from app.models import ConsentRecord, utcnow
from app.services.audit import record_event

COOKIES_PATH = DATAMAP_PATH.with_name("cookies.yaml")
SOURCES = ("banner", "settings", "gpc", "api", "merge", "request")
DEFAULT_SOURCE = "default"  # no receipt: the jurisdiction's defaults apply
LIFETIME_KINDS = ("session", "hours", "days", "consent_max_age")
VERSION_PATTERN = re.compile(r"[0-9A-Za-z][0-9A-Za-z.\-]{0,31}")
COOKIE_NAME_PATTERN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")  # an RFC 6265 token
# Browser ids are random (secrets.token_urlsafe); never all digits, so they cannot be mistaken
# for an account id by the API.
BROWSER_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,32}")
RECEIPT_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,32}")


class ConsentError(ValueError):
    """A decision that cannot be recorded; nothing was stored."""


class UnknownPurposeError(ConsentError):
    pass


class CookieCatalogueError(ValueError):
    """cookies.yaml is malformed; the message names the entry at fault."""


# --- the purposes and their cookies -----------------------------------------------------------


@dataclass(frozen=True)
class Provider:
    key: str
    name: str


@dataclass(frozen=True)
class Lifetime:
    kind: str  # session | hours | days | consent_max_age
    amount: int | None = None


@dataclass(frozen=True)
class Cookie:
    name: str
    provider: Provider
    description: str
    lifetime: Lifetime


@dataclass(frozen=True)
class CookiePurpose:
    key: str
    name: str
    description: str
    necessary: bool
    sale_or_sharing: bool
    cookies: tuple[Cookie, ...]


@dataclass(frozen=True)
class Catalogue:
    version: str
    providers: dict[str, Provider]
    purposes: tuple[CookiePurpose, ...]

    @property
    def optional(self) -> tuple[CookiePurpose, ...]:
        """The purposes a person chooses about (everything but the strictly necessary)."""
        return tuple(p for p in self.purposes if not p.necessary)

    @property
    def optional_keys(self) -> tuple[str, ...]:
        return tuple(p.key for p in self.optional)

    @property
    def sale_or_sharing(self) -> tuple[CookiePurpose, ...]:
        return tuple(p for p in self.optional if p.sale_or_sharing)

    @property
    def sale_or_sharing_keys(self) -> tuple[str, ...]:
        return tuple(p.key for p in self.sale_or_sharing)

    @property
    def necessary_cookie_names(self) -> frozenset[str]:
        return frozenset(c.name for p in self.purposes if p.necessary for c in p.cookies)

    def get(self, key: str) -> CookiePurpose | None:
        return next((p for p in self.purposes if p.key == key), None)


def _entry_error(entry: str, problem: str) -> CookieCatalogueError:
    return CookieCatalogueError(f"cookies.yaml entry {entry!r}: {problem}")


def _text(entry: str, raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _entry_error(entry, f"{key!r} must be non-empty text")
    return value


def _mapping(entry: str, raw: Any, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise _entry_error(entry, "must be a mapping")
    unknown = set(raw) - allowed
    if unknown:
        raise _entry_error(entry, f"unknown key(s) {sorted(unknown)}")
    return raw


def _parse_lifetime(entry: str, raw: Any) -> Lifetime:
    if raw in ("session", "consent_max_age"):
        return Lifetime(raw)
    if isinstance(raw, dict) and len(raw) == 1:
        ((kind, amount),) = raw.items()
        if kind in ("hours", "days") and type(amount) is int and amount >= 1:
            return Lifetime(kind, amount)
    raise _entry_error(
        entry, "lifetime must be session, consent_max_age, {hours: N} or {days: N} (N >= 1)"
    )


def _parse_cookie(purpose: str, raw: Any, providers: dict[str, Provider]) -> Cookie:
    name = raw.get("cookie") if isinstance(raw, dict) else None
    entry = f"{purpose}.{name or '?'}"
    raw = _mapping(entry, raw, {"cookie", "provider", "description", "lifetime"})
    if not isinstance(name, str) or not COOKIE_NAME_PATTERN.fullmatch(name):
        raise _entry_error(entry, "'cookie' must be the cookie's name (letters, digits, _ - .)")
    provider_key = raw.get("provider")
    if provider_key not in providers:
        raise _entry_error(entry, f"unknown provider {provider_key!r}")
    return Cookie(
        name=name,
        provider=providers[provider_key],
        description=_text(entry, raw, "description"),
        lifetime=_parse_lifetime(entry, raw.get("lifetime")),
    )


PURPOSE_KEYS = {"key", "name", "description", "necessary", "sale_or_sharing", "cookies"}


def _parse_purpose(raw: Any, index: int, providers: dict[str, Provider]) -> CookiePurpose:
    entry = str((raw.get("key") if isinstance(raw, dict) else None) or f"#{index + 1}")
    raw = _mapping(entry, raw, PURPOSE_KEYS)
    key = raw.get("key")
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise _entry_error(entry, "key must be lower_snake_case")
    for flag in ("necessary", "sale_or_sharing"):
        if not isinstance(raw.get(flag, False), bool):
            raise _entry_error(entry, f"{flag!r} must be true or false")
    necessary = raw.get("necessary", False)
    sale_or_sharing = raw.get("sale_or_sharing", False)
    if necessary and sale_or_sharing:
        raise _entry_error(entry, "a strictly necessary purpose cannot sell or share data")
    cookies_raw = raw.get("cookies")
    if not isinstance(cookies_raw, list) or not cookies_raw:
        raise _entry_error(entry, "list at least one cookie")
    return CookiePurpose(
        key=key,
        name=_text(entry, raw, "name"),
        description=_text(entry, raw, "description"),
        necessary=necessary,
        sale_or_sharing=sale_or_sharing,
        cookies=tuple(_parse_cookie(key, c, providers) for c in cookies_raw),
    )


def _parse_providers(raw: Any) -> dict[str, Provider]:
    if not isinstance(raw, dict) or not raw:
        raise CookieCatalogueError("cookies.yaml: providers must map keys to a name")
    providers = {}
    for key, raw_spec in raw.items():
        spec = _mapping(str(key), raw_spec, {"name"})
        if not isinstance(key, str) or not KEY_PATTERN.match(key):
            raise _entry_error(str(key), "provider key must be lower_snake_case")
        providers[key] = Provider(key, _text(key, spec, "name"))
    return providers


def _check_unique(purposes: Sequence[CookiePurpose]) -> None:
    keys = [p.key for p in purposes]
    names = [c.name for p in purposes for c in p.cookies]
    for what, values in (("purpose", keys), ("cookie", names)):
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise _entry_error(duplicates[0], f"the {what} is listed more than once")
    if sum(p.necessary for p in purposes) != 1:
        raise CookieCatalogueError("cookies.yaml: exactly one purpose must be `necessary: true`")
    if len(purposes) < 2:
        raise CookieCatalogueError("cookies.yaml: list at least one optional purpose")


def parse_catalogue(document: Any) -> Catalogue:
    """Build and validate the catalogue from the parsed cookies.yaml."""
    document = _mapping("(top level)", document, {"version", "providers", "purposes"})
    version = document.get("version")
    if not isinstance(version, str) or not VERSION_PATTERN.fullmatch(version):
        raise CookieCatalogueError(
            "cookies.yaml: version must be a quoted string of up to 32 letters, digits, dots "
            "and dashes"
        )
    providers = _parse_providers(document.get("providers"))
    raw_purposes = document.get("purposes")
    if not isinstance(raw_purposes, list):
        raise CookieCatalogueError("cookies.yaml: purposes must be a list")
    purposes = tuple(_parse_purpose(raw, i, providers) for i, raw in enumerate(raw_purposes))
    _check_unique(purposes)
    return Catalogue(version=version, providers=providers, purposes=purposes)


def load_catalogue(path: Path = COOKIES_PATH) -> Catalogue:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CookieCatalogueError(f"{path.name} is not valid YAML: {exc}") from exc
    return parse_catalogue(document)


@cache
def get_catalogue() -> Catalogue:
    """The purposes and cookies of this deployment (read once per process)."""
    return load_catalogue()


# --- the state of a browser or an account -----------------------------------------------------


@dataclass(frozen=True)
class ConsentState:
    """What applies now: the newest receipt, or the jurisdiction's defaults (no receipt)."""

    choices: dict[str, bool]
    source: str  # one of SOURCES, or DEFAULT_SOURCE
    receipt_id: str | None = None
    purposes_version: str = ""
    notice_version: str = ""
    decided_at: datetime | None = None
    gpc: bool = False  # the decision was made with a Global Privacy Control signal present
    browser_id: str | None = None
    user_id: int | None = None
    jurisdiction: str = ""
    consent_model: str = ""

    @property
    def has_receipt(self) -> bool:
        return self.receipt_id is not None

    def allows(self, purpose: str) -> bool:
        return bool(self.choices.get(purpose, False))

    def is_current(
        self, *, purposes_version: str, notice_version: str, max_age_days: int, now: datetime
    ) -> bool:
        """A decision still in force: made for the current purposes and notice, and recently
        enough. Anything else (no decision at all included) means asking again."""
        return (
            self.decided_at is not None
            and self.purposes_version == purposes_version
            and self.notice_version == notice_version
            and now - self.decided_at < timedelta(days=max_age_days)
        )


def default_choices(catalogue: Catalogue, jurisdiction: Jurisdiction) -> dict[str, bool]:
    """Opt-in places: everything optional off until allowed. Opt-out places: on until refused."""
    return dict.fromkeys(catalogue.optional_keys, jurisdiction.is_opt_out)


def default_state(catalogue: Catalogue, jurisdiction: Jurisdiction) -> ConsentState:
    return ConsentState(
        choices=default_choices(catalogue, jurisdiction),
        source=DEFAULT_SOURCE,
        jurisdiction=jurisdiction.code,
        consent_model=jurisdiction.consent_model,
    )


def state_from_record(record: ConsentRecord) -> ConsentState:
    return ConsentState(
        choices={str(k): bool(v) for k, v in (record.choices or {}).items()},
        source=record.source,
        receipt_id=record.receipt_id,
        purposes_version=record.purposes_version,
        notice_version=record.notice_version,
        decided_at=record.created_at,
        gpc=record.gpc,
        browser_id=record.browser_id,
        user_id=record.user_id,
        jurisdiction=record.jurisdiction,
        consent_model=record.consent_model,
    )


def choices_for(catalogue: Catalogue, state: ConsentState) -> dict[str, bool]:
    """The state's choices for every current purpose; one it was never asked about is off."""
    return {key: state.allows(key) for key in catalogue.optional_keys}


# --- decisions --------------------------------------------------------------------------------

DECISIONS = ("accept_all", "reject_all", "save")


def requested_choices(
    catalogue: Catalogue, decision: str, allowed: Iterable[str]
) -> dict[str, bool]:
    """The choices a banner or settings decision asks for; UnknownPurposeError for a purpose
    that is not optional (so a forged form stores nothing)."""
    allowed = set(allowed)
    unknown = allowed - set(catalogue.optional_keys)
    if unknown:
        raise UnknownPurposeError(", ".join(sorted(unknown)))
    if decision == "accept_all":
        return dict.fromkeys(catalogue.optional_keys, True)
    if decision == "reject_all":
        return dict.fromkeys(catalogue.optional_keys, False)
    if decision == "save":
        return {key: key in allowed for key in catalogue.optional_keys}
    raise ConsentError(f"unknown decision {decision!r}")


def without_sale_or_sharing(catalogue: Catalogue, choices: Mapping[str, bool]) -> dict[str, bool]:
    return {
        key: bool(value) and key not in catalogue.sale_or_sharing_keys
        for key, value in choices.items()
    }


def gpc_switches_off(catalogue: Catalogue, state: ConsentState) -> tuple[str, ...]:
    """The purposes a Global Privacy Control signal turns off in this state.

    Nothing when the state was itself decided with the signal present: the person then saw
    that their browser asks for no sale or sharing and allowed it anyway (the confirmation
    step), or the receipt was written by the signal. Otherwise every sale/sharing purpose the
    state allows: a choice made before the signal, or an opt-out place's defaults.
    """
    if state.gpc:
        return ()
    return tuple(key for key in catalogue.sale_or_sharing_keys if state.allows(key))


def gpc_needs_confirmation(
    catalogue: Catalogue, current: ConsentState, requested: Mapping[str, bool]
) -> tuple[str, ...]:
    """Sale/sharing purposes a decision made with the GPC signal present would switch on:
    they are not switched on silently, the person is asked first."""
    effective = (
        current.choices if current.gpc else without_sale_or_sharing(catalogue, current.choices)
    )
    return tuple(
        key
        for key in catalogue.sale_or_sharing_keys
        if requested.get(key) and not effective.get(key, False)
    )


def merge_choices(
    catalogue: Catalogue, account: Mapping[str, bool] | None, browser: Mapping[str, bool]
) -> dict[str, bool]:
    """The browser's choices joined to the account's: per purpose the stricter wins (a
    purpose stays allowed only if both allowed it). No account choices: the browser's."""
    if account is None:
        return {key: bool(browser.get(key, False)) for key in catalogue.optional_keys}
    return {
        key: bool(browser.get(key, False)) and bool(account.get(key, False))
        for key in catalogue.optional_keys
    }


def user_agent_hash(secret_key: str, user_agent: str) -> str:
    """A keyed hash of the User-Agent: evidence of which browser decided, but a reader of the
    database alone cannot test guesses of browser strings against it."""
    key = hashlib.sha256(b"privacy-center.consent-user-agent|" + secret_key.encode()).digest()
    return hmac.new(key, user_agent.encode("utf-8", "replace"), hashlib.sha256).hexdigest()


def new_browser_id() -> str:
    while True:
        value = secrets.token_urlsafe(16)
        if not value.isdigit():  # (all digits would read as an account id)
            return value


def new_receipt_id() -> str:
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class Decision:
    """Everything a receipt records besides its own id and time."""

    choices: Mapping[str, bool]
    source: str
    jurisdiction: Jurisdiction
    notice_version: str
    user_id: int | None = None
    browser_id: str | None = None
    gpc: bool = False
    user_agent_hash: str = ""


def record_decision(catalogue: Catalogue, decision: Decision) -> ConsentRecord:
    """Insert a consent receipt (never an update) and, for an account, its audit event in the
    same transaction. The caller commits."""
    if decision.source not in SOURCES:
        raise ConsentError(f"unknown source {decision.source!r}")
    if decision.user_id is None and decision.browser_id is None:
        raise ConsentError("a receipt needs an account or a browser")
    if set(decision.choices) != set(catalogue.optional_keys):
        unknown = set(decision.choices) - set(catalogue.optional_keys)
        if unknown:
            raise UnknownPurposeError(", ".join(sorted(unknown)))
        raise ConsentError("a receipt records a choice for every optional purpose")
    record = ConsentRecord(
        receipt_id=new_receipt_id(),
        user_id=decision.user_id,
        browser_id=decision.browser_id,
        choices={key: bool(decision.choices[key]) for key in catalogue.optional_keys},
        purposes_version=catalogue.version,
        notice_version=decision.notice_version,
        jurisdiction=decision.jurisdiction.code,
        consent_model=decision.jurisdiction.consent_model,
        source=decision.source,
        gpc=decision.gpc,
        user_agent_hash=decision.user_agent_hash,
        created_at=utcnow(),
    )
    db.session.add(record)
    if decision.user_id is not None:
        record_event(
            "consent.recorded",
            actor_type="platform" if decision.source == "api" else "user",
            actor_id=None if decision.source == "api" else decision.user_id,
            subject_user_id=decision.user_id,
            target=f"consent:{record.receipt_id}",
            details={
                "choices": record.choices,
                "source": decision.source,
                "gpc": decision.gpc,
                "purposes_version": catalogue.version,
                "notice_version": decision.notice_version,
            },
        )
    return record


# --- reading the ledger -----------------------------------------------------------------------


def _newest_first(query: Any) -> Any:
    return query.order_by(ConsentRecord.created_at.desc(), ConsentRecord.id.desc())


def latest_for_user(user_id: int) -> ConsentRecord | None:
    """The account's current receipt: one query on the (user_id, created_at, id) index."""
    return db.session.scalar(
        _newest_first(select(ConsentRecord).where(ConsentRecord.user_id == user_id)).limit(1)
    )


def latest_for_browser(browser_id: str) -> ConsentRecord | None:
    """The newest receipt written for this browser, signed in or not."""
    return db.session.scalar(
        _newest_first(select(ConsentRecord).where(ConsentRecord.browser_id == browser_id)).limit(1)
    )


def find_receipt(receipt_id: str) -> ConsentRecord | None:
    return db.session.scalar(select(ConsentRecord).where(ConsentRecord.receipt_id == receipt_id))


def history(*, user_id: int | None = None, browser_id: str | None = None) -> list[ConsentRecord]:
    """An account's receipts, or a browser's anonymous ones (receipts made while signed in
    belong to that account and are not shown to whoever uses the browser after), newest first."""
    if user_id is not None:
        condition = ConsentRecord.user_id == user_id
    elif browser_id is not None:
        condition = (ConsentRecord.browser_id == browser_id) & ConsentRecord.user_id.is_(None)
    else:
        return []
    return list(db.session.scalars(_newest_first(select(ConsentRecord).where(condition))))


# --- the history as files ---------------------------------------------------------------------

HISTORY_SCHEMA_VERSION = 1
HISTORY_FIELDS = (
    "receipt_id",
    "created_at",
    "source",
    "gpc",
    "jurisdiction",
    "consent_model",
    "notice_version",
    "purposes_version",
)


def _history_purposes(catalogue: Catalogue, records: Sequence[ConsentRecord]) -> list[str]:
    """The current purposes, then any an older receipt recorded that no longer exist."""
    keys = list(catalogue.optional_keys)
    for record in records:
        keys.extend(k for k in record.choices or {} if k not in keys)
    return keys


def receipt_as_dict(record: ConsentRecord) -> dict[str, Any]:
    return {
        "receipt_id": record.receipt_id,
        "created_at": record.created_at.astimezone(UTC).isoformat(),
        "choices": {str(k): bool(v) for k, v in (record.choices or {}).items()},
        "source": record.source,
        "gpc": record.gpc,
        "jurisdiction": record.jurisdiction,
        "consent_model": record.consent_model,
        "notice_version": record.notice_version,
        "purposes_version": record.purposes_version,
    }


def history_json(
    catalogue: Catalogue, records: Sequence[ConsentRecord], *, subject: str, generated_at: datetime
) -> str:
    """The receipts oldest first, as JSON (UTF-8, the characters themselves)."""
    body = {
        "schema_version": HISTORY_SCHEMA_VERSION,
        "subject": subject,  # "account" or "browser"
        "generated_at": generated_at.astimezone(UTC).isoformat(),
        "purposes_version": catalogue.version,
        "purposes": _history_purposes(catalogue, records),
        "receipts": [receipt_as_dict(r) for r in reversed(records)],
    }
    return json.dumps(body, ensure_ascii=False, indent=2) + "\n"


def _csv_bool(value: Any) -> str:
    if value is None:
        return ""  # the receipt recorded no choice for this purpose
    return "true" if value else "false"


def history_csv(catalogue: Catalogue, records: Sequence[ConsentRecord]) -> str:
    """The receipts oldest first, one column per purpose (true, false, or empty when that
    receipt did not ask about it); RFC 4180 with CRLF, as the export's CSV files. The caller
    encodes it as UTF-8 with a byte-order mark, so spreadsheets read it right."""
    purposes = _history_purposes(catalogue, records)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*HISTORY_FIELDS, *purposes])
    for record in reversed(records):
        values = receipt_as_dict(record)
        writer.writerow(
            [
                *(_csv_bool(values[f]) if f == "gpc" else values[f] for f in HISTORY_FIELDS),
                *(_csv_bool((record.choices or {}).get(p)) for p in purposes),
            ]
        )
    return buffer.getvalue()


# --- the consent cookie -----------------------------------------------------------------------

COOKIE_NAME = "pc_consent"
COOKIE_FORMAT = 1
COOKIE_SALT = "privacy-center.consent-cookie"
_SOURCE_CODES = {
    "banner": "b",
    "settings": "s",
    "gpc": "g",
    "api": "a",
    "merge": "m",
    "request": "r",
}
_SOURCES_BY_CODE = {code: source for source, code in _SOURCE_CODES.items()}


@dataclass(frozen=True)
class ConsentCookie:
    """What the consent cookie carries (documented for the platform in the README)."""

    browser_id: str
    receipt_id: str
    purposes_version: str
    notice_version: str
    decided_at: datetime
    source: str
    gpc: bool
    choices: dict[str, bool] = field(default_factory=dict)

    def as_state(self) -> ConsentState:
        return ConsentState(
            choices=dict(self.choices),
            source=self.source,
            receipt_id=self.receipt_id,
            purposes_version=self.purposes_version,
            notice_version=self.notice_version,
            decided_at=self.decided_at,
            gpc=self.gpc,
            browser_id=self.browser_id,
        )


def cookie_for(state: ConsentState, browser_id: str) -> ConsentCookie:
    """The cookie that carries a receipt's state to this browser."""
    if state.receipt_id is None or state.decided_at is None:
        raise ConsentError("only a recorded decision goes into the cookie")
    return ConsentCookie(
        browser_id=browser_id,
        receipt_id=state.receipt_id,
        purposes_version=state.purposes_version,
        notice_version=state.notice_version,
        decided_at=state.decided_at,
        source=state.source,
        gpc=state.gpc,
        choices=dict(state.choices),
    )


def _signer(secret_keys: Sequence[str]) -> Signer:
    # Oldest key first, the current one last: it signs, and every key verifies (rotation).
    return Signer(
        list(secret_keys),
        salt=COOKIE_SALT,
        key_derivation="django-concat",
        digest_method=hashlib.sha256,
    )


def cookie_signing_key(secret_key: str) -> str:
    """The key the cookie is signed with (hex), derived from the secret key: what the
    platform needs to check a cookie's signature, without learning SECRET_KEY itself."""
    return _signer([secret_key]).derive_key().hex()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_cookie(cookie: ConsentCookie, secret_keys: Sequence[str]) -> str:
    payload = {
        "v": COOKIE_FORMAT,
        "b": cookie.browser_id,
        "r": cookie.receipt_id,
        "p": cookie.purposes_version,
        "n": cookie.notice_version,
        "t": int(cookie.decided_at.timestamp()),
        "s": _SOURCE_CODES[cookie.source],
        "g": int(cookie.gpc),
        "c": {key: int(value) for key, value in cookie.choices.items()},
    }
    text = _b64encode(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
    return _signer(secret_keys).sign(text).decode("ascii")


def _valid_payload(payload: Any) -> bool:
    if not isinstance(payload, dict) or payload.get("v") != COOKIE_FORMAT:
        return False
    strings = (
        isinstance(payload.get("b"), str) and BROWSER_ID_PATTERN.fullmatch(payload["b"]),
        isinstance(payload.get("r"), str) and RECEIPT_ID_PATTERN.fullmatch(payload["r"]),
        isinstance(payload.get("p"), str) and VERSION_PATTERN.fullmatch(payload["p"]),
        isinstance(payload.get("n"), str) and VERSION_PATTERN.fullmatch(payload["n"]),
    )
    choices = payload.get("c")
    return (
        all(strings)
        and type(payload.get("t")) is int
        and payload["t"] >= 0
        and payload.get("s") in _SOURCES_BY_CODE
        and payload.get("g") in (0, 1)
        and isinstance(choices, dict)
        and all(isinstance(k, str) and v in (0, 1) for k, v in choices.items())
    )


def decode_cookie(value: str | None, secret_keys: Sequence[str]) -> ConsentCookie | None:
    """The cookie's content, or None when it is missing, unsigned, tampered with, or of a
    format this version does not know: such a cookie is ignored (the person is asked again)."""
    if not value or len(value) > 4096:
        return None
    try:
        text = _signer(secret_keys).unsign(value).decode("ascii")
        payload = json.loads(_b64decode(text))
    except (BadSignature, binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not _valid_payload(payload):
        return None
    try:
        decided_at = datetime.fromtimestamp(payload["t"], UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return ConsentCookie(
        browser_id=payload["b"],
        receipt_id=payload["r"],
        purposes_version=payload["p"],
        notice_version=payload["n"],
        decided_at=decided_at,
        source=_SOURCES_BY_CODE[payload["s"]],
        gpc=bool(payload["g"]),
        choices={k: bool(v) for k, v in payload["c"].items()},
    )
