"""Every page: there, translated, safe to show (headers, no inline code, nothing from elsewhere)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.extensions import db
from app.models import User
from app.web.i18n import LANGUAGES, text_direction
from tests.support.web import html_problems, login, text_of, title_of

REQUIRED_CSP = [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "object-src 'none'",
    "frame-ancestors 'none'",
    "form-action 'self'",
    "base-uri 'none'",
]


def _simple_get_paths(app: Flask) -> list[str]:
    """Every page a person can open by address: GET routes without parameters."""
    paths = []
    for rule in app.url_map.iter_rules():
        if "GET" in (rule.methods or ()) and not rule.arguments and rule.endpoint != "static":
            paths.append(rule.rule)
    return sorted(paths)


def assert_safe_headers(response: TestResponse, path: str) -> None:
    headers = response.headers
    csp = headers.get("Content-Security-Policy", "")
    for directive in REQUIRED_CSP:
        assert directive in csp, f"{path}: CSP lacks {directive!r}: {csp!r}"
    assert "unsafe-inline" not in csp, path
    assert "unsafe-eval" not in csp, path
    assert "*" not in csp, path
    assert headers.get("X-Content-Type-Options") == "nosniff", path
    assert headers.get("Referrer-Policy") == "no-referrer", path
    assert headers.get("Cache-Control") == "private, no-store", path
    assert headers.get("Cross-Origin-Opener-Policy") == "same-origin", path
    assert headers.get("Cross-Origin-Embedder-Policy") == "require-corp", path
    assert headers.get("Cross-Origin-Resource-Policy") == "same-origin", path
    assert "camera=()" in headers.get("Permissions-Policy", ""), path
    assert "Strict-Transport-Security" not in headers, f"{path}: HSTS over plain http"


def assert_clean_html(response: TestResponse, path: str, lang: str = "en") -> None:
    assert response.mimetype == "text/html", path
    problems, html_attrs = html_problems(response.get_data(as_text=True))
    assert not problems, f"{path}: " + "; ".join(problems)
    assert html_attrs.get("lang") == lang, f"{path}: <html lang={html_attrs.get('lang')!r}>"
    assert html_attrs.get("dir") == text_direction(lang.replace("-", "_")), path


def _check_all(
    client: FlaskClient, paths: list[str], headers: dict[str, str] | None = None, lang: str = "en"
) -> int:
    checked = 0
    for path in paths:
        response = client.get(path, headers=headers)
        assert response.status_code < 500, f"{path} answered {response.status_code}"
        assert_safe_headers(response, path)
        # A redirect's body is Werkzeug's stub that no browser shows.
        if response.mimetype == "text/html" and response.status_code // 100 != 3:
            assert_clean_html(response, path, lang)
            checked += 1
    return checked


def test_welcome_page_for_visitors(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert title_of(response) == "Your privacy, in your hands"
    assert 'href="/login"' in response.get_data(as_text=True)


def test_healthz_reports_ok_as_json(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.is_json
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_unknown_address_gets_the_translated_404_page(client: FlaskClient) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert title_of(response) == "Page not found"
    assert "Error code: 404" in text_of(response)
    assert "Traceback" not in text_of(response)


def test_body_over_the_limit_gets_the_413_page(client: FlaskClient) -> None:
    oversized = "x" * (1024 * 1024 + 1)
    response = client.post("/login", data={"email": "ann@example.com", "password": oversized})
    assert response.status_code == 413
    assert title_of(response) == "What you sent is too large"
    assert_safe_headers(response, "POST /login (413)")


def test_wrong_method_gets_the_405_page_with_allow(client: FlaskClient) -> None:
    response = client.post("/healthz")
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]
    assert title_of(response) == "This action cannot be done this way"


def test_every_page_is_safe_for_visitors(app: Flask, client: FlaskClient) -> None:
    paths = [*_simple_get_paths(app), "/no/such/page", "/logout"]
    assert _check_all(client, paths) >= 5


def test_every_page_is_safe_when_signed_in(app: Flask, client: FlaskClient, user: User) -> None:
    login(client, user.email, user.password)
    paths = [*_simple_get_paths(app), "/no/such/page", "/logout"]
    assert "/" in paths
    assert _check_all(client, paths) >= 5


def test_error_pages_and_forms_are_safe(client: FlaskClient) -> None:
    expired = client.post("/login", data={"email": "a@example.com", "password": "x"})
    assert expired.status_code == 400
    assert_safe_headers(expired, "POST /login without token")
    assert_clean_html(expired, "POST /login without token")


@pytest.mark.parametrize("locale", sorted(LANGUAGES))
def test_every_page_renders_in_every_language(
    app: Flask, client: FlaskClient, user: User, locale: str
) -> None:
    with app.app_context():
        db.session.get(User, user.id).locale = locale  # type: ignore[union-attr]
        db.session.commit()
    login(client, user.email, user.password)
    paths = [*_simple_get_paths(app), "/no/such/page"]
    assert _check_all(client, paths, lang=locale.replace("_", "-")) >= 5


def test_german_pages_say_so_in_html(client: FlaskClient) -> None:
    assert (
        _check_all(client, ["/", "/login", "/no/such/page"], {"Accept-Language": "de"}, "de") == 3
    )


def test_htmx_is_served_from_this_site(client: FlaskClient) -> None:
    page = client.get("/login").get_data(as_text=True)
    assert '<script src="/static/vendor/htmx.min.js" defer></script>' in page
    script = client.get("/static/vendor/htmx.min.js")
    assert script.status_code == 200
    assert script.mimetype in {"text/javascript", "application/javascript"}
    assert b"htmx" in script.data[:2000]
    assert script.headers.get("X-Content-Type-Options") == "nosniff"
    script.close()


def test_stylesheet_is_served_from_this_site(client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    assert '<link rel="stylesheet" href="/static/css/app.css">' in page
    css = client.get("/static/css/app.css")
    assert css.status_code == 200
    assert css.mimetype == "text/css"
    css.close()


@pytest.mark.parametrize(
    ("page", "path", "english"),
    [
        ("sign-in", "/login", "Sign in"),
        ("404", "/no/such/page", "Page not found"),
        ("welcome", "/", "Your privacy, in your hands"),
    ],
)
def test_pages_in_german(
    client: FlaskClient, german: Callable[[str], str], page: str, path: str, english: str
) -> None:
    response = client.get(path, headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
    assert title_of(response) == german(english)
    if page == "sign-in":
        assert title_of(response) == "Anmelden"
