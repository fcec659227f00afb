"""Choosing a language: saved choice, then cookie, then Accept-Language; unknown ones ignored."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.extensions import db
from app.models import User
from tests.support.web import csrf_token, html_problems, login, title_of

LANGUAGE_COOKIE = "pc_lang"


def lang_of(client: FlaskClient, path: str = "/login", **kwargs: object) -> str | None:
    response = client.get(path, **kwargs)  # type: ignore[arg-type]
    return html_problems(response.get_data(as_text=True))[1].get("lang")


def choose_language(client: FlaskClient, language: str, next_url: str = "/login") -> object:
    token = csrf_token(client, next_url)
    return client.post(
        "/language", data={"language": language, "next": next_url, "csrf_token": token}
    )


def test_choosing_german_sets_the_cookie_and_the_next_page_is_german(
    client: FlaskClient, german: Callable[[str], str]
) -> None:
    assert lang_of(client) == "en"
    response = choose_language(client, "de")
    assert response.status_code == 303
    assert response.headers["Location"] == "/login"
    cookie = client.get_cookie(LANGUAGE_COOKIE)
    assert cookie is not None
    assert cookie.value == "de"
    assert cookie.http_only
    assert cookie.same_site == "Lax"
    assert cookie.max_age is not None and cookie.max_age > 30 * 24 * 3600

    page = client.get("/login")
    assert lang_of(client) == "de"
    assert title_of(page) == "Anmelden"
    assert title_of(page) == german("Sign in")


def test_the_cookie_beats_accept_language(client: FlaskClient) -> None:
    choose_language(client, "en")
    assert lang_of(client, headers={"Accept-Language": "de"}) == "en"


@pytest.mark.parametrize(
    ("accept_language", "lang"),
    [
        ("de", "de"),
        ("de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7", "de"),
        ("de-AT, en;q=0.3", "de"),  # a regional German before a plain English
        ("de-CH", "de"),
        ("DE-at", "de"),
        ("en-GB,en;q=0.9,de;q=0.8", "en"),
        ("sv, ko;q=0.8", "en"),
        ("sv, de;q=0.5", "de"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh-Hans"),
        ("zh", "zh-Hans"),
        ("zh-TW,en;q=0.5", "en"),  # Traditional characters: not Simplified Chinese
        ("pt-BR", "pt-BR"),
        ("pt-PT,pt;q=0.9", "pt-BR"),  # the Portuguese we have beats English
        ("ar-EG", "ar"),
        ("ja-JP", "ja"),
        ("fr-CA, en;q=0.5", "fr"),
        ("nl-BE", "nl"),
        ("es-419", "es"),
        ("it-CH", "it"),
        ("en;q=0.9, zh-Hant;q=1", "en"),
        ("x-klingon, i-default, ;;;", "en"),  # malformed or private tags change nothing
        ("*", "en"),
        ("", "en"),
    ],
)
def test_accept_language_decides_without_a_choice(
    client: FlaskClient, accept_language: str, lang: str
) -> None:
    assert lang_of(client, headers={"Accept-Language": accept_language}) == lang


def test_accept_language_german_page(client: FlaskClient, german: Callable[[str], str]) -> None:
    page = client.get("/login", headers={"Accept-Language": "de"})
    assert title_of(page) == german("Sign in")


def test_unknown_language_falls_back_quietly(client: FlaskClient) -> None:
    response = choose_language(client, "xx")
    assert response.status_code == 303
    assert response.headers["Location"] == "/login"
    assert LANGUAGE_COOKIE not in response.headers.get("Set-Cookie", "")
    assert client.get_cookie(LANGUAGE_COOKIE) is None
    assert lang_of(client) == "en"


def test_language_form_needs_its_token(client: FlaskClient) -> None:
    client.get("/login")
    response = client.post("/language", data={"language": "de", "next": "/login"})
    assert response.status_code == 400
    assert client.get_cookie(LANGUAGE_COOKIE) is None


def test_language_change_never_redirects_off_site(client: FlaskClient) -> None:
    response = choose_language(client, "de", next_url="/login")
    token = csrf_token(client, "/login")
    response = client.post(
        "/language", data={"language": "de", "next": "https://evil.example/", "csrf_token": token}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


def test_signed_in_choice_is_saved_to_the_account(app: Flask, user: User) -> None:
    client = app.test_client()
    login(client, user.email, user.password)
    response = choose_language(client, "de", next_url="/")
    assert response.status_code == 303
    with app.app_context():
        saved = db.session.get(User, user.id)
        assert saved is not None
        assert saved.locale == "de"

    # On another browser, with no cookie and an English Accept-Language, the account decides.
    other_browser = app.test_client()
    login(other_browser, user.email, user.password)
    assert other_browser.get_cookie(LANGUAGE_COOKIE) is None
    assert lang_of(other_browser, "/", headers={"Accept-Language": "en"}) == "de"


def test_404_page_in_german(client: FlaskClient, german: Callable[[str], str]) -> None:
    response = client.get("/nirgendwo", headers={"Accept-Language": "de"})
    assert response.status_code == 404
    assert html_problems(response.get_data(as_text=True))[1].get("lang") == "de"
    assert title_of(response) == german("Page not found")
