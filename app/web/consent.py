"""Cookie consent: the banner's choices and /preferences/cookies (issue 5 builds it out)."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("consent", __name__)


@bp.get("/preferences/cookies")
def settings() -> str:
    return render_template("consent/settings.html")
