"""Marketing preferences and unsubscribe links (issue 6 builds it out)."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("marketing", __name__)


@bp.get("/preferences/marketing")
def preferences() -> str:
    return render_template("marketing/preferences.html")
