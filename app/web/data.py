"""Your data: every record held about you, per data-map category.

The pages read the data map for everything they say about a category (what, why, how long,
who receives it, what may be deleted); the records come from `app.services.records` and
deletions go through `app.services.deletion`. This module only turns values into words.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import format_currency, format_datetime, format_decimal, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField
from wtforms.validators import AnyOf

from app.datamap import Category, get_datamap
from app.extensions import db, login_manager
from app.services import deletion, media, records
from app.services.choices import MODEL_IMPROVEMENT, current_choice, set_choice
from app.services.inventory import summarise_holdings
from app.services.marketing import ALL_TOPICS
from app.services.marketing import topics as marketing_topics
from app.web.auth import fresh_login_required
from app.web.consent import SOURCE_TEXTS as CONSENT_SOURCE_TEXTS
from app.web.consent import cookie_purpose_name
from app.web.errors import render_error
from app.web.forms import ButtonForm
from app.web.htmx import wants_fragment
from app.web.i18n import country_name, language_name
from app.web.place import jurisdiction_name
from app.web.request_text import (
    EXTENSION_LABELS,
    KIND_LABELS,
    REFUSAL_LABELS,
    STATUS_LABELS,
)

bp = Blueprint("data", __name__, url_prefix="/data")

# Column names as people read them. A unit test fails while a shown or hidden field of the
# data map has no label here, so a new category cannot show raw column names.
FIELD_LABELS = {
    "email": _l("Email address"),
    "name": _l("Name"),
    "locale": _l("Language"),
    "country": _l("Country"),
    "region": _l("State or region"),
    "created_at": _l("Created"),
    "last_sign_in_at": _l("Last sign-in"),
    "password_hash": _l("Password"),
    "plan": _l("Plan"),
    "status": _l("Status"),
    "categories": _l("Categories"),
    "date_from": _l("From"),
    "date_to": _l("Until"),
    "finished_at": _l("Finished"),
    "downloaded_at": _l("Downloaded"),
    "credit_balance": _l("Credit balance"),
    "started_at": _l("Started"),
    "renews_at": _l("Renews"),
    "text": _l("Prompt"),
    "negative_text": _l("Negative prompt"),
    "language": _l("Language"),
    "model": _l("Model"),
    "width": _l("Width"),
    "height": _l("Height"),
    "settings": _l("Settings"),
    "original_filename": _l("File name"),
    "byte_size": _l("Size"),
    "feature": _l("Feature"),
    "credits_used": _l("Credits used"),
    "ended_at": _l("Ended"),
    "pages_viewed": _l("Pages viewed"),
    "client": _l("App"),
    "accessed_at": _l("Time"),
    "ip_address": _l("IP address"),
    "browser": _l("Browser"),
    "operating_system": _l("Operating system"),
    "device_identifier": _l("Device identifier"),
    "brand": _l("Card"),
    "last4": _l("Last four digits"),
    "exp_month": _l("Expiry month"),
    "exp_year": _l("Expiry year"),
    "provider": _l("Payment processor"),
    "provider_token": _l("The payment processor's reference to the card"),
    "is_default": _l("Default card"),
    "line1": _l("Address"),
    "line2": _l("Address, second line"),
    "city": _l("City"),
    "postal_code": _l("Postal code"),
    "number": _l("Invoice number"),
    "issued_at": _l("Issued"),
    "description": _l("Description"),
    "amount_cents": _l("Amount"),
    "tax_cents": _l("Of which tax"),
    "currency": _l("Currency"),
    "payment_method_label": _l("Paid with"),
    "ticket": _l("Ticket"),
    "direction": _l("From"),
    "subject": _l("Subject"),
    "body": _l("Message"),
    "to_address": _l("Sent to"),
    "sent_at": _l("Delivered"),
    "purpose": _l("Purpose"),
    "allowed": _l("Allowed"),
    "source": _l("Where you chose"),
    "old_email": _l("Old address"),
    "new_email": _l("New address"),
    "expires_at": _l("Link valid until"),
    "confirmed_at": _l("Confirmed"),
    "cancelled_at": _l("Cancelled on"),
    "nonce_hash": _l("Check value of the confirmation link"),
    "confirm_nonce_hash": _l("Check value of the confirmation link"),
    "receipt_id": _l("Receipt"),
    "choices": _l("Your choices"),
    "gpc": _l("Global Privacy Control signal"),
    "jurisdiction": _l("Region"),
    "notice_version": _l("Privacy notice version"),
    "browser_id": _l("Browser number"),
    "user_agent_hash": _l("Scrambled trace of the browser"),
    "email_hash": _l("Scrambled form of the address"),
    "topic": _l("Topic"),
    "action": _l("What happened"),
    "requested_at": _l("Asked for"),
    "updated_at": _l("Last changed"),
    "kind": _l("Request"),
    "details": _l("What you wrote"),
    "verified_at": _l("Confirmed"),
    "due_at": _l("Answer due by"),
    "completed_at": _l("Closed"),
    "verify_nonce_hash": _l("Check value of the confirmation link"),
    "extended_at": _l("Deadline extended"),
    "extension_reason": _l("Reason for the extension"),
    "cooling_off_until": _l("Deletion scheduled for"),
    "refusal_reason": _l("Reason for refusing"),
}
SETTING_LABELS = {
    "steps": _l("Steps"),
    "seed": _l("Seed"),
    "guidance": _l("Guidance"),
    "style": _l("Style"),
    "sampler": _l("Sampler"),
}
CHOICE_SOURCE_TEXTS = {
    "page": _l("on this site"),
    "api": _l("on the platform"),
    "staff": _l("by our privacy team, at your request"),
    # Where a cookie-consent receipt was made: banner, settings, gpc, merge.
    **{k: v for k, v in CONSENT_SOURCE_TEXTS.items() if k != "api"},
    "link": _l("with the link in an email"),
    "one_click": _l("with the unsubscribe button of your mail program"),
}
MARKETING_ACTION_TEXTS = {
    "requested": _l("asked for (waiting for confirmation)"),
    "confirmed": _l("confirmed"),
    "unsubscribed": _l("unsubscribed"),
    "resubscribed": _l("subscribed again"),
}
# A marketing topic's state (the same codes mean something else for mail and exports).
TOPIC_STATUS_TEXTS = {
    "pending": _l("waiting for your confirmation"),
    "subscribed": _l("subscribed"),
    "unsubscribed": _l("unsubscribed"),
}
DIRECTION_TEXTS = {"in": _l("You"), "out": _l("Support")}
# Codes the platform stores, in words. An unknown code is shown as it is stored.
STATUS_TEXTS = {
    "active": _l("active"),
    "cancelled": _l("cancelled"),
    "past_due": _l("payment overdue"),
    "paid": _l("paid"),
    "refunded": _l("refunded"),
    "open": _l("open"),
    "pending": _l("waiting to be sent"),
    "sent": _l("sent"),
    "failed": _l("failed"),
    "queued": _l("waiting to start"),
    "building": _l("being prepared"),
    "ready": _l("ready"),
    "expired": _l("expired"),
}
FEATURE_TEXTS = {
    "text_to_image": _l("Image from text"),
    "image_edit": _l("Image editing"),
    "upscale": _l("Upscaling"),
    "variation": _l("Variations"),
}
CLIENT_TEXTS = {"web": _l("Website"), "ios": _l("iPhone or iPad app"), "android": _l("Android app")}
LANGUAGE_TAG = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*")
COUNTED_FIELDS = frozenset({"credit_balance", "credits_used", "pages_viewed"})


class ModelImprovementForm(FlaskForm):
    # Sent by the switch button itself (name="allowed" value="0|1"): one click, no script.
    allowed = HiddenField(validators=[AnyOf(("0", "1"))])


@bp.before_request
def require_sign_in() -> Response | None:
    if not current_user.is_authenticated:
        return login_manager.unauthorized()  # type: ignore[no-any-return]
    return None


# --- words for values ---------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    name: str
    label: str
    text: str | None  # None: nothing held for this field
    iso: str | None = None  # set for times, rendered as <time datetime>
    entries: tuple[tuple[str, str], ...] = ()  # a small definition list (image settings)
    numeric: bool = False
    free_text: bool = False  # typed by a person: marked with its language, direction auto
    lang: str | None = None


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, float):
        return format_decimal(value)
    return str(value)


def cell(name: str, values: dict[str, Any]) -> Cell:
    """One shown field of a record, in words."""
    value = values[name]
    label = field_label(name)
    if value is None or value == "":
        return Cell(name, label, None)
    if isinstance(value, datetime):
        return Cell(name, label, format_datetime(value, "medium"), iso=value.isoformat())
    if isinstance(value, dict):
        entries = tuple((_entry_label(name, k), _scalar(v)) for k, v in value.items())
        return Cell(name, label, "", entries=entries)
    text, numeric = _words(name, value, values)
    free_text = isinstance(value, str) and name not in VALUE_NAMES
    return Cell(name, label, text, numeric=numeric, free_text=free_text)


def _entry_label(name: str, key: str) -> str:
    """A key of a small mapping: a cookie purpose of consent choices, else an image setting."""
    if name == "choices":
        return cookie_purpose_name(key)
    return _label(SETTING_LABELS, key)


def _words(name: str, value: Any, values: dict[str, Any]) -> tuple[str, bool]:
    """The value in words, and whether it is a number (aligned at the end of its column)."""
    if name.endswith("_cents") and values.get("currency"):
        return format_currency(value / 100, values["currency"]), True
    if name == "byte_size":
        return _("%(size)s KB", size=format_decimal(round(value / 1024, 1))), True
    if name in COUNTED_FIELDS:
        return format_decimal(value), True
    namer = VALUE_NAMES.get(name)
    if name == "status" and "topic" in values:  # a marketing topic's state
        named = _coded(TOPIC_STATUS_TEXTS, value)
    elif name == "status" and "kind" in values:  # a request's state
        named = _coded(STATUS_LABELS, value)
    else:
        named = namer(value) if namer else None
    return (named if named is not None else _scalar(value)), False


def _purpose_name(key: str) -> str | None:
    purpose = get_datamap().purposes.get(key)
    return _(purpose.name) if purpose else None


def _choice_source(key: str) -> str | None:
    return str(CHOICE_SOURCE_TEXTS[key]) if key in CHOICE_SOURCE_TEXTS else None


def _coded(texts: dict[str, Any], key: str) -> str | None:
    return str(texts[key]) if key in texts else None


def marketing_topic_name(key: str) -> str | None:
    """A marketing topic (or "*", all of them) in the reader's language."""
    if key == ALL_TOPICS:
        return _("All marketing emails")
    topic = marketing_topics().get(key)
    return _(topic.name) if topic else None


def _category_names(keys: Any) -> str | None:
    """An export's chosen categories (data map keys) in words, in the data map's order."""
    if not isinstance(keys, list):
        return None
    categories = [get_datamap().get(key) for key in keys]
    return ", ".join(_(c.name) if c else str(key) for c, key in zip(categories, keys, strict=True))


def _direction(key: str) -> str | None:
    return str(DIRECTION_TEXTS[key]) if key in DIRECTION_TEXTS else None


# Fields whose stored codes mean something in words (country codes, purpose keys, ...).
VALUE_NAMES: dict[str, Callable[[Any], str | None]] = {
    "country": country_name,
    "locale": language_name,
    "language": language_name,
    "direction": _direction,
    "purpose": _purpose_name,
    "source": _choice_source,
    "jurisdiction": jurisdiction_name,
    "status": lambda key: _coded(STATUS_TEXTS, key),
    "feature": lambda key: _coded(FEATURE_TEXTS, key),
    "client": lambda key: _coded(CLIENT_TEXTS, key),
    "topic": marketing_topic_name,
    "action": lambda key: _coded(MARKETING_ACTION_TEXTS, key),
    "kind": lambda key: _coded(KIND_LABELS, key),
    "categories": _category_names,
    "refusal_reason": lambda key: _coded(REFUSAL_LABELS, key),
    "extension_reason": lambda key: _coded(EXTENSION_LABELS, key),
}


def field_label(name: str) -> str:
    return _label(FIELD_LABELS, name)


def _label(labels: dict[str, Any], name: str) -> str:
    """A label in the reader's language, translated once per request (pages repeat them
    on every row, and each gettext call costs more than the rest of the cell)."""
    cache: dict[tuple[int, str], str] = g.setdefault("data_labels", {})
    key = (id(labels), name)
    if key not in cache:
        cache[key] = str(labels.get(name, name))
    return cache[key]


def cells(category: Category, record: records.Record) -> list[Cell]:
    """The record's shown fields in words; text typed in a known language says which."""
    found = [cell(name, record.values) for name in category.shown]
    language = record.values.get("language")
    if not isinstance(language, str) or not LANGUAGE_TAG.fullmatch(language):
        return found
    return [replace(c, lang=language) if c.free_text else c for c in found]


# --- the model-improvement choice ---------------------------------------------------------


def _switch_home() -> Category | None:
    """The page that holds the switch: the first category the data map uses for model
    improvement (the prompts)."""
    return next(
        (
            c
            for c in get_datamap().database_categories
            if any(p.key == MODEL_IMPROVEMENT for p in c.purposes)
        ),
        None,
    )


def _uses_model_improvement(category: Category) -> bool:
    return any(p.key == MODEL_IMPROVEMENT for p in category.purposes)


def _choice_context() -> dict[str, Any]:
    home = _switch_home()
    return {
        "choice": current_choice(current_user.id, MODEL_IMPROVEMENT),
        "choice_sources": CHOICE_SOURCE_TEXTS,
        "switch_url": url_for("data.category", category=home.key, _anchor="model-improvement")
        if home
        else None,
        "switch_home": home,
        "choice_form": ModelImprovementForm(formdata=None),
    }


@bp.post("/model-improvement")
def model_improvement() -> Response | str | tuple[str, int]:
    form = ModelImprovementForm()
    if not form.validate_on_submit():
        return render_error(400)
    allowed = form.allowed.data == "1"
    set_choice(current_user.id, MODEL_IMPROVEMENT, allowed=allowed, source="page")
    db.session.commit()
    message = (
        _("Saved: your prompts and images may be used to improve models.")
        if allowed
        else _("Saved: your prompts and images will no longer be used to improve models.")
    )
    if wants_fragment():
        return render_template(
            "data/partials/_model_improvement_saved.html", message=message, **_choice_context()
        )
    flash(message, "success")
    home = _switch_home()
    if home is None:
        return redirect(url_for("data.index"), 303)
    return redirect(url_for("data.category", category=home.key, _anchor="model-improvement"), 303)


# --- the overview -------------------------------------------------------------------------


@bp.get("")
def index() -> str:
    holdings = {h.category.key: h for h in summarise_holdings(current_user.id)}
    return render_template(
        "data/index.html",
        categories=list(get_datamap()),
        holdings=holdings,
        country_name=country_name,
        model_improvement=MODEL_IMPROVEMENT,
        **_choice_context(),
    )


# --- a category's records -----------------------------------------------------------------


def _category_or_404(key: str) -> Category:
    try:
        return records.records_category(key)
    except records.UnknownCategoryError:
        abort(404)


QUERY_ERRORS = {
    records.InvalidCursorError: (
        _l("This page link is not valid"),
        _l("The link to the next page is damaged or out of date. Start again from the first page."),
    ),
    records.InvalidDateError: (
        _l("That is not a date"),
        _l("Enter dates as year-month-day, for example 2025-03-31."),
    ),
    records.DateRangeError: (
        _l("The dates are the wrong way round"),
        _l("The “From” date must be on or before the “Until” date."),
    ),
    records.SearchTooLongError: (
        _l("The search is too long"),
        _l("Use at most %(max)s characters in the search.", max=records.MAX_SEARCH_LENGTH),
    ),
}


def _bad_query(error: records.RecordQueryError) -> tuple[str, int]:
    title, message = QUERY_ERRORS[type(error)]
    return render_error(400, str(title), str(message))


def _page_url(category: Category, record_filter: records.RecordFilter, **extra: Any) -> str:
    args = {
        "q": record_filter.search,
        "from": record_filter.date_from.isoformat() if record_filter.date_from else None,
        "to": record_filter.date_to.isoformat() if record_filter.date_to else None,
        **extra,
    }
    return url_for("data.category", category=category.key, **args)


def _table_context(category: Category) -> dict[str, Any]:
    """What the records table and its rows need, for the page and for its fragments."""
    attached = records.attached_files(category)
    return {
        "category": category,
        "labels": [field_label(name) for name in category.shown],
        "has_thumbnail": bool(category.file_column),
        "attached": attached,
        "can_delete": category.item_deletion,
        "column_count": len(category.shown)
        + bool(category.file_column)
        + len(attached)
        + category.item_deletion,
        "cells": cells,
        "field_label": field_label,
        # Said on every row: translated once for the page.
        "words": {
            "delete": _("Delete"),
            "none": _("none"),
            "not_given": _("not given"),
            "category": _(category.name),
        },
        "attached_names": {a.category.key: _(a.category.name) for a in attached},
    }


@bp.get("/<category>", endpoint="category")
def records_page(category: str) -> str | tuple[str, int]:
    cat = _category_or_404(category)
    try:
        record_filter = records.parse_filter(
            request.args.get("q"), request.args.get("from"), request.args.get("to")
        )
        raw_cursor = request.args.get("cursor")
        cursor = records.Cursor.decode(raw_cursor) if raw_cursor is not None else None
    except records.RecordQueryError as error:
        return _bad_query(error)
    page = records.read_page(cat, current_user.id, cursor=cursor, record_filter=record_filter)
    next_url = _page_url(cat, record_filter, cursor=page.next_cursor) if page.next_cursor else None
    context = {
        **_table_context(cat),
        "page": page,
        "next_url": next_url,
        "is_continuation": cursor is not None,
    }
    if wants_fragment():
        return render_template("data/partials/_more_rows.html", **context)
    return render_template(
        "data/category.html",
        single=records.is_single_record(cat),
        totals=records.category_totals(cat, current_user.id),
        record_filter=record_filter,
        first_page_url=_page_url(cat, record_filter),
        show_choice=_uses_model_improvement(cat),
        bulk_allowed=deletion.can_bulk_delete(cat),
        max_search=records.MAX_SEARCH_LENGTH,
        **_choice_context(),
        **context,
    )


@bp.get("/<category>/<int:item_id>")
def item(category: str, item_id: int) -> str:
    cat = _category_or_404(category)
    try:
        record = records.read_item(cat, current_user.id, item_id)
    except records.ItemNotFoundError:
        abort(404)
    context = {**_table_context(cat), "record": record}
    if wants_fragment():
        return render_template("data/partials/_row.html", **context)
    return render_template("data/item.html", **context)


# --- files --------------------------------------------------------------------------------


def _private(response: Response, content_type: str) -> Response:
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Type"] = content_type
    return response


def _stored_file_or_404(category: str, item_id: int) -> records.StoredFile:
    cat = _category_or_404(category)
    try:
        return records.stored_file(cat, current_user.id, item_id)
    except records.ItemNotFoundError:
        abort(404)


@bp.get("/<category>/<int:item_id>/thumbnail")
def thumbnail(category: str, item_id: int) -> Response:
    stored = _stored_file_or_404(category, item_id)
    try:
        data, content_type = records.thumbnail_bytes(stored)
    except records.ItemNotFoundError:
        abort(404)
    return _private(make_response(data), content_type)


@bp.get("/<category>/<int:item_id>/file")
def original(category: str, item_id: int) -> Response:
    stored = _stored_file_or_404(category, item_id)
    try:
        path = media.path_for(stored.storage_key)
        if not path.is_file():
            abort(404)
    except ValueError:
        abort(404)
    inline = stored.content_type in records.IMAGE_TYPES
    response = send_file(
        path,
        mimetype=stored.content_type if inline else "application/octet-stream",
        as_attachment=not inline,
        download_name=stored.download_name,
        max_age=0,
        conditional=False,
        etag=False,
    )
    return _private(response, response.mimetype or "application/octet-stream")


# --- deleting single items ----------------------------------------------------------------


def _deletable_or_404(category: str) -> Category:
    cat = _category_or_404(category)
    if not cat.item_deletion:
        abort(404)
    return cat


@bp.route("/<category>/<int:item_id>/delete", methods=["GET", "POST"])
def delete_item(category: str, item_id: int) -> Response | str | tuple[str, int]:
    cat = _deletable_or_404(category)
    try:
        preview = deletion.preview_item_deletion(cat, current_user.id, item_id)
    except records.ItemNotFoundError:
        abort(404)
    form = ButtonForm()
    if request.method == "POST" and form.validate_on_submit():
        return _delete_now(cat, item_id)
    if request.method == "POST":
        return render_error(400)
    context = {
        **_table_context(cat),
        "preview": preview,
        "record": records.read_item(cat, current_user.id, item_id),
        "kept": deletion.kept_references(cat),
    }
    if wants_fragment():
        return render_template("data/partials/_confirm_row.html", **context)
    return render_template("data/confirm_delete.html", **context)


def _delete_now(category: Category, item_id: int) -> Response | str:
    try:
        deletion.delete_item(category, current_user.id, item_id)
    except records.ItemNotFoundError:
        db.session.rollback()
        abort(404)
    db.session.commit()
    if wants_fragment():
        # An empty row takes the deleted one's place; the page's live region says why.
        return render_template("data/partials/_deleted.html")
    flash(_("Deleted."), "success")
    return redirect(url_for("data.category", category=category.key), 303)


# --- deleting everything older than a date ------------------------------------------------


def _bulk_or_404(category: str) -> Category:
    cat = _category_or_404(category)
    if not deletion.can_bulk_delete(cat):
        abort(404)
    return cat


def _bulk_message(category: Category, counts: deletion.BulkCounts) -> str:
    images = sum(n for _c, n in counts.attached)
    return _(
        "Deleted %(prompts)s and %(images)s.",
        prompts=ngettext("%(num)d prompt", "%(num)d prompts", counts.items),
        images=ngettext("%(num)d image", "%(num)d images", images),
    )


def _expected_counts(category: Category, counts: deletion.BulkCounts) -> deletion.BulkCounts:
    """The counts the person confirmed, read back from the form's hidden fields."""
    try:
        items = int(request.form.get(f"expected_{category.key}", ""))
        attached = tuple(
            (child, int(request.form.get(f"expected_{child.key}", "")))
            for child, _n in counts.attached
        )
    except ValueError:
        abort(400)
    return deletion.BulkCounts(items, attached)


@bp.route("/<category>/delete-older", methods=["GET", "POST"])
@fresh_login_required
def delete_older(category: str) -> Response | str | tuple[str, int]:
    cat = _bulk_or_404(category)
    try:
        before = records.parse_date(request.args.get("before"))
    except records.InvalidDateError as error:
        return _bad_query(error)
    if before is None:
        return _bad_query(records.InvalidDateError(""))
    counts = deletion.count_older_than(cat, current_user.id, before)
    changed = False
    if request.method == "POST":
        if not ButtonForm().validate_on_submit():
            return render_error(400)
        try:
            done = deletion.delete_older_than(
                cat, current_user.id, before, expected=_expected_counts(cat, counts)
            )
        except deletion.CountChangedError as error:
            db.session.rollback()
            counts, changed = error.counts, True
        else:
            db.session.commit()
            flash(_bulk_message(cat, done), "success")
            return redirect(url_for("data.category", category=cat.key), 303)
    return render_template(
        "data/confirm_bulk.html",
        category=cat,
        before=before,
        counts=counts,
        changed=changed,
    )
