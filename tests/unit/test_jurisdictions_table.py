"""The rules table: every place of the reference is there with sourced facts, and mistakes in
the file stop the app with the place and the fact named."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from app.jurisdictions import GLOBAL_DEFAULT, OPT_IN, OPT_OUT, RULES, Period, by_code
from app.jurisdictions import jurisdiction_for as place
from app.jurisdictions.table import FACT_KEYS, RULES_PATH, RulesTableError, parse_table
from app.services.requests import offered_kinds

REFERENCE_PLACES = (
    "DE", "FR", "NO", "GB", "US-CA", "US-VA", "US-CO", "US-CT", "US-TX",
    "BR", "CA", "CA-QC", "JP", "KR", "CN", "IN", "AU", "SG",
)  # fmt: skip


@pytest.fixture
def document() -> dict[str, Any]:
    with RULES_PATH.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.mark.parametrize("code", REFERENCE_PLACES)
def test_every_place_of_the_reference_has_every_fact_with_its_source(code: str) -> None:
    rules = RULES[code]
    facts = dict(rules.facts)
    assert set(facts) == set(FACT_KEYS)
    for key, fact in facts.items():
        assert fact.source, f"{code} {key} has no source"
        assert isinstance(fact.verified, bool)
    assert rules.verified == all(fact.verified for fact in facts.values())
    assert rules.name


def test_the_facts_the_pages_rely_on() -> None:
    california = place("US", "CA")
    assert california.rules.response == Period(days=45)
    assert california.rules.extension == Period(days=45)
    assert california.do_not_sell_link and california.gpc_required and california.is_opt_out
    assert "opt_out_sale" in california.rules.rights
    brazil = place("BR")
    assert brazil.rules.response == Period(days=15) and not brazil.rules.extension
    germany = place("DE")
    assert germany.code == "DE" and germany.consent_model == OPT_IN
    assert germany.rules.response == Period(months=1) and germany.rules.extension == Period(
        months=2
    )
    assert "opt_out_sale" not in germany.rules.rights and "restriction" in germany.rules.rights
    assert place("US", "CO").rules.appeal_required
    assert place("US").consent_model == OPT_OUT
    assert place("GB").rules.authority is not None
    assert place("GB").rules.authority.complaint_url.startswith("https://ico.org.uk/")
    assert place("US", "OR").rules.verified is False  # not checked one by one yet


@pytest.mark.parametrize("code", ["XX", "", None, "ZZ", "D3", "US-ZZ"])
def test_a_place_the_table_lacks_gets_the_strict_global_default(code: str | None) -> None:
    country, _, region = (code or "").partition("-")
    rules = place(country, region or None).rules
    if country == "US":
        assert rules is RULES["US"]
    else:
        assert rules is GLOBAL_DEFAULT
    assert by_code("nowhere").rules is GLOBAL_DEFAULT


def test_what_the_new_request_page_offers_follows_the_rights() -> None:
    germany = {kind.key for kind in offered_kinds(place("DE"), signed_in=True)}
    california = {kind.key for kind in offered_kinds(place("US", "CA"), signed_in=True)}
    everywhere = {kind.key for kind in offered_kinds(place(None), signed_in=True)}
    assert "opt_out_sale" not in germany and {"restrict", "object"} <= germany
    assert "opt_out_sale" in california and "restrict" not in california
    assert {"question", "child_report", "appeal"} <= germany & california
    assert everywhere >= germany | california


def _broken(document: dict[str, Any], change: Any) -> str:
    changed = copy.deepcopy(document)
    change(changed)
    with pytest.raises(RulesTableError) as raised:
        parse_table(changed)
    return str(raised.value)


def test_mistakes_are_named(document: dict[str, Any]) -> None:
    def drop_source(d: dict[str, Any]) -> None:
        del d["places"]["BR"]["response"]["source"]

    def bad_right(d: dict[str, Any]) -> None:
        d["places"]["GB"]["rights"]["value"].append("fly")

    def bad_period(d: dict[str, Any]) -> None:
        d["places"]["US-CA"]["response"]["value"] = "soon"

    def norway_as_false(d: dict[str, Any]) -> None:
        d["groups"]["EU"]["members"].append(False)

    def unknown_fact(d: dict[str, Any]) -> None:
        d["places"]["JP"]["bedtime"] = {"value": 1, "source": "x", "verified": True}

    def default_incomplete(d: dict[str, Any]) -> None:
        del d["default"]["child_age"]

    def http_authority(d: dict[str, Any]) -> None:
        d["places"]["SG"]["authority"]["value"]["url"] = "http://example.org"

    assert "BR" in _broken(document, drop_source) and "response" in _broken(document, drop_source)
    assert "GB" in _broken(document, bad_right)
    assert "US-CA" in _broken(document, bad_period)
    assert "not a country code" in _broken(document, norway_as_false)
    assert "bedtime" in _broken(document, unknown_fact)
    assert "child_age" in _broken(document, default_incomplete)
    assert "https" in _broken(document, http_authority)
