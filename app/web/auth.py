"""Sign-in, sign-out and re-entering the password before sensitive actions."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response

from app.extensions import limiter
from app.services.auth import authenticate, verify_password
from app.web.consent import merge_at_sign_in
from app.web.forms import ButtonForm, LoginForm, ReauthForm
from app.web.safety import safe_next_url

bp = Blueprint("auth", __name__)

P = ParamSpec("P")
R = TypeVar("R")
FRESH_KEY = "fresh_at"
SIGNED_IN_KEY = "signed_in_at"
SEEN_KEY = "seen_at"
# Requests the page makes by itself (progress polling) are not the person being active.
PASSIVE_ENDPOINTS = frozenset({"exports.status"})
SEEN_RESOLUTION_SECONDS = 60  # fewer new cookies: activity is noted once a minute at most


def _login_limit() -> str:
    return current_app.config["SETTINGS"].login_rate_limit


def _login_limit_key() -> str:
    # Per address and per submitted account, so one person cannot lock out a whole office.
    email = (request.form.get("email") or "").strip().lower()[:254]
    return f"{request.remote_addr}|{email}"


def _start_session(user: object) -> None:
    # A new session at sign-in: whatever the browser carried before (a planted cookie
    # included) is dropped, so a session id can never be fixed in advance.
    session.clear()
    session.permanent = True
    login_user(user)  # type: ignore[arg-type]
    now = int(time.time())
    session[SIGNED_IN_KEY] = now
    session[SEEN_KEY] = now
    mark_fresh()


@bp.before_app_request
def end_stale_session() -> None:
    """Sign out a session idle too long or open too long; the cookie's own expiry is only
    the browser's promise, so the times are checked here, inside the signed cookie."""
    if request.endpoint == "static" or "_user_id" not in session:
        return
    settings = current_app.config["SETTINGS"]
    now = int(time.time())
    signed_in = session.get(SIGNED_IN_KEY, 0)
    seen = session.get(SEEN_KEY, 0)
    too_old = now - signed_in > settings.session_absolute_hours * 3600
    idle = now - seen > settings.session_idle_minutes * 60
    if too_old or idle:
        logout_user()
        session.clear()
        flash(_("Your session has ended, to protect your account. Please sign in again."), "info")
    elif request.endpoint not in PASSIVE_ENDPOINTS and now - seen >= SEEN_RESOLUTION_SECONDS:
        session[SEEN_KEY] = now


def mark_fresh() -> None:
    session[FRESH_KEY] = int(time.time())


def is_fresh() -> bool:
    minutes = current_app.config["SETTINGS"].fresh_login_minutes
    return time.time() - session.get(FRESH_KEY, 0) < minutes * 60


def fresh_login_required(view: Callable[P, R]) -> Callable[P, R | Response]:
    """Sensitive actions need the password entered within the last few minutes."""

    @wraps(view)
    @login_required
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response:
        if not is_fresh():
            return redirect(url_for("auth.reauth", next=request.full_path.rstrip("?")), 303)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"], key_func=_login_limit_key)
def login() -> Response | tuple[str, int] | str:
    if current_user.is_authenticated and request.method == "GET":
        return redirect(safe_next_url(request.args.get("next")) or url_for("main.index"))
    form = LoginForm(next=request.args.get("next", ""))
    if request.method == "GET":
        return render_template("auth/login.html", form=form)
    if not form.validate_on_submit():
        return render_template("auth/login.html", form=form), 400
    user = authenticate(form.email.data, form.password.data)
    if user is None:
        form.password.data = ""
        error = _("The email address or password is not right. Check both and try again.")
        return render_template("auth/login.html", form=form, error=error), 401
    _start_session(user)
    merge_at_sign_in(user)  # the browser's anonymous cookie choices join the account
    flash(_("You are signed in."), "success")
    return redirect(safe_next_url(form.next.data) or url_for("main.index"), 303)


@bp.post("/logout")
def logout() -> Response:
    form = ButtonForm()
    if form.validate_on_submit():
        logout_user()
        session.clear()
        flash(_("You are signed out."), "success")
    return redirect(url_for("main.index"), 303)


@bp.route("/reauth", methods=["GET", "POST"])
@login_required
@limiter.limit(_login_limit, methods=["POST"], key_func=lambda: f"reauth|{current_user.id}")
def reauth() -> Response | tuple[str, int] | str:
    form = ReauthForm(next=request.args.get("next", ""))
    if request.method == "GET":
        return render_template("auth/reauth.html", form=form)
    if not form.validate_on_submit():
        return render_template("auth/reauth.html", form=form), 400
    if not verify_password(current_user, form.password.data):
        error = _("That password is not right. Try again.")
        return render_template("auth/reauth.html", form=form, error=error), 401
    mark_fresh()
    return redirect(safe_next_url(form.next.data) or url_for("main.index"), 303)
