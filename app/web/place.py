"""Where the reader is, for the rules that apply to them, and its name in their language."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from flask import current_app, g, request, session
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user

from app.jurisdictions import RULES, UNKNOWN, Jurisdiction, Period, Rules, jurisdiction_for
from app.services.profile import REGION_CODE, is_country_code
from app.web.i18n import country_name

# Where the place came from, most trusted first.
ACCOUNT = "account"  # the account's country and region
CHOSEN = "chosen"  # picked on /region for this browser (kept in the session)
NETWORK = "network"  # the proxy's country header
LANGUAGE = "language"  # the region of the browser's first language ("en-US")
DEFAULT = "default"  # the deployment's DEFAULT_COUNTRY, or nothing known
CHOSEN_KEY = "place"
# language[-script]-REGION (BCP 47): "en-US", "zh-Hans-CN"; a numeric region ("es-419") is no
# country.
_LANGUAGE_REGION = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z]{4})?[-_]([A-Za-z]{2})(?:[-_]|$)")


@dataclass(frozen=True)
class ReaderPlace:
    jurisdiction: Jurisdiction
    source: str


def reader_place() -> ReaderPlace:
    """Where the reader is, and how we know; worked out once per request."""
    if "reader_place" not in g:
        g.reader_place = _find_place()
    return g.reader_place


def reader_jurisdiction() -> Jurisdiction:
    return reader_place().jurisdiction


def reader_place_name() -> str | None:
    """ "Germany", "California, United States": what the footer's "Your region" names."""
    return jurisdiction_name(reader_jurisdiction().code)


def choose_place(country: str | None, region: str | None) -> None:
    """Remember a visitor's own choice for this browser; no country forgets it."""
    if country:
        session[CHOSEN_KEY] = f"{country}-{region}" if region else country
    else:
        session.pop(CHOSEN_KEY, None)
    g.pop("reader_place", None)


def chosen_place() -> tuple[str, str]:
    country, _sep, region = str(session.get(CHOSEN_KEY) or "").partition("-")
    return country, region


def _find_place() -> ReaderPlace:
    settings = current_app.config["SETTINGS"]
    if current_user.is_authenticated and current_user.country:
        return ReaderPlace(jurisdiction_for(current_user.country, current_user.region), ACCOUNT)
    country, region = chosen_place()
    if is_country_code(country):
        return ReaderPlace(jurisdiction_for(country, region), CHOSEN)
    for source, (country, region) in (
        (NETWORK, _place_from_headers(settings.country_header, settings.region_header)),
        (LANGUAGE, (_country_of_first_language(), "")),
    ):
        if is_country_code(country):
            return ReaderPlace(replace(jurisdiction_for(country, region), guessed=True), source)
    return ReaderPlace(jurisdiction_for(None, None, settings.default_country), DEFAULT)


def _place_from_headers(country_header: str, region_header: str) -> tuple[str, str]:
    if not country_header:
        return "", ""
    country = request.headers.get(country_header, "").strip().upper()
    region = request.headers.get(region_header, "").strip().upper() if region_header else ""
    return country, region if REGION_CODE.fullmatch(region) else ""


def _country_of_first_language() -> str:
    """ "en-US" gives US; only the browser's first language counts, and only with a region."""
    first = next(iter(request.accept_languages.values()), "")
    # Read from the tag as written: Babel would fill a missing region in ("en" -> "en_US").
    match = _LANGUAGE_REGION.match(first)
    return match.group(1).upper() if match else ""


def jurisdiction_name(code: str | None) -> str | None:
    """A jurisdiction code in words: a country ("Germany"), or a region with rules of its
    own and its country ("California, United States")."""
    if not code:
        return None
    if code == UNKNOWN:
        return _("Not known (the strictest rules applied)")
    country, _sep, region = code.partition("-")
    name = country_name(country) or code
    if not region:
        return name
    known = RULES.get(code)
    region_name = _(known.name) if known and known.name else region
    return _("%(region)s, %(country)s", region=region_name, country=name)


def period_words(period: Period) -> str:
    """A legal time limit as people say it: "1 month", "45 days", "1 month and 10 days"."""
    months = ngettext("%(num)d month", "%(num)d months", period.months) if period.months else ""
    days = ngettext("%(num)d day", "%(num)d days", period.days) if period.days else ""
    if months and days:
        return _("%(months)s and %(days)s", months=months, days=days)
    return months or days or _("no time")


def deadline_rule(rules: Rules) -> str:
    """The jurisdiction's time to answer: "1 month, extendable by 2 months"."""
    if rules.extension:
        return _(
            "%(response)s, extendable by %(extension)s",
            response=period_words(rules.response),
            extension=period_words(rules.extension),
        )
    return _("%(response)s, with no extension", response=period_words(rules.response))
