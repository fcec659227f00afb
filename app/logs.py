"""Logging: one JSON object per line (or plain text in development), a request id on every
record, and nothing that identifies a person or opens an account.

Every record that reaches our handler on the root logger passes `RedactingFilter` first:
email addresses, signed tokens and other long random strings, passwords (after `password=`,
in URLs, and the literal values typed into this request's password and token fields) and full
IP addresses are replaced, in the message, the exception and the stack. Logging is configured
once per process, by `create_app` or gunicorn (`gunicorn.conf.py`), and only when nothing else
(pytest, an operator's own config) has put handlers on the root logger.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from flask import Flask, Response, g, request

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_FIELDS = ("method", "path", "status", "duration_ms")
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
# The literal secrets of the request being served (its password and token fields).
_request_secrets: ContextVar[tuple[str, ...]] = ContextVar("request_secrets", default=())

# --- redaction --------------------------------------------------------------------------------

_URL_CREDENTIALS = re.compile(r"(?<=://)[^\s/@:]+:[^\s/@]+@")
_KEY_VALUE_SECRET = re.compile(
    r"(?i)\b((?:[\w-]*password|passwd|pwd|secret|[\w-]*token|api[_-]?key|authorization)"
    r"[\"']?\s*[:=]\s*[\"']?)(?!\[)([^\s\"'&,;)}\]]+)"
)
_EMAIL = re.compile(r"[\w.!#$%&'*+=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_PASSWORD_HASH = re.compile(r"\$argon2[a-z]*\$[A-Za-z0-9$=,+/.-]+")
# Runs of URL-safe characters, dots included: an itsdangerous token is `payload.sig` or
# `payload.timestamp.sig`; the run goes as a whole when one of its parts looks random.
_WORD_RUN = re.compile(r"[A-Za-z0-9_.-]{20,}")
_IPV4 = re.compile(r"(?<![\d.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?!\d|\.\d)")
_IPV6_CANDIDATE = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
_DEV_SERVER_REQUEST = re.compile(r' - - \[[^\]]*\] "')
_HAS_DIGIT = re.compile(r"\d")
_HAS_LOWER = re.compile(r"[a-z]")
_HAS_UPPER = re.compile(r"[A-Z]")
SHORTEST_SCRUBBED_SECRET = 4  # shorter literal values would blank ordinary words


def _looks_random(part: str) -> bool:
    """A part of a token, key or digest. Names stay readable: a class such as
    `PendingRollbackError`, a migration such as `0002_audit_choices_email_notice`."""
    digit, lower, upper = (bool(p.search(part)) for p in (_HAS_DIGIT, _HAS_LOWER, _HAS_UPPER))
    if len(part) >= 20 and digit and lower and upper:
        return True  # base64url
    if len(part) >= 24 and lower and upper:
        return True  # base64url that happens to have no digit
    return len(part) >= 40 and digit  # a digest; RQ's 32-digit job ids stay readable


def _redact_run(match: re.Match[str]) -> str:
    run = match.group(0)
    if any(_looks_random(part) for part in run.split(".")):
        return "[token]"
    return run


def _redact_ipv4(match: re.Match[str]) -> str:
    try:
        address = ipaddress.IPv4Address(match.group(0))
    except ValueError:
        return match.group(0)  # a version number
    if address.is_loopback or address.is_unspecified:
        return match.group(0)  # the server's own bind address identifies nobody
    return str(ipaddress.IPv4Network((address, 24), strict=False))


def _redact_ipv6(match: re.Match[str]) -> str:
    try:
        address = ipaddress.IPv6Address(match.group(0))
    except ValueError:
        return match.group(0)  # a time of day, or some other run of colons
    if address.is_loopback or address.is_unspecified:
        return match.group(0)
    return str(ipaddress.IPv6Network((address, 48), strict=False))


def redact(text: str, literals: tuple[str, ...] = ()) -> str:
    """`text` without email addresses, tokens, passwords or full IP addresses."""
    for literal in literals:
        text = text.replace(literal, "[secret]")
    text = _URL_CREDENTIALS.sub("[credentials]@", text)
    text = _KEY_VALUE_SECRET.sub(r"\1[secret]", text)
    text = _EMAIL.sub("[email]", text)
    text = _PASSWORD_HASH.sub("[password-hash]", text)
    text = _WORD_RUN.sub(_redact_run, text)
    text = _IPV4.sub(_redact_ipv4, text)
    return _IPV6_CANDIDATE.sub(_redact_ipv6, text)


class RedactingFilter(logging.Filter):
    """Rewrites each record in place, before any formatter sees it, and adds `request_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        literals = _request_secrets.get()
        record.request_id = getattr(record, "request_id", None) or _request_id.get()
        record.msg = redact(_message_of(record), literals)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, literals)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, literals)
        for name in REQUEST_FIELDS:
            value = getattr(record, name, None)
            if isinstance(value, str):
                setattr(record, name, redact(value, literals))
        return True


def _message_of(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a bad format string must not lose the record
        return f"{record.msg} {record.args!r}"


# --- formats ----------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, the request
    fields on a request line, and the (redacted) exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for name in REQUEST_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s [%(name)s] %(request_tag)s%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        record.request_tag = f"[{request_id}] " if request_id else ""
        return super().format(record)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is when the record is emitted (so a test capturing
    stderr sees the lines), through the redaction filter."""

    def __init__(self, log_format: str) -> None:
        super().__init__()
        self.addFilter(RedactingFilter())
        self.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass  # always the current sys.stderr


class _WithoutDevServerRequestLines(logging.Filter):
    """`flask run` logs each request with its raw path and address; the app's own request
    line replaces it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and _DEV_SERVER_REQUEST.search(record.msg))


def handler_from_environment() -> logging.Handler:
    """For gunicorn's logging config: the same handler the app installs."""
    return StderrHandler(_env_log_format())


def _env_log_format() -> str:
    default = "json" if os.environ.get("PRIVACY_CENTER_ENV") == "production" else "text"
    return os.environ.get("LOG_FORMAT", "").strip().lower() or default


def configure_logging(log_format: str, level: str) -> None:
    """Our handler on the root logger, unless something else already configured logging
    (pytest's capture, an operator's logging config): then it is left alone."""
    root = logging.getLogger()
    ours = [handler for handler in root.handlers if isinstance(handler, StderrHandler)]
    if root.handlers and not ours:
        return
    for handler in ours:
        root.removeHandler(handler)
    root.addHandler(StderrHandler(log_format))
    root.setLevel(level.upper())
    werkzeug = logging.getLogger("werkzeug")
    if not any(isinstance(f, _WithoutDevServerRequestLines) for f in werkzeug.filters):
        werkzeug.addFilter(_WithoutDevServerRequestLines())


# --- the request id and the request line ------------------------------------------------------


def current_request_id() -> str | None:
    return _request_id.get()


@contextmanager
def bound_request_id(request_id: str | None) -> Iterator[None]:
    """Records logged inside carry `request_id` (a job run for a request); None keeps the
    current one."""
    if request_id is None:
        yield
        return
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


def incoming_request_id(header: str | None) -> str:
    """The caller's id when it is a sane token, else a new one."""
    if header and _SANE_REQUEST_ID.fullmatch(header):
        return header
    return secrets.token_hex(8)


def install_request_logging(app: Flask) -> None:
    """A request id for every request (echoed in `X-Request-ID`) and one line per request."""
    app.before_request(_start_request)
    app.after_request(_finish_request)
    app.teardown_request(_forget_request)


def _start_request() -> None:
    g.request_started = time.perf_counter()
    g.request_id = incoming_request_id(request.headers.get(REQUEST_ID_HEADER))
    g.request_log_tokens = (
        _request_id.set(g.request_id),
        _request_secrets.set(_secrets_of_request()),
    )


def _secrets_of_request() -> tuple[str, ...]:
    """Values typed into password and token fields, or carried as a token in the path."""
    values = [
        str(value) for name, value in (request.view_args or {}).items() if "token" in name.lower()
    ]
    values += [value for name, value in request.args.items() if "token" in name.lower()]
    if request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        values += [
            value
            for name, value in request.form.items()
            if "password" in name.lower() or "token" in name.lower()
        ]
    return tuple(v for v in values if len(v) >= SHORTEST_SCRUBBED_SECRET)


def route_path() -> str:
    """The path for the log: the route's template with its values filled in, except tokens;
    the raw path (redacted later) when no route matched."""
    rule = request.url_rule
    if rule is None:
        return request.path
    view_args = request.view_args or {}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if "token" in name.lower() or name not in view_args:
            return f"<{name}>"
        return str(view_args[name])

    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", fill, rule.rule)


def _finish_request(response: Response) -> Response:
    request_id = g.get("request_id") or incoming_request_id(None)
    response.headers[REQUEST_ID_HEADER] = request_id
    started = g.get("request_started", time.perf_counter())
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    path = route_path()
    logging.getLogger("app.request").info(
        "%s %s %s %.1f ms",
        request.method,
        path,
        response.status_code,
        duration_ms,
        extra={
            "method": request.method,
            "path": path,
            "status": response.status_code,
            "duration_ms": duration_ms,
            "request_id": request_id,
        },
    )
    return response


def _forget_request(_error: BaseException | None) -> None:
    tokens = g.pop("request_log_tokens", None)
    if not tokens:
        return
    try:
        _request_secrets.reset(tokens[1])
        _request_id.reset(tokens[0])
    except ValueError:  # torn down in another context than it started in
        _request_secrets.set(())
        _request_id.set(None)
