"""Honest stand-ins for the areas that are not built yet.

Each says what the area will do and how to exercise the right today (by email), so no link
in the navigation leads nowhere. An area's own blueprint replaces its entry here.
"""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_babel import lazy_gettext as _l

bp = Blueprint("pending", __name__)

PENDING_AREAS = {
    "requests": (
        "/requests",
        _l("Requests"),
        _l("Ask us to delete, correct or restrict your data, and follow each request."),
    ),
}


def _make_view(area: str):
    def view() -> str:
        _, title, summary = PENDING_AREAS[area]
        return render_template("pending.html", title=title, summary=summary)

    view.__name__ = area
    return view


for _area, (_path, _title, _summary) in PENDING_AREAS.items():
    bp.add_url_rule(_path, endpoint=_area, view_func=_make_view(_area))
