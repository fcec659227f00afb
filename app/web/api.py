"""The platform's JSON API (`/api/v1`), authenticated with keys from PLATFORM_API_KEYS."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")
