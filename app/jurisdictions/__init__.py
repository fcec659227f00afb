"""Which rules apply where: a minimal table until the jurisdictions issue brings the full one.

For cookie consent a place needs three facts: whether optional cookies start off until the
person allows them (`opt_in`) or start on until they refuse (`opt_out`); whether the law asks
for a "Do Not Sell or Share My Personal Information" link; and whether it makes honouring a
Global Privacy Control signal mandatory (we honour it everywhere anyway).

A person's place is their account's country and region, else the deployment's
DEFAULT_COUNTRY, else nothing; a place this table does not list gets the global default,
which is the strict one (opt-in), so not knowing where someone is never weakens their rights.
Facts follow /work/shared/reference/jurisdictions.md (November 2026); `verified=False` marks
the rows a privacy lawyer still has to confirm.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPT_IN = "opt_in"
OPT_OUT = "opt_out"
CONSENT_MODELS = (OPT_IN, OPT_OUT)
# Recorded when nothing is known about where a person is (CLDR's "unknown region").
UNKNOWN = "ZZ"
MAX_CODE_LENGTH = 8  # the ledger's jurisdiction column
_COUNTRY = re.compile(r"[A-Z]{2}")
_REGION = re.compile(r"[A-Z0-9]{1,3}")


@dataclass(frozen=True)
class Rules:
    consent_model: str
    do_not_sell_link: bool = False
    gpc_required: bool = False
    verified: bool = True


@dataclass(frozen=True)
class Jurisdiction:
    """Where a person is (`code`: a country, or country-region when a region has own rules)
    and the rules that apply there."""

    code: str
    rules: Rules

    @property
    def consent_model(self) -> str:
        return self.rules.consent_model

    @property
    def is_opt_out(self) -> bool:
        return self.rules.consent_model == OPT_OUT

    @property
    def do_not_sell_link(self) -> bool:
        return self.rules.do_not_sell_link

    @property
    def gpc_required(self) -> bool:
        return self.rules.gpc_required


GLOBAL_DEFAULT = Rules(OPT_IN)
_EU_EEA = (
    *("AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT"),
    *("LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO"),
)
# US states with a comprehensive privacy law: opt-out of sale, sharing and targeted advertising,
# through a clear link. Those marked in the reference must also treat GPC as an opt-out.
_US_GPC_STATES = ("CA", "CO", "CT", "TX")
_US_GPC_STATES_UNVERIFIED = ("OR", "MT", "DE", "NH", "NJ", "MN", "MD", "NE")
_US_LINK_STATES_UNVERIFIED = ("VA", "UT", "IA", "TN", "IN", "KY", "RI")

RULES: dict[str, Rules] = {
    **dict.fromkeys(_EU_EEA, Rules(OPT_IN)),
    "GB": Rules(OPT_IN),
    "CH": Rules(OPT_IN, verified=False),
    "BR": Rules(OPT_IN),
    "SG": Rules(OPT_IN),
    "CA": Rules(OPT_OUT),  # Canada: implied consent, opt-out for behavioural advertising
    "CA-QC": Rules(OPT_IN),  # Quebec: tracking off by default
    "US": Rules(OPT_OUT),
    **{f"US-{s}": Rules(OPT_OUT, do_not_sell_link=True, gpc_required=True) for s in _US_GPC_STATES},
    **{
        f"US-{s}": Rules(OPT_OUT, do_not_sell_link=True, gpc_required=True, verified=False)
        for s in _US_GPC_STATES_UNVERIFIED
    },
    **{
        f"US-{s}": Rules(OPT_OUT, do_not_sell_link=True, verified=False)
        for s in _US_LINK_STATES_UNVERIFIED
    },
}


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
