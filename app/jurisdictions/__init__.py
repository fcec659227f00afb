"""Which rules apply where: the rules table (rules.yaml, checked at start-up) and how a
person's place is found.

For each place the table gives the rights the law grants, the time to answer a request and
its extension, the cookie consent model (optional cookies off until allowed, or on until
refused), whether a Global Privacy Control signal must count as an opt-out, whether a "Do Not
Sell or Share" link is required, whether refusals must be open to appeal, the age below which
a parent decides, the authority to complain to, and how many requests a year must be free;
each fact with its source and whether it was verified (`table.py` reads it).

A person's place is their account's country and region, else the one they chose for this
browser, else a guess (a country header from the proxy in front, the region of the browser's
language), else the deployment's DEFAULT_COUNTRY, else nothing. A place the table does not list
gets the global default, which is the strict one (opt-in, every right), so not knowing where
someone is never weakens their rights; and a guessed place may show more rights but never
turns optional cookies on by default (`Jurisdiction.guessed`).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

OPT_IN = "opt_in"
OPT_OUT = "opt_out"
CONSENT_MODELS = (OPT_IN, OPT_OUT)
# Recorded when nothing is known about where a person is (CLDR's "unknown region").
UNKNOWN = "ZZ"
MAX_CODE_LENGTH = 8  # the ledger's jurisdiction column
_COUNTRY = re.compile(r"[A-Z]{2}")
_REGION = re.compile(r"[A-Z0-9]{1,3}")


@dataclass(frozen=True)
class Period:
    """A legal time limit: calendar months (GDPR's "one month") or days."""

    months: int = 0
    days: int = 0

    def after(self, moment: datetime) -> datetime:
        """The moment this period after `moment` ends; a month that is too short for the
        day ends on its last day (31 January + 1 month = 28 or 29 February)."""
        month_index = moment.month - 1 + self.months
        year, month = moment.year + month_index // 12, month_index % 12 + 1
        day = min(moment.day, calendar.monthrange(year, month)[1])
        return moment.replace(year=year, month=month, day=day) + timedelta(days=self.days)

    def __bool__(self) -> bool:
        return bool(self.months or self.days)


@dataclass(frozen=True)
class Authority:
    name: str
    complaint_url: str = ""


RIGHTS = (
    "access",
    "rectification",
    "erasure",
    "restriction",
    "portability",
    "objection",
    "consent",
    "opt_out_sale",
    "appeal",
    "complaint",
)


@dataclass(frozen=True)
class Fact:
    """One cell of the rules table, with where it comes from."""

    value: Any
    source: str
    verified: bool


@dataclass(frozen=True)
class Rules:
    consent_model: str
    do_not_sell_link: bool = False
    gpc_required: bool = False
    verified: bool = True  # every fact below confirmed from the official text
    # Time to answer a request once it is confirmed, and how much longer it may take when
    # the person is told why (no extension where the law allows none).
    response: Period = Period(months=1)
    extension: Period = Period(months=2)
    authority: Authority | None = None
    rights: tuple[str, ...] = RIGHTS
    appeal_required: bool = False
    child_age: int | None = 16
    free_requests: int | None = None  # access requests a year that must be free; None: any
    name: str = ""  # the place's English name (translated through the catalog)
    facts: tuple[tuple[str, Fact], ...] = field(default=(), compare=False)

    def fact(self, key: str) -> Fact | None:
        return dict(self.facts).get(key)


@dataclass(frozen=True)
class Jurisdiction:
    """Where a person is (`code`: a country, or country-region when a region has own rules)
    and the rules that apply there."""

    code: str
    rules: Rules
    # A place only guessed (from a network header or the browser's language) could be wrong:
    # a German reading in American English is not in California.
    guessed: bool = False

    @property
    def consent_model(self) -> str:
        """The table's model, except that a guess never switches optional cookies on."""
        return OPT_IN if self.guessed else self.rules.consent_model

    @property
    def is_opt_out(self) -> bool:
        return self.consent_model == OPT_OUT

    @property
    def do_not_sell_link(self) -> bool:
        return self.rules.do_not_sell_link

    @property
    def gpc_required(self) -> bool:
        return self.rules.gpc_required


def by_code(code: str | None) -> Jurisdiction:
    """The rules recorded under `code` (as stored on a request), or the global default."""
    code = (code or "").upper()
    return (
        Jurisdiction(code, RULES[code]) if code in RULES else Jurisdiction(UNKNOWN, GLOBAL_DEFAULT)
    )


def _load() -> tuple[Rules, dict[str, Rules]]:
    from app.jurisdictions.table import load_table  # noqa: PLC0415 -- it needs the classes above

    return load_table()


GLOBAL_DEFAULT, RULES = _load()


def jurisdiction_for(
    country: str | None, region: str | None = None, default_country: str = ""
) -> Jurisdiction:
    """The place and rules for an account's country and region (or the deployment default).

    A region counts only where it has rules of its own (US-CA), so the recorded code always
    names the rules that were applied and fits the ledger's column.
    """
    country = (country or "").strip().upper()
    region = (region or "").strip().upper()
    if not _COUNTRY.fullmatch(country):
        country, region = (default_country or "").strip().upper(), ""
    if not _COUNTRY.fullmatch(country):
        return Jurisdiction(UNKNOWN, GLOBAL_DEFAULT)
    if region and _REGION.fullmatch(region) and f"{country}-{region}" in RULES:
        code = f"{country}-{region}"
        return Jurisdiction(code, RULES[code])
    return Jurisdiction(country, RULES.get(country, GLOBAL_DEFAULT))
