"""The redaction every log line passes, and the JSON shape of a line."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from app.logs import (
    JsonFormatter,
    RedactingFilter,
    bound_request_id,
    incoming_request_id,
    redact,
)

SIGNED = "WzUsIm5ld3NsZXR0ZXIiXQ.Yx3kQ9.pQ7mZr2Vb8sLk1NfXw0aTq5HcJd"


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        ("mail to Ann.Example+news@mail.example.org failed", "Ann.Example+news@", "mail to"),
        (f"GET /unsubscribe/{SIGNED} 200", SIGNED, "GET /unsubscribe/"),
        ("nonce x3Kd9_Qw-7ZpLm2NbVc8Rt4 sent", "x3Kd9_Qw-7ZpLm2NbVc8Rt4", "sent"),
        ("connect postgresql://app:s3cr3t-pw@db/privacy", "s3cr3t-pw", "@db/privacy"),
        ("form {'email': 'x', 'password': 'hunter2hunter2'}", "hunter2hunter2", "'password'"),
        ("hash $argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaA", "m=65536", "hash"),
        ("ratelimit 5 per 1 hour (from|203.0.113.77) exceeded", "203.0.113.77", "203.0.113.0/24"),
        ("client 2001:db8:abcd:12:1:2:3:4 refused", "2001:db8:abcd:12:", "2001:db8:abcd::/48"),
    ],
)
def test_personal_data_and_secrets_are_taken_out(text: str, secret: str, kept: str) -> None:
    cleaned = redact(text)
    assert secret not in cleaned
    assert kept in cleaned


@pytest.mark.parametrize(
    "text",
    [
        "sqlalchemy.exc.PendingRollbackError: rolled back",
        "Running upgrade 0004_consent_marketing -> 0005_data_requests",
        "Listening at: http://127.0.0.1:5000 at 12:30:45",
        "GET /data/prompts 200 12.5 ms",
        "job 40f1c0aa1c8d4b0e9f7a5d6c3b2e1f00 ok",
    ],
)
def test_ordinary_lines_stay_readable(text: str) -> None:
    assert redact(text) == text


def test_a_literal_secret_goes_wherever_it_appears() -> None:
    assert redact("tried plain words", ("plain",)) == "tried [secret] words"


def _line(record: logging.LogRecord) -> dict[str, object]:
    RedactingFilter().filter(record)
    return json.loads(JsonFormatter().format(record))


def test_a_line_is_one_json_object_with_its_exception_redacted() -> None:
    try:
        raise ValueError("no account for ann@example.com")
    except ValueError:
        record = logging.LogRecord(
            "app.x", logging.ERROR, __file__, 1, "failed for %s", ("bob@example.com",), None
        )
        record.exc_info = sys.exc_info()
    with bound_request_id("req-1"):
        line = _line(record)
    assert line["level"] == "ERROR"
    assert line["logger"] == "app.x"
    assert line["message"] == "failed for [email]"
    assert line["request_id"] == "req-1"
    assert "ValueError: no account for [email]" in str(line["exception"])
    assert "example.com" not in json.dumps(line)


def test_a_sane_request_id_is_kept_and_anything_else_replaced() -> None:
    assert incoming_request_id("edge-7f3a.1_x") == "edge-7f3a.1_x"
    for bad in ("", "a b", "x" * 65, "<script>", "ann@example.com"):
        replaced = incoming_request_id(bad)
        assert replaced != bad
        assert len(replaced) == 16


def test_the_handler_writes_to_the_current_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.logs import StderrHandler

    handler = StderrHandler("json")
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    handler.handle(logging.LogRecord("t", logging.INFO, __file__, 1, "hi 198.51.100.9", (), None))
    assert json.loads(stream.getvalue())["message"] == "hi 198.51.100.0/24"
