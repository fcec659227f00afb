"""The reader's region: shown on every page, and chosen here by visitors without an account."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from app.web.place import choose_place, chosen_place, reader_place, reader_place_name
from app.web.profile import PlaceForm

bp = Blueprint("region", __name__, url_prefix="/region")


@bp.app_context_processor
def _your_region() -> dict[str, object]:
    return {"your_region": reader_place_name}


def _page(form: PlaceForm, status: int = 200) -> tuple[str, int]:
    return render_template("region/index.html", form=form, place=reader_place()), status


@bp.get("")
def index() -> Response | tuple[str, int]:
    if current_user.is_authenticated:  # an account keeps its place on the profile page
        return redirect(url_for("profile.index", _anchor="country"), 303)
    form = PlaceForm(formdata=None)
    form.country.data, form.region.data = chosen_place()
    return _page(form)


@bp.post("")
def choose() -> Response | tuple[str, int]:
    if current_user.is_authenticated:
        return redirect(url_for("profile.index", _anchor="country"), 303)
    form = PlaceForm()
    if not form.validate_on_submit():
        return _page(form, status=400)
    choose_place(form.country.data, form.region.data)
    flash(_("Your region is now %(place)s.", place=reader_place_name()), "success")
    return redirect(url_for("region.index"), 303)
