"""Requests about your data, for the person who makes them: /requests.

Asking (signed in, after the password again; or not signed in, with an email address),
confirming with the emailed link, following a request, cancelling it and appealing a refusal.
The rules live in `app.services.requests`; this module reads forms, maps the service's
refusals to pages and renders.

Emailed links open a page with a button; only the button (a POST) changes anything, because
mail scanners open links. Without signing in, making a request always answers with the same
page, so the form never tells anyone whether an address has an account here.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    has_request_context,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import format_datetime, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response
from wtforms import TextAreaField

from app.extensions import db, limiter, login_manager
from app.models import DataRequest
from app.services import marketing
from app.services import requests as service
from app.services.erasure import erasure_plan
from app.services.requests import (
    ACCESS,
    KINDS,
    MAX_DETAILS_LENGTH,
    DeletionPendingError,
    DetailsError,
    Kind,
    LinkExpiredError,
    LinkInvalidError,
    LinkUsedError,
    NotAppealableError,
    RequestError,
    RequestNotFoundError,
    ResendLimitError,
    UnknownKindError,
    WrongStateError,
)
from app.web.auth import fresh_login_required
from app.web.errors import CSRF_TEXT, render_error
from app.web.forms import ButtonForm, your_email_address
from app.web.htmx import wants_fragment
from app.web.place import CHOSEN, chosen_place, reader_jurisdiction, reader_place
from app.web.request_text import request_text

log = logging.getLogger(__name__)

bp = Blueprint("requests", __name__, url_prefix="/requests")

# Kinds that can also be done at once, without a request, on these pages.
AT_ONCE = {
    "opt_out_sale": ("consent.settings",),
    "withdraw_consent": ("consent.settings", "marketing.preferences"),
}

# What the details box asks, per kind.
DETAILS_LABELS = {
    "correct": _l("What is wrong or missing, and what should it say?"),
    "restrict": _l("Which data should we stop using, and why?"),
    "object": _l("Which use of your data do you object to, and why?"),
    "appeal": _l("Why should we look at our decision again?"),
    "child_report": _l(
        "Which account is it (its email address or user name, if you know it), and why do you "
        "think it belongs to a child?"
    ),
    "question": _l("Your question"),
}
DEFAULT_DETAILS_LABEL = _l("Anything you want us to know (optional)")

DETAILS_ERRORS = {
    DetailsError.MISSING: _l(
        "Write what you want us to do. We cannot act on this request without it."
    ),
    DetailsError.TOO_LONG: _l("Use at most %(max)d characters."),
    DetailsError.CONTROL_CHARACTERS: _l(
        "Remove the special characters, such as tabs copied from a table."
    ),
}
DETAILS_ERROR = _l("The text cannot be used as it is. Check it and send it again.")


# --- forms ------------------------------------------------------------------------------------


class DetailsForm(FlaskForm):
    # Checked by the service (required for some kinds, at most MAX_DETAILS_LENGTH characters).
    details = TextAreaField()


class EmailRequestForm(DetailsForm):
    email = your_email_address()


def _details_error(error: DetailsError) -> str:
    text = DETAILS_ERRORS.get(error.reason, DETAILS_ERROR)
    if error.reason == DetailsError.TOO_LONG:
        return str(text) % {"max": MAX_DETAILS_LENGTH}
    return str(text)


# --- helpers ----------------------------------------------------------------------------------


def _settings() -> Any:
    return current_app.config["SETTINGS"]


def _locale() -> str:
    return str(get_locale() or "en")


def _csrf_error() -> tuple[str, int]:
    return render_error(400, *map(str, CSRF_TEXT))


def _own_or_404(request_id: int) -> DataRequest:
    try:
        return service.get_user_request(current_user.id, request_id)
    except RequestNotFoundError:
        abort(404)  # another person's request is as unknown as a missing one


def _owns(data_request: DataRequest | None) -> bool:
    return (
        data_request is not None
        and current_user.is_authenticated
        and data_request.user_id == current_user.id
    )


def _when(moment: Any) -> str:
    return format_datetime(moment, "long") if moment else ""


def _link_hours() -> int:
    return int(service.VERIFY_TTL.total_seconds() // 3600)


def _outcome(events: list[Any]) -> str | None:
    """The outcome key of a finished request, from its timeline."""
    for event in reversed(events):
        if event.kind == "completed":
            return (event.details or {}).get("outcome")
    return None


# --- the list and the kinds -------------------------------------------------------------------


@bp.get("")
def index() -> str:
    if not current_user.is_authenticated:
        kinds = service.offered_kinds(reader_jurisdiction(), signed_in=False)
        return render_template("requests/index.html", requests=None, kinds=kinds)
    return render_template(
        "requests/index.html",
        requests=service.user_requests(current_user.id),
        is_overdue=service.is_overdue,
        kinds=None,
    )


@bp.get("/new")
def new() -> str:
    signed_in = current_user.is_authenticated
    return render_template(
        "requests/new.html",
        kinds=service.offered_kinds(reader_jurisdiction(), signed_in=signed_in),
        access=ACCESS,
        at_once=AT_ONCE,
    )


# --- making a request -------------------------------------------------------------------------


def _email_link_limit() -> str:
    return _settings().email_link_rate_limit


def _visitor_key() -> str:
    # Per visitor, so one place cannot send links to many addresses...
    return f"data-request-from|{request.remote_addr}"


def _address_key() -> str:
    # ... and per address (or account), so nobody can fill someone's mailbox from many places.
    if current_user.is_authenticated:
        return f"data-request-to|account:{current_user.id}"
    address = marketing.normalise_email(request.form.get("email") or "")[:254]
    return f"data-request-to|{address}"


# One budget for every link mailed to an address or account, whether a new request or a resend.
_links_to_one_mailbox = limiter.shared_limit(
    _email_link_limit, scope="request-links", key_func=_address_key, methods=["POST"]
)


@bp.route("/new/<kind>", methods=["GET", "POST"])
@limiter.limit(_email_link_limit, methods=["POST"], key_func=_visitor_key)
@_links_to_one_mailbox
def make(kind: str) -> Response | tuple[str, int]:
    if kind == ACCESS:  # not a request: the export is immediate and self-service
        return redirect(url_for("exports.index"), 303)
    found = KINDS.get(kind)
    if found is None:
        return render_error(404)
    if current_user.is_authenticated:
        return _make_signed_in(found)
    if not found.by_email:
        return login_manager.unauthorized()  # to the sign-in page, and back here
    return _make_by_email(found)


def _form_page(
    kind: Kind,
    form: DetailsForm,
    *,
    status: int = 200,
    details_error: str | None = None,
    appealed: DataRequest | None = None,
) -> tuple[str, int]:
    plan = None
    if kind.handling == service.ERASE:
        plan = erasure_plan(current_user.id if current_user.is_authenticated else None)
    action = url_for(".make", kind=kind.key, of=appealed.id if appealed else None)
    return render_template(
        "requests/make.html",
        kind=kind,
        form=form,
        action=action,
        details_label=DETAILS_LABELS.get(kind.key, DEFAULT_DETAILS_LABEL),
        details_error=details_error,
        max_details=MAX_DETAILS_LENGTH,
        appealed=appealed,
        plan=plan,
        grace_days=_settings().deletion_grace_days,
        at_once=AT_ONCE.get(kind.key, ()),
    ), status


def _pending_deletion_redirect(pending: DataRequest) -> Response:
    flash(
        _(
            "A deletion of your account is already under way, so no second one was made. "
            "Its details are below."
        ),
        "info",
    )
    return redirect(url_for(".detail", request_id=pending.id), 303)


def _stop(page: tuple[str, int]) -> NoReturn:
    """Answer with `page` now (a refusal found in a helper)."""
    abort(make_response(*page))


@fresh_login_required
def _make_signed_in(kind: Kind) -> Response | tuple[str, int]:
    user = current_user._get_current_object()  # the row, not the proxy
    if kind.handling == service.ERASE:
        pending = service.pending_deletion(user.id)
        if pending is not None:
            return _pending_deletion_redirect(pending)
    appealed = _appealed(user.id) if kind.key == "appeal" else None
    form = DetailsForm()
    if request.method == "GET":
        return _form_page(kind, form, appealed=appealed)
    if not form.validate_on_submit():
        return _csrf_error()
    return _create_for_user(user, kind, form, appealed)


def _appealed(user_id: int) -> DataRequest:
    """The person's refused request that `?of=` names; without it, the page to choose one."""
    of = request.args.get("of", type=int)
    if of is None:
        refused = [r for r in service.user_requests(user_id) if service.can_appeal(r)]
        _stop((render_template("requests/appeal_choice.html", refused=refused), 200))
    try:
        appealed = service.get_user_request(user_id, of)
    except RequestNotFoundError:
        _stop(render_error(404))
    if not service.can_appeal(appealed):
        _stop(_not_appealable())
    return appealed


def _create_for_user(
    user: Any, kind: Kind, form: DetailsForm, appealed: DataRequest | None
) -> Response | tuple[str, int]:
    try:
        created = service.create_for_user(
            user,
            kind.key,
            details=form.details.data,
            appeal_of_id=appealed.id if appealed else None,
        )
    except DetailsError as error:
        db.session.rollback()
        return _form_page(
            kind, form, status=400, details_error=_details_error(error), appealed=appealed
        )
    except DeletionPendingError as error:
        db.session.rollback()
        return _pending_deletion_redirect(error.request)
    except NotAppealableError:
        db.session.rollback()
        return _not_appealable()
    except (RequestNotFoundError, UnknownKindError):
        db.session.rollback()
        return render_error(404)
    flash(
        _(
            "Almost done: check your email. We sent a link to %(address)s; follow it to "
            "confirm the request. Nothing is done until you do.",
            address=user.email,
        ),
        "success",
    )
    return redirect(url_for(".detail", request_id=created.id), 303)


def _not_appealable() -> tuple[str, int]:
    return render_error(
        409,
        _("This request cannot be appealed"),
        _(
            "Only a refused request can be appealed, once. Your requests page shows what "
            "happened to each of them."
        ),
    )


def _make_by_email(kind: Kind) -> Response | tuple[str, int]:
    form = EmailRequestForm()
    if request.method == "GET":
        return _form_page(kind, form)
    if not form.validate_on_submit():
        if "csrf_token" in form.errors:
            return _csrf_error()
        return _form_page(kind, form, status=400)
    return _create_by_email(kind, form)


def _chosen_place() -> dict[str, str]:
    # Only a place the person chose sets the deadline of a request by email; a guess from
    # their browser could lengthen it.
    if reader_place().source != CHOSEN:
        return {}
    country, region = chosen_place()
    return {"country": country, "region": region}


def _create_by_email(kind: Kind, form: EmailRequestForm) -> tuple[str, int]:
    try:
        service.create_by_email(
            kind.key,
            form.email.data,
            details=form.details.data,
            locale=_locale(),
            **_chosen_place(),
        )
    except marketing.InvalidAddressError:
        db.session.rollback()
        form.email.errors = [_("Enter an email address in the form name@example.com.")]
        return _form_page(kind, form, status=400)
    except DetailsError as error:
        db.session.rollback()
        return _form_page(kind, form, status=400, details_error=_details_error(error))
    except UnknownKindError:
        db.session.rollback()
        return render_error(404)
    except ResendLimitError:
        db.session.rollback()  # the same answer: the address's owner already has links
    # The same page whether or not an account uses the address.
    return render_template(
        "requests/sent.html",
        kind=kind,
        address=form.email.data,
        link_hours=_link_hours(),
    ), 200


# --- one request ------------------------------------------------------------------------------


def _request_context(data_request: DataRequest, *, token: str | None = None) -> dict[str, Any]:
    """What the request partial shows; `token` for a status link (no account, no details)."""
    owner = token is None
    if owner:
        cancel_action = url_for(".cancel", request_id=data_request.id)
    else:
        cancel_action = url_for(".status_cancel", token=token)
    events = service.timeline(data_request.id)
    return {
        "data_request": data_request,
        "events": events,
        "overdue": service.is_overdue(data_request),
        "can_cancel": service.can_cancel(data_request),
        "can_appeal": service.can_appeal(data_request),
        "authority": service.jurisdiction_of(data_request).rules.authority,
        "owner": owner,
        "token": token,
        "cancel_action": cancel_action,
        "resend_action": url_for(".resend", request_id=data_request.id) if owner else None,
        "show_details": owner and _owns(data_request),
        "outcome": _outcome(events) if data_request.status == DataRequest.DONE else None,
        "link_hours": _link_hours(),
        "unverified_days": service.UNVERIFIED_TTL.days,
    }


def _detail_page(data_request: DataRequest) -> str:
    return render_template(
        "requests/request.html",
        # The scheduled deletion's own page says it, with the same button.
        hide_deletion_banner=data_request.kind == "delete_account"
        and data_request.status == DataRequest.WAITING,
        **_request_context(data_request),
    )


@bp.get("/<int:request_id>")
@login_required
def detail(request_id: int) -> str:
    return _detail_page(_own_or_404(request_id))


def _after_action(data_request: DataRequest, message: str) -> Any:
    """htmx: the request's part of the page, with the message; else the page again. (The
    deletion banner is not on that page, so nothing else needs updating.)"""
    if wants_fragment():
        return render_template(
            "requests/partials/_request.html", message=message, **_request_context(data_request)
        )
    flash(message, "success")
    return redirect(url_for(".detail", request_id=data_request.id), 303)


def _action_error(
    data_request: DataRequest, status: int, title: str, message: str
) -> Response | tuple[str, int]:
    """A refused button press. htmx does not swap error answers: send it to the page, where
    the message waits; without htmx, the error page itself."""
    if wants_fragment():
        flash(message, "error")
        response = make_response("", status)
        response.headers["HX-Redirect"] = url_for(".detail", request_id=data_request.id)
        return response
    return render_error(status, title, message)


def _wrong_state(data_request: DataRequest) -> Response | tuple[str, int]:
    return _action_error(
        data_request,
        409,
        _("This cannot be done any more"),
        _(
            "The request has moved on since the page was shown: %(status)s. Nothing was changed.",
            status=request_text("status", data_request.status),
        ),
    )


@bp.post("/<int:request_id>/resend")
@_links_to_one_mailbox  # a resend is one more link in the same mailbox
@login_required
def resend(request_id: int) -> Any:
    if not ButtonForm().validate_on_submit():
        return _csrf_error()
    data_request = _own_or_404(request_id)
    try:
        service.resend_verification(data_request)
    except ResendLimitError:
        db.session.rollback()
        return _action_error(
            data_request,
            429,
            _("No more links for this request"),
            _(
                "We have already sent the link %(count)d times, which is as often as we send "
                "it. Use the newest email, check your spam folder, or make the request again "
                "once this one has expired.",
                count=service.MAX_RESENDS + 1,
            ),
        )
    except WrongStateError:
        db.session.rollback()
        return _wrong_state(data_request)
    return _after_action(
        data_request,
        _(
            "We sent a new link to %(address)s. Links sent before no longer work.",
            address=current_user.email,
        ),
    )


def _cancelled_message(data_request: DataRequest) -> str:
    if data_request.kind == "delete_account":
        return _("The deletion is cancelled: your account will not be deleted.")
    return _("Your request is withdrawn. We will not act on it.")


@bp.post("/<int:request_id>/cancel")
@login_required
def cancel(request_id: int) -> Any:
    if not ButtonForm().validate_on_submit():
        return _csrf_error()
    data_request = _own_or_404(request_id)
    if not service.can_cancel(data_request):
        return _wrong_state(data_request)
    try:
        service.cancel(data_request, actor_type="user", actor_id=current_user.id)
    except WrongStateError:
        db.session.rollback()
        return _wrong_state(data_request)
    return _after_action(data_request, _cancelled_message(data_request))


# --- emailed links ----------------------------------------------------------------------------


def _link_problem(error: RequestError, purpose: str) -> tuple[str, int]:
    """The page for a link that cannot be used, with a way forward. `purpose`: confirm,
    cancel or status."""
    actions: list[tuple[str, str]] = []
    if isinstance(error, LinkExpiredError):
        status, title = 410, _("This link has expired")
        if purpose == "confirm":
            message = _(
                "Confirmation links work for 24 hours, and this one is older. Nothing was "
                "done with the request. You can make it again."
            )
            actions.append((url_for(".new"), _("Make a new request")))
        else:
            message = _(
                "This link is too old to use. Sign in to see your requests, or write to the "
                "privacy team."
            )
    elif isinstance(error, LinkUsedError):
        status = 409
        title, message = _used_texts(error.request, purpose)
        if _owns(error.request):
            assert error.request is not None
            actions.append((url_for(".detail", request_id=error.request.id), _("See the request")))
    else:
        status, title = 400, _("This link does not work")
        message = _(
            "The link is incomplete or was changed. Open it again from the email, or copy the "
            "whole link into the address bar. Nothing was changed."
        )
    if current_user.is_authenticated:
        actions.append((url_for(".index"), _("Your requests")))
    return render_template(
        "requests/link_problem.html", status=status, title=title, message=message, actions=actions
    ), status


def _used_texts(data_request: DataRequest | None, purpose: str) -> tuple[str, str]:
    if purpose == "cancel" and data_request is not None:
        if data_request.status == DataRequest.CANCELLED:
            return (
                _("This request is already cancelled"),
                _("It was cancelled before. Nothing more needs doing, and nothing was changed."),
            )
        if data_request.kind == "delete_account" and data_request.status in (
            DataRequest.ERASING,
            DataRequest.DONE,
        ):
            return (
                _("The deletion can no longer be cancelled"),
                _(
                    "The cooling-off period is over and the account has been deleted, or is "
                    "being deleted now."
                ),
            )
        return (
            _("This request can no longer be cancelled"),
            _("It has already been answered. Nothing was changed."),
        )
    return (
        _("This link has already been used"),
        _(
            "The request was already confirmed or cancelled, or a newer link was sent since. "
            "Nothing was changed. Use the newest email about it."
        ),
    )


@bp.route("/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str) -> Response | tuple[str, int]:
    """GET shows what the button confirms (mail scanners open links); POST confirms."""
    if request.method == "POST":
        return _confirm(token)
    try:
        data_request = service.request_for_verify_token(token)
    except (LinkInvalidError, LinkExpiredError, LinkUsedError) as error:
        return _link_problem(error, "confirm")
    return render_template(
        "requests/confirm.html",
        data_request=data_request,
        token=token,
        grace_days=_settings().deletion_grace_days,
        show_details=_owns(data_request),
    ), 200


def _confirmed_message(data_request: DataRequest) -> str:
    if data_request.status == DataRequest.WAITING:
        return _(
            "Confirmed. Your account will be deleted on %(date)s. Until then nothing is "
            "deleted, and you can cancel the deletion here.",
            date=_when(data_request.cooling_off_until),
        )
    if data_request.status == DataRequest.DONE:
        outcome = _outcome(service.timeline(data_request.id))
        return _("Confirmed. %(outcome)s", outcome=request_text("outcome", outcome)).strip()
    if data_request.due_at is not None:
        return _(
            "Confirmed. The privacy team will answer by %(date)s at the latest.",
            date=_when(data_request.due_at),
        )
    return _("Confirmed.")


def _confirm(token: str) -> Response | tuple[str, int]:
    if not ButtonForm().validate_on_submit():
        return _csrf_error()
    try:
        data_request = service.confirm(token)
    except (LinkInvalidError, LinkExpiredError, LinkUsedError) as error:
        db.session.rollback()
        return _link_problem(error, "confirm")
    flash(_confirmed_message(data_request), "success")
    if _owns(data_request):
        return redirect(url_for(".detail", request_id=data_request.id), 303)
    return redirect(url_for(".status", token=service.status_token(data_request.id)), 303)


@bp.route("/cancel/<token>", methods=["GET", "POST"])
def cancel_link(token: str) -> Response | tuple[str, int]:
    """The link in the "deletion scheduled" email: GET names the request, POST cancels it."""
    try:
        data_request = service.request_for_cancel_token(token)
    except (LinkInvalidError, LinkExpiredError, LinkUsedError) as error:
        return _link_problem(error, "cancel")
    if request.method == "GET":
        return render_template(
            "requests/cancel.html",
            data_request=data_request,
            token=token,
            hide_deletion_banner=True,  # the page itself is the way to cancel
        ), 200
    if not ButtonForm().validate_on_submit():
        return _csrf_error()
    try:
        data_request = service.cancel_by_token(token)
    except (LinkInvalidError, LinkExpiredError, LinkUsedError) as error:
        db.session.rollback()
        return _link_problem(error, "cancel")
    except WrongStateError:
        db.session.rollback()
        return _link_problem(LinkUsedError(service.get_request(data_request.id)), "cancel")
    follow = (
        url_for(".detail", request_id=data_request.id)
        if _owns(data_request)
        else url_for(".status", token=service.status_token(data_request.id))
    )
    return render_template("requests/cancelled.html", data_request=data_request, follow=follow), 200


@bp.get("/status/<token>")
def status(token: str) -> tuple[str, int]:
    """A request's page for people who are not signed in (the link in its emails)."""
    try:
        data_request = service.request_for_status_token(token)
    except (LinkInvalidError, LinkExpiredError) as error:
        return _link_problem(error, "status")
    return render_template(
        "requests/request.html", **_request_context(data_request, token=token)
    ), 200


@bp.post("/status/<token>/cancel")
def status_cancel(token: str) -> Response | tuple[str, int]:
    try:
        data_request = service.request_for_status_token(token)
    except (LinkInvalidError, LinkExpiredError) as error:
        return _link_problem(error, "status")
    if not ButtonForm().validate_on_submit():
        return _csrf_error()
    try:
        service.cancel(data_request)
    except WrongStateError:
        db.session.rollback()
        return _link_problem(LinkUsedError(service.get_request(data_request.id)), "cancel")
    flash(_cancelled_message(data_request), "success")
    return redirect(url_for(".status", token=token), 303)


# --- the banner on every page -----------------------------------------------------------------


def scheduled_deletion() -> DataRequest | None:
    """The signed-in person's deletion in its cooling-off period, if any: one indexed query,
    made only when a page shows the banner, at most once per request."""
    if not current_user.is_authenticated:
        return None
    if "scheduled_deletion" not in g:
        try:
            pending = service.pending_deletion(current_user.id)
        except SQLAlchemyError:  # an error page must still render when the database is away
            log.warning("could not look up a scheduled deletion", exc_info=True)
            db.session.rollback()
            pending = None
        g.scheduled_deletion = (
            pending if pending is not None and pending.status == DataRequest.WAITING else None
        )
    return g.scheduled_deletion


@bp.app_context_processor
def _deletion_banner() -> dict[str, object]:
    if not has_request_context():  # emails rendered by jobs and commands
        return {}
    return {"scheduled_deletion": scheduled_deletion}
