"""Translated error pages: what happened and what to do, never a stack trace."""

from __future__ import annotations

import logging
import time

from flask import Flask, render_template
from flask_babel import format_timedelta
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)

# status -> (title, what happened and what to do)
ERROR_TEXTS = {
    400: (
        _l("This request could not be understood"),
        _l(
            "Something in what was sent is missing or not valid. "
            "Go back, check the form and try again."
        ),
    ),
    401: (
        _l("Please sign in"),
        _l("You need to sign in to do this."),
    ),
    403: (
        _l("This is not open to you"),
        _l("Your account does not have access to this page. If you think it should, contact us."),
    ),
    404: (
        _l("Page not found"),
        _l(
            "There is nothing at this address, or it is not yours to see. "
            "Check the link, or start again from the overview."
        ),
    ),
    405: (
        _l("This action cannot be done this way"),
        _l(
            "The page does not accept this kind of request. "
            "Use the buttons and forms on the page instead of typing the address."
        ),
    ),
    410: (
        _l("This is no longer available"),
        _l("What you are looking for has expired or was removed."),
    ),
    413: (
        _l("What you sent is too large"),
        _l("The form or file you sent is larger than we accept. Send something smaller."),
    ),
    429: (
        _l("Too many attempts"),
        _l("You have tried this too often in a short time. Wait a few minutes, then try again."),
    ),
    500: (
        _l("Something went wrong on our side"),
        _l(
            "Nothing you did caused this and nothing was changed. "
            "Try again in a moment; if it keeps happening, contact us."
        ),
    ),
}
CSRF_TEXT = (
    _l("This form has expired"),
    _l(
        "For your safety, forms work only for a while and only from this site. "
        "Go back, reload the page and send the form again."
    ),
)


def render_error(
    status: int, title: str | None = None, message: str | None = None
) -> tuple[str, int]:
    default_title, default_message = ERROR_TEXTS.get(status, ERROR_TEXTS[500])
    return (
        render_template(
            "errors/error.html",
            status=status,
            title=title or default_title,
            message=message or default_message,
        ),
        status,
    )


def _retry_hint() -> str | None:
    """ "Try again in about N minutes", from the limit that was hit."""
    from app.extensions import limiter  # noqa: PLC0415

    current = limiter.current_limit
    if current is None:
        return None
    wait = max(1, int(current.reset_at - time.time()))
    return _("You can try again in %(wait)s.", wait=format_timedelta(wait, threshold=1.1))


def register(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError) -> tuple[str, int]:
        return render_error(400, *map(str, CSRF_TEXT))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> object:
        status = error.code or 500
        if status < 400:
            return error
        known = status if status in ERROR_TEXTS else (400 if status < 500 else 500)
        if known == 429 and (hint := _retry_hint()):
            return render_error(429, message=f"{ERROR_TEXTS[429][1]} {hint}")
        response = render_error(known)
        if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
            return response[0], status, {"Allow": ", ".join(error.valid_methods)}  # type: ignore[attr-defined]
        return response[0], status

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> tuple[str, int]:
        if isinstance(error, HTTPException):  # pragma: no cover - handled above
            return http_error(error)  # type: ignore[return-value]
        log.exception("unhandled error", exc_info=error)
        from app.extensions import db  # noqa: PLC0415

        db.session.rollback()
        return render_error(500)

    app.register_error_handler(InternalServerError, lambda e: render_error(500))
