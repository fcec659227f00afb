"""Small guards shared by the views."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app
from flask.globals import request_ctx


def safe_next_url(target: str | None) -> str | None:
    """`target` if it is a path on this site, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target or any(ord(c) < 32 for c in target):
        return None
    return target


def without_session() -> None:
    """Answer this request without a session: nothing read, no Set-Cookie.

    Swaps the opened session for a null one, which Flask never saves, even when the client
    sent a permanent session cookie that would otherwise be refreshed. (`_session` is where
    Flask 3.1 keeps it; a test catches a Flask that moves it.)
    """
    request_ctx._session = current_app.session_interface.make_null_session(current_app)
