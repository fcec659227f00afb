"""Cookie consent: the banner, /preferences/cookies, Global Privacy Control, "Do Not Sell".

Per request, `current_consent()` works out what applies to this browser (cached on `g`):

- anonymous visitors: the signed consent cookie alone, so a visitor who decided costs no
  database query on any page;
- signed-in people: their account's newest receipt (one indexed query, only when a page
  renders), because a decision belongs to the person: someone who chose on their laptop is
  not asked again on their phone. The browser's own anonymous choice joins the account once,
  at sign-in (`merge_at_sign_in`), so it never silently outweighs the account afterwards.

The banner is shown while no decision is in force (none yet, made for other purposes or
another notice version, or older than CONSENT_MAX_AGE_DAYS). The rules live in
`app.services.consent`; this module reads the request and the cookie and renders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from babel.lists import format_list
from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    has_request_context,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import HiddenField, SelectMultipleField, StringField
from wtforms.validators import AnyOf

from app.extensions import db
from app.jurisdictions import Jurisdiction
from app.models import ConsentRecord, User
from app.services import consent as service
from app.services.consent import (
    COOKIE_NAME,
    Catalogue,
    ConsentCookie,
    ConsentError,
    ConsentState,
    Decision,
    Lifetime,
    get_catalogue,
)
from app.services.notice import get_notice
from app.web.errors import render_error
from app.web.htmx import wants_fragment
from app.web.place import reader_jurisdiction
from app.web.safety import safe_next_url

bp = Blueprint("consent", __name__)

# Decisions a form may send: the banner's and settings page's three, and the two answers of
# the Global Privacy Control confirmation step.
ALLOW_SALE = "allow_sale"
KEEP_SALE_OFF = "keep_sale_off"
DECISIONS = (*service.DECISIONS, ALLOW_SALE, KEEP_SALE_OFF)
ORIGINS = ("banner", "settings")
SOURCE_TEXTS = {
    "banner": _l("in the cookie banner"),
    "settings": _l("on the cookie settings page"),
    "gpc": _l("by your browser's Global Privacy Control signal"),
    "api": _l("on the platform"),
    "merge": _l("when you signed in (your browser's choices joined your account's)"),
    "request": _l("by a request you made to the privacy team"),
}


@bp.record_once
def _load_purposes(state: BlueprintSetupState) -> None:
    get_catalogue()  # a bad cookies.yaml stops start-up, with the entry at fault named


def current_notice_version() -> str:
    """The privacy-notice version decisions are made under (tests point it elsewhere)."""
    return get_notice().current.version


# --- what applies to this browser -------------------------------------------------------------


@dataclass
class BrowserConsent:
    catalogue: Catalogue
    jurisdiction: Jurisdiction
    cookie: ConsentCookie | None  # the browser's valid signed cookie, if any
    state: ConsentState
    decided: bool  # a decision is in force: no banner
    gpc: bool  # this request carries Sec-GPC: 1
    gpc_applied: tuple[str, ...] = ()  # purposes the signal switched off during this request
    hide_banner: bool = False  # on the pages that are the choices themselves
    user_id: int | None = None
    pending_cookie: ConsentCookie | None = field(default=None, repr=False)

    @property
    def browser_id(self) -> str | None:
        return self.cookie.browser_id if self.cookie else None

    @property
    def show_banner(self) -> bool:
        return not self.decided and not self.hide_banner

    @property
    def choices(self) -> dict[str, bool]:
        """The switches as they should look: the state, with sale and sharing off while the
        browser sends GPC (unless the person allowed them with the signal present)."""
        choices = service.choices_for(self.catalogue, self.state)
        if self.gpc and not self.state.gpc:
            choices = service.without_sale_or_sharing(self.catalogue, choices)
        return choices

    @property
    def sale_or_sharing_allowed(self) -> bool:
        choices = self.choices
        return any(choices[key] for key in self.catalogue.sale_or_sharing_keys)

    @property
    def do_not_sell_link(self) -> bool:
        return self.jurisdiction.do_not_sell_link

    def purpose_names(self, keys: tuple[str, ...] | list[str]) -> str:
        names = [_(p.name) for key in keys if (p := self.catalogue.get(key)) is not None]
        return format_list(names, locale=get_locale() or "en") if names else ""


def _secret_keys() -> list[str]:
    settings = current_app.config["SETTINGS"]
    return [*settings.secret_key_fallbacks, settings.secret_key]


def _sends_gpc() -> bool:
    return request.headers.get("Sec-GPC", "").strip() == "1"


def _is_current(state: ConsentState, catalogue: Catalogue) -> bool:
    return state.is_current(
        purposes_version=catalogue.version,
        notice_version=current_notice_version(),
        max_age_days=current_app.config["SETTINGS"].consent_max_age_days,
        now=datetime.now(UTC),
    )


def _account_state(user_id: int, catalogue: Catalogue, jurisdiction: Jurisdiction) -> ConsentState:
    record = service.latest_for_user(user_id)
    if record is None:
        return service.default_state(catalogue, jurisdiction)
    return service.state_from_record(record)


def current_consent() -> BrowserConsent:
    """What applies to this browser now (computed once per request)."""
    if "cookie_consent" in g:
        return g.cookie_consent  # type: ignore[no-any-return]
    catalogue = get_catalogue()
    jurisdiction = reader_jurisdiction()
    cookie = service.decode_cookie(request.cookies.get(COOKIE_NAME), _secret_keys())
    user_id = current_user.id if current_user.is_authenticated else None
    if user_id is not None:
        state = _account_state(user_id, catalogue, jurisdiction)
    elif cookie is not None:
        state = cookie.as_state()
    else:
        state = service.default_state(catalogue, jurisdiction)
    consent = BrowserConsent(
        catalogue=catalogue,
        jurisdiction=jurisdiction,
        cookie=cookie,
        state=state,
        decided=_is_current(state, catalogue),
        gpc=_sends_gpc(),
        user_id=user_id,
    )
    if (
        user_id is not None
        and consent.decided
        and (cookie is None or cookie.receipt_id != state.receipt_id)
    ):
        # The account decided elsewhere: this browser's cookie says so too, for the platform.
        _queue_cookie(consent, state)
    g.cookie_consent = consent
    return consent


def _queue_cookie(consent: BrowserConsent, state: ConsentState) -> None:
    browser_id = consent.browser_id or service.new_browser_id()
    consent.pending_cookie = service.cookie_for(state, browser_id)


@bp.after_app_request
def _set_consent_cookie(response: Response) -> Response:
    consent = g.get("cookie_consent")
    if consent is None or consent.pending_cookie is None:
        return response
    settings = current_app.config["SETTINGS"]
    response.set_cookie(
        COOKIE_NAME,
        service.encode_cookie(consent.pending_cookie, _secret_keys()),
        max_age=settings.consent_max_age_days * 24 * 60 * 60,
        path="/",
        httponly=True,  # the platform's servers read it; no script needs to
        samesite="Lax",
        secure=settings.is_production or current_app.config["SESSION_COOKIE_SECURE"],
    )
    return response


def _record(consent: BrowserConsent, choices: dict[str, bool], source: str) -> ConsentRecord:
    """A receipt for this browser (and the signed-in account), in the current transaction;
    the state and the cookie follow it."""
    browser_id = consent.browser_id or service.new_browser_id()
    record = service.record_decision(
        consent.catalogue,
        Decision(
            choices=choices,
            source=source,
            jurisdiction=consent.jurisdiction,
            notice_version=current_notice_version(),
            user_id=consent.user_id,
            browser_id=browser_id,
            gpc=consent.gpc,
            user_agent_hash=service.user_agent_hash(
                current_app.config["SETTINGS"].secret_key, request.user_agent.string
            ),
        ),
    )
    db.session.flush()
    consent.state = service.state_from_record(record)
    consent.decided = _is_current(consent.state, consent.catalogue)
    consent.pending_cookie = service.cookie_for(consent.state, browser_id)
    return record


# --- Global Privacy Control -------------------------------------------------------------------


def _is_page_request() -> bool:
    blueprint = request.blueprint or ""
    return request.method == "GET" and request.endpoint != "static" and blueprint != "api"


@bp.before_app_request
def _honour_gpc() -> None:
    """`Sec-GPC: 1` switches sale, sharing and targeted advertising off, with a receipt.

    Only when the state in force allows one of them: a decision still current, or an opt-out
    place's defaults (which start on). An outdated decision is not renewed by the signal: the
    banner asks again, with those purposes already off. Opt-in places start with everything
    off, so there the signal never needs a receipt of its own. Repeated requests write
    nothing more: after the receipt, nothing the signal refuses is allowed any longer.
    """
    if not _is_page_request() or not _sends_gpc():
        return
    consent = current_consent()
    switch_off = service.gpc_switches_off(consent.catalogue, consent.state)
    in_force = consent.decided or consent.state.source == service.DEFAULT_SOURCE
    if not switch_off or not in_force:
        return
    choices = service.without_sale_or_sharing(
        consent.catalogue, service.choices_for(consent.catalogue, consent.state)
    )
    _record(consent, choices, "gpc")
    db.session.commit()
    consent.gpc_applied = switch_off


# --- signing in -------------------------------------------------------------------------------


def merge_at_sign_in(user: User) -> None:
    """Join the browser's anonymous decision to the account that just signed in.

    Per purpose the stricter choice wins (allowed only if both allowed it), recorded as a
    receipt with source "merge" that carries both the account and the browser. Only a decision
    still in force that was made anonymously counts: one made while signed in belongs to that
    account (a shared computer) and an outdated one would be asked again anyway. An account
    decision that is itself outdated does not outweigh the browser's fresh one.
    """
    g.pop("cookie_consent", None)
    catalogue = get_catalogue()
    cookie = service.decode_cookie(request.cookies.get(COOKIE_NAME), _secret_keys())
    if cookie is None or not _is_current(cookie.as_state(), catalogue):
        return
    browser_record = service.find_receipt(cookie.receipt_id)
    if (
        browser_record is None
        or browser_record.user_id is not None
        or browser_record.browser_id != cookie.browser_id
    ):
        return
    consent = current_consent()  # now the account's
    account = consent.state if consent.decided else None
    merged = service.merge_choices(
        catalogue,
        service.choices_for(catalogue, account) if account else None,
        service.choices_for(catalogue, service.state_from_record(browser_record)),
    )
    if consent.gpc and not browser_record.gpc:
        # Signed in with the signal, but the browser's choice was made without it: the merged
        # receipt carries gpc=true, so it must not keep anything the signal refuses.
        merged = service.without_sale_or_sharing(catalogue, merged)
    _record(consent, merged, "merge")
    db.session.commit()


# --- forms ------------------------------------------------------------------------------------


class ConsentForm(FlaskForm):
    """The banner's and the settings page's form: the button pressed (`decision`) and one
    checkbox per optional purpose (`allow`). An unknown value of either makes it invalid."""

    decision = StringField(validators=[AnyOf(DECISIONS)])
    allow = SelectMultipleField(choices=[])
    origin = HiddenField(validators=[AnyOf(ORIGINS)])
    next = HiddenField()

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.allow.choices = [(key, key) for key in get_catalogue().optional_keys]


def _back(next_url: str | None) -> str:
    return safe_next_url(next_url) or url_for("consent.settings")


def _saved_message(consent: BrowserConsent, choices: dict[str, bool]) -> str:
    allowed = [k for k, v in choices.items() if v]
    refused = [k for k, v in choices.items() if not v]
    if not refused:
        return _("Saved: all optional cookies are allowed.")
    if not allowed:
        return _("Saved: only strictly necessary cookies are used.")
    return _(
        "Saved. Allowed: %(allowed)s. Off: %(refused)s.",
        allowed=consent.purpose_names(allowed),
        refused=consent.purpose_names(refused),
    )


# --- pages ------------------------------------------------------------------------------------


def lifetime_text(lifetime: Lifetime) -> str:
    """How long a cookie lasts, in words."""
    if lifetime.kind == "session":
        return _("Until you close the browser")
    days = lifetime.amount or 0
    if lifetime.kind == "hours":
        return ngettext("%(num)d hour", "%(num)d hours", days)
    if lifetime.kind == "consent_max_age":
        days = current_app.config["SETTINGS"].consent_max_age_days
    if days % 365 == 0:
        return ngettext("%(num)d year", "%(num)d years", days // 365)
    return ngettext("%(num)d day", "%(num)d days", days)


def _history_records(consent: BrowserConsent) -> list[ConsentRecord]:
    if consent.user_id is not None:
        return service.history(user_id=consent.user_id)
    if consent.browser_id is not None:
        return service.history(browser_id=consent.browser_id)
    return []


def cookie_purpose_name(key: str) -> str:
    """A purpose key of a receipt in words (a purpose since removed keeps its key)."""
    purpose = get_catalogue().get(key)
    return _(purpose.name) if purpose else key


@bp.app_context_processor
def _consent_context() -> dict[str, object]:
    if not has_request_context():
        return {}
    return {"consent_ui": current_consent}


@bp.get("/preferences/cookies")
def settings() -> str:
    consent = current_consent()
    consent.hide_banner = True  # this page is the choices themselves
    return render_template(
        "consent/settings.html",
        consent=consent,
        records=_history_records(consent),
        lifetime_text=lifetime_text,
        source_texts=SOURCE_TEXTS,
    )


@bp.post("/preferences/cookies")
def decide() -> Response | str | tuple[str, int]:
    form = ConsentForm()
    if not form.validate_on_submit():
        return render_error(400)  # unknown purpose or decision, or no form token: nothing stored
    consent = current_consent()
    decision = form.decision.data
    if decision == KEEP_SALE_OFF:
        return _done(
            form,
            _(
                "Nothing changed: the cookies for %(purposes)s stay off.",
                purposes=_sale_names(consent),
            ),
        )
    if decision == ALLOW_SALE:
        # The person answered the confirmation step: allowed with the signal in view.
        requested = {
            **service.choices_for(consent.catalogue, consent.state),
            **dict.fromkeys(consent.catalogue.sale_or_sharing_keys, True),
        }
        held: tuple[str, ...] = ()
    else:
        try:
            requested = service.requested_choices(consent.catalogue, decision, form.allow.data)
        except ConsentError:
            return render_error(400)
        held = (
            service.gpc_needs_confirmation(consent.catalogue, consent.state, requested)
            if consent.gpc
            else ()
        )
    choices = {key: allowed and key not in held for key, allowed in requested.items()}
    _record(consent, choices, form.origin.data)
    db.session.commit()
    if held:
        return _ask_about_gpc(form, consent, held)
    return _done(form, _saved_message(consent, choices))


def _sale_names(consent: BrowserConsent) -> str:
    return consent.purpose_names(list(consent.catalogue.sale_or_sharing_keys))


def _done(form: ConsentForm, message: str) -> Response | str:
    if wants_fragment():
        return render_template("consent/partials/_saved.html", message=message)
    flash(message, "success")
    return redirect(_back(form.next.data), 303)


def _ask_about_gpc(
    form: ConsentForm, consent: BrowserConsent, held: tuple[str, ...]
) -> Response | str:
    """Everything else is saved; the purposes the browser's signal refuses wait for a yes."""
    context = {
        "consent": consent,
        "held": held,
        "origin": form.origin.data,
        "next_url": _back(form.next.data),
    }
    if wants_fragment():
        return render_template("consent/partials/_gpc_confirm.html", **context)
    return redirect(
        url_for("consent.confirm_sale", origin=form.origin.data, next=_back(form.next.data)), 303
    )


@bp.get("/preferences/cookies/confirm")
def confirm_sale() -> Response | str:
    """The Global Privacy Control confirmation step, as a page (without JavaScript)."""
    consent = current_consent()
    consent.hide_banner = True
    origin = request.args.get("origin") if request.args.get("origin") in ORIGINS else "settings"
    next_url = _back(request.args.get("next"))
    held = tuple(
        k
        for k, v in consent.choices.items()
        if k in consent.catalogue.sale_or_sharing_keys and not v
    )
    if not held:
        return redirect(next_url, 303)
    return render_template(
        "consent/confirm.html", consent=consent, held=held, origin=origin, next_url=next_url
    )


@bp.route("/preferences/cookies/do-not-sell", methods=["GET", "POST"])
def do_not_sell() -> Response | str:
    """The "Do Not Sell or Share My Personal Information" page: one button, one receipt."""
    consent = current_consent()
    consent.hide_banner = True
    if request.method == "POST":  # (CSRFProtect has checked the form token, as for every POST)
        choices = service.without_sale_or_sharing(
            consent.catalogue, service.choices_for(consent.catalogue, consent.state)
        )
        _record(consent, choices, "settings")
        db.session.commit()
        flash(
            _(
                "Done: we do not sell or share your personal information, and the cookies for "
                "%(purposes)s stay off.",
                purposes=_sale_names(consent),
            ),
            "success",
        )
        return redirect(url_for("consent.do_not_sell"), 303)
    return render_template("consent/do_not_sell.html", consent=consent)


# --- the history as files ---------------------------------------------------------------------


def _download(body: bytes, mimetype: str, filename: str) -> Response:
    response = current_app.response_class(body, mimetype=mimetype)
    response.headers["Content-Type"] = f"{mimetype}; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.get("/preferences/cookies/history.csv")
def history_csv() -> Response:
    consent = current_consent()
    text = service.history_csv(consent.catalogue, _history_records(consent))
    return _download(text.encode("utf-8-sig"), "text/csv", "cookie-consent-history.csv")


@bp.get("/preferences/cookies/history.json")
def history_json() -> Response:
    consent = current_consent()
    text = service.history_json(
        consent.catalogue,
        _history_records(consent),
        subject="account" if consent.user_id is not None else "browser",
        generated_at=datetime.now(UTC),
    )
    return _download(text.encode("utf-8"), "application/json", "cookie-consent-history.json")
