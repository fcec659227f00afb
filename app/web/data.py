"""Your data: every record held about you, per data-map category."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("data", __name__, url_prefix="/data")
