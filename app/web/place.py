"""Where the reader is, for the rules that apply to them, and its name in their language."""

from __future__ import annotations

from flask import current_app
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user

from app.jurisdictions import RULES, UNKNOWN, Jurisdiction, Period, Rules, jurisdiction_for
from app.web.i18n import country_name


def reader_jurisdiction() -> Jurisdiction:
    """The account's country and region, else the deployment's default country."""
    default_country = current_app.config["SETTINGS"].default_country
    if current_user.is_authenticated:
        return jurisdiction_for(current_user.country, current_user.region, default_country)
    return jurisdiction_for(None, None, default_country)


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
