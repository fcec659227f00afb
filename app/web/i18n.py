"""Which language a page is shown in, and the menu that changes it."""

from __future__ import annotations

from babel import Locale, UnknownLocaleError, negotiate_locale
from babel.core import get_global
from flask import Blueprint, current_app, redirect, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from werkzeug.wrappers import Response

from app.extensions import db
from app.web.forms import LanguageForm
from app.web.safety import safe_next_url

bp = Blueprint("i18n", __name__)

# Locale code -> its own name (a language is listed in itself, so anyone can find theirs).
LANGUAGES: dict[str, str] = {
    "en": "English",
    "de": "Deutsch",
    "fr": "Français",
    "es": "Español",
    "pt_BR": "Português (Brasil)",
    "it": "Italiano",
    "nl": "Nederlands",
    "ja": "日本語",
    "zh_Hans": "简体中文",
    "ar": "العربية",
}
RTL_LANGUAGES = frozenset({"ar", "he", "fa", "ur"})
LANGUAGE_COOKIE = "pc_lang"
LANGUAGE_COOKIE_MAX_AGE = 365 * 24 * 60 * 60
LANGUAGE_MENU_LABEL = _l("Language")


def select_locale() -> str:
    """Saved choice of the account, then the language cookie, then Accept-Language."""
    if current_user and current_user.is_authenticated and current_user.locale in LANGUAGES:
        return current_user.locale
    cookie = request.cookies.get(LANGUAGE_COOKIE, "")
    if cookie in LANGUAGES:
        return cookie
    # In the browser's order of preference, "de-AT" meaning "de": Werkzeug's best_match would
    # prefer an exact "en;q=0.3" over a preferred "de-AT" and show German speakers English.
    for tag in request.accept_languages.values():
        code = language_for_tag(tag)
        if code:
            return code
    return "en"


def language_for_tag(tag: str) -> str | None:
    """The shipped language for a browser's language tag, or None: "de-AT" is German,
    "zh-CN" and "zh-Hans" are Simplified Chinese (but "zh-TW", written in Traditional
    characters, is not), "pt" and "pt-PT" get the Brazilian Portuguese we have."""
    try:
        wanted = Locale.parse(tag.replace("-", "_"))
    except (ValueError, TypeError, UnknownLocaleError):
        return None
    exact = negotiate_locale([str(wanted)], list(LANGUAGES))
    if exact:
        return next(code for code in LANGUAGES if code.lower() == exact.lower())
    script = wanted.script or _likely_script(wanted)
    for code in LANGUAGES:
        ours = Locale.parse(code)
        if ours.language == wanted.language and (not ours.script or ours.script == script):
            return code
    return None


def _likely_script(locale: Locale) -> str | None:
    """The script a tag without one most likely means (CLDR): "zh" and "zh-SG" are Hans,
    "zh-TW" and "zh-HK" are Hant."""
    likely = get_global("likely_subtags")
    full = likely.get(f"{locale.language}_{locale.territory}") or likely.get(locale.language)
    if not full:
        return None
    try:
        return Locale.parse(full).script
    except (ValueError, UnknownLocaleError):
        return None


def reader_locale() -> Locale:
    return get_locale() or Locale.parse("en")


def country_name(code: str | None) -> str | None:
    """A country code in the reader's language; "local" is the reader's own country."""
    if not code:
        return None
    if code == "local":
        return _("your own country")
    return reader_locale().territories.get(code.upper(), code)


def language_name(code: str | None) -> str | None:
    """A language tag (de, pt-BR, zh_Hans) in the reader's language."""
    if not code:
        return None
    try:
        return Locale.parse(code.replace("-", "_")).get_display_name(reader_locale()) or code
    except (ValueError, UnknownLocaleError):
        return code


def text_direction(locale: str) -> str:
    return "rtl" if locale.split("_", maxsplit=1)[0] in RTL_LANGUAGES else "ltr"


@bp.post("/language")
def set_language() -> Response:
    form = LanguageForm()
    if not form.validate_on_submit():
        # An unknown language falls back quietly: the page simply stays as it was.
        return redirect(safe_next_url(request.form.get("next")) or url_for("main.index"), 303)
    locale = form.language.data
    if current_user.is_authenticated:
        current_user.locale = locale
        db.session.commit()
    response = redirect(safe_next_url(form.next.data) or url_for("main.index"), 303)
    response.set_cookie(
        LANGUAGE_COOKIE,
        locale,
        max_age=LANGUAGE_COOKIE_MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=current_app.config["SESSION_COOKIE_SECURE"],
    )
    return response
