"""Marketing topics as data (checked at start-up), the keyed address hash, and the link tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from itsdangerous import URLSafeSerializer

from app import create_app
from app.config import Settings
from app.datamap.babel_extract import extract_datamap
from app.services import marketing
from app.services.marketing import (
    LinkInvalidError,
    TopicsFileError,
    UnknownTopicError,
    load_topics,
)

SECRET = "unit-test-secret-key-0123456789abcdef"


# --- the topics file --------------------------------------------------------------------------


def test_the_topics_file_has_the_four_email_topics() -> None:
    topics = load_topics()
    assert [t.key for t in topics] == ["product_updates", "newsletter", "offers", "research"]
    assert {t.channel for t in topics} == {"email"}
    assert [t.name for t in topics] == [
        "Product updates",
        "Newsletter",
        "Offers and discounts",
        "Research invitations",
    ]
    assert all(t.description for t in topics)


def test_topic_wording_reaches_the_translation_catalog() -> None:
    with marketing.TOPICS_PATH.open("rb") as handle:
        texts = {text for _line, _f, text, _c in extract_datamap(handle, {}, [], {})}
    for topic in load_topics():
        assert topic.name in texts
        assert topic.description in texts
    assert "product_updates" not in texts  # keys are not wording


GOOD = """
- key: newsletter
  channel: email
  name: Newsletter
  description: Monthly.
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 1\ntopics: [", "cannot be read"),
        ("topics: []\n", "version: 1"),
        ("version: 1\ntopics: []\n", "non-empty list"),
        ("version: 1\ntopics:\n- just a string\n", "entry 1.*mapping"),
        ("version: 1\ntopics:" + GOOD.replace("name: Newsletter", "name: ''"), "'name'"),
        ("version: 1\ntopics:" + GOOD.replace("  description: Monthly.\n", ""), "'description'"),
        ("version: 1\ntopics:" + GOOD.replace("channel: email", "channel: sms"), "channel 'sms'"),
        ("version: 1\ntopics:" + GOOD.replace("key: newsletter", "key: News-Letter"), "key must"),
        ("version: 1\ntopics:" + GOOD + "  colour: blue\n", r"unknown key\(s\) \['colour'\]"),
        ("version: 1\ntopics:" + GOOD + GOOD, "'newsletter': the key is used twice"),
    ],
    ids=[
        "not-yaml",
        "no-version",
        "no-topics",
        "not-a-mapping",
        "empty-name",
        "no-description",
        "unknown-channel",
        "bad-key",
        "unknown-field",
        "duplicate",
    ],
)
def test_a_bad_topics_file_is_refused_with_the_entry_named(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "topics.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TopicsFileError, match=message):
        load_topics(path)


@pytest.fixture
def fresh_topics() -> Iterator[None]:
    marketing.topics.cache_clear()
    yield
    marketing.topics.cache_clear()


def test_the_app_does_not_start_with_a_bad_topics_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_topics: None
) -> None:
    bad = tmp_path / "topics.yaml"
    bad.write_text("version: 1\ntopics:" + GOOD.replace("channel: email", "channel: fax"))
    monkeypatch.setattr(marketing, "TOPICS_PATH", bad)
    with pytest.raises(TopicsFileError, match="channel 'fax'"):
        create_app(
            {"data_dir": tmp_path / "data", "database_url": f"sqlite:///{tmp_path}/x.sqlite3"}
        )


# --- addresses --------------------------------------------------------------------------------


def test_the_keyed_hash_is_hmac_sha256_of_the_trimmed_lower_cased_address() -> None:
    key = b"k" * 32
    expected = hmac.new(key, b"jane.doe@example.org", hashlib.sha256).hexdigest()
    assert marketing.email_hash(" Jane.Doe@Example.ORG\n", key) == expected
    assert marketing.email_hash("jane.doe@example.org", b"another key") != expected
    assert re.fullmatch(r"[0-9a-f]{64}", expected)


# --- tokens -----------------------------------------------------------------------------------


@pytest.fixture
def keys_app() -> Iterator[Flask]:
    """Just enough of an app for the signing keys: SECRET_KEY and one older key."""
    app = Flask(__name__)
    app.config["SETTINGS"] = Settings(secret_key=SECRET, secret_key_fallbacks=("older-key",))
    with app.app_context():
        yield app


def test_an_unsubscribe_token_is_short_and_names_no_address(keys_app: Flask) -> None:
    token = marketing.unsubscribe_token(123456, "product_updates")
    assert len(token) < 80
    assert re.fullmatch(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+", token)
    payload = token.split(".")[0]
    # Everything inside, readable by anyone: an id and a topic, nothing more.
    assert json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))) == [
        123456,
        "product_updates",
    ]
    assert marketing.read_unsubscribe_token(token) == (123456, "product_updates")
    assert marketing.read_unsubscribe_token(marketing.unsubscribe_token(7, "*")) == (7, "*")


def test_tokens_signed_with_an_older_key_are_accepted(keys_app: Flask) -> None:
    old = URLSafeSerializer("older-key", salt=marketing.UNSUBSCRIBE_SALT).dumps([5, "offers"])
    assert marketing.read_unsubscribe_token(old) == (5, "offers")
    unknown = URLSafeSerializer("unknown-key", salt=marketing.UNSUBSCRIBE_SALT).dumps([5, "offers"])
    with pytest.raises(LinkInvalidError):
        marketing.read_unsubscribe_token(unknown)


@pytest.mark.parametrize(
    "payload",
    [[5], [5, "offers", 1], ["5", "offers"], [5, 7], {"s": 5}, [True, "offers"]],
    ids=["short", "long", "string-id", "number-topic", "mapping", "bool-id"],
)
def test_tokens_of_the_wrong_shape_are_invalid(keys_app: Flask, payload: object) -> None:
    token = URLSafeSerializer(SECRET, salt=marketing.UNSUBSCRIBE_SALT).dumps(payload)
    with pytest.raises(LinkInvalidError):
        marketing.read_unsubscribe_token(token)


def test_a_token_for_a_topic_that_does_not_exist_is_unknown(keys_app: Flask) -> None:
    token = URLSafeSerializer(SECRET, salt=marketing.UNSUBSCRIBE_SALT).dumps([5, "horoscopes"])
    with pytest.raises(UnknownTopicError):
        marketing.read_unsubscribe_token(token)
    with pytest.raises(UnknownTopicError):
        marketing.unsubscribe_token(5, "horoscopes")


def test_tokens_made_for_another_purpose_are_invalid(keys_app: Flask) -> None:
    manage = marketing.manage_link_token(5)
    with pytest.raises(LinkInvalidError):
        marketing.read_unsubscribe_token(manage)
