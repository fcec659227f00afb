"""Cookie consent rules without HTTP: the purposes file, the cookie format, merging, GPC."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.jurisdictions import GLOBAL_DEFAULT, OPT_IN, OPT_OUT, UNKNOWN, jurisdiction_for
from app.services import consent as service
from app.services.consent import (
    COOKIE_SALT,
    COOKIES_PATH,
    ConsentCookie,
    ConsentError,
    ConsentState,
    CookieCatalogueError,
    UnknownPurposeError,
    decode_cookie,
    encode_cookie,
    get_catalogue,
    parse_catalogue,
)

SECRET = "unit-test-secret-key-0123456789abcdef"
NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


def _document() -> dict[str, Any]:
    return yaml.safe_load(COOKIES_PATH.read_text(encoding="utf-8"))


# --- the shipped purposes and cookies ---------------------------------------------------------


def test_shipped_catalogue_has_the_four_purposes_and_flags_advertising() -> None:
    catalogue = get_catalogue()
    assert [p.key for p in catalogue.purposes] == [
        "necessary",
        "preferences",
        "analytics",
        "advertising",
    ]
    assert catalogue.optional_keys == ("preferences", "analytics", "advertising")
    assert catalogue.sale_or_sharing_keys == ("advertising",)
    assert catalogue.get("necessary").necessary  # type: ignore[union-attr]
    for purpose in catalogue.purposes:
        assert purpose.cookies, purpose.key
        for cookie in purpose.cookies:
            assert cookie.provider.name and cookie.description


def test_every_cookie_this_site_sets_is_listed_as_strictly_necessary() -> None:
    from app.web.i18n import LANGUAGE_COOKIE

    names = get_catalogue().necessary_cookie_names
    assert {"pc_session", LANGUAGE_COOKIE, service.COOKIE_NAME} <= names


def test_cookie_names_are_not_collected_for_translation() -> None:
    from app.datamap.babel_extract import extract_datamap

    with COOKIES_PATH.open("rb") as handle:
        texts = {text for _, _, text, _ in extract_datamap(handle, {}, [], {})}
    catalogue = get_catalogue()
    assert {p.name for p in catalogue.purposes} <= texts
    assert {p.description for p in catalogue.purposes} <= texts
    assert {c.description for p in catalogue.purposes for c in p.cookies} <= texts
    assert {p.name for p in catalogue.providers.values()} <= texts
    assert not catalogue.necessary_cookie_names & texts


def _break(path: str, value: Any) -> dict[str, Any]:
    """The shipped document with one value replaced (`purposes.1.cookies.0.provider`)."""
    document = copy.deepcopy(_document())
    node: Any = document
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is _DELETE:
        del node[int(last) if isinstance(node, list) else last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return document


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("version", 1, "version"),
        ("version", "has space", "version"),
        ("purposes.1.key", "Not-Snake", "key must be lower_snake_case"),
        ("purposes.1.name", "", "'name' must be non-empty text"),
        ("purposes.1.description", _DELETE, "'description' must be non-empty text"),
        ("purposes.1.necessary", True, "exactly one purpose"),
        ("purposes.0.sale_or_sharing", True, "cannot sell or share"),
        ("purposes.1.sale_or_sharing", "yes", "'sale_or_sharing' must be true or false"),
        ("purposes.1.cookies", [], "list at least one cookie"),
        ("purposes.1.colour", "blue", "unknown key(s) ['colour']"),
        ("purposes.1.cookies.0.provider", "nobody", "unknown provider 'nobody'"),
        ("purposes.1.cookies.0.cookie", "has space", "'cookie' must be the cookie's name"),
        ("purposes.1.cookies.0.lifetime", {"weeks": 2}, "lifetime must be"),
        ("purposes.1.cookies.0.lifetime", {"days": 0}, "lifetime must be"),
        ("purposes.1.cookies.0.lifetime", "forever", "lifetime must be"),
        ("purposes.2.key", "preferences", "'preferences': the purpose is listed more than once"),
        ("purposes.2.cookies.0.cookie", "pc_session", "'pc_session': the cookie is listed"),
        ("providers.platform", {"title": "x"}, "unknown key(s) ['title']"),
        ("providers", {}, "providers must map"),
        ("purposes", "none", "purposes must be a list"),
    ],
)
def test_a_bad_purposes_file_is_refused_with_the_entry_named(
    path: str, value: Any, message: str
) -> None:
    with pytest.raises(CookieCatalogueError) as raised:
        parse_catalogue(_break(path, value))
    assert message in str(raised.value)


def test_a_file_with_only_the_necessary_purpose_is_refused() -> None:
    document = _document()
    document["purposes"] = document["purposes"][:1]
    with pytest.raises(CookieCatalogueError, match="at least one optional purpose"):
        parse_catalogue(document)


def test_broken_yaml_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "cookies.yaml"
    path.write_text("purposes: [unclosed", encoding="utf-8")
    with pytest.raises(CookieCatalogueError, match="not valid YAML"):
        service.load_catalogue(path)


def test_start_up_fails_on_a_bad_purposes_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from app import create_app
    from tests.conftest import settings_for_tests

    def broken() -> None:
        raise CookieCatalogueError("cookies.yaml entry 'analytics': list at least one cookie")

    monkeypatch.setattr("app.web.consent.get_catalogue", broken)
    settings = settings_for_tests(f"sqlite:///{tmp_path / 'x.sqlite3'}", tmp_path / "data")
    with pytest.raises(CookieCatalogueError, match="analytics"):
        create_app(settings)


# --- jurisdictions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "region", "default", "expected"),
    [
        ("DE", None, "", ("DE", OPT_IN, False)),
        ("de", "by", "", ("DE", OPT_IN, False)),  # a region without own rules is not recorded
        ("GB", None, "US", ("GB", OPT_IN, False)),
        ("US", "CA", "", ("US-CA", OPT_OUT, True)),
        ("us", "co", "", ("US-CO", OPT_OUT, True)),
        ("US", "ZZZ", "", ("US", OPT_OUT, False)),
        ("US", None, "", ("US", OPT_OUT, False)),
        ("CA", "QC", "", ("CA-QC", OPT_IN, False)),
        ("JP", None, "", ("JP", GLOBAL_DEFAULT.consent_model, False)),  # not in the table
        (None, None, "US", ("US", OPT_OUT, False)),  # the deployment's default country
        ("", None, "", (UNKNOWN, OPT_IN, False)),
        ("1X", None, "", (UNKNOWN, OPT_IN, False)),
        (None, None, "nonsense", (UNKNOWN, OPT_IN, False)),
    ],
)
def test_jurisdiction_from_account_then_default_then_global(
    country: str | None, region: str | None, default: str, expected: tuple[str, str, bool]
) -> None:
    jurisdiction = jurisdiction_for(country, region, default)
    found = (jurisdiction.code, jurisdiction.consent_model, jurisdiction.do_not_sell_link)
    assert found == expected
    assert len(jurisdiction.code) <= 8


def test_the_global_default_is_opt_in() -> None:
    assert GLOBAL_DEFAULT.consent_model == OPT_IN
    assert jurisdiction_for("US", "CA").gpc_required


# --- decisions --------------------------------------------------------------------------------


def test_defaults_are_off_in_opt_in_places_and_on_in_opt_out_places() -> None:
    catalogue = get_catalogue()
    assert set(service.default_choices(catalogue, jurisdiction_for("DE")).values()) == {False}
    assert set(service.default_choices(catalogue, jurisdiction_for("US")).values()) == {True}


def test_requested_choices_for_each_decision() -> None:
    catalogue = get_catalogue()
    assert service.requested_choices(catalogue, "accept_all", []) == {
        "preferences": True,
        "analytics": True,
        "advertising": True,
    }
    assert set(service.requested_choices(catalogue, "reject_all", ["analytics"]).values()) == {
        False
    }
    assert service.requested_choices(catalogue, "save", ["analytics"]) == {
        "preferences": False,
        "analytics": True,
        "advertising": False,
    }


@pytest.mark.parametrize("allowed", [["tracking"], ["necessary"], ["analytics", "x"]])
def test_an_unknown_or_fixed_purpose_is_refused(allowed: list[str]) -> None:
    with pytest.raises(UnknownPurposeError):
        service.requested_choices(get_catalogue(), "save", allowed)


def test_an_unknown_decision_is_refused() -> None:
    with pytest.raises(ConsentError):
        service.requested_choices(get_catalogue(), "accept_some", [])


def test_merge_keeps_the_stricter_choice_per_purpose() -> None:
    catalogue = get_catalogue()
    account = {"preferences": True, "analytics": False, "advertising": True}
    browser = {"preferences": False, "analytics": True, "advertising": True}
    assert service.merge_choices(catalogue, account, browser) == {
        "preferences": False,
        "analytics": False,
        "advertising": True,
    }
    assert service.merge_choices(catalogue, None, browser) == browser


def _state(choices: dict[str, bool], **kwargs: Any) -> ConsentState:
    defaults: dict[str, Any] = {
        "source": "banner",
        "receipt_id": "r" * 22,
        "purposes_version": "1",
        "notice_version": "2026.11.2",
        "decided_at": NOW,
    }
    return ConsentState(choices=choices, **{**defaults, **kwargs})


def test_gpc_switches_off_only_what_sells_or_shares_and_only_once() -> None:
    catalogue = get_catalogue()
    everything = {"preferences": True, "analytics": True, "advertising": True}
    assert service.gpc_switches_off(catalogue, _state(everything)) == ("advertising",)
    assert service.without_sale_or_sharing(catalogue, everything) == {
        "preferences": True,
        "analytics": True,
        "advertising": False,
    }
    # After the signal's receipt nothing is left to switch off.
    after = _state({**everything, "advertising": False}, source="gpc", gpc=True)
    assert service.gpc_switches_off(catalogue, after) == ()
    # Allowed by the person with the signal present (the confirmation step): respected.
    assert service.gpc_switches_off(catalogue, _state(everything, gpc=True)) == ()


def test_switching_on_advertising_with_gpc_needs_a_confirmation() -> None:
    catalogue = get_catalogue()
    everything = {"preferences": True, "analytics": True, "advertising": True}
    nothing = dict.fromkeys(everything, False)
    assert service.gpc_needs_confirmation(catalogue, _state(nothing), everything) == (
        "advertising",
    )
    # Allowed before the signal existed: the signal refuses it, so it needs a yes again.
    assert service.gpc_needs_confirmation(catalogue, _state(everything), everything) == (
        "advertising",
    )
    # Already allowed with the signal in view: no second question.
    assert service.gpc_needs_confirmation(catalogue, _state(everything, gpc=True), everything) == ()
    assert service.gpc_needs_confirmation(catalogue, _state(nothing), nothing) == ()


def test_a_decision_is_current_for_the_same_versions_within_the_age_limit() -> None:
    state = _state({})
    current = {"purposes_version": "1", "notice_version": "2026.11.2", "max_age_days": 365}
    assert state.is_current(**current, now=NOW + timedelta(days=364))
    assert not state.is_current(**current, now=NOW + timedelta(days=365))
    assert not state.is_current(**{**current, "notice_version": "2026.12.1"}, now=NOW)
    assert not state.is_current(**{**current, "purposes_version": "2"}, now=NOW)
    assert not _state({}, decided_at=None).is_current(**current, now=NOW)


def test_user_agent_hash_is_keyed() -> None:
    agent = "Mozilla/5.0 (X11; Linux x86_64) Chrome/140.0"
    keyed = service.user_agent_hash(SECRET, agent)
    assert len(keyed) == 64
    assert keyed == service.user_agent_hash(SECRET, agent)
    assert keyed != service.user_agent_hash(SECRET + "x", agent)
    assert keyed != hashlib.sha256(agent.encode()).hexdigest()  # not testable without the key


def test_browser_ids_are_random_and_never_only_digits() -> None:
    ids = {service.new_browser_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(service.BROWSER_ID_PATTERN.fullmatch(i) and not i.isdigit() for i in ids)


# --- the consent cookie -----------------------------------------------------------------------


def _cookie(**kwargs: Any) -> ConsentCookie:
    values: dict[str, Any] = {
        "browser_id": "B" * 22,
        "receipt_id": "R" * 22,
        "purposes_version": "1",
        "notice_version": "2026.11.2",
        "decided_at": NOW,
        "source": "settings",
        "gpc": True,
        "choices": {"preferences": True, "analytics": False, "advertising": False},
    }
    return ConsentCookie(**{**values, **kwargs})


def test_cookie_round_trip() -> None:
    cookie = _cookie()
    value = encode_cookie(cookie, [SECRET])
    assert len(value) < 512
    assert decode_cookie(value, [SECRET]) == cookie


def _payload(value: str) -> dict[str, Any]:
    text = value.rsplit(".", 1)[0]
    return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def test_cookie_format_is_what_the_readme_documents() -> None:
    """The platform checks the cookie without our code: base64url JSON, a dot, and an
    HMAC-SHA256 over the first part, keyed with sha256(salt + "signer" + SECRET_KEY)."""
    value = encode_cookie(_cookie(), [SECRET])
    payload_part, signature = value.split(".")
    key = hashlib.sha256(COOKIE_SALT.encode() + b"signer" + SECRET.encode()).digest()
    expected = hmac.new(key, payload_part.encode(), hashlib.sha256).digest()
    assert signature == base64.urlsafe_b64encode(expected).rstrip(b"=").decode()
    assert service.cookie_signing_key(SECRET) == key.hex()
    assert _payload(value) == {
        "v": 1,
        "b": "B" * 22,
        "r": "R" * 22,
        "p": "1",
        "n": "2026.11.2",
        "t": int(NOW.timestamp()),
        "s": "s",
        "g": 1,
        "c": {"preferences": 1, "analytics": 0, "advertising": 0},
    }


def _signed(payload: dict[str, Any], secret: str = SECRET) -> str:
    text = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return service._signer([secret]).sign(text).decode()


@pytest.mark.parametrize(
    "change",
    [
        {"v": 2},
        {"v": "1"},
        {"b": "short"},
        {"r": None},
        {"p": ""},
        {"t": "1763800000"},
        {"t": True},
        {"t": -5},
        {"t": 10**20},
        {"s": "x"},
        {"g": 2},
        {"c": {"analytics": "yes"}},
        {"c": ["analytics"]},
    ],
)
def test_a_cookie_of_unknown_format_is_ignored(change: dict[str, Any]) -> None:
    payload = {**_payload(encode_cookie(_cookie(), [SECRET])), **change}
    assert decode_cookie(_signed(payload), [SECRET]) is None


def test_a_tampered_or_unsigned_cookie_is_ignored() -> None:
    value = encode_cookie(_cookie(), [SECRET])
    payload_part, signature = value.split(".")
    forged = {**_payload(value), "c": {"preferences": 1, "analytics": 1, "advertising": 1}}
    forged_part = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    for candidate in (
        f"{forged_part}.{signature}",
        payload_part,
        f"{payload_part}.",
        value[:-2],
        "not a cookie",
        "",
        None,
        "x" * 5000,
    ):
        assert decode_cookie(candidate, [SECRET]) is None, candidate
    assert decode_cookie(_signed(["a list"]), [SECRET]) is None
    assert decode_cookie(value, ["another-secret"]) is None


def test_a_cookie_signed_with_an_older_key_is_still_read() -> None:
    old = encode_cookie(_cookie(), ["old-secret"])
    assert decode_cookie(old, ["old-secret", SECRET]) == _cookie()
    assert decode_cookie(old, [SECRET]) is None
    # New cookies are signed with the current key (the last one).
    assert decode_cookie(encode_cookie(_cookie(), ["old-secret", SECRET]), [SECRET]) == _cookie()
