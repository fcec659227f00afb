"""Download your data: ask for an export, follow its progress, download it once it is ready.

The archive is built by `app.services.exports` in the background; this module only reads the
person's choice from the form, shows what it will contain, and serves the finished file to its
owner after a fresh password check.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import format_date, format_decimal, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from app.datamap import Category, get_datamap
from app.extensions import db, limiter
from app.models import Export, utcnow
from app.services import exports as export_service
from app.services import records
from app.services.audit import record_event
from app.web.auth import fresh_login_required
from app.web.errors import render_error
from app.web.forms import ButtonForm
from app.web.htmx import wants_fragment

bp = Blueprint("exports", __name__, url_prefix="/exports")

LISTED_EXPORTS = 20  # the newest ones; older exports are long expired and say nothing new
SCOPE_ALL = "all"
SCOPE_CHOSEN = "chosen"


# --- what the person chose --------------------------------------------------------------------


@dataclass(frozen=True)
class ExportChoice:
    """The form's choice, checked: which categories (keys, in data-map order) and which days."""

    everything: bool
    categories: tuple[str, ...]
    date_from: date | None = None
    date_to: date | None = None

    def form_values(self) -> dict[str, Any]:
        """The choice as the form sends it (hidden fields, links)."""
        return {
            "scope": SCOPE_ALL if self.everything else SCOPE_CHOSEN,
            "category": [] if self.everything else list(self.categories),
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
        }


class ChoiceError(ValueError):
    """The form's values cannot be exported as they are; says why, in the reader's words."""

    def __init__(self, title: Any, message: Any) -> None:
        super().__init__(str(message))
        self.title = str(title)
        self.message = str(message)


NO_CATEGORY = (
    _l("Choose what to export"),
    _l("Choose at least one kind of data, or choose “All my data”."),
)
UNKNOWN_CATEGORY = (
    _l("This kind of data cannot be exported"),
    _l("Choose the kinds of data from the list on the page."),
)
BAD_DATE = (
    _l("That is not a date"),
    _l("Enter dates as year-month-day, for example 2025-03-31."),
)
DATES_REVERSED = (
    _l("The dates are the wrong way round"),
    _l("The “From” date must be on or before the “Until” date."),
)


def _exportable() -> list[Category]:
    return list(export_service.exportable_categories())


def read_choice(values: MultiDict[str, str]) -> ExportChoice:
    """The choice from the request form or query; ChoiceError for anything not on offer."""
    available = [category.key for category in _exportable()]
    scope = values.get("scope", SCOPE_ALL)
    if scope not in (SCOPE_ALL, SCOPE_CHOSEN):
        raise ChoiceError(*UNKNOWN_CATEGORY)
    if scope == SCOPE_ALL:
        keys = tuple(available)
    else:
        chosen = set(values.getlist("category"))
        if chosen - set(available):
            raise ChoiceError(*UNKNOWN_CATEGORY)
        if not chosen:
            raise ChoiceError(*NO_CATEGORY)
        keys = tuple(key for key in available if key in chosen)
    try:
        days = records.parse_filter(None, values.get("from"), values.get("to"))
    except records.InvalidDateError:
        raise ChoiceError(*BAD_DATE) from None
    except records.DateRangeError:
        raise ChoiceError(*DATES_REVERSED) from None
    return ExportChoice(scope == SCOPE_ALL, keys, days.date_from, days.date_to)


def _raw_choice(values: MultiDict[str, str]) -> dict[str, Any]:
    """What the form showed, kept as typed so that a refused choice can be corrected."""
    return {
        "scope": values.get("scope", SCOPE_ALL),
        "category": values.getlist("category"),
        "from": (values.get("from") or "")[:10],
        "to": (values.get("to") or "")[:10],
    }


# --- words for values -------------------------------------------------------------------------


SIZE_UNITS = (
    (1024**3, _l("%(size)s GB")),
    (1024**2, _l("%(size)s MB")),
    (1024, _l("%(size)s KB")),
)


def human_size(size: int) -> str:
    """A byte count as people read it: 1.4 MB, 820 KB, 12 bytes."""
    for unit, text in SIZE_UNITS:
        if size >= unit:
            return str(text) % {"size": format_decimal(round(size / unit, 1))}
    return ngettext("%(num)s byte", "%(num)s bytes", size, num=format_decimal(size))


def export_state(export: Export, now: datetime | None = None) -> str:
    """The state a person should see: a ready export past its time is gone, even before the
    sweeper has deleted its file."""
    now = now or utcnow()
    if export.status == Export.EXPIRED:
        return Export.EXPIRED
    if export.status == Export.READY and export.expires_at and export.expires_at <= now:
        return Export.EXPIRED
    return export.status


def scope_words(export: Export) -> str:
    """Which kinds of data an export holds, and from which days, in one sentence."""
    names = {category.key: _(category.name) for category in get_datamap()}
    available = {category.key for category in _exportable()}
    kinds = (
        _("All your data")
        if set(export.categories or ()) >= available
        else ", ".join(names.get(key, key) for key in export.categories or ())
    )
    if export.date_from and export.date_to:
        return _(
            "%(kinds)s, from %(start)s until %(end)s",
            kinds=kinds,
            start=_date(export.date_from),
            end=_date(export.date_to),
        )
    if export.date_from:
        return _("%(kinds)s, from %(start)s", kinds=kinds, start=_date(export.date_from))
    if export.date_to:
        return _("%(kinds)s, until %(end)s", kinds=kinds, end=_date(export.date_to))
    return kinds


def _date(day: date) -> str:
    return format_date(day, "long")


# --- the page ---------------------------------------------------------------------------------


def _exports_of(user_id: int) -> list[Export]:
    return list(
        db.session.scalars(
            select(Export)
            .where(Export.user_id == user_id)
            .order_by(Export.created_at.desc(), Export.id.desc())
            .limit(LISTED_EXPORTS)
        )
    )


def _estimate_context(values: MultiDict[str, str]) -> dict[str, Any]:
    """The estimate of what the choice in `values` will contain, or why it cannot be made."""
    categories = _exportable()
    context: dict[str, Any] = {
        "categories": categories,
        "form_choice": _raw_choice(values),
        "choice": None,
        "estimate": None,
        "problem": None,
    }
    try:
        choice = read_choice(values)
    except ChoiceError as error:
        context["problem"] = error
        return context
    context["choice"] = choice
    context["estimate"] = export_service.estimate_export(
        current_user.id, list(choice.categories), choice.date_from, choice.date_to
    )
    return context


def _page(values: MultiDict[str, str], status: int = 200, **extra: Any) -> tuple[str, int]:
    exports = _exports_of(current_user.id)
    context = {
        **_estimate_context(values),
        "exports": exports,
        "busy": any(e.status in Export.IN_PROGRESS for e in exports),
        **extra,
    }
    if context["problem"] and status == 200:
        status = 400  # a date that is not a date, a category that is not on offer
    return render_template("exports/index.html", **_helpers(), **context), status


def _helpers() -> dict[str, Any]:
    return {
        "export_state": export_state,
        "scope_words": scope_words,
        "human_size": human_size,
        "category_name": lambda key: _(c.name) if (c := get_datamap().get(key)) else key,
        "ttl_days": current_app.config["SETTINGS"].export_ttl_days,
    }


@bp.get("")
@login_required
def index() -> tuple[str, int]:
    return _page(request.args)


@bp.get("/preview")
@login_required
def preview() -> tuple[str, int]:
    """What the archive will contain: the estimate alone for htmx, else the whole page."""
    if wants_fragment():
        return render_template(
            "exports/partials/_estimate.html",
            **_helpers(),
            **_estimate_context(request.args),
        ), 200
    return _page(request.args)


# --- asking for an export ---------------------------------------------------------------------


def _export_limit() -> str:
    return current_app.config["SETTINGS"].export_rate_limit


def _export_limit_key() -> str:
    # Limits run before the sign-in check, so a visitor without an account can reach here.
    return f"export|{current_user.get_id() or request.remote_addr}"


@bp.post("")
@login_required
@limiter.limit(_export_limit, methods=["POST"], key_func=_export_limit_key)
def create() -> Response | tuple[str, int]:
    if not ButtonForm().validate_on_submit():
        return render_error(400)
    try:
        choice = read_choice(request.form)
        export_service.request_export(
            current_user.id, list(choice.categories), choice.date_from, choice.date_to
        )
    except ChoiceError as error:
        db.session.rollback()
        return _page(request.form, 400, refused=error)
    except export_service.UnknownCategoryError:
        db.session.rollback()
        return _page(request.form, 400, refused=ChoiceError(*UNKNOWN_CATEGORY))
    except export_service.ExportInProgressError:
        db.session.rollback()
        return _page(request.form, 409, in_progress=True)
    except ValueError:  # the service's own check of the dates
        db.session.rollback()
        return _page(request.form, 400, refused=ChoiceError(*DATES_REVERSED))
    db.session.commit()
    flash(_("Your export is being prepared. We will email you when it is ready."), "success")
    return redirect(url_for("exports.index"), 303)


# --- progress ---------------------------------------------------------------------------------


def _own_export_or_404(export_id: int) -> Export:
    export = db.session.get(Export, export_id)
    if export is None or export.user_id != current_user.id:
        abort(404)  # never 403: whether someone else's export exists is not yours to learn
    return export


@bp.get("/<int:export_id>/status")
@login_required
def status(export_id: int) -> tuple[str, int]:
    """One export's state; htmx polls this while the export is being prepared."""
    export = _own_export_or_404(export_id)
    if wants_fragment():
        return render_template(
            "exports/partials/_export_status.html", export=export, fragment=True, **_helpers()
        ), 200
    return _page(MultiDict())


# --- the download -----------------------------------------------------------------------------


def _expired_page(export: Export) -> tuple[str, int]:
    return render_template("exports/expired.html", export=export, **_helpers()), 410


def _not_ready_page(export: Export) -> tuple[str, int]:
    if export.status == Export.FAILED:
        return render_error(
            409,
            _("This export could not be prepared"),
            _(
                "Something went wrong while we prepared it, so there is nothing to download. "
                "Ask for a new export on the Download your data page."
            ),
        )
    return render_error(
        409,
        _("This export is not ready yet"),
        _(
            "It is still being prepared. We will email you when it is ready; the Download "
            "your data page shows how far it has got."
        ),
    )


def _is_first_part(range_header: Any) -> bool:
    """A whole download, or the first part of one: not a resumed or parallel part of it."""
    return range_header is None or any(start == 0 for start, _end in range_header.ranges)


def _record_download(export: Export) -> None:
    if export.downloaded_at is None:
        export.downloaded_at = utcnow()
    record_event(
        "export.downloaded",
        actor_type="user",
        actor_id=current_user.id,
        subject_user_id=current_user.id,
        target=f"export:{export.id}",
    )


@bp.get("/<int:export_id>/download")
@fresh_login_required
def download(export_id: int) -> Response | tuple[str, int]:
    export = _own_export_or_404(export_id)
    if export_state(export) == Export.EXPIRED:
        return _expired_page(export)
    if export.status != Export.READY:
        return _not_ready_page(export)
    path = export_service.export_file_path(export)
    if path is None:  # the file is gone (expired in the meantime): nothing to hand out
        return _expired_page(export)
    if _is_first_part(request.range):
        _record_download(export)
        db.session.commit()  # recorded before a single byte leaves
    response = send_file(
        path,
        mimetype="application/zip",
        as_attachment=True,
        download_name=f"privacy-export-{export.created_at.date().isoformat()}.zip",
        conditional=True,
        max_age=0,
    )
    response.headers["Cache-Control"] = "private, no-store"
    return response
