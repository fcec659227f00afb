"""Correct your profile: name, place, language, billing address and sign-in address."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("profile", __name__, url_prefix="/profile")
