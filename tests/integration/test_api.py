"""The platform API at /api/v1: keys, JSON in every case, choices recorded, the OpenAPI file."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent, User
from app.services.choices import MODEL_IMPROVEMENT, choice_history, set_choice
from app.web.api import OPENAPI_PATH, STATUS_CODES
from tests.support.web import SESSION_COOKIE, login

KEYS = ("platform-key-one-0123456789", "platform-key-two-9876543210")
pytestmark = pytest.mark.app_settings(platform_api_keys=KEYS)
AUTH = {"Authorization": f"Bearer {KEYS[1]}"}
UNAUTHORIZED = {"error": "unauthorized"}
DEFAULT_STATE = {"allowed": True, "source": "default", "since": None}


def _processing(user_id: int) -> str:
    return f"/api/v1/subjects/{user_id}/processing"


def _choice(user_id: int, purpose: str = MODEL_IMPROVEMENT) -> str:
    return f"/api/v1/subjects/{user_id}/processing/{purpose}"


def _history(app: Flask, user_id: int) -> list[tuple[bool, str]]:
    with app.app_context():
        return [(c.allowed, c.source) for c in choice_history(user_id, MODEL_IMPROVEMENT)]


def _assert_json_api_answer(response: Any) -> None:
    assert response.mimetype == "application/json"
    assert "no-store" in response.headers["Cache-Control"].split(", ")
    assert "Set-Cookie" not in response.headers


# --- keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": f"Bearer {KEYS[0]}x"},
        {"Authorization": f"Bearer {KEYS[0][:-1]}"},
        {"Authorization": f"Basic {KEYS[0]}"},
        {"Authorization": KEYS[0]},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer clé-ünïcode"},
    ],
    ids=["none", "wrong", "longer", "shorter", "basic", "no-scheme", "empty", "non-ascii"],
)
def test_without_a_valid_key_the_answer_is_401_and_nothing_more(
    client: FlaskClient, user: User, headers: dict[str, str]
) -> None:
    response = client.get(_processing(user.id), headers=headers)
    assert response.status_code == 401
    assert response.get_json() == UNAUTHORIZED
    assert response.headers["WWW-Authenticate"] == "Bearer"
    _assert_json_api_answer(response)


def test_an_unknown_subject_is_401_too_without_a_key(client: FlaskClient) -> None:
    # Existence of an account is not revealed before the key is checked.
    response = client.get(_processing(987654))
    assert response.status_code == 401
    assert response.get_json() == UNAUTHORIZED


@pytest.mark.app_settings(platform_api_keys=())
def test_with_no_keys_configured_every_call_is_401(client: FlaskClient, user: User) -> None:
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer anything"}):
        response = client.get(_processing(user.id), headers=headers)
        assert response.status_code == 401
        assert response.get_json() == UNAUTHORIZED
    put = client.put(
        _choice(user.id), json={"allowed": False}, headers={"Authorization": "Bearer "}
    )
    assert put.status_code == 401


@pytest.mark.parametrize("key", KEYS)
def test_each_key_reads_the_default_state(client: FlaskClient, user: User, key: str) -> None:
    response = client.get(_processing(user.id), headers={"Authorization": f"bearer {key}"})
    assert response.status_code == 200
    assert response.get_json() == {
        "subject": user.id,
        "purposes": {"improve_models": DEFAULT_STATE},
    }
    _assert_json_api_answer(response)


def test_a_signed_in_browser_gets_no_access_and_no_cookie(client: FlaskClient, user: User) -> None:
    login(client, user.email, user.password)
    assert client.get_cookie(SESSION_COOKIE) is not None
    without_key = client.get(_processing(user.id))
    assert without_key.status_code == 401  # the session is not a credential here
    assert "Set-Cookie" not in without_key.headers
    with_key = client.get(_processing(user.id), headers=AUTH)
    assert with_key.status_code == 200
    assert "Set-Cookie" not in with_key.headers
    put = client.put(_choice(user.id), json={"allowed": False}, headers=AUTH)
    assert put.status_code == 200
    assert "Set-Cookie" not in put.headers
    assert "Set-Cookie" not in client.get("/api/v1/openapi.json").headers
    assert "Set-Cookie" not in client.get("/api/v1/nothing-here").headers


# --- reading and recording choices ------------------------------------------------------------


def test_unknown_subject_is_404(client: FlaskClient) -> None:
    for user_id in (987654, 2**31, 10**30):
        response = client.get(_processing(user_id), headers=AUTH)
        assert response.status_code == 404, user_id
        assert response.get_json()["error"] == "not_found"
        _assert_json_api_answer(response)
    for path in ("/api/v1/subjects/-1/processing", "/api/v1/subjects/abc/processing"):
        response = client.get(path, headers=AUTH)
        assert response.status_code == 404
        assert response.get_json() == {"error": "not_found"}


def test_a_choice_made_on_the_platform_is_recorded_with_source_api(
    app: Flask, client: FlaskClient, user: User
) -> None:
    response = client.put(_choice(user.id), json={"allowed": False}, headers=AUTH)
    assert response.status_code == 200
    state = response.get_json()["purposes"]["improve_models"]
    assert state["allowed"] is False
    assert state["source"] == "api"
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", state["since"])
    _assert_json_api_answer(response)

    assert _history(app, user.id) == [(False, "api")]
    assert client.get(_processing(user.id), headers=AUTH).get_json()["purposes"] == {
        "improve_models": state
    }
    with app.app_context():
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "choice.recorded")
        ).one()
        assert (event.actor_type, event.subject_user_id) == ("platform", user.id)
        assert event.details == {"allowed": False, "source": "api"}

    client.put(_choice(user.id), json={"allowed": True}, headers=AUTH)
    assert _history(app, user.id) == [(True, "api"), (False, "api")]


def test_a_choice_made_on_the_page_is_what_the_platform_reads(
    app: Flask, client: FlaskClient, user: User
) -> None:
    with app.app_context():
        set_choice(user.id, MODEL_IMPROVEMENT, allowed=False, source="page")
        db.session.commit()
    state = client.get(_processing(user.id), headers=AUTH).get_json()["purposes"]["improve_models"]
    assert (state["allowed"], state["source"]) == (False, "page")


def test_other_people_are_not_touched(
    app: Flask, client: FlaskClient, user: User, make_user: Any
) -> None:
    other = make_user(email="other@example.com")
    client.put(_choice(user.id), json={"allowed": False}, headers=AUTH)
    assert _history(app, other.id) == []
    assert client.get(_processing(other.id), headers=AUTH).get_json()["purposes"] == {
        "improve_models": DEFAULT_STATE
    }


@pytest.mark.parametrize(
    "case",
    [
        ("not json", "application/json", "invalid_json"),
        ('{"allowed": fal', "application/json", "invalid_json"),
        ("allowed=false", "application/x-www-form-urlencoded", "invalid_json"),
        ('{"allowed": false}', "text/plain", "invalid_json"),
        ("", "application/json", "invalid_json"),
        ("null", "application/json", "invalid_json"),
        ("[false]", "application/json", "invalid_body"),
        ('"false"', "application/json", "invalid_body"),
        ("{}", "application/json", "invalid_body"),
        ('{"allowed": "false"}', "application/json", "invalid_body"),
        ('{"allowed": 0}', "application/json", "invalid_body"),
        ('{"allowed": null}', "application/json", "invalid_body"),
        ('{"allowed": false, "reason": "x"}', "application/json", "invalid_body"),
    ],
)
def test_bad_bodies_are_400_and_store_nothing(
    app: Flask, client: FlaskClient, user: User, case: tuple[str, str, str]
) -> None:
    body, content_type, code = case
    response = client.put(_choice(user.id), data=body, content_type=content_type, headers=AUTH)
    assert response.status_code == 400
    assert response.get_json()["error"] == code
    assert response.get_json()["message"]
    _assert_json_api_answer(response)
    assert _history(app, user.id) == []


def test_unknown_purpose_or_subject_stores_nothing(
    app: Flask, client: FlaskClient, user: User
) -> None:
    response = client.put(_choice(user.id, "sell_data"), json={"allowed": True}, headers=AUTH)
    assert response.status_code == 404
    assert response.get_json()["error"] == "unknown_purpose"
    response = client.put(_choice(987654), json={"allowed": False}, headers=AUTH)
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"
    assert _history(app, user.id) == []
    with app.app_context():
        assert db.session.scalars(select(AuditEvent)).all() == []


def test_wrong_method_and_unknown_address_answer_json(client: FlaskClient, user: User) -> None:
    response = client.post(_processing(user.id), json={}, headers=AUTH)
    assert response.status_code == 405
    assert response.get_json() == {"error": "method_not_allowed"}
    assert "GET" in response.headers["Allow"]
    _assert_json_api_answer(response)
    response = client.delete(_choice(user.id), headers=AUTH)
    assert response.status_code == 405
    assert "PUT" in response.headers["Allow"]
    for path in ("/api/v1/nothing", "/api/v1", "/api/v1/subjects"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.get_json() == {"error": "not_found"}, path
        _assert_json_api_answer(response)


@pytest.mark.app_settings(max_content_length=64)
def test_too_large_a_body_is_json_413(client: FlaskClient, user: User) -> None:
    response = client.put(
        _choice(user.id), data='{"allowed": false, "pad": "' + "x" * 200 + '"}',
        content_type="application/json", headers=AUTH,
    )  # fmt: skip
    assert response.status_code == 413
    assert response.get_json()["error"] == "payload_too_large"


def test_an_unexpected_failure_is_json_500(
    client: FlaskClient, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the database fell over")

    monkeypatch.setattr("app.web.api.current_choice", broken)
    response = client.get(_processing(user.id), headers=AUTH)
    assert response.status_code == 500
    assert response.get_json() == {"error": "internal_error"}
    assert "fell over" not in response.get_data(as_text=True)
    _assert_json_api_answer(response)


@pytest.mark.app_settings(rate_limits=True, api_rate_limit="2 per minute")
def test_calls_are_limited_per_key(client: FlaskClient, user: User) -> None:
    for _ in range(2):
        assert client.get(_processing(user.id), headers=AUTH).status_code == 200
    response = client.get(_processing(user.id), headers=AUTH)
    assert response.status_code == 429
    assert response.get_json() == {"error": "rate_limited"}
    assert int(response.headers["Retry-After"]) > 0
    _assert_json_api_answer(response)
    # Another key has its own allowance.
    other = {"Authorization": f"Bearer {KEYS[0]}"}
    assert client.get(_processing(user.id), headers=other).status_code == 200


# --- the OpenAPI document ---------------------------------------------------------------------


def _openapi(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    _assert_json_api_answer(response)
    return response.get_json()


def _documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    base = document["servers"][0]["url"]
    methods = {"get", "put", "post", "patch", "delete"}
    return {
        (method.upper(), base + path)
        for path, item in document["paths"].items()
        for method in item
        if method in methods
    }


def _app_operations(app: Flask) -> set[tuple[str, str]]:
    operations = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            operations.add((method, path))
    return operations


def test_openapi_document_describes_exactly_the_routes_of_the_app(
    app: Flask, client: FlaskClient
) -> None:
    document = _openapi(client)  # public: no key needed
    assert document["openapi"].startswith("3.1")
    app_operations = _app_operations(app)
    assert len(app_operations) >= 3
    documented = _documented_operations(document)
    assert app_operations - documented == set(), "routes missing from app/api/openapi.yaml"
    assert documented - app_operations == set(), "documented operations the app does not have"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_openapi_document_is_complete(client: FlaskClient) -> None:
    document = _openapi(client)
    for ref in _refs(document):
        _resolve(document, ref)  # every $ref points at something
    scheme = document["components"]["securitySchemes"]["platformKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert document["security"] == [{"platformKey": []}]
    codes = set(document["components"]["schemas"]["Error"]["properties"]["error"]["enum"])
    assert {"unauthorized", "not_found", "invalid_json", "invalid_body", "unknown_purpose"} <= codes
    for path, item in document["paths"].items():
        path_parameters = {p.get("name") or _resolve(document, p["$ref"])["name"]
                           for p in item.get("parameters", [])}  # fmt: skip
        assert set(re.findall(r"{([a-z_]+)}", path)) == path_parameters, path
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert operation["operationId"] and operation["summary"]
            assert any(code.startswith("2") for code in operation["responses"]), path
            public = operation.get("security") == []
            assert public or "401" in operation["responses"], (method, path)


def test_every_documented_error_code_is_one_the_app_sends() -> None:
    document = yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))
    codes = set(document["components"]["schemas"]["Error"]["properties"]["error"]["enum"])
    sent_by_status = set(STATUS_CODES.values())
    sent_by_views = {"invalid_json", "invalid_body", "unknown_purpose"}
    assert codes == sent_by_status | sent_by_views
