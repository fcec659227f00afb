"""The reader's region: found from the account, a choice, the proxy or the browser's language,
shown on every page, changeable without an account, and never loosening cookie consent by a
guess."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import DataRequest, User
from tests.support.web import login, post_form, text_of, title_of

DO_NOT_SELL = "Do Not Sell or Share My Personal Information"
OPT_OUT_WORDING = "unless you say no"
COOKIES_OFF = 'value="analytics" aria-describedby="banner-purpose-analytics-about" checked'


@pytest.fixture(autouse=True)
def _read_in_english(client: FlaskClient) -> None:
    # The page's language follows Accept-Language too; the cookie keeps the words English.
    client.set_cookie("pc_lang", "en")


def _footer(client: FlaskClient, **headers: str) -> str:
    page = text_of(client.get("/", headers=headers))
    return page[page.rindex("Your region:") :]


def _region_page(client: FlaskClient, **headers: str) -> str:
    return text_of(client.get("/region", headers=headers))


def test_a_visitor_we_know_nothing_about_gets_the_strict_default(client: FlaskClient) -> None:
    assert "Your region: Not known (the strictest rules applied)." in _footer(client)
    page = _region_page(client)
    assert "We do not know where you are" in page
    assert "Change your region" in page


def test_the_browsers_language_region_is_a_guess(client: FlaskClient) -> None:
    assert "Your region: Germany." in _footer(client, **{"Accept-Language": "de-DE,en;q=0.5"})
    page = _region_page(client, **{"Accept-Language": "de-DE"})
    assert "Your region: Germany." in page
    assert "We guessed it from the language settings of your browser." in page


def test_only_the_first_language_counts_and_only_with_a_region(client: FlaskClient) -> None:
    headers = {"Accept-Language": "fr, en-US;q=0.8"}
    assert "Your region: Not known" in _footer(client, **headers)


@pytest.mark.parametrize(
    "header", ["", "*", "!!!;q=x", "en-", "x" * 5000, "de-DE;q=abc", "und-ZZ", "en-419"]
)
def test_a_malformed_or_useless_language_header_changes_nothing(
    client: FlaskClient, header: str
) -> None:
    response = client.get("/", headers={"Accept-Language": header})
    assert response.status_code == 200
    assert "Your region: Not known (the strictest rules applied)." in text_of(response)


def test_a_guessed_opt_out_place_still_starts_with_cookies_off(client: FlaskClient) -> None:
    """An American English browser may belong to someone in Berlin: a guess shows the rights
    of the guessed place but never switches optional cookies on."""
    response = client.get("/", headers={"Accept-Language": "en-US"})
    page = response.get_data(as_text=True)
    assert "Your region: United States." in text_of(response)
    assert OPT_OUT_WORDING not in text_of(response)
    assert COOKIES_OFF not in page
    region = _region_page(client, **{"Accept-Language": "en-US"})
    assert "optional cookies stay off until you allow them" in region


@pytest.mark.app_settings(country_header="CloudFront-Viewer-Country")
def test_the_proxys_country_header_wins_over_the_language(client: FlaskClient) -> None:
    headers = {"CloudFront-Viewer-Country": "BR", "Accept-Language": "de-DE"}
    assert "Your region: Brazil." in _footer(client, **headers)
    assert "We guessed it from your internet connection." in _region_page(client, **headers)


@pytest.mark.app_settings(
    country_header="CloudFront-Viewer-Country", region_header="CloudFront-Viewer-Country-Region"
)
def test_a_guessed_california_shows_do_not_sell_but_keeps_cookies_off(
    client: FlaskClient,
) -> None:
    headers = {"CloudFront-Viewer-Country": "US", "CloudFront-Viewer-Country-Region": "CA"}
    response = client.get("/", headers=headers)
    words = text_of(response)
    assert "Your region: California, United States." in words
    assert DO_NOT_SELL in words
    assert OPT_OUT_WORDING not in words
    assert COOKIES_OFF not in response.get_data(as_text=True)


@pytest.mark.app_settings(country_header="CloudFront-Viewer-Country")
@pytest.mark.parametrize("value", ["", "ZZZ", "T1", "XX", "EU", "<script>", "de"])
def test_a_malformed_country_header_changes_nothing(client: FlaskClient, value: str) -> None:
    headers = {"CloudFront-Viewer-Country": value}
    expected = "Your region: Germany." if value == "de" else "Your region: Not known"
    assert expected in _footer(client, **headers)


def test_the_country_header_is_ignored_unless_configured(client: FlaskClient) -> None:
    assert "Your region: Not known" in _footer(client, **{"CloudFront-Viewer-Country": "BR"})


def test_a_visitor_chooses_their_region_and_it_is_trusted(client: FlaskClient) -> None:
    saved = post_form(client, "/region", {"country": "US", "region": "CA"})

    assert saved.status_code == 303
    page = client.get(saved.headers["Location"], headers={"Accept-Language": "de-DE"})
    words = text_of(page)
    assert "Your region is now California, United States." in words
    assert "Your region: California, United States." in words
    assert "You chose it for this browser." in words
    home = client.get("/", headers={"Accept-Language": "de-DE"})
    assert OPT_OUT_WORDING in text_of(home)  # a choice, not a guess: the law there applies
    assert DO_NOT_SELL in text_of(home)


def test_choosing_not_given_goes_back_to_guessing(client: FlaskClient) -> None:
    post_form(client, "/region", {"country": "FR", "region": ""})
    assert "Your region: France." in _footer(client)

    post_form(client, "/region", {"country": "", "region": ""})

    assert "Your region: Japan." in _footer(client, **{"Accept-Language": "ja-JP"})


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"country": "QQ", "region": ""}, "Choose a country from the list."),
        ({"country": "", "region": "CA"}, "Choose your country too"),
        ({"country": "US", "region": "C-A!"}, "Enter the code of your region"),
    ],
)
def test_a_wrong_choice_is_explained_and_changes_nothing(
    client: FlaskClient, form: dict[str, str], error: str
) -> None:
    post_form(client, "/region", {"country": "FR", "region": ""})

    response = post_form(client, "/region", form)

    assert response.status_code == 400
    assert error in text_of(response)
    assert "Nothing was saved." in text_of(response)
    assert "Your region: France." in _footer(client)


def test_the_region_form_needs_its_token(client: FlaskClient) -> None:
    response = client.post("/region", data={"country": "US", "region": "CA"})
    assert response.status_code == 400
    assert "Your region: Not known" in _footer(client)


def test_an_account_keeps_its_region_on_the_profile(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    brazilian = make_user(email="br-region@example.org", country="BR")
    login(client, brazilian.email, brazilian.password)

    footer = _footer(client, **{"Accept-Language": "de-DE"})
    assert "Your region: Brazil." in footer
    assert "Change it on your profile page" in footer
    moved = client.get("/region")
    assert moved.status_code == 303
    assert moved.headers["Location"] == "/profile#country"


def test_a_request_by_email_is_due_by_the_chosen_places_rule(
    app: Flask, client: FlaskClient
) -> None:
    post_form(client, "/region", {"country": "BR", "region": ""})
    response = post_form(
        client, "/requests/new/question", {"email": "ana@example.org", "details": "Olá"}
    )
    assert response.status_code == 200, title_of(response)

    with app.app_context():
        data_request = db.session.scalars(select(DataRequest)).one()
        assert data_request.jurisdiction == "BR"


def test_a_guess_does_not_set_the_deadline_of_a_request_by_email(
    app: Flask, client: FlaskClient
) -> None:
    response = post_form(
        client,
        "/requests/new/question",
        {"email": "ana@example.org", "details": "Hi"},
        headers={"Accept-Language": "en-US"},
    )
    assert response.status_code == 200, title_of(response)

    with app.app_context():
        data_request = db.session.scalars(select(DataRequest)).one()
        assert data_request.jurisdiction == "ZZ"
