"""The data map: the shipped file is valid and complete, and every kind of mistake is caught."""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
import yaml
from sqlalchemy import inspect as sa_inspect

import app.models
from app.datamap import DATAMAP_PATH, DataMap, DataMapError, load_datamap, parse_datamap
from app.extensions import db

Document = dict[str, Any]


@cache
def _shipped_document() -> Document:
    return yaml.safe_load(DATAMAP_PATH.read_text(encoding="utf-8"))


@pytest.fixture
def document() -> Document:
    """A private copy of the shipped map's YAML, for a test to break."""
    return copy.deepcopy(_shipped_document())


def category(document: Document, key: str) -> dict[str, Any]:
    return next(c for c in document["categories"] if c["key"] == key)


def assert_rejected(document: Document, *fragments: str) -> str:
    with pytest.raises(DataMapError) as excinfo:
        parse_datamap(document)
    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} is not in {message!r}"
    return message


# --- the shipped map --------------------------------------------------------------------------


def test_shipped_map_loads() -> None:
    datamap = load_datamap()
    keys = [c.key for c in datamap]
    assert len(keys) == len(set(keys))
    for expected in ("account", "prompts", "images", "uploads", "invoices", "cookies"):
        assert expected in keys
    prompts = datamap.get("prompts")
    assert prompts is not None
    assert prompts.model is app.models.Prompt
    assert prompts.item_deletion is True
    assert {p.basis.key for p in prompts.purposes} <= set(datamap.legal_bases)
    account = datamap.get("account")
    assert account is not None
    assert "password_hash" in account.hidden
    assert "password_hash" not in account.shown + account.exported
    invoices = datamap.get("invoices")
    assert invoices is not None
    assert invoices.erasure.rule == "retain"
    assert invoices.erasure.obligation
    assert invoices.retention.years == 10
    cookies = datamap.get("cookies")
    assert cookies is not None
    assert not cookies.in_database
    assert cookies not in datamap.database_categories


def test_shipped_map_parses_the_same_from_a_copy(document: Document) -> None:
    assert [c.key for c in parse_datamap(document)] == [c.key for c in load_datamap()]


def test_invalid_yaml_is_reported_with_the_file_name(tmp_path: Any) -> None:
    broken = tmp_path / "datamap.yaml"
    broken.write_text("categories: [unclosed\n", encoding="utf-8")
    with pytest.raises(DataMapError, match=r"datamap\.yaml"):
        load_datamap(broken)


# --- every mistake is caught and names the entry ----------------------------------------------


def _set(key: str, path: tuple[str, ...], value: Any) -> Callable[[Document], None]:
    def change(document: Document) -> None:
        node: Any = category(document, key)
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value

    return change


def _delete(key: str, path: tuple[str, ...]) -> Callable[[Document], None]:
    def change(document: Document) -> None:
        node: Any = category(document, key)
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]

    return change


def _append(key: str, path: tuple[str, ...], value: Any) -> Callable[[Document], None]:
    def change(document: Document) -> None:
        node: Any = category(document, key)
        for part in path:
            node = node[part]
        node.append(value)

    return change


BROKEN_CATEGORIES = {
    "unknown model": (_set("prompts", ("model",), "Prompts"), "'prompts'", "model 'Prompts'"),
    "unknown shown column": (
        _append("prompts", ("fields", "shown"), "txt"),
        "'prompts'",
        "shown field 'txt'",
    ),
    "unknown exported column": (
        _append("images", ("fields", "exported"), "pixels"),
        "'images'",
        "exported field 'pixels'",
    ),
    "unknown hidden column": (
        _set("account", ("fields", "hidden", "pasword_hash"), {"reason": "A typo."}),
        "'account'",
        "hidden field 'pasword_hash'",
    ),
    "hidden field also exported": (
        _append("account", ("fields", "exported"), "password_hash"),
        "'account'",
        "password_hash",
        "hidden",
    ),
    "hidden field also shown": (
        _append("payment_methods", ("fields", "shown"), "provider_token"),
        "'payment_methods'",
        "provider_token",
    ),
    "hidden field without reason": (
        _set("account", ("fields", "hidden", "password_hash"), {}),
        "password_hash",
        "reason",
    ),
    "unknown user column": (
        _set("uploads", ("user_column",), "owner_id"),
        "'uploads'",
        "owner_id",
    ),
    "unknown time column": (
        _set("usage", ("time_column",), "when"),
        "'usage'",
        "time_column 'when'",
    ),
    "unknown purpose": (
        _append("prompts", ("purposes",), "train_everything"),
        "'prompts'",
        "purpose 'train_everything'",
    ),
    "no purpose": (_set("prompts", ("purposes",), []), "'prompts'", "purpose"),
    "unknown recipient": (
        _append("images", ("recipients",), "data_broker"),
        "'images'",
        "recipient 'data_broker'",
    ),
    "bad erasure rule": (
        _set("support", ("erasure", "rule"), "shred"),
        "'support'",
        "erasure rule",
    ),
    "anonymize without fields": (
        _set("sessions", ("erasure",), {"rule": "anonymize"}),
        "'sessions'",
        "anonymize",
    ),
    "anonymize unknown field": (
        _set("invoices", ("erasure", "anonymize"), ["card_number"]),
        "'invoices'",
        "card_number",
    ),
    "retain without obligation": (
        _delete("invoices", ("erasure", "obligation")),
        "'invoices'",
        "obligation",
    ),
    "retain without years": (
        _delete("invoices", ("retention", "years")),
        "'invoices'",
        "years",
    ),
    "browser rule on a database store": (
        _set("devices", ("erasure", "rule"), "browser"),
        "'devices'",
        "browser",
    ),
    "browser store with a model": (_set("cookies", ("model",), "User"), "'cookies'", "model"),
    "unknown key": (_set("uploads", ("colour",), "red"), "'uploads'", "colour"),
    "unknown erasure key": (
        _set("uploads", ("erasure", "when"), "never"),
        "'uploads'",
        "when",
    ),
    "missing name": (_delete("support", ("name",)), "'support'", "'name'"),
    "empty description": (_set("support", ("description",), "  "), "'support'", "description"),
    "bad source": (_set("support", ("source",), "rumour"), "'support'", "source"),
    "key not snake case": (_set("support", ("key",), "Support-Messages"), "Support-Messages"),
    "no field shown": (_set("usage", ("fields", "shown"), []), "'usage'", "shown"),
}


@pytest.mark.parametrize("change", BROKEN_CATEGORIES.values(), ids=BROKEN_CATEGORIES.keys())
def test_broken_category_is_rejected_naming_the_entry(
    document: Document, change: tuple[Any, ...]
) -> None:
    apply, *fragments = change
    apply(document)
    assert_rejected(document, *fragments)


def test_unknown_legal_basis_names_the_purpose(document: Document) -> None:
    document["purposes"]["improve_models"]["basis"] = "because_we_can"
    assert_rejected(document, "'improve_models'", "legal basis 'because_we_can'")


def test_unknown_safeguard_names_the_recipient(document: Document) -> None:
    document["recipients"]["analytics"]["safeguard"] = "pinky_promise"
    assert_rejected(document, "'analytics'", "safeguard 'pinky_promise'")


def test_duplicate_key_is_rejected(document: Document) -> None:
    document["categories"].append(copy.deepcopy(category(document, "prompts")))
    assert_rejected(document, "'prompts'", "more than once")


def test_unknown_top_level_key_is_rejected(document: Document) -> None:
    document["retention_policies"] = {}
    assert_rejected(document, "retention_policies")


def test_a_category_that_is_not_a_mapping_is_rejected(document: Document) -> None:
    document["categories"].insert(2, "prompts")
    assert_rejected(document, "#3")


# --- completeness: no personal data outside the map -------------------------------------------


def _user_table_columns(model: type) -> set[str]:
    """Columns of `model` that point at an account: `user_id`, or any foreign key to users."""
    table = sa_inspect(model).local_table
    linked = {column.name for column in table.columns if column.name == "user_id"}
    for fk in table.foreign_keys:
        if fk.column.table.name == "users":
            linked.add(fk.parent.name)
    return linked


def _declared_not_personal(model: type) -> bool:
    reason = model.__dict__.get("__personal_data__")
    return isinstance(reason, str) and reason.startswith("no:") and bool(reason[3:].strip())


def unmapped_personal_models(datamap: DataMap) -> list[str]:
    """Models that hold personal data but are in no category and do not say why not."""
    missing = []
    for mapper in db.Model.registry.mappers:
        model = mapper.class_
        personal = model is app.models.User or bool(_user_table_columns(model))
        if personal and model not in datamap.models and not _declared_not_personal(model):
            missing.append(model.__name__)
    return sorted(missing)


def test_every_personal_data_model_is_in_the_data_map() -> None:
    missing = unmapped_personal_models(load_datamap())
    assert not missing, (
        f"{missing} hold personal data (a user_id column or a link to users) but no data-map "
        "category covers them: add an entry to app/datamap/datamap.yaml, or declare "
        '`__personal_data__ = "no: <why>"` on the model'
    )


def test_completeness_check_notices_a_dropped_category(document: Document) -> None:
    document["categories"] = [c for c in document["categories"] if c["key"] != "support"]
    assert unmapped_personal_models(parse_datamap(document)) == ["SupportMessage"]


def test_completeness_check_requires_a_reason(
    monkeypatch: pytest.MonkeyPatch, document: Document
) -> None:
    document["categories"] = [c for c in document["categories"] if c["key"] != "devices"]
    datamap = parse_datamap(document)
    monkeypatch.setattr(
        app.models.DeviceRecord, "__personal_data__", "no: only addresses", raising=False
    )
    assert unmapped_personal_models(datamap) == []
    monkeypatch.setattr(app.models.DeviceRecord, "__personal_data__", "no:", raising=False)
    assert unmapped_personal_models(datamap) == ["DeviceRecord"]
    monkeypatch.setattr(app.models.DeviceRecord, "__personal_data__", "maybe", raising=False)
    assert unmapped_personal_models(datamap) == ["DeviceRecord"]


def test_models_declared_not_personal_really_have_no_user_link() -> None:
    for mapper in db.Model.registry.mappers:
        model = mapper.class_
        if "__personal_data__" in model.__dict__:
            assert _declared_not_personal(model), f"{model.__name__}: reason must read 'no: <why>'"
            assert not _user_table_columns(model), f"{model.__name__} links to users"


def test_every_category_points_at_real_columns() -> None:
    mapped = {mapper.class_ for mapper in db.Model.registry.mappers}
    for cat in load_datamap().database_categories:
        assert cat.model in mapped, f"{cat.key}: {cat.model} is not a mapped model"
        columns = {attr.key for attr in sa_inspect(cat.model).column_attrs}
        named = {cat.user_column, cat.time_column, cat.file_column, cat.search_column}
        named |= set(cat.shown) | set(cat.exported) | set(cat.hidden) | set(cat.erasure.anonymize)
        unknown = sorted(str(name) for name in named - {None} if name not in columns)
        assert not unknown, f"{cat.key}: {unknown} are not columns of {cat.model.__name__}"
        # The link to the person is the user_id column (or the primary key for the account).
        assert cat.user_column in _user_table_columns(cat.model) | {"id"}


def test_secrets_are_never_shown_or_exported() -> None:
    for cat in load_datamap().database_categories:
        for name in set(cat.shown) | set(cat.exported):
            assert not any(word in name for word in ("password", "token", "secret")), (
                f"{cat.key}.{name} looks like a secret but is shown or exported"
            )
