"""The one rule for partial responses (see DESIGN §3)."""

from __future__ import annotations

from flask import g
from htmx_flask import request


def wants_fragment() -> bool:
    """True only for an htmx request that is neither boosted nor a history restore."""
    g.vary_htmx = True
    htmx = request.htmx
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request
