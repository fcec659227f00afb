"""The privacy team's queue: the requests people made, and the team's answers to them.

Staff only. The pages show what the team needs to answer a request (its kind, dates, deadline
rule, what the person wrote, a masked address) and never the person's own content. Every
action is a call to `app.services.requests`, which writes the timeline, the audit event and
the email to the person; the POSTs also need the password entered within the last minutes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import format_date, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from app.extensions import db
from app.jurisdictions import UNKNOWN, Period
from app.models import DataRequest, RequestEvent, User
from app.services import requests as request_service
from app.services.profile import mask_email
from app.services.requests import (
    EXTENSION_REASONS,
    KINDS,
    REFUSAL_REASONS,
    QueueFilter,
    RequestNotFoundError,
    WrongStateError,
)
from app.web.auth import fresh_login_required
from app.web.errors import render_error
from app.web.forms import ButtonForm
from app.web.htmx import wants_fragment
from app.web.place import deadline_rule, period_words
from app.web.request_text import STATUS_LABELS, label, request_text

bp = Blueprint("admin", __name__, url_prefix="/admin")

P = ParamSpec("P")
R = TypeVar("R")

QUEUE_LIMIT = 200
STATUSES = (*DataRequest.ACTIVE, *DataRequest.FINAL)
DUE_SOON = "soon"
DUE_OVERDUE = "overdue"
DUE_CHOICES = (DUE_SOON, DUE_OVERDUE)

# The person's pages speak to the person ("Waiting for your confirmation"); the team reads
# the same states from the other side.
STAFF_STATUS_LABELS = {
    DataRequest.UNVERIFIED: _l("Not confirmed yet"),
    DataRequest.OPEN: _l("Open"),
    DataRequest.WAITING: _l("Cooling-off period"),
    DataRequest.ERASING: _l("Deleting"),
    DataRequest.DONE: _l("Done"),
    DataRequest.REFUSED: _l("Refused"),
    DataRequest.CANCELLED: _l("Cancelled by the person"),
    DataRequest.EXPIRED: _l("Expired (never confirmed)"),
}
ACTOR_LABELS = {
    "user": _l("The person"),
    "staff": _l("Privacy team"),
    "system": _l("Automatic"),
}
WRONG_STATE = (
    _l("This request cannot be changed now"),
    _l(
        "It is no longer open, or this was done already: someone may have answered it since "
        "the page was loaded. Go back and reload the request to see where it stands."
    ),
)


def staff_required(view: Callable[P, R]) -> Callable[P, R | Response | tuple[str, int]]:
    """Signed in (else the sign-in page) and on the privacy team (else 403)."""

    @wraps(view)
    @login_required
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response | tuple[str, int]:
        if not current_user.is_staff:
            return render_error(403)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# --- words for values -------------------------------------------------------------------------


def status_text(status: str) -> str:
    return label(STAFF_STATUS_LABELS if status in STAFF_STATUS_LABELS else STATUS_LABELS, status)


@dataclass(frozen=True)
class TimelineRow:
    at: datetime
    event: str
    actor: str
    note: str


# event kind -> (the request_text table, the detail key) of the note shown with it
EVENT_NOTES = {
    "refused": ("refusal", "reason"),
    "extended": ("extension", "reason"),
    "step_done": ("step", "step"),
    "completed": ("outcome", "outcome"),
}


def _event_note(event: RequestEvent) -> str:
    details: dict[str, Any] = event.details or {}
    if event.kind in EVENT_NOTES:
        table, key = EVENT_NOTES[event.kind]
        return request_text(table, details.get(key))
    if event.kind == "cooling_off_started" and isinstance(details.get("days"), int):
        return ngettext(
            "%(num)d day to change their mind", "%(num)d days to change their mind", details["days"]
        )
    if event.kind == "created" and details.get("by_email"):
        return _("Made without signing in, from an email address")
    return ""


def timeline_rows(events: list[RequestEvent]) -> list[TimelineRow]:
    return [
        TimelineRow(
            at=event.created_at,
            event=request_text("event", event.kind),
            actor=label(ACTOR_LABELS, event.actor_type),
            note=_event_note(event),
        )
        for event in events
    ]


def _helpers() -> dict[str, Any]:
    return {
        "status_text": status_text,
        "is_overdue": request_service.is_overdue,
        "deadline_rule": deadline_rule,
        "period_words": period_words,
    }


# --- the queue --------------------------------------------------------------------------------


def read_filters(values: MultiDict[str, str]) -> QueueFilter | None:
    """The filter form's choice; None for a value the form does not offer."""
    status = values.get("status", "")
    kind = values.get("kind", "")
    due = values.get("due", "")
    if (
        (status and status not in STATUSES)
        or (kind and kind not in KINDS)
        or (due and due not in DUE_CHOICES)
    ):
        return None
    return QueueFilter(status=status or None, kind=kind or None, due=due or None)


@bp.get("/requests")
@staff_required
def queue() -> tuple[str, int]:
    filters = read_filters(request.args)
    if filters is None:
        return render_error(
            400,
            _("This filter cannot be used"),
            _("Choose the status, kind and due date from the lists on the page."),
        )
    found = request_service.staff_queue(filters)
    context = {
        **_helpers(),
        "filters": filters,
        "requests": found,
        "limited": len(found) >= QUEUE_LIMIT,
        "queue_limit": QUEUE_LIMIT,
        "statuses": STATUSES,
        "kinds": list(KINDS),
        "active": bool(filters.status or filters.kind or filters.due),
    }
    if wants_fragment():
        return render_template("admin/partials/_queue_results.html", **context), 200
    return render_template("admin/queue.html", **context), 200


# --- one request ------------------------------------------------------------------------------


def _request_or_404(request_id: int) -> DataRequest:
    try:
        return request_service.get_request(request_id)
    except RequestNotFoundError:
        abort(404)


def _masked_address(data_request: DataRequest) -> str | None:
    if data_request.email:
        return mask_email(data_request.email)
    if data_request.user_id is not None:
        user = db.session.get(User, data_request.user_id)
        if user is not None:
            return mask_email(user.email)
    return None


@bp.get("/requests/<int:request_id>")
@staff_required
def detail(request_id: int) -> tuple[str, int]:
    data_request = _request_or_404(request_id)
    events = request_service.timeline(data_request.id)
    done = request_service.steps_done(data_request)
    kind = KINDS.get(data_request.kind)
    can_act = (
        data_request.status == DataRequest.OPEN
        and kind is not None
        and kind.handling == request_service.MANUAL
    )
    jurisdiction = request_service.jurisdiction_of(data_request)
    can_extend = can_act and request_service.can_extend(data_request)
    prompt = kind.prompt if kind else None
    return render_template(
        "admin/request.html",
        **_helpers(),
        r=data_request,
        jurisdiction=jurisdiction,
        unknown_place=data_request.jurisdiction == UNKNOWN,
        prompt_words=period_words(Period(days=prompt.days)) if prompt else None,
        masked_address=_masked_address(data_request),
        timeline=timeline_rows(events),
        is_deletion=data_request.kind == "delete_account",
        can_act=can_act,
        open_steps=[s for s in request_service.manual_steps(data_request.kind) if s not in done],
        can_extend=can_extend,
        extended_due=(
            jurisdiction.rules.extension.after(data_request.due_at)
            if can_extend and data_request.due_at
            else None
        ),
        refusal_reasons=REFUSAL_REASONS,
        extension_reasons=EXTENSION_REASONS,
    ), 200


# --- the team's actions -----------------------------------------------------------------------


def _act(
    data_request: DataRequest,
    action: Callable[[DataRequest, User], object],
    message: Callable[[DataRequest], str],
) -> Response | tuple[str, int]:
    """Run one of the service's staff actions as the signed-in staff member."""
    if not ButtonForm().validate_on_submit():
        return render_error(400)
    request_id = data_request.id
    try:
        action(data_request, current_user._get_current_object())  # type: ignore[attr-defined]
    except WrongStateError:
        db.session.rollback()
        return render_error(409, *map(str, WRONG_STATE))
    flash(message(data_request), "success")
    return redirect(url_for("admin.detail", request_id=request_id), 303)


def _bad_choice() -> tuple[str, int]:
    return render_error(
        400,
        _("This choice is not on offer"),
        _("Go back and choose from the list on the request's page."),
    )


@bp.post("/requests/<int:request_id>/step")
@staff_required
@fresh_login_required
def step(request_id: int) -> Response | tuple[str, int]:
    data_request = _request_or_404(request_id)
    chosen = request.form.get("step", "")
    if chosen not in request_service.manual_steps(data_request.kind):
        return _bad_choice()
    return _act(
        data_request,
        lambda r, staff: request_service.mark_step_done(r, staff, chosen),
        lambda r: _("Recorded on the timeline: %(step)s.", step=request_text("step", chosen)),
    )


@bp.post("/requests/<int:request_id>/complete")
@staff_required
@fresh_login_required
def complete(request_id: int) -> Response | tuple[str, int]:
    return _act(
        _request_or_404(request_id),
        request_service.complete,
        lambda r: _("The request is done. The person is told by email."),
    )


@bp.post("/requests/<int:request_id>/refuse")
@staff_required
@fresh_login_required
def refuse(request_id: int) -> Response | tuple[str, int]:
    return _act_with_reason(
        request_id,
        REFUSAL_REASONS,
        request_service.refuse,
        lambda r: _(
            "The request is refused. The person is told why, and how to appeal or complain."
        ),
    )


@bp.post("/requests/<int:request_id>/extend")
@staff_required
@fresh_login_required
def extend(request_id: int) -> Response | tuple[str, int]:
    return _act_with_reason(
        request_id,
        EXTENSION_REASONS,
        request_service.extend,
        lambda r: _(
            "The deadline is now %(date)s. The person is told why.",
            date=format_date(r.due_at, "long") if r.due_at else "",
        ),
    )


def _act_with_reason(
    request_id: int,
    reasons: tuple[str, ...],
    action: Callable[[DataRequest, User, str], object],
    message: Callable[[DataRequest], str],
) -> Response | tuple[str, int]:
    """A staff action that takes one of a fixed list of reasons from the form."""
    data_request = _request_or_404(request_id)
    reason = request.form.get("reason", "")
    if reason not in reasons:
        return _bad_choice()
    return _act(data_request, lambda r, staff: action(r, staff, reason), message)


@bp.get("/requests/<int:request_id>/<any(step, complete, refuse, extend):action>")
@staff_required
def action_page(request_id: int, action: str) -> Response:
    """An action's address opened as a page (after the password check that interrupted the
    form, which cannot resend it): back to the request, where the form is."""
    del action
    _request_or_404(request_id)
    flash(_("Nothing was changed yet. Choose the action again."), "info")
    return redirect(url_for("admin.detail", request_id=request_id), 303)
