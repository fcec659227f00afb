"""The data map: loaded once from `datamap.yaml`, validated, and handed out as typed objects.

Validation runs at start-up; a bad entry stops the app with a message naming the entry and
the problem, so a mistake in the map can never silently hide data from a person.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import inspect as sa_inspect

DATAMAP_PATH = Path(__file__).with_name("datamap.yaml")
ERASURE_RULES = {"delete", "anonymize", "retain", "browser"}
SOURCES = {"you", "platform", "your device"}
STORES = {"database", "browser"}
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
# Keys whose values are English source text for the translation catalog (see babel.cfg).
TRANSLATABLE_KEYS = frozenset({"name", "description", "text", "reason", "obligation"})


class DataMapError(ValueError):
    """The data map is malformed; the message names the entry at fault."""


@dataclass(frozen=True)
class LegalBasis:
    key: str
    name: str
    description: str


@dataclass(frozen=True)
class Purpose:
    key: str
    name: str
    basis: LegalBasis


@dataclass(frozen=True)
class Safeguard:
    key: str
    name: str


@dataclass(frozen=True)
class Recipient:
    key: str
    name: str
    role: str
    country: str
    safeguard: Safeguard


@dataclass(frozen=True)
class Erasure:
    rule: str
    obligation: str | None = None
    anonymize: tuple[str, ...] = ()


@dataclass(frozen=True)
class Retention:
    text: str
    years: int | None = None


@dataclass(frozen=True)
class Category:
    key: str
    name: str
    description: str
    source: str
    store: str
    model: type | None
    user_column: str | None
    time_column: str | None
    file_column: str | None
    search_column: str | None
    shown: tuple[str, ...]
    exported: tuple[str, ...]
    hidden: dict[str, str]
    purposes: tuple[Purpose, ...]
    retention: Retention
    recipients: tuple[Recipient, ...]
    erasure: Erasure
    item_deletion: bool

    @property
    def in_database(self) -> bool:
        return self.model is not None

    @property
    def legal_bases(self) -> tuple[LegalBasis, ...]:
        seen: dict[str, LegalBasis] = {}
        for purpose in self.purposes:
            seen.setdefault(purpose.basis.key, purpose.basis)
        return tuple(seen.values())


@dataclass(frozen=True)
class DataMap:
    version: int
    legal_bases: dict[str, LegalBasis]
    purposes: dict[str, Purpose]
    recipients: dict[str, Recipient]
    safeguards: dict[str, Safeguard]
    categories: tuple[Category, ...] = field(default=())

    def __iter__(self) -> Iterator[Category]:
        return iter(self.categories)

    def get(self, key: str) -> Category | None:
        return next((c for c in self.categories if c.key == key), None)

    @property
    def database_categories(self) -> tuple[Category, ...]:
        return tuple(c for c in self.categories if c.in_database)

    @property
    def models(self) -> set[type]:
        return {c.model for c in self.categories if c.model is not None}


def _require(entry: str, raw: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in raw:
        raise DataMapError(f"data map entry {entry!r}: missing {key!r}")
    value = raw[key]
    if not isinstance(value, kind):
        raise DataMapError(f"data map entry {entry!r}: {key!r} has the wrong type")
    if isinstance(value, str) and not value.strip():
        raise DataMapError(f"data map entry {entry!r}: {key!r} is empty")
    return value


def _reject_unknown(entry: str, raw: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(raw) - allowed
    if unknown:
        raise DataMapError(f"data map entry {entry!r}: unknown key(s) {sorted(unknown)}")


def _lookup(entry: str, table: dict[str, Any], key: str, what: str) -> Any:
    if key not in table:
        raise DataMapError(f"data map entry {entry!r}: unknown {what} {key!r}")
    return table[key]


def _models_by_name() -> dict[str, type]:
    import app.models  # noqa: F401, PLC0415
    from app.extensions import db  # noqa: PLC0415 -- the models register on import

    return {mapper.class_.__name__: mapper.class_ for mapper in db.Model.registry.mappers}


def _check_columns(entry: str, model: type, names: list[str] | tuple[str, ...], what: str) -> None:
    columns = {attr.key for attr in sa_inspect(model).column_attrs}
    for name in names:
        if name not in columns:
            raise DataMapError(
                f"data map entry {entry!r}: {what} {name!r} is not a column of {model.__name__}"
            )


CATEGORY_KEYS = {
    "key", "name", "description", "source", "store", "model", "user_column", "time_column",
    "file_column", "search_column", "fields", "purposes", "retention", "recipients", "erasure",
    "item_deletion",
}  # fmt: skip


@dataclass(frozen=True)
class _Fields:
    shown: tuple[str, ...]
    exported: tuple[str, ...]
    hidden: dict[str, str]


def _parse_fields(entry: str, raw: dict[str, Any]) -> _Fields:
    fields_raw = raw.get("fields") or {}
    hidden = {
        name: _require(f"{entry}.{name}", spec, "reason", str)
        for name, spec in (fields_raw.get("hidden") or {}).items()
    }
    return _Fields(
        tuple(fields_raw.get("shown") or ()), tuple(fields_raw.get("exported") or ()), hidden
    )


def _check_model_fields(entry: str, raw: dict[str, Any], model: type, fields_: _Fields) -> None:
    _check_columns(entry, model, [_require(entry, raw, "user_column", str)], "user_column")
    for optional in ("time_column", "file_column", "search_column"):
        if raw.get(optional):
            _check_columns(entry, model, [raw[optional]], optional)
    _check_columns(entry, model, fields_.shown, "shown field")
    _check_columns(entry, model, fields_.exported, "exported field")
    _check_columns(entry, model, list(fields_.hidden), "hidden field")
    overlap = set(fields_.hidden) & (set(fields_.shown) | set(fields_.exported))
    if overlap:
        raise DataMapError(
            f"data map entry {entry!r}: {sorted(overlap)} is hidden and also shown or exported"
        )
    if not fields_.shown:
        raise DataMapError(f"data map entry {entry!r}: no field is shown")


RETAINED_COLUMNS = ("retained_as", "retain_until")


def _check_kept_rows(
    entry: str, raw: dict[str, Any], model: type, rule: str, anonymize: tuple[str, ...]
) -> None:
    """Rows an erasure keeps must be able to lose their link to the account and the fields
    it clears; a retained row also carries the pseudonym and the end of its legal hold."""
    if rule not in ("anonymize", "retain"):
        return
    columns = {column.key: column for column in sa_inspect(model).columns}
    for name in (raw.get("user_column"), *anonymize):
        if name in columns and not columns[name].nullable:
            raise DataMapError(
                f"data map entry {entry!r}: {name!r} must be nullable for erasure rule {rule!r}"
            )
    if rule == "retain":
        _check_columns(entry, model, RETAINED_COLUMNS, "retained-record column")


def _parse_erasure(entry: str, raw: dict[str, Any], store: str, model: type | None) -> Erasure:
    erasure_raw = _require(entry, raw, "erasure", dict)
    _reject_unknown(entry, erasure_raw, {"rule", "obligation", "anonymize"})
    rule = _require(entry, erasure_raw, "rule", str)
    if rule not in ERASURE_RULES:
        raise DataMapError(
            f"data map entry {entry!r}: erasure rule must be one of {sorted(ERASURE_RULES)}"
        )
    if (rule == "browser") != (store == "browser"):
        raise DataMapError(
            f"data map entry {entry!r}: erasure rule 'browser' goes with store 'browser'"
        )
    anonymize = tuple(erasure_raw.get("anonymize") or ())
    if rule == "anonymize" and not anonymize:
        raise DataMapError(f"data map entry {entry!r}: erasure 'anonymize' needs its fields")
    if model is not None:
        _check_columns(entry, model, anonymize, "anonymized field")
        _check_kept_rows(entry, raw, model, rule, anonymize)
    if rule == "retain":
        _require(entry, erasure_raw, "obligation", str)
    return Erasure(rule=rule, obligation=erasure_raw.get("obligation"), anonymize=anonymize)


def _parse_retention(entry: str, raw: dict[str, Any], erasure: Erasure) -> Retention:
    retention_raw = _require(entry, raw, "retention", dict)
    retention = Retention(
        text=_require(entry, retention_raw, "text", str), years=retention_raw.get("years")
    )
    if erasure.rule == "retain" and not retention.years:
        raise DataMapError(f"data map entry {entry!r}: a retained category needs retention years")
    return retention


def _parse_category(
    raw: dict[str, Any], index: int, dm: DataMap, models: dict[str, type]
) -> Category:
    if not isinstance(raw, dict):
        raise DataMapError(f"data map category #{index + 1} is not a mapping")
    entry = raw.get("key") or f"#{index + 1}"
    _reject_unknown(entry, raw, CATEGORY_KEYS)
    key = _require(entry, raw, "key", str)
    if not KEY_PATTERN.match(key):
        raise DataMapError(f"data map entry {entry!r}: key must be lower_snake_case")
    store = raw.get("store", "database")
    if store not in STORES:
        raise DataMapError(f"data map entry {entry!r}: store must be one of {sorted(STORES)}")
    source = _require(entry, raw, "source", str)
    if source not in SOURCES:
        raise DataMapError(f"data map entry {entry!r}: source must be one of {sorted(SOURCES)}")
    fields_ = _parse_fields(entry, raw)
    model = None
    if store == "database":
        model = _lookup(entry, models, _require(entry, raw, "model", str), "model")
        _check_model_fields(entry, raw, model, fields_)
    elif "model" in raw:
        raise DataMapError(f"data map entry {entry!r}: a browser store has no model")
    erasure = _parse_erasure(entry, raw, store, model)
    purpose_keys = _require(entry, raw, "purposes", list)
    if not purpose_keys:
        raise DataMapError(f"data map entry {entry!r}: at least one purpose is needed")
    return Category(
        key=key,
        name=_require(entry, raw, "name", str),
        description=_require(entry, raw, "description", str),
        source=source,
        store=store,
        model=model,
        user_column=raw.get("user_column"),
        time_column=raw.get("time_column"),
        file_column=raw.get("file_column"),
        search_column=raw.get("search_column"),
        shown=fields_.shown,
        exported=fields_.exported,
        hidden=fields_.hidden,
        purposes=tuple(_lookup(entry, dm.purposes, p, "purpose") for p in purpose_keys),
        retention=_parse_retention(entry, raw, erasure),
        recipients=tuple(
            _lookup(entry, dm.recipients, r, "recipient") for r in raw.get("recipients") or ()
        ),
        erasure=erasure,
        item_deletion=bool(raw.get("item_deletion", False)),
    )


def parse_datamap(document: dict[str, Any]) -> DataMap:
    """Build and validate a DataMap from the parsed YAML document."""
    if not isinstance(document, dict):
        raise DataMapError("the data map must be a mapping at the top level")
    _reject_unknown(
        "(top level)",
        document,
        {"version", "legal_bases", "purposes", "recipients", "safeguards", "categories"},
    )
    version = _require("(top level)", document, "version", int)
    bases = {
        k: LegalBasis(k, _require(k, v, "name", str), _require(k, v, "description", str))
        for k, v in _require("(top level)", document, "legal_bases", dict).items()
    }
    safeguards = {
        k: Safeguard(k, _require(k, v, "name", str))
        for k, v in _require("(top level)", document, "safeguards", dict).items()
    }
    purposes = {
        k: Purpose(
            k,
            _require(k, v, "name", str),
            _lookup(k, bases, _require(k, v, "basis", str), "legal basis"),
        )
        for k, v in _require("(top level)", document, "purposes", dict).items()
    }
    recipients = {
        k: Recipient(
            k,
            _require(k, v, "name", str),
            _require(k, v, "role", str),
            _require(k, v, "country", str),
            _lookup(k, safeguards, _require(k, v, "safeguard", str), "safeguard"),
        )
        for k, v in _require("(top level)", document, "recipients", dict).items()
    }
    dm = DataMap(version, bases, purposes, recipients, safeguards)
    models = _models_by_name()
    raw_categories = _require("(top level)", document, "categories", list)
    categories = tuple(_parse_category(raw, i, dm, models) for i, raw in enumerate(raw_categories))
    keys = [c.key for c in categories]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise DataMapError(f"data map entry {duplicates[0]!r}: the key is used more than once")
    return DataMap(version, bases, purposes, recipients, safeguards, categories)


def load_datamap(path: Path = DATAMAP_PATH) -> DataMap:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DataMapError(f"the data map {path.name} is not valid YAML: {exc}") from exc
    return parse_datamap(document)


@cache
def get_datamap() -> DataMap:
    """The validated data map of this deployment (loaded once per process)."""
    return load_datamap()
