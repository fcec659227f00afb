"""Reading and checking the rules table (rules.yaml).

A place's facts are its own, then its country's (for a region such as US-CO), then its
group's (for an EU member), then the default's. A mistake in the file stops the app at
start-up with the place and the fact named, never a page that applies half a rule.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from app.jurisdictions import (
    CONSENT_MODELS,
    MAX_CODE_LENGTH,
    RIGHTS,
    Authority,
    Fact,
    Period,
    Rules,
)

RULES_PATH = Path(__file__).with_name("rules.yaml")
FACT_KEYS = (
    "rights",
    "response",
    "extension",
    "consent_model",
    "gpc_required",
    "sale_opt_out_link",
    "appeal_required",
    "child_age",
    "authority",
    "free_requests",
)
_PLACE_CODE = re.compile(r"[A-Z]{2}(-[A-Z0-9]{1,3})?")
_PERIOD = re.compile(r"(\d{1,3}) (day|days|month|months)")


class RulesTableError(ValueError):
    """rules.yaml is not right; the message names the place and the fact."""


def _fail(place: str, problem: str) -> RulesTableError:
    return RulesTableError(f"rules table, {place}: {problem}")


def _fact(place: str, key: str, raw: Any) -> Fact:
    if not isinstance(raw, dict) or set(raw) != {"value", "source", "verified"}:
        raise _fail(place, f"{key} needs exactly value, source and verified")
    if not isinstance(raw["source"], str) or not raw["source"].strip():
        raise _fail(place, f"{key} needs a source")
    if not isinstance(raw["verified"], bool):
        raise _fail(place, f"{key}: verified is true or false")
    return Fact(_checked_value(place, key, raw["value"]), raw["source"].strip(), raw["verified"])


def _checked_value(place: str, key: str, value: Any) -> Any:  # noqa: PLR0911 -- one per fact
    if key == "rights":
        if not isinstance(value, list) or not value or set(value) - set(RIGHTS):
            raise _fail(place, f"rights must be a list of {', '.join(RIGHTS)}")
        return tuple(value)
    if key in ("response", "extension"):
        return _period(place, key, value)
    if key == "consent_model":
        if value not in CONSENT_MODELS:
            raise _fail(place, f"consent_model must be one of {CONSENT_MODELS}")
        return value
    if key in ("gpc_required", "sale_opt_out_link", "appeal_required"):
        if not isinstance(value, bool):
            raise _fail(place, f"{key} is true or false")
        return value
    if key in ("child_age", "free_requests"):
        if value is not None and (type(value) is not int or not 0 < value < 100):
            raise _fail(place, f"{key} is a whole number or null")
        return value
    if value is None:  # authority
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise _fail(place, "authority needs a name (and a url, or null)")
    url = value.get("url")
    if url is not None and not (isinstance(url, str) and url.startswith("https://")):
        raise _fail(place, "the authority's url must be https")
    return Authority(value["name"], url or "")


def _period(place: str, key: str, value: Any) -> Period:
    if value == "none" and key == "extension":
        return Period()
    match = _PERIOD.fullmatch(str(value))
    if not match:
        raise _fail(place, f'{key} must read like "45 days" or "1 month"')
    number = int(match.group(1))
    return Period(months=number) if match.group(2).startswith("month") else Period(days=number)


def _facts(place: str, raw: dict[str, Any]) -> dict[str, Fact]:
    unknown = set(raw) - {*FACT_KEYS, "name", "members"}
    if unknown:
        raise _fail(place, f"unknown fact(s) {sorted(unknown)}")
    return {key: _fact(place, key, raw[key]) for key in FACT_KEYS if key in raw}


def _rules(name: str, facts: dict[str, Fact]) -> Rules:
    def value(key: str) -> Any:
        return facts[key].value

    return Rules(
        consent_model=value("consent_model"),
        do_not_sell_link=value("sale_opt_out_link"),
        gpc_required=value("gpc_required"),
        verified=all(fact.verified for fact in facts.values()),
        response=value("response"),
        extension=value("extension"),
        authority=value("authority"),
        rights=value("rights"),
        appeal_required=value("appeal_required"),
        child_age=value("child_age"),
        free_requests=value("free_requests"),
        name=name,
        facts=tuple((key, facts[key]) for key in FACT_KEYS),
    )


def parse_table(document: Any) -> tuple[Rules, dict[str, Rules]]:
    """(the global default, rules by place code) from the parsed YAML document."""
    if not isinstance(document, dict) or set(document) - {"default", "groups", "places"}:
        raise RulesTableError("rules table: expected default, groups and places")
    default_raw = document.get("default") or {}
    default = _facts("default", default_raw)
    missing = set(FACT_KEYS) - set(default)
    if missing:
        raise _fail("default", f"needs every fact; missing {sorted(missing)}")
    groups = document.get("groups") or {}
    places = document.get("places") or {}
    if not isinstance(groups, dict) or not isinstance(places, dict):
        raise RulesTableError("rules table: groups and places are mappings")
    member_of = {
        member: group for group, raw in groups.items() for member in (raw or {}).get("members", ())
    }
    table: dict[str, Rules] = {}
    for code, raw in places.items():
        if not isinstance(raw, dict):
            raise _fail(code, "a place is a mapping of facts")
        if code not in groups and (not _PLACE_CODE.fullmatch(code) or len(code) > MAX_CODE_LENGTH):
            raise _fail(code, "a place is a country code or country-region (US-CA), or a group")
        country = code.split("-", 1)[0]
        inherited = {**default}
        if "-" in code and country in places:
            inherited |= _facts(country, places[country])
        name = str(raw.get("name") or (groups.get(code) or {}).get("name") or code)
        table[code] = _rules(name, inherited | _facts(code, raw))
    for member, group in member_of.items():
        if group not in table:
            raise _fail(group, "a group needs an entry under places")
        if not isinstance(member, str) or not _PLACE_CODE.fullmatch(member):
            raise _fail(group, f"member {member!r} is not a country code")
        table.setdefault(member, table[group])
    return _rules(str(default_raw.get("name") or ""), default), table


def load_table(path: Path = RULES_PATH) -> tuple[Rules, dict[str, Rules]]:
    with path.open(encoding="utf-8") as handle:
        return parse_table(yaml.safe_load(handle))
