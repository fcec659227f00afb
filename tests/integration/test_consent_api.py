"""`GET /api/v1/consent/<subject>`: the platform reads an account's or a browser's choices."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.models import User
from app.services.consent import get_catalogue
from app.services.notice import get_notice
from tests.integration.test_consent import GPC, consent_cookie, decide, receipts
from tests.support.web import login

KEYS = ("platform-key-one-0123456789", "platform-key-two-9876543210")
pytestmark = pytest.mark.app_settings(platform_api_keys=KEYS)
AUTH = {"Authorization": f"Bearer {KEYS[0]}"}


def _consent(client: FlaskClient, subject: object, headers: dict[str, str] | None = None):
    return client.get(f"/api/v1/consent/{subject}", headers=headers or AUTH)


def _assert_api_answer(response) -> None:
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "private, no-store"
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": f"Bearer {KEYS[0]}x"},
        {"Authorization": f"Basic {KEYS[0]}"},
    ],
)
def test_without_a_valid_key_the_answer_is_401_with_no_detail(
    client: FlaskClient, user: User, headers: dict[str, str]
) -> None:
    for subject in (user.id, 987654, "AAAAAAAAAAAAAAAAAAAAAA"):
        response = client.get(f"/api/v1/consent/{subject}", headers=headers)
        assert response.status_code == 401
        assert response.get_json() == {"error": "unauthorized"}
        assert response.headers["WWW-Authenticate"] == "Bearer"
        _assert_api_answer(response)


@pytest.mark.parametrize(
    "subject",
    ["987654", "99999999999", "2147483648", "AAAAAAAAAAAAAAAAAAAAAA", "12345678901234567890",
     "short", "has%20space", "%D9%A3"],
)  # fmt: skip
def test_an_unknown_subject_is_404(client: FlaskClient, subject: str) -> None:
    response = _consent(client, subject)
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"
    _assert_api_answer(response)


def test_an_account_that_never_chose_gets_its_jurisdiction_defaults(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    german = make_user(email="de@example.com", country="DE")
    californian = make_user(email="ca@example.com", country="US", region="CA")
    answer = _consent(client, german.id).get_json()
    assert answer == {
        "subject": german.id,
        "subject_type": "account",
        "choices": {"preferences": False, "analytics": False, "advertising": False},
        "current": False,
        "receipt_id": None,
        "source": "default",
        "gpc": False,
        "decided_at": None,
        "purposes_version": None,
        "notice_version": None,
        "jurisdiction": "DE",
        "consent_model": "opt_in",
        "sale_or_sharing_purposes": ["advertising"],
    }
    opt_out = _consent(client, californian.id).get_json()
    assert opt_out["choices"] == {"preferences": True, "analytics": True, "advertising": True}
    assert (opt_out["jurisdiction"], opt_out["consent_model"]) == ("US-CA", "opt_out")


def test_an_account_and_a_browser_after_decisions(
    app: Flask, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    person = make_user(email="reader@example.com", country="DE")
    browser = app.test_client()
    decide(browser, "save", ["analytics"])
    cookie = consent_cookie(app, browser)
    assert cookie is not None

    by_browser = _consent(client, cookie.browser_id)
    assert by_browser.status_code == 200
    _assert_api_answer(by_browser)
    answer = by_browser.get_json()
    (receipt,) = receipts(app)
    assert answer["subject"] == cookie.browser_id
    assert answer["subject_type"] == "browser"
    assert answer["choices"] == {"preferences": False, "analytics": True, "advertising": False}
    assert answer["current"] is True
    assert answer["receipt_id"] == receipt.receipt_id
    assert (answer["source"], answer["gpc"]) == ("banner", False)
    assert answer["purposes_version"] == get_catalogue().version
    assert answer["notice_version"] == get_notice().current.version
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", answer["decided_at"])

    login(browser, person.email, person.password)  # merged into the account
    browser.get("/", headers=GPC)  # nothing allowed sells or shares: nothing to record
    by_account = _consent(client, person.id).get_json()
    assert by_account["subject"] == person.id
    assert by_account["source"] == "merge"
    assert by_account["choices"]["analytics"] is True
    assert by_account["receipt_id"] == receipts(app)[-1].receipt_id
    # The browser id now leads to the newest receipt made in that browser: the merge.
    assert _consent(client, cookie.browser_id).get_json()["source"] == "merge"


def test_an_outdated_decision_is_reported_as_not_current(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    browser = app.test_client()
    decide(browser, "accept_all")
    cookie = consent_cookie(app, browser)
    assert cookie is not None
    monkeypatch.setattr("app.web.api_consent.current_notice_version", lambda: "2099.1.1")
    answer = _consent(client, cookie.browser_id).get_json()
    assert answer["current"] is False
    assert answer["choices"] == {"preferences": True, "analytics": True, "advertising": True}
