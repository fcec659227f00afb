"""Platform API endpoints for cookie consent (issue 5): `GET /consent/<subject>`."""

from __future__ import annotations

from app.web.api import bp  # noqa: F401
