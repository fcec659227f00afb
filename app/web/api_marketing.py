"""Platform API endpoints for marketing (issue 6): suppressions and subscriptions."""

from __future__ import annotations

from app.web.api import bp  # noqa: F401
