"""The platform API, fuzzed from its own OpenAPI file (schemathesis, in-process over WSGI).

Every operation of app/api/openapi.yaml gets values generated from the schema, valid and
invalid, sent with a platform key to the Flask app. Each answer must not be a server error,
must use a status code the file documents for the operation, be JSON as documented, carry
the documented headers and match the documented schema. A PUT that is refused stores
nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEvent, User
from app.services import marketing
from app.web.api import load_openapi

KEYS = ("fuzz-platform-key-0123456789",)
pytestmark = pytest.mark.app_settings(platform_api_keys=KEYS)
KEY = {"Authorization": f"Bearer {KEYS[0]}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = 25

schema = schemathesis.openapi.from_dict(load_openapi())


@pytest.fixture
def people(app: Flask, make_user: Callable[..., User]) -> None:
    """Accounts with small ids (the generated ids hit some), one of them on the mailing list."""
    for number in range(3):
        make_user(email=f"fuzz{number}@example.com")
    with app.app_context():
        marketing.add_subscriber("fuzz0@example.com")
        marketing.suppress_address("fuzz0@example.com", "staff")
        db.session.commit()


def _writes(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(AuditEvent)) or 0


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_the_api_answers_as_its_openapi_file_says(
    case: schemathesis.Case, app: Flask, people: None
) -> None:
    before = _writes(app)
    response = case.call(app=app, headers=KEY)
    case.validate_response(response, checks=CHECKS)
    if case.method.upper() != "GET" and response.status_code >= 400:
        assert _writes(app) == before, "a refused call recorded something"
