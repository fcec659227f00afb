"""The platform's JSON API (`/api/v1`), authenticated with keys from PLATFORM_API_KEYS.

Machine clients only: every answer is JSON (errors included, so a client never has to parse
an HTML error page), nothing is cached, and no session is read or written, so a browser
that happens to carry a session cookie gets no privileges here and no cookie back.
"""

from __future__ import annotations

import json
import logging
from functools import cache
from typing import Any

import yaml
from flask import Blueprint, current_app, request
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.wrappers import Response

from app.config import PROJECT_ROOT
from app.extensions import db, limiter
from app.models import User
from app.models.types import MAX_ID
from app.services.api_keys import key_label, matching_key_index
from app.services.choices import OPTIONAL_PURPOSES, current_choice, set_choice
from app.web.safety import without_session

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api/v1")

OPENAPI_PATH = PROJECT_ROOT / "app" / "api" / "openapi.yaml"
PUBLIC_ENDPOINTS = frozenset({"api.openapi"})
# The same header as every page of the app: no cache, shared or private, keeps an answer.
NO_STORE = "private, no-store"
# Machine-readable codes for the statuses a client may meet (documented in openapi.yaml).
STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str | None = None) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message


# --- responses --------------------------------------------------------------------------------


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = current_app.response_class(
        json.dumps(body, ensure_ascii=False), status=status, mimetype="application/json"
    )
    response.headers["Cache-Control"] = NO_STORE
    response.headers.update(headers or {})
    return response


def _error(
    status: int, code: str, message: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    body = {"error": code} if message is None else {"error": code, "message": message}
    return json_response(body, status, headers)


def _unauthorized() -> Response:
    # Nothing about why: a missing key, an unknown key and no configured keys look the same.
    return _error(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    if status == 401:
        return _unauthorized()
    headers = {}
    if status == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
    return _error(
        status,
        STATUS_CODES.get(status, "error" if status < 500 else "internal_error"),
        headers=headers,
    )


def _internal_error(error: Exception) -> Response:
    log.exception("unhandled error in the platform API", exc_info=error)
    db.session.rollback()
    return _error(500, "internal_error")


bp.register_error_handler(ApiError, lambda e: _error(e.status, e.code, e.message))
bp.register_error_handler(HTTPException, _http_error)
bp.register_error_handler(InternalServerError, _internal_error)
bp.register_error_handler(Exception, _internal_error)


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = NO_STORE
    return response


# --- sessions, routing errors, keys -----------------------------------------------------------


def _is_api_path(path: str) -> bool:
    prefix = bp.url_prefix or ""
    return path == prefix or path.startswith(prefix + "/")


@bp.before_app_request
def _json_routing_errors() -> Response | None:
    """An unknown address or method under /api/v1 is JSON too (it never reaches the
    blueprint, so its error handlers cannot answer it)."""
    error = request.routing_exception
    if error is None or not _is_api_path(request.path):
        return None
    without_session()
    if isinstance(error, HTTPException) and (error.code or 500) >= 400:
        return _http_error(error)
    return None  # a redirect (e.g. a missing slash) is answered as usual


def _bearer_token() -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _is_valid_key(token: str) -> bool:
    keys = current_app.config["SETTINGS"].platform_api_keys
    return matching_key_index(token, keys) is not None


def _api_limit() -> str:
    return current_app.config["SETTINGS"].api_rate_limit


def _api_limit_key() -> str:
    """Per API key; callers without a valid key share their address's allowance."""
    token = _bearer_token()
    if _is_valid_key(token):
        return f"api-key|{key_label(token)}"
    return f"api-anonymous|{request.remote_addr}"


@bp.before_request
def _authenticate() -> Response | None:
    without_session()
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    token = _bearer_token()
    if not _is_valid_key(token):
        return _unauthorized()
    return None


limiter.limit(_api_limit, key_func=_api_limit_key)(bp)


# --- endpoints --------------------------------------------------------------------------------


@cache
def load_openapi() -> dict[str, Any]:
    """The OpenAPI document, read once per process."""
    return yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))


@bp.get("/openapi.json")
def openapi() -> Response:
    return json_response(load_openapi())


def require_subject(user_id: int) -> None:
    if user_id > MAX_ID or db.session.get(User, user_id) is None:
        raise ApiError(404, "not_found", "There is no subject with this id.")


def _processing_state(user_id: int) -> dict[str, Any]:
    purposes = {}
    for purpose in OPTIONAL_PURPOSES:
        choice = current_choice(user_id, purpose)
        purposes[purpose] = {
            "allowed": choice.allowed,
            "source": choice.source,
            "since": choice.since.isoformat() if choice.since else None,
        }
    return {"subject": user_id, "purposes": purposes}


def _allowed_from_body() -> bool:
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(
            400,
            "invalid_json",
            'Send a JSON object such as {"allowed": false} with Content-Type: application/json.',
        )
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "The body must be a JSON object.")
    unknown = sorted(set(body) - {"allowed"})
    if unknown:
        raise ApiError(400, "invalid_body", f"Unknown field(s): {', '.join(unknown)}.")
    if not isinstance(body.get("allowed"), bool):
        raise ApiError(400, "invalid_body", "The field 'allowed' must be true or false.")
    return body["allowed"]


@bp.get("/subjects/<int:user_id>/processing")
def processing(user_id: int) -> Response:
    require_subject(user_id)
    return json_response(_processing_state(user_id))


@bp.put("/subjects/<int:user_id>/processing/<purpose>")
def set_processing(user_id: int, purpose: str) -> Response:
    """The person made a choice on the platform itself: record it here, where it counts."""
    if purpose not in OPTIONAL_PURPOSES:
        raise ApiError(404, "unknown_purpose", "This purpose cannot be switched on or off.")
    require_subject(user_id)
    allowed = _allowed_from_body()
    set_choice(user_id, purpose, allowed=allowed, source="api")
    db.session.commit()
    return json_response(_processing_state(user_id))


# Each area's endpoints live in its own module, on this blueprint (keys, limits, JSON errors).
from app.web import api_consent, api_marketing  # noqa: E402, F401
