"""Which rules apply where: a minimal table until the jurisdictions issue brings the full one.

For cookie consent a place needs three facts: whether optional cookies start off until the
person allows them (`opt_in`) or start on until they refuse (`opt_out`); whether the law asks
for a "Do Not Sell or Share My Personal Information" link; and whether it makes honouring a
Global Privacy Control signal mandatory (we honour it everywhere anyway). For requests about
data it gives the time to answer and the extension allowed, and the authority to complain to.

A person's place is their account's country and region, else the deployment's
DEFAULT_COUNTRY, else nothing; a place this table does not list gets the global default,
which is the strict one (opt-in), so not knowing where someone is never weakens their rights.
Facts follow /work/shared/reference/jurisdictions.md (November 2026); `verified=False` marks
the rows a privacy lawyer still has to confirm.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

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


@dataclass(frozen=True)
class Rules:
    consent_model: str
    do_not_sell_link: bool = False
    gpc_required: bool = False
    verified: bool = True
    # Time to answer a request once it is confirmed, and how much longer it may take when
    # the person is told why (no extension where the law allows none).
    response: Period = Period(months=1)
    extension: Period = Period(months=2)
    authority: Authority | None = None


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


def by_code(code: str | None) -> Jurisdiction:
    """The rules recorded under `code` (as stored on a request), or the global default."""
    code = (code or "").upper()
    return (
        Jurisdiction(code, RULES[code]) if code in RULES else Jurisdiction(UNKNOWN, GLOBAL_DEFAULT)
    )


# Not knowing the place means the strict defaults: opt-in, and GDPR's month plus two.
GLOBAL_DEFAULT = Rules(OPT_IN)
_US_STATE_DEADLINES = {"response": Period(days=45), "extension": Period(days=45)}
_STATE_ATTORNEYS = {
    "CO": Authority("Colorado Attorney General", "https://coag.gov/file-complaint/"),
    "CT": Authority("Connecticut Attorney General"),
    "TX": Authority(
        "Texas Attorney General",
        "https://www.texasattorneygeneral.gov/consumer-protection/file-consumer-complaint",
    ),
}
_EU_EEA = (
    *("AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT"),
    *("LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO"),
)
# US states with a comprehensive privacy law: opt-out of sale, sharing and targeted advertising,
# through a clear link. Those marked in the reference must also treat GPC as an opt-out.
_US_GPC_STATES_UNVERIFIED = ("OR", "MT", "DE", "NH", "NJ", "MN", "MD", "NE")
_US_LINK_STATES_UNVERIFIED = ("VA", "UT", "IA", "TN", "IN", "KY", "RI")

RULES: dict[str, Rules] = {
    **dict.fromkeys(_EU_EEA, Rules(OPT_IN)),
    "GB": Rules(
        OPT_IN,
        authority=Authority(
            "Information Commissioner's Office (ICO)",
            "https://ico.org.uk/make-a-complaint/data-protection-complaints/",
        ),
    ),
    "CH": Rules(OPT_IN, verified=False),
    # LGPD Art 19: a full answer within 15 days, with no extension.
    "BR": Rules(OPT_IN, response=Period(days=15), extension=Period(), authority=Authority("ANPD")),
    "SG": Rules(
        OPT_IN,
        response=Period(days=30),
        extension=Period(),
        authority=Authority("PDPC", "https://www.pdpc.gov.sg/complaints-and-reviews"),
    ),
    # Canada: implied consent, opt-out for behavioural advertising; 30 days, +30 with notice.
    "CA": Rules(
        OPT_OUT,
        response=Period(days=30),
        extension=Period(days=30),
        authority=Authority("Office of the Privacy Commissioner of Canada", "https://priv.gc.ca"),
    ),
    # Quebec: tracking off by default; 30 days.
    "CA-QC": Rules(
        OPT_IN,
        response=Period(days=30),
        extension=Period(),
        authority=Authority("Commission d'accès à l'information", "https://plainte.cai.gouv.qc.ca"),
    ),
    "US": Rules(OPT_OUT, **_US_STATE_DEADLINES),
    "US-CA": Rules(
        OPT_OUT,
        do_not_sell_link=True,
        gpc_required=True,
        authority=Authority(
            "California Privacy Protection Agency", "https://cppa.ca.gov/webapplications/complaint"
        ),
        **_US_STATE_DEADLINES,
    ),
    **{
        f"US-{s}": Rules(
            OPT_OUT,
            do_not_sell_link=True,
            gpc_required=True,
            authority=_STATE_ATTORNEYS[s],
            **_US_STATE_DEADLINES,
        )
        for s in ("CO", "CT", "TX")
    },
    **{
        f"US-{s}": Rules(
            OPT_OUT, do_not_sell_link=True, gpc_required=True, verified=False, **_US_STATE_DEADLINES
        )
        for s in _US_GPC_STATES_UNVERIFIED
    },
    **{
        f"US-{s}": Rules(OPT_OUT, do_not_sell_link=True, verified=False, **_US_STATE_DEADLINES)
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
