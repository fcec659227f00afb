"""Forms shared across areas (each carries the CSRF token through Flask-WTF)."""

from __future__ import annotations

from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField, SelectField
from wtforms.validators import DataRequired, Length, ValidationError


class EmailAddress:
    """Checks the syntax with email-validator (no DNS look-up: it must work offline)."""

    def __call__(self, form: FlaskForm, field: EmailField) -> None:
        try:
            validate_email(field.data or "", check_deliverability=False)
        except EmailNotValidError:
            raise ValidationError(
                _l("Enter an email address in the form name@example.com.")
            ) from None


def strip_text(value: Any) -> Any:
    """A form filter: typed text without the spaces around it."""
    return value.strip() if isinstance(value, str) else value


def your_email_address() -> EmailField:
    """The "your email address" field of the forms that send a link to an address typed by
    someone who is not signed in (marketing manage links, requests by email)."""
    return EmailField(
        _l("Your email address"),
        filters=[strip_text],
        validators=[
            DataRequired(_l("Enter your email address.")),
            Length(max=254, message=_l("Use at most %(max)d characters.")),
            EmailAddress(),
        ],
    )


class LoginForm(FlaskForm):
    email = EmailField(
        _l("Email address"),
        validators=[DataRequired(_l("Enter your email address.")), Length(max=254), EmailAddress()],
    )
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(_l("Enter your password.")), Length(max=1024)],
    )
    next = HiddenField()


class ReauthForm(FlaskForm):
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(_l("Enter your password.")), Length(max=1024)],
    )
    next = HiddenField()


class ButtonForm(FlaskForm):
    """A form that is only a button: it carries the CSRF token and nothing else."""


class LanguageForm(FlaskForm):
    language = SelectField(_l("Language"), choices=[])
    next = HiddenField()

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        from app.web.i18n import LANGUAGES  # noqa: PLC0415 -- avoids an import cycle

        self.language.choices = list(LANGUAGES.items())
