"""Correct your profile: name, place, language, billing address and sign-in address."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import get_locale, refresh
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required, logout_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import EmailField, Field, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length, ValidationError

from app.extensions import limiter
from app.models import User
from app.services import profile as profile_service
from app.services.profile import (
    AddressDetails,
    AddressTakenError,
    LinkExpiredError,
    LinkUsedError,
    ProfileDetails,
    ProfileError,
    SameAddressError,
    WrongPasswordError,
)
from app.web.errors import render_error
from app.web.forms import ButtonForm, EmailAddress, strip_text
from app.web.i18n import LANGUAGE_COOKIE, LANGUAGE_COOKIE_MAX_AGE, LANGUAGES

bp = Blueprint("profile", __name__, url_prefix="/profile")


# --- forms ------------------------------------------------------------------------------------


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _at_most(length: int) -> Length:
    return Length(max=length, message=_l("Use at most %(max)d characters."))


class PlainText:
    """Names and addresses are one line of text: no line breaks, tabs or control codes."""

    def __call__(self, form: FlaskForm, field: Field) -> None:
        if profile_service.has_control_characters(field.data):
            raise ValidationError(
                _l("Use letters, numbers and punctuation only, without line breaks or tabs.")
            )


class CountryCode:
    def __call__(self, form: FlaskForm, field: Field) -> None:
        if field.data and not profile_service.is_country_code(field.data):
            raise ValidationError(_l("Choose a country from the list."))


def _text(label: Any, length: int, **kwargs: Any) -> StringField:
    return StringField(
        label, filters=[strip_text], validators=[_at_most(length), PlainText()], **kwargs
    )


def country_options() -> list[tuple[str, str]]:
    return [("", _("Not given")), *profile_service.country_choices(str(get_locale() or "en"))]


class PlaceForm(FlaskForm):
    """Where a person lives: the country, and the region where it has rules of its own."""

    country = SelectField(
        _l("Country"), choices=[], validate_choice=False, validators=[CountryCode()]
    )
    region = StringField(
        _l("State or region code"),
        description=_l('Optional. The short code of your state or region, such as "CA" or "BY".'),
        filters=[strip_text, _upper],
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.country.choices = country_options()

    def validate_region(self, field: Field) -> None:
        if not field.data:
            return
        if not profile_service.REGION_CODE.fullmatch(field.data):
            raise ValidationError(
                _l("Enter the code of your region: one to three letters or digits, such as CA.")
            )
        if not self.country.data:
            raise ValidationError(
                _l("Choose your country too, so the region code means something.")
            )


class ProfileForm(PlaceForm):
    name = _text(_l("Name"), 200)
    locale = SelectField(_l("Preferred language"), choices=[], validate_choice=False)
    billing_name = _text(_l("Name for invoices"), 200)
    billing_line1 = _text(_l("Address line 1"), 200)
    billing_line2 = _text(_l("Address line 2 (optional)"), 200)
    billing_city = _text(_l("Town or city"), 100)
    billing_postal_code = _text(_l("Postal code"), 20)
    billing_region = _text(_l("State, province or region (optional)"), 100)
    billing_country = SelectField(
        _l("Country"), choices=[], validate_choice=False, validators=[CountryCode()]
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.billing_country.choices = self.country.choices
        # Each language named in itself, and marked as such for screen readers.
        self.locale.choices = [
            (code, name, {"lang": code.replace("_", "-")}) for code, name in LANGUAGES.items()
        ]

    def validate_locale(self, field: Field) -> None:
        if field.data not in LANGUAGES:
            raise ValidationError(_l("Choose a language from the list."))

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        address = self.address()
        missing = address.missing()
        message = _("Fill this in to complete the billing address.")
        if address.is_blank and profile_service.billing_address(current_user.id) is not None:
            # The data map lets a person correct their billing address, not delete it alone.
            missing = list(profile_service.ADDRESS_REQUIRED)
            message = _("Fill this in: a saved billing address can be corrected, not emptied.")
        for name in missing:
            field = self[f"billing_{name}"]
            if not field.errors:
                field.errors = [message]
        return valid and not missing

    def details(self) -> ProfileDetails:
        return ProfileDetails(
            name=self.name.data or "",
            country=self.country.data or None,
            region=self.region.data or None,
            locale=self.locale.data,
        )

    def address(self) -> AddressDetails:
        return AddressDetails(
            **{
                name: (self[f"billing_{name}"].data or None)
                for name in profile_service.ADDRESS_FIELDS
            }
        )

    def fill_from(self, user: User) -> None:
        self.name.data = user.name
        self.country.data = user.country or ""
        self.region.data = user.region or ""
        self.locale.data = user.locale
        address = profile_service.billing_address(user.id)
        for name in profile_service.ADDRESS_FIELDS:
            value = getattr(address, name) if address is not None else None
            self[f"billing_{name}"].data = value or ""


class EmailChangeForm(FlaskForm):
    new_email = EmailField(
        _l("New email address"),
        filters=[strip_text],
        validators=[
            DataRequired(_l("Enter the new email address.")),
            Length(max=254, message=_l("Use at most %(max)d characters.")),
            EmailAddress(),
        ],
    )
    password = PasswordField(
        _l("Your current password"),
        description=_l(
            "We ask for it because whoever controls the sign-in address controls the account."
        ),
        validators=[DataRequired(_l("Enter your current password.")), Length(max=1024)],
    )


# --- the page ---------------------------------------------------------------------------------


def _settings() -> Any:
    return current_app.config["SETTINGS"]


def _absolute(endpoint: str, **values: Any) -> str:
    return _settings().base_url + url_for(endpoint, **values)


def _page(
    profile_form: ProfileForm | None = None,
    email_form: EmailChangeForm | None = None,
    status: int = 200,
) -> tuple[str, int]:
    if profile_form is None:
        profile_form = ProfileForm(formdata=None)
        profile_form.fill_from(current_user)
    return (
        render_template(
            "profile/index.html",
            form=profile_form,
            email_form=email_form or EmailChangeForm(formdata=None),
            pending=profile_service.pending_email_change(current_user.id),
            form_has_errors=bool(profile_form.errors),
            email_has_errors=bool(email_form and email_form.errors),
        ),
        status,
    )


@bp.get("")
@login_required
def index() -> tuple[str, int]:
    return _page()


@bp.post("")
@login_required
def save() -> Response | tuple[str, int]:
    form = ProfileForm()
    if not form.validate_on_submit():
        return _page(profile_form=form, status=400)
    old_locale = current_user.locale
    try:
        changed = profile_service.update_profile(
            current_user,
            form.details(),
            form.address(),
            allowed_locales=LANGUAGES,
        )
    except ProfileError as error:  # the form's checks should have caught it first
        form[error.field].errors = [_("This value cannot be saved. Check it and try again.")]
        return _page(profile_form=form, status=400)
    response = redirect(url_for("profile.index"), 303)
    if not changed:
        flash(_("Nothing was changed: your details were already as shown."), "info")
        return response
    if current_user.locale != old_locale:
        refresh()  # the message below, and every page from now on, in the chosen language
        response.set_cookie(
            LANGUAGE_COOKIE,
            current_user.locale,
            max_age=LANGUAGE_COOKIE_MAX_AGE,
            httponly=True,
            samesite="Lax",
            secure=current_app.config["SESSION_COOKIE_SECURE"],
        )
    flash(_("Your details are saved."), "success")
    return response


# --- changing the sign-in address -------------------------------------------------------------


def _email_change_limit() -> str:
    return _settings().login_rate_limit


def _email_change_limit_key() -> str:
    # Limits run before the sign-in check, so a visitor without an account can reach here.
    return f"email-change|{current_user.get_id() or request.remote_addr}"


@bp.post("/email")
@login_required
# The form checks the password, so it gets the same limits as signing in.
@limiter.limit(_email_change_limit, methods=["POST"], key_func=_email_change_limit_key)
def request_email_change() -> Response | tuple[str, int]:
    form = EmailChangeForm()
    if not form.validate_on_submit():
        return _page(email_form=form, status=400)
    try:
        change = profile_service.request_email_change(
            current_user,
            new_email=form.new_email.data,
            password=form.password.data,
            secret_key=_settings().secret_key,
            confirm_url=lambda token: _absolute("profile.confirm_email", token=token),
            profile_url=_absolute("profile.index"),
        )
    except WrongPasswordError:
        form.password.errors = [_("That password is not right. Try again.")]
        return _page(email_form=form, status=400)
    except SameAddressError:
        form.new_email.errors = [_("This is already the address you sign in with.")]
        return _page(email_form=form, status=400)
    except profile_service.InvalidAddressError:
        form.new_email.errors = [_("Enter an email address in the form name@example.com.")]
        return _page(email_form=form, status=400)
    flash(
        _(
            "We sent a confirmation link to %(address)s. Your sign-in address changes "
            "when you follow it, within 24 hours.",
            address=change.new_email,
        ),
        "success",
    )
    return redirect(url_for("profile.index"), 303)


@bp.post("/email/cancel")
@login_required
def cancel_email_change() -> Response:
    form = ButtonForm()
    if form.validate_on_submit() and profile_service.cancel_email_change(current_user):
        flash(_("The change of your sign-in address is cancelled. The link no longer works."))
    return redirect(url_for("profile.index"), 303)


def _link_error(error: Exception) -> tuple[str, int]:
    if isinstance(error, LinkExpiredError):
        return render_error(
            410,
            _("This link has expired"),
            _(
                "Links to confirm a new sign-in address work for 24 hours. Your address was "
                "not changed. Sign in and ask for the change again on the Your details page."
            ),
        )
    if isinstance(error, LinkUsedError) and error.confirmed:
        return render_error(
            410,
            _("This link has already been used"),
            _(
                "The new sign-in address was already confirmed with this link. "
                "Sign in with the new address."
            ),
        )
    if isinstance(error, LinkUsedError):
        return render_error(
            410,
            _("This link has already been used"),
            _(
                "This change was cancelled, or a newer change was asked for after it. "
                "Use the link in the newest message, or ask for the change again."
            ),
        )
    if isinstance(error, AddressTakenError):
        return render_error(
            409,
            _("This address cannot be used"),
            _(
                "Another account now signs in with this address, so the sign-in address "
                "was not changed. Nothing else was changed either."
            ),
        )
    return render_error(
        400,
        _("This link is not valid"),
        _(
            "The link is incomplete or was changed. Open it again from the message, or copy "
            "the whole address into your browser. Nothing was changed."
        ),
    )


@bp.route("/email/confirm/<token>", methods=["GET", "POST"])
def confirm_email(token: str) -> Response | tuple[str, int]:
    """GET only shows what would happen (mail scanners open links); POST does it."""
    if request.method == "POST":
        return _confirm(token)
    try:
        change, _user = profile_service.check_email_change(_settings().secret_key, token)
    except profile_service.EmailChangeError as error:
        return _link_error(error)
    return (
        render_template(
            "profile/confirm_email.html",
            change=change,
            masked_old_email=profile_service.mask_email(change.old_email),
            token=token,
        ),
        200,
    )


def _confirm(token: str) -> Response | tuple[str, int]:
    if not ButtonForm().validate_on_submit():
        return render_error(400)
    try:
        change = profile_service.confirm_email_change(
            _settings().secret_key, token, profile_url=_absolute("profile.index")
        )
    except profile_service.EmailChangeError as error:
        return _link_error(error)
    if current_user.is_authenticated and current_user.id == change.user_id:
        # This browser's session ended with the others; make that visible at once.
        logout_user()
        session.clear()
    flash(
        _(
            "Your sign-in address is now %(address)s. For your safety, every browser that was "
            "signed in to your account has been signed out. Sign in with your new address.",
            address=change.new_email,
        ),
        "success",
    )
    return redirect(url_for("auth.login"), 303)
