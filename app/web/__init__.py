"""The web layer: blueprints, security headers, error pages and template helpers."""

from __future__ import annotations

from flask import Flask, g, request
from flask_babel import get_locale
from werkzeug.routing import IntegerConverter, Map
from werkzeug.wrappers import Response

from app.extensions import login_manager
from app.models.types import MAX_ID
from app.services.auth import load_user_from_session_id

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # Tokens travel in unsubscribe and verification URLs: never let them leak through Referer.
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=(), "
    "interest-cohort=(), browsing-topics=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    # Cross-origin isolation: nothing from another origin may be embedded (none is wanted).
    "Cross-Origin-Embedder-Policy": "require-corp",
}


class DatabaseId(IntegerConverter):
    """`<int:...>` in every route: a number past the id columns' range (32-bit on
    PostgreSQL) is no route at all, a 404, rather than a database error."""

    def __init__(self, url_map: Map, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(url_map, *args, **kwargs)  # type: ignore[arg-type]


def register_web(app: Flask) -> None:
    from app.extensions import csrf  # noqa: PLC0415

    # Before any blueprint: rules are compiled with the converter in force when added.
    app.url_map.converters["int"] = DatabaseId
    from app.web import (  # noqa: PLC0415
        admin,
        api,
        auth,
        consent,
        data,
        dev,
        errors,
        exports,
        i18n,
        main,
        marketing,
        page_compression,
        policy,
        profile,
        region,
        request_text,
        requests,
        static_files,
    )

    blueprints = (
        main.bp,
        auth.bp,
        i18n.bp,
        data.bp,
        exports.bp,
        profile.bp,
        policy.bp,
        region.bp,
        consent.bp,
        marketing.bp,
        api.bp,
        requests.bp,
        admin.bp,
    )
    for blueprint in (*blueprints, dev.bp):
        app.register_blueprint(blueprint)
    csrf.exempt(api.bp)  # machine clients authenticate with an API key, not a session
    errors.register(app)
    _configure_login(app)
    app.after_request(_security_headers)
    app.context_processor(_template_globals)
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    request_text.install(app)
    static_files.install(app)
    page_compression.install(app)


def _configure_login(app: Flask) -> None:
    from flask_babel import lazy_gettext as _l  # noqa: PLC0415

    login_manager.login_view = "auth.login"
    login_manager.login_message = _l("Please sign in to see this page.")
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"
    login_manager.user_loader(load_user_from_session_id)


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=63072000")
    if not request.path.startswith("/static/"):
        # Pages about a person's data must not sit in shared or back-button caches.
        response.headers.setdefault("Cache-Control", "private, no-store")
    if g.get("vary_htmx"):
        response.vary.add("HX-Request")
    return response


def _template_globals() -> dict[str, object]:
    from flask import current_app, has_request_context  # noqa: PLC0415

    from app.web.forms import ButtonForm, LanguageForm  # noqa: PLC0415
    from app.web.i18n import LANGUAGES, text_direction  # noqa: PLC0415

    locale = str(get_locale() or "en")
    common: dict[str, object] = {
        "settings": current_app.config["SETTINGS"],
        "current_locale": locale,
        "text_direction": text_direction(locale),
    }
    if not has_request_context():  # emails rendered by jobs and commands
        return common
    return {
        **common,
        "languages": LANGUAGES,
        "language_form": LanguageForm(formdata=None, language=locale, next=request.full_path),
        "button_form": ButtonForm(formdata=None),
        "has_endpoint": lambda name: name in current_app.view_functions,
    }
