"""The data map's wording reaches the translation catalog, each message with its line."""

from __future__ import annotations

import configparser
import io
from functools import cache

import pytest
import yaml
from babel.messages.extract import extract_from_file

from app.config import PROJECT_ROOT
from app.datamap import DATAMAP_PATH
from app.datamap.babel_extract import extract_datamap

Extracted = list[tuple[int, str, str, list[str]]]


@cache
def _extracted() -> Extracted:
    with DATAMAP_PATH.open("rb") as handle:
        return list(extract_datamap(handle, keywords={}, comment_tags=[], options={}))


def _expected_texts() -> dict[str, set[str]]:
    document = yaml.safe_load(DATAMAP_PATH.read_text(encoding="utf-8"))
    categories = document["categories"]
    return {
        "category names": {c["name"] for c in categories},
        "category descriptions": {c["description"] for c in categories},
        "purpose names": {p["name"] for p in document["purposes"].values()},
        "recipient names": {r["name"] for r in document["recipients"].values()},
        "legal basis names": {b["name"] for b in document["legal_bases"].values()},
        "legal basis descriptions": {b["description"] for b in document["legal_bases"].values()},
        "safeguard names": {s["name"] for s in document["safeguards"].values()},
        "hidden-field reasons": {
            spec["reason"]
            for c in categories
            for spec in (c.get("fields") or {}).get("hidden", {}).values()
        },
        "retention texts": {c["retention"]["text"] for c in categories},
        "obligations": {
            c["erasure"]["obligation"] for c in categories if c["erasure"].get("obligation")
        },
    }


@pytest.mark.parametrize("kind", list(_expected_texts()))
def test_every_text_of_a_kind_is_extracted(kind: str) -> None:
    expected = _expected_texts()[kind]
    assert expected, f"the shipped map has no {kind} (the test would prove nothing)"
    extracted = {text for _, _, text, _ in _extracted()}
    assert expected <= extracted, f"not extracted: {sorted(expected - extracted)}"


def test_each_message_carries_the_line_it_is_on() -> None:
    lines = DATAMAP_PATH.read_text(encoding="utf-8").splitlines()
    for lineno, funcname, text, comments in _extracted():
        assert funcname == "gettext"
        assert comments == ["data map"]
        line = lines[lineno - 1]
        first_word = text.split()[0]
        if line.rstrip().endswith((">-", ">", "|", "|-")):  # a folded block starts on the next line
            assert first_word in lines[lineno], (lineno, text)
        else:
            assert first_word in line, (lineno, text)


def test_known_messages_have_known_lines() -> None:
    lines = DATAMAP_PATH.read_text(encoding="utf-8").splitlines()
    by_text = {text: lineno for lineno, _, text, _ in _extracted()}
    assert lines[by_text["Prompts"] - 1].strip() == "name: Prompts"
    obligation = next(t for t in by_text if t.startswith("Tax and accounting law requires"))
    assert lines[by_text[obligation] - 1].strip() == "obligation: >-"
    # A folded scalar arrives as one line of text, as a translator should see it.
    assert "\n" not in obligation


def test_keys_codes_and_identifiers_are_not_extracted() -> None:
    extracted = {text for _, _, text, _ in _extracted()}
    for not_wording in (
        "account",
        "User",
        "user_id",
        "processor",
        "US",
        "delete",
        "scc",
        "contract",
    ):
        assert not_wording not in extracted


def test_extractor_handles_an_empty_file() -> None:
    assert list(extract_datamap(io.BytesIO(b""), {}, [], {})) == []


def test_babel_cfg_wires_the_extractor_to_the_data_map() -> None:
    config = configparser.ConfigParser()
    config.read(PROJECT_ROOT / "babel.cfg")
    method = config["extractors"]["datamap"]
    assert config.has_section("datamap: app/datamap/*.yaml")
    messages = list(extract_from_file(method, str(DATAMAP_PATH)))
    assert {message[1] for message in messages} == {text for _, _, text, _ in _extracted()}
