"""Correcting your details: what is saved, what is refused, and what the audit log keeps."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from app.extensions import db
from app.models import AuditEvent, BillingAddress, User, utcnow
from tests.support.web import html_problems, login, post_form, text_of, title_of

SAVED = "Your details are saved."
NOTHING_CHANGED = "Nothing was changed: your details were already as shown."
NOT_SAVED = "Nothing was saved. Correct the fields marked below, then save again."
ADDRESS = {
    "billing_name": "Ann Example",
    "billing_line1": "12 Harbour Road",
    "billing_line2": "",
    "billing_city": "Bremen",
    "billing_postal_code": "28195",
    "billing_region": "",
    "billing_country": "DE",
}
NO_ADDRESS = dict.fromkeys(ADDRESS, "")


def _form(user: User, **changes: str) -> dict[str, str]:
    """The form as the page fills it for `user` (no billing address), with `changes`."""
    data = {
        "name": user.name,
        "country": user.country or "",
        "region": user.region or "",
        "locale": user.locale,
        **NO_ADDRESS,
    }
    return {**data, **changes}


def _save(client: FlaskClient, data: dict[str, str]) -> TestResponse:
    return post_form(client, "/profile", data, form_page="/profile")


def _user(app: Flask, user_id: int) -> User:
    with app.app_context():
        row = db.session.get(User, user_id)
        assert row is not None
        db.session.expunge(row)
        return row


def _events(app: Flask, action: str = "profile.updated") -> list[AuditEvent]:
    with app.app_context():
        events = list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))
        db.session.expunge_all()
        return events


def _addresses(app: Flask, user_id: int) -> list[dict[str, Any]]:
    with app.app_context():
        rows = db.session.scalars(
            select(BillingAddress).where(BillingAddress.user_id == user_id).order_by("id")
        )
        return [
            {c: getattr(row, c) for c in ("name", "line1", "line2", "city", "postal_code")}
            | {"region": row.region, "country": row.country}
            for row in rows
        ]


def _add_address(app: Flask, user_id: int, **fields: Any) -> None:
    values = {
        "name": "Old Name",
        "line1": "1 Old Street",
        "line2": None,
        "city": "Hamburg",
        "postal_code": "20095",
        "region": None,
        "country": "DE",
        **fields,
    }
    with app.app_context():
        db.session.add(BillingAddress(user_id=user_id, created_at=utcnow(), **values))
        db.session.commit()


def _field_error(response: TestResponse, field: str) -> str:
    match = re.search(
        rf'<p class="field-error" id="{field}-error">(.*?)</p>', response.get_data(as_text=True)
    )
    assert match, f"no error shown for {field}"
    return match.group(1)


def _selected(page: str, select_id: str) -> str | None:
    block = re.search(rf'<select[^>]*id="{select_id}"[^>]*>(.*?)</select>', page, re.DOTALL)
    assert block, f"no select {select_id}"
    chosen = re.search(r'<option [^>]*\bselected\b[^>]*value="([^"]*)"', block.group(1))
    return chosen.group(1) if chosen else None


# --- the page ---------------------------------------------------------------------------------


def test_profile_needs_sign_in(client: FlaskClient) -> None:
    response = client.get("/profile")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_page_shows_the_current_details_and_when_the_account_was_created(
    app: Flask, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    me = make_user(email="ann@example.com", name="Ann Example", country="US", region="CA")
    _add_address(app, me.id, city="Palo Alto", country="US")
    login(client, me.email, me.password)
    response = client.get("/profile")
    assert response.status_code == 200
    assert title_of(response) == "Your details"
    page = response.get_data(as_text=True)
    assert 'value="Ann Example"' in page
    assert _selected(page, "country") == "US"
    assert (
        'id="region" maxlength="3" name="region" spellcheck="false" type="text" value="CA"' in page
    )
    assert _selected(page, "locale") == "en"
    assert '<option lang="de" value="de">Deutsch</option>' in page
    assert 'value="Palo Alto"' in page
    assert _selected(page, "billing_country") == "US"
    text = text_of(response)
    assert "Account created" in text
    assert me.created_at.strftime("%Y") in text
    assert "ann@example.com" in text
    assert not html_problems(page)[0]


def test_overview_links_to_the_profile(client: FlaskClient, user: User) -> None:
    login(client, user.email, user.password)
    page = client.get("/").get_data(as_text=True)
    assert '<a href="/profile">Correct your details</a>' in page


def test_countries_are_named_and_sorted_in_the_page_language(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    me = make_user(email="jonas@example.com", locale="de", country="AT")
    login(client, me.email, me.password)
    page = client.get("/profile").get_data(as_text=True)
    options = re.findall(r'<option (?:selected )?value="([A-Z]{2})">([^<]+)</option>', page)
    names = [name for code, name in options[: len(options) // 2]]
    assert ("AT", "Österreich") in options
    assert ("DE", "Deutschland") in options
    # Sorted as a German reader expects: "Österreich" among the O's, not after "Zypern".
    assert names.index("Oman") < names.index("Österreich") < names.index("Pakistan")
    codes = {code for code, _ in options}
    assert not codes & {"EU", "UN", "ZZ", "QO", "XA"}


# --- saving -----------------------------------------------------------------------------------


def test_saving_commits_the_change_and_audits_field_names_only(
    app: Flask, client: FlaskClient, user: User, make_user: Callable[..., User]
) -> None:
    other = make_user(email="bob@example.com", name="Bob", country="FR")
    login(client, user.email, user.password)
    response = _save(client, _form(user, name="Ann Beispiel", country="DE", region="BY"))
    assert response.status_code == 303
    assert response.headers["Location"] == "/profile"
    page = client.get("/profile")
    assert SAVED in text_of(page)

    saved = _user(app, user.id)
    assert (saved.name, saved.country, saved.region) == ("Ann Beispiel", "DE", "BY")
    (event,) = _events(app)
    assert event.details == {"fields": ["name", "country", "region"]}
    assert (event.actor_type, event.actor_id, event.subject_user_id) == ("user", user.id, user.id)
    # Names of fields, never what they hold.
    assert "Beispiel" not in json.dumps(event.details)
    untouched = _user(app, other.id)
    assert (untouched.name, untouched.country) == ("Bob", "FR")


def test_saving_the_same_values_says_so_and_audits_nothing(
    app: Flask, client: FlaskClient, user: User
) -> None:
    login(client, user.email, user.password)
    response = _save(client, _form(user))
    assert response.status_code == 303
    assert NOTHING_CHANGED in text_of(client.get("/profile"))
    assert _events(app) == []


def test_whitespace_is_trimmed_and_the_region_upper_cased(
    app: Flask, client: FlaskClient, user: User
) -> None:
    login(client, user.email, user.password)
    response = _save(client, _form(user, name="  Ann  Example  ", country="US", region=" ca "))
    assert response.status_code == 303
    saved = _user(app, user.id)
    assert (saved.name, saved.country, saved.region) == ("Ann  Example", "US", "CA")


def test_clearing_country_and_region_stores_nothing(
    app: Flask, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    me = make_user(country="US", region="CA")
    login(client, me.email, me.password)
    assert _save(client, _form(me, country="", region="")).status_code == 303
    saved = _user(app, me.id)
    assert (saved.country, saved.region) == (None, None)
    assert _events(app)[0].details == {"fields": ["country", "region"]}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"country": "XX"}, "country", "Choose a country from the list."),
        ({"country": "EU"}, "country", "Choose a country from the list."),
        ({"country": "de"}, "country", "Choose a country from the list."),
        (
            {"country": "US", "region": "CALI"},
            "region",
            "Enter the code of your region: one to three letters or digits, such as CA.",
        ),
        (
            {"country": "US", "region": "C-A"},
            "region",
            "Enter the code of your region: one to three letters or digits, such as CA.",
        ),
        (
            {"country": "", "region": "CA"},
            "region",
            "Choose your country too, so the region code means something.",
        ),
        (
            {"name": "Ann\x00Example"},
            "name",
            "Use letters, numbers and punctuation only, without line breaks or tabs.",
        ),
        (
            {"name": "Ann\nExample"},
            "name",
            "Use letters, numbers and punctuation only, without line breaks or tabs.",
        ),
        (
            {"name": "Ann \u202egnp.exe"},
            "name",
            "Use letters, numbers and punctuation only, without line breaks or tabs.",
        ),
        ({"name": "A" * 201}, "name", "Use at most 200 characters."),
        ({"locale": "sv"}, "locale", "Choose a language from the list."),
        (
            {**ADDRESS, "billing_city": "B" * 101},
            "billing_city",
            "Use at most 100 characters.",
        ),
        (
            {**ADDRESS, "billing_line1": "12\u2028Harbour Road"},
            "billing_line1",
            "Use letters, numbers and punctuation only, without line breaks or tabs.",
        ),
        (
            {**ADDRESS, "billing_country": "ZZ"},
            "billing_country",
            "Choose a country from the list.",
        ),
    ],
    ids=[
        "unknown-country",
        "not-a-country",
        "lower-case-country",
        "region-too-long",
        "region-punctuation",
        "region-without-country",
        "nul-in-name",
        "newline-in-name",
        "direction-override-in-name",
        "name-too-long",
        "unknown-language",
        "city-too-long",
        "line-separator",
        "billing-country-unknown",
    ],
)
def test_bad_input_is_refused_with_a_message_and_changes_nothing(
    app: Flask,
    client: FlaskClient,
    user: User,
    *,
    changes: dict[str, str],
    field: str,
    message: str,
) -> None:
    login(client, user.email, user.password)
    # A valid change beside the bad one: it must not be saved either.
    response = _save(client, _form(user, **{"name": "Changed Name", **changes}))
    assert response.status_code == 400
    assert NOT_SAVED in text_of(response)
    assert _field_error(response, field) == message
    assert f'aria-describedby="{field}' in response.get_data(as_text=True)
    saved = _user(app, user.id)
    assert (saved.name, saved.country, saved.region, saved.locale) == (
        user.name,
        user.country,
        user.region,
        user.locale,
    )
    assert _addresses(app, user.id) == []
    assert _events(app) == []


def test_choosing_german_switches_the_pages_to_german_at_once(
    app: Flask, client: FlaskClient, user: User
) -> None:
    login(client, user.email, user.password)
    response = _save(client, _form(user, locale="de"))
    assert response.status_code == 303
    page = client.get("/profile").get_data(as_text=True)
    assert '<html lang="de"' in page
    assert _user(app, user.id).locale == "de"
    assert _events(app)[0].details == {"fields": ["locale"]}
    # Kept for this browser too, so the language stays after signing out.
    cookie = client.get_cookie("pc_lang")
    assert cookie is not None
    assert cookie.value == "de"
    assert '<html lang="de"' in client.get("/").get_data(as_text=True)


# --- the billing address ----------------------------------------------------------------------


def test_billing_address_is_created_when_there_was_none(
    app: Flask, client: FlaskClient, user: User
) -> None:
    login(client, user.email, user.password)
    response = _save(client, _form(user, **{**ADDRESS, "billing_line2": "  Flat 3 "}))
    assert response.status_code == 303
    assert _addresses(app, user.id) == [
        {
            "name": "Ann Example",
            "line1": "12 Harbour Road",
            "line2": "Flat 3",
            "city": "Bremen",
            "postal_code": "28195",
            "region": None,
            "country": "DE",
        }
    ]
    assert _events(app)[0].details == {"fields": ["billing_address"]}


def test_billing_address_is_corrected_in_place(
    app: Flask, client: FlaskClient, user: User, make_user: Callable[..., User]
) -> None:
    other = make_user(email="bob@example.com")
    _add_address(app, user.id)
    _add_address(app, other.id)
    login(client, user.email, user.password)
    page = client.get("/profile").get_data(as_text=True)
    assert 'value="1 Old Street"' in page

    form = _form(
        user,
        billing_name="Old Name",
        billing_line1="1 Old Street",
        billing_city="Lübeck",
        billing_postal_code="23552",
        billing_country="DE",
    )
    assert _save(client, form).status_code == 303
    (address,) = _addresses(app, user.id)
    assert (address["city"], address["postal_code"], address["line1"]) == (
        "Lübeck",
        "23552",
        "1 Old Street",
    )
    assert _events(app)[0].details == {
        "fields": ["billing_address.city", "billing_address.postal_code"]
    }
    (untouched,) = _addresses(app, other.id)
    assert untouched["city"] == "Hamburg"


def test_a_partial_billing_address_names_each_missing_part(
    app: Flask, client: FlaskClient, user: User
) -> None:
    login(client, user.email, user.password)
    response = _save(client, _form(user, billing_line1="12 Harbour Road"))
    assert response.status_code == 400
    for field in ("billing_name", "billing_city", "billing_postal_code", "billing_country"):
        assert _field_error(response, field) == "Fill this in to complete the billing address."
    assert 'id="billing_line1-error"' not in response.get_data(as_text=True)
    assert _addresses(app, user.id) == []
    assert _events(app) == []


def test_a_saved_billing_address_cannot_be_emptied_here(
    app: Flask, client: FlaskClient, user: User
) -> None:
    _add_address(app, user.id)
    login(client, user.email, user.password)
    response = _save(client, _form(user, name="New Name"))
    assert response.status_code == 400
    assert _field_error(response, "billing_line1") == (
        "Fill this in: a saved billing address can be corrected, not emptied."
    )
    assert len(_addresses(app, user.id)) == 1
    assert _user(app, user.id).name == user.name
