"""The platform API for marketing: the suppression list with a cursor, an address's topics."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.services import marketing

KEYS = ("platform-key-one-0123456789",)
pytestmark = pytest.mark.app_settings(platform_api_keys=KEYS)
AUTH = {"Authorization": f"Bearer {KEYS[0]}"}


def _get(client: FlaskClient, path: str) -> Any:
    response = client.get(path, headers=AUTH)
    assert response.mimetype == "application/json"
    assert "Set-Cookie" not in response.headers
    return response


def _unsubscribe(app: Flask, email: str, scope: str, source: str = "link") -> None:
    with app.app_context():
        subscriber = marketing.find_subscriber(email)
        assert subscriber is not None
        marketing.unsubscribe(subscriber, scope, source=source)


def _seed(app: Flask, count: int) -> list[str]:
    emails = [f"reader{n}@example.org" for n in range(count)]
    with app.app_context():
        for email in emails:
            marketing.seed_subscriber(email, ("newsletter",))
    return emails


def test_the_suppression_list_is_read_with_a_cursor_to_the_end(
    app: Flask, client: FlaskClient
) -> None:
    emails = _seed(app, 5)
    for email in emails:
        _unsubscribe(app, email, "newsletter")
    _unsubscribe(app, emails[0], "*", source="one_click")

    seen: list[dict[str, Any]] = []
    cursor = "0"
    pages = 0
    while True:
        body = _get(client, f"/api/v1/suppressions?since={cursor}&limit=4").get_json()
        pages += 1
        seen += body["entries"]
        cursor = body["next"]
        if not body["more"]:
            break
    assert pages == 2
    assert [entry["id"] for entry in seen] == sorted(entry["id"] for entry in seen)
    with app.app_context():
        hashes = [marketing.email_hash(email) for email in emails]
    assert [(e["email_hash"], e["topic"], e["suppressed"], e["reason"]) for e in seen] == [
        *[(h, "newsletter", True, "unsubscribe") for h in hashes],
        (hashes[0], "*", True, "one_click"),
    ]
    assert "reader0@example.org" not in str(seen)

    # At the end: nothing new, the same cursor back, until something happens.
    end = _get(client, f"/api/v1/suppressions?since={cursor}").get_json()
    assert end == {"entries": [], "next": cursor, "more": False}
    _unsubscribe(app, emails[1], "offers")
    later = _get(client, f"/api/v1/suppressions?since={cursor}").get_json()
    assert [(e["topic"], e["email_hash"]) for e in later["entries"]] == [("offers", hashes[1])]


def test_a_resubscription_appears_as_a_lifted_entry(app: Flask, client: FlaskClient) -> None:
    (email,) = _seed(app, 1)
    _unsubscribe(app, email, "newsletter")
    with app.app_context():
        subscriber = marketing.find_subscriber(email)
        assert subscriber is not None
        marketing.resubscribe(subscriber, ["newsletter"], source="link")
    entries = _get(client, "/api/v1/suppressions").get_json()["entries"]
    assert [(e["suppressed"], e["reason"]) for e in entries] == [
        (True, "unsubscribe"),
        (False, "resubscribe"),
    ]


@pytest.mark.parametrize("query", ["since=-1", "since=abc", "limit=0", "limit=1001", "since=1.5"])
def test_bad_paging_values_are_400(client: FlaskClient, query: str) -> None:
    response = _get(client, f"/api/v1/suppressions?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"] == "bad_request"


def test_an_addresses_topics(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        marketing.seed_subscriber("reader@example.org", ("newsletter", "offers"))
    _unsubscribe(app, "reader@example.org", "offers")

    response = _get(client, "/api/v1/subscriptions/Reader@Example.org")

    assert response.status_code == 200
    body = response.get_json()
    assert body["has_account"] is False
    assert body["locale"] == "en"
    assert {key: (t["status"], t["suppressed"]) for key, t in body["topics"].items()} == {
        "product_updates": ("none", False),
        "newsletter": ("subscribed", False),
        "offers": ("unsubscribed", True),
        "research": ("none", False),
    }
    assert body["topics"]["research"]["since"] is None


def test_unknown_and_invalid_addresses(client: FlaskClient) -> None:
    unknown = _get(client, "/api/v1/subscriptions/nobody@example.org")
    invalid = _get(client, "/api/v1/subscriptions/not-an-address")
    assert (unknown.status_code, unknown.get_json()["error"]) == (404, "not_found")
    assert (invalid.status_code, invalid.get_json()["error"]) == (400, "bad_request")


def test_both_need_a_key(client: FlaskClient) -> None:
    for path in ("/api/v1/suppressions", "/api/v1/subscriptions/reader@example.org"):
        response = client.get(path)
        assert response.status_code == 401
        assert response.get_json() == {"error": "unauthorized"}
