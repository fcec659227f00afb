"""The privacy notice, rendered from the data map, and its versions."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("policy", __name__, url_prefix="/policy")
