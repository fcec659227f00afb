"""The rules behind /profile that need no database: links, masking, countries, plain text."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from itsdangerous import URLSafeTimedSerializer
from itsdangerous.timed import TimestampSigner

from app.services.profile import (
    AddressDetails,
    LinkExpiredError,
    LinkInvalidError,
    country_choices,
    country_codes,
    has_control_characters,
    is_country_code,
    make_token,
    mask_email,
    read_token,
)

SECRET = "a-test-secret-that-is-long-enough-for-anything"


# --- the confirmation link --------------------------------------------------------------------


def test_a_token_reads_back_as_the_change_and_nonce() -> None:
    token = make_token(SECRET, 42, "the-nonce")
    assert read_token(SECRET, token) == (42, "the-nonce")


def test_a_token_carries_no_address_only_the_change_and_the_nonce() -> None:
    token = make_token(SECRET, 42, "the-nonce")
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert payload == {"c": 42, "n": "the-nonce"}
    assert "@" not in token


def _flip(token: str, at: int) -> str:
    return token[:at] + ("x" if token[at] != "x" else "y") + token[at + 1 :]


@pytest.mark.parametrize(
    "damage",
    [
        lambda t: _flip(t, 3),  # the payload
        lambda t: _flip(t, len(t) - 8),  # the signature
        lambda t: t[:-4],
        lambda t: t.split(".")[0],
        lambda t: "",
        lambda t: t + ".extra",
    ],
    ids=["payload", "signature", "truncated", "payload-only", "empty", "extra-part"],
)
def test_a_damaged_token_is_not_valid(damage) -> None:
    token = make_token(SECRET, 42, "the-nonce")
    with pytest.raises(LinkInvalidError):
        read_token(SECRET, damage(token))


def test_a_token_signed_with_another_key_or_purpose_is_not_valid() -> None:
    with pytest.raises(LinkInvalidError):
        read_token(SECRET, make_token("another-secret-key-entirely", 42, "the-nonce"))
    # Same key, another salt: a token made for some other purpose cannot change an address.
    other_purpose = URLSafeTimedSerializer(SECRET, salt="unsubscribe").dumps({"c": 42, "n": "x"})
    with pytest.raises(LinkInvalidError):
        read_token(SECRET, other_purpose)


@pytest.mark.parametrize(
    "payload",
    [
        [42, "nonce"],
        {"c": "42", "n": "nonce"},
        {"c": 42},
        {"c": 42, "n": ""},
        {"c": True, "n": "x"},
    ],
    ids=["list", "id-as-text", "no-nonce", "empty-nonce", "bool-id"],
)
def test_a_signed_token_of_the_wrong_shape_is_not_valid(payload: object) -> None:
    token = URLSafeTimedSerializer(SECRET, salt="email-change").dumps(payload)
    with pytest.raises(LinkInvalidError):
        read_token(SECRET, token)


def test_a_token_expires_after_24_hours(monkeypatch: pytest.MonkeyPatch) -> None:
    token = make_token(SECRET, 42, "the-nonce")
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) + 23 * 3600)
    assert read_token(SECRET, token) == (42, "the-nonce")
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) + 24 * 3600 + 1)
    with pytest.raises(LinkExpiredError):
        read_token(SECRET, token)


def test_a_shorter_age_can_be_asked_for() -> None:
    token = make_token(SECRET, 42, "the-nonce")
    with pytest.raises(LinkExpiredError):
        read_token(SECRET, token, max_age=timedelta(seconds=-1))


# --- masking ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("jane@example.org", "j***@example.org"),
        ("j@example.org", "j***@example.org"),
        ("Jane.Doe+news@mail.example.co.uk", "J***@mail.example.co.uk"),
        ('"odd@local"@example.org', '"***@example.org'),
        ("no-at-sign", "***"),
        ("@example.org", "***"),
        ("", "***"),
    ],
)
def test_masking_keeps_the_first_letter_and_the_domain(address: str, masked: str) -> None:
    assert mask_email(address) == masked


# --- countries and text -----------------------------------------------------------------------


def test_countries_are_iso_codes_without_groupings_or_placeholders() -> None:
    codes = country_codes()
    assert {"DE", "US", "AT", "JP", "XK"} <= codes
    assert not codes & {"EU", "EZ", "UN", "ZZ", "QO", "XA", "XB", "001", "419"}
    assert all(len(code) == 2 and code.isalpha() and code.isupper() for code in codes)
    assert 240 < len(codes) < 260
    assert is_country_code("DE")
    assert not is_country_code("de")
    assert not is_country_code(None)
    assert not is_country_code("")


def test_country_names_follow_the_locale_and_its_alphabet() -> None:
    german = dict(country_choices("de"))
    assert german["DE"] == "Deutschland"
    assert german["AT"] == "Österreich"
    names = [name for _, name in country_choices("de")]
    assert names.index("Oman") < names.index("Österreich") < names.index("Pakistan")
    english = [name for _, name in country_choices("en")]
    assert english.index("Austria") < english.index("Germany")
    assert len(english) == len(country_codes())


@pytest.mark.parametrize(
    ("value", "refused"),
    [
        ("Ann Example", False),
        ("Zoë O\u2019Brien-Łukasik", False),
        ("محمد", False),
        ("", False),
        (None, False),
        ("Ann\nExample", True),
        ("Ann\tExample", True),
        ("Ann\x00", True),
        ("Ann\x1b[31m", True),
        ("Ann\u2028Example", True),
        ("Ann\u0085", True),
    ],
)
def test_control_characters_are_found(value: str | None, refused: bool) -> None:
    assert has_control_characters(value) is refused


def test_an_address_is_all_or_nothing_for_its_required_parts() -> None:
    assert AddressDetails().is_blank
    assert AddressDetails().missing() == []
    assert AddressDetails(line2="Flat 3").missing() == [
        "name",
        "line1",
        "city",
        "postal_code",
        "country",
    ]
    complete = AddressDetails(
        name="Ann", line1="1 Road", city="Bremen", postal_code="28195", country="DE"
    )
    assert complete.missing() == []
    assert not complete.is_blank
