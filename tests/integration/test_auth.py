"""Signing in and out through the real forms, as a person (or an attacker) would."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.extensions import db
from app.models import GeneratedImage, Prompt, User
from app.web.auth import fresh_login_required
from tests.support.web import (
    SESSION_COOKIE,
    category_counts,
    csrf_token,
    login,
    logout,
    post_form,
    session_data,
    signed_in_user_id,
    text_of,
    title_of,
)

GENERIC_ERROR = "The email address or password is not right. Check both and try again."


def _reload(app: Flask, user_id: int) -> User:
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None
        db.session.expunge(user)
        return user


def _add_creations(app: Flask, user_id: int, prompts: int, images: int) -> None:
    with app.app_context():
        for n in range(prompts):
            prompt = Prompt(user_id=user_id, text=f"a lighthouse at dusk, take {n}")
            db.session.add(prompt)
            db.session.flush()
        for n in range(images):
            db.session.add(
                GeneratedImage(
                    user_id=user_id,
                    prompt_id=prompt.id,
                    storage_key=f"images/{user_id}/{n}.png",
                    content_type="image/png",
                    byte_size=1234,
                    model="gpt-image-2",
                    width=1024,
                    height=1024,
                )
            )
        db.session.commit()


# --- the form ---------------------------------------------------------------------------------


def test_login_page_shows_the_form_with_a_csrf_token(client: FlaskClient) -> None:
    response = client.get("/login")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<form method="post" action="/login"' in page
    assert 'name="email"' in page
    assert 'name="password"' in page
    assert 'autocomplete="current-password"' in page
    assert csrf_token(client, "/login")
    assert title_of(response) == "Sign in"


def test_sign_in_shows_the_overview_with_my_numbers(
    app: Flask, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    me = make_user(email="Mia.Schmidt@Example.com", name="Mia")
    someone_else = make_user(email="other@example.com")
    _add_creations(app, me.id, prompts=3, images=2)
    _add_creations(app, someone_else.id, prompts=5, images=4)
    assert me.last_sign_in_at is None

    # The address as the person types it today, not as it was stored.
    response = login(client, "mia.schmidt@EXAMPLE.COM", me.password)

    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    assert signed_in_user_id(client) == f"{me.id}:1"
    overview = client.get("/")
    assert overview.status_code == 200
    assert title_of(overview) == "Overview"
    assert "You are signed in." in text_of(overview)
    counts = category_counts(overview.get_data(as_text=True))
    assert counts["prompts"] == 3
    assert counts["images"] == 2
    assert counts["account"] == 1
    assert counts["uploads"] == 0
    assert _reload(app, me.id).last_sign_in_at is not None


@pytest.mark.parametrize("case", ["wrong password", "unknown email"])
def test_failed_sign_in_is_generic(app: Flask, client: FlaskClient, user: User, case: str) -> None:
    email, password = (
        (user.email, "not-the-password")
        if case == "wrong password"
        else ("nobody@example.com", user.password)
    )
    response = login(client, email, password)
    assert response.status_code == 401
    page = text_of(response)
    assert GENERIC_ERROR in page
    assert 'role="alert"' in page
    assert "not-the-password" not in page  # the password is never echoed back
    assert signed_in_user_id(client) is None
    assert _reload(app, user.id).last_sign_in_at is None
    assert title_of(client.get("/")) != "Overview"


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"email": "", "password": "x"}, "email", "Enter your email address."),
        ({"password": "x"}, "email", "Enter your email address."),
        ({"email": "ann@example.com", "password": ""}, "password", "Enter your password."),
        ({"email": "ann@example.com"}, "password", "Enter your password."),
        (
            {"email": "ann-at-example.com", "password": "x"},
            "email",
            "Enter an email address in the form name@example.com.",
        ),
        (
            {"email": "ann@", "password": "x"},
            "email",
            "Enter an email address in the form name@example.com.",
        ),
    ],
)
def test_incomplete_form_is_answered_with_the_field_error(
    app: Flask, user: User, form: dict[str, str], field: str, message: str
) -> None:
    client = app.test_client()
    response = post_form(client, "/login", form)
    assert response.status_code == 400
    page = text_of(response)
    assert f'<p class="field-error" id="{field}-error">{message}</p>' in page
    assert 'aria-invalid="true"' in page
    assert signed_in_user_id(client) is None
    assert _reload(app, user.id).last_sign_in_at is None


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_missing_or_bad_csrf_token_says_the_form_expired(
    app: Flask, client: FlaskClient, user: User, token: str | None
) -> None:
    client.get("/login")
    data = {"email": user.email, "password": user.password}
    if token is not None:
        data["csrf_token"] = token
    response = client.post("/login", data=data)
    assert response.status_code == 400
    assert title_of(response) == "This form has expired"
    assert signed_in_user_id(client) is None
    assert _reload(app, user.id).last_sign_in_at is None


def test_csrf_token_of_another_session_is_refused(app: Flask, user: User) -> None:
    attacker, victim = app.test_client(), app.test_client()
    token = csrf_token(attacker, "/login")
    victim.get("/login")
    response = victim.post(
        "/login", data={"email": user.email, "password": user.password, "csrf_token": token}
    )
    assert response.status_code == 400
    assert title_of(response) == "This form has expired"


# --- the session ------------------------------------------------------------------------------


def test_sign_in_starts_a_new_session(client: FlaskClient, user: User) -> None:
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    token = csrf_token(client, "/login")
    before = client.get_cookie(SESSION_COOKIE)
    assert before is not None
    pre_login_csrf = session_data(client)["csrf_token"]

    response = client.post(
        "/login", data={"email": user.email, "password": user.password, "csrf_token": token}
    )

    assert response.status_code == 303
    after = client.get_cookie(SESSION_COOKIE)
    assert after is not None
    assert after.value != before.value
    session = session_data(client)
    assert "planted" not in session
    assert session.get("csrf_token") != pre_login_csrf
    assert session["_user_id"] == f"{user.id}:1"
    assert after.http_only
    assert after.same_site == "Lax"


def test_logout_is_post_only(client: FlaskClient, user: User) -> None:
    login(client, user.email, user.password)
    response = client.get("/logout")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert "GET" not in response.headers["Allow"]
    assert title_of(response) == "This action cannot be done this way"
    assert signed_in_user_id(client) == f"{user.id}:1"  # a GET (a link, a prefetch) changes nothing


def test_logout_without_token_changes_nothing(client: FlaskClient, user: User) -> None:
    login(client, user.email, user.password)
    response = client.post("/logout")
    assert response.status_code == 400
    assert signed_in_user_id(client) == f"{user.id}:1"


def test_logout_clears_the_session(client: FlaskClient, user: User) -> None:
    login(client, user.email, user.password)
    with client.session_transaction() as session:
        session["left_over"] = "something"
    response = logout(client)
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    session = session_data(client)
    assert "_user_id" not in session
    assert "left_over" not in session
    assert "fresh_at" not in session
    page = client.get("/")
    assert "You are signed out." in text_of(page)
    assert title_of(page) != "Overview"


def test_german_logout_405_page(client: FlaskClient, german: Callable[[str], str]) -> None:
    response = client.get("/logout", headers={"Accept-Language": "de"})
    assert response.status_code == 405
    assert title_of(response) == german("This action cannot be done this way")


@pytest.mark.parametrize(
    ("next_url", "location"),
    [
        ("/data", "/data"),
        ("/data/prompts?page=2", "/data/prompts?page=2"),
        ("https://evil.example/phish", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("", "/"),
    ],
)
def test_next_is_honoured_only_for_local_paths(
    client: FlaskClient, user: User, next_url: str, location: str
) -> None:
    response = login(client, user.email, user.password, next_url=next_url)
    assert response.status_code == 303
    assert response.headers["Location"] == location


def test_next_from_the_address_bar_is_carried_through_the_form(
    client: FlaskClient, user: User
) -> None:
    page = client.get("/login?next=/requests").get_data(as_text=True)
    assert 'name="next" type="hidden" value="/requests"' in page
    signed_in = client.get("/login?next=//evil.example")
    assert signed_in.status_code == 200
    login(client, user.email, user.password)
    # Already signed in: /login goes straight on, but never off the site.
    assert client.get("/login?next=/data").headers["Location"] == "/data"
    assert client.get("/login?next=https://evil.example").headers["Location"] == "/"


@pytest.mark.app_settings(rate_limits=True)
def test_too_many_attempts_are_refused(client: FlaskClient, user: User) -> None:
    token = csrf_token(client, "/login")
    for attempt in range(10):
        response = client.post(
            "/login",
            data={"email": user.email, "password": f"guess-{attempt}", "csrf_token": token},
        )
        assert response.status_code == 401, f"attempt {attempt + 1}"
    response = client.post(
        "/login", data={"email": user.email, "password": user.password, "csrf_token": token}
    )
    assert response.status_code == 429
    assert title_of(response) == "Too many attempts"
    assert "Wait a few minutes" in text_of(response)
    assert "You can try again in" in text_of(response)
    assert int(response.headers["Retry-After"]) > 0
    assert signed_in_user_id(client) is None  # not even the right password gets through now
    # The limit is per address and account: another account from here is not locked out.
    other = client.post(
        "/login", data={"email": "someone@example.com", "password": "x", "csrf_token": token}
    )
    assert other.status_code == 401


@pytest.mark.app_settings(rate_limits=True)
def test_german_429_page(client: FlaskClient, german: Callable[[str], str]) -> None:
    token = csrf_token(client, "/login")
    data = {"email": "nobody@example.com", "password": "x", "csrf_token": token}
    for _ in range(10):
        client.post("/login", data=data)
    response = client.post("/login", data=data, headers={"Accept-Language": "de"})
    assert response.status_code == 429
    assert title_of(response) == german("Too many attempts")


# --- fresh sign-in for sensitive actions ------------------------------------------------------


@pytest.fixture
def sensitive_app(app: Flask) -> Flask:
    """The app with one test-only page behind `fresh_login_required`."""

    @fresh_login_required
    def sensitive() -> str:
        return "the sensitive page"

    app.add_url_rule("/test-only/sensitive", "test_only_sensitive", sensitive)
    return app


def _age_fresh_sign_in(client: FlaskClient, minutes: float) -> None:
    with client.session_transaction() as session:
        session["fresh_at"] = int(time.time() - minutes * 60)


def test_sensitive_page_needs_a_recent_password(sensitive_app: Flask, user: User) -> None:
    client = sensitive_app.test_client()
    assert client.get("/test-only/sensitive").status_code == 302  # not signed in: to /login
    login(client, user.email, user.password)
    assert client.get("/test-only/sensitive").get_data(as_text=True) == "the sensitive page"

    _age_fresh_sign_in(client, minutes=9)
    assert client.get("/test-only/sensitive").status_code == 200

    _age_fresh_sign_in(client, minutes=11)
    response = client.get("/test-only/sensitive?tab=all")
    assert response.status_code == 303
    assert response.headers["Location"] == "/reauth?next=/test-only/sensitive?tab%3Dall"

    reauth = client.get(response.headers["Location"])
    assert reauth.status_code == 200
    assert title_of(reauth) == "Confirm it is you"
    token = csrf_token(client, response.headers["Location"])

    wrong = client.post(
        "/reauth",
        data={"password": "not-it", "next": "/test-only/sensitive?tab=all", "csrf_token": token},
    )
    assert wrong.status_code == 401
    assert "That password is not right. Try again." in text_of(wrong)
    assert client.get("/test-only/sensitive").status_code == 303

    right = client.post(
        "/reauth",
        data={
            "password": user.password,
            "next": "/test-only/sensitive?tab=all",
            "csrf_token": token,
        },
    )
    assert right.status_code == 303
    assert right.headers["Location"] == "/test-only/sensitive?tab=all"
    assert client.get("/test-only/sensitive").status_code == 200


def test_reauth_never_redirects_off_site(sensitive_app: Flask, user: User) -> None:
    client = sensitive_app.test_client()
    login(client, user.email, user.password)
    token = csrf_token(client, "/reauth")
    response = client.post(
        "/reauth", data={"password": user.password, "next": "//evil.example", "csrf_token": token}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


def test_bumping_the_session_version_signs_out_everywhere(
    app: Flask, client: FlaskClient, user: User
) -> None:
    login(client, user.email, user.password)
    assert title_of(client.get("/")) == "Overview"
    with app.app_context():
        row = db.session.get(User, user.id)
        assert row is not None
        row.session_version += 1
        db.session.commit()
    page = client.get("/")
    assert page.status_code == 200
    assert title_of(page) != "Overview"
    assert "Sign in" in text_of(page)
    # Signing in again works and carries the new version.
    login(client, user.email, user.password)
    assert signed_in_user_id(client) == f"{user.id}:2"
    assert title_of(client.get("/")) == "Overview"
