"""The overview page and the health check."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user
from sqlalchemy import text

from app.extensions import db
from app.services.inventory import summarise_holdings
from app.services.requests import open_requests

bp = Blueprint("main", __name__)


@bp.get("/")
def index() -> str:
    if not current_user.is_authenticated:
        return render_template("overview/welcome.html")
    return render_template(
        "overview/index.html",
        holdings=summarise_holdings(current_user.id),
        open_requests=open_requests(current_user.id),
    )


@bp.get("/healthz")
def healthz() -> tuple[dict[str, str], int]:
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:  # the check reports, it does not raise
        return {"status": "unavailable", "database": "unreachable"}, 503
    return {"status": "ok", "database": "ok"}, 200
