"""Platform API endpoints for cookie consent: `GET /consent/<subject>`.

The platform's servers ask what a person (an account id) or a browser (the random id in its
consent cookie) has chosen, before setting or reading an optional cookie.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from werkzeug.wrappers import Response

from app.extensions import db
from app.jurisdictions import jurisdiction_for
from app.models import User
from app.services import consent as service
from app.services.consent import BROWSER_ID_PATTERN, ConsentState, get_catalogue
from app.web.api import ApiError, bp, json_response, require_subject
from app.web.consent import current_notice_version

ACCOUNT_ID = re.compile(r"[0-9]{1,12}")  # ASCII digits only ("٣" is a digit to str.isdigit)


def _not_found() -> ApiError:
    return ApiError(404, "not_found", "There is no subject with this id.")


def _account_state(user_id: int) -> ConsentState:
    require_subject(user_id)
    record = service.latest_for_user(user_id)
    if record is not None:
        return service.state_from_record(record)
    user = db.session.get(User, user_id)
    settings = current_app.config["SETTINGS"]
    jurisdiction = jurisdiction_for(
        user.country if user else None, user.region if user else None, settings.default_country
    )
    return service.default_state(get_catalogue(), jurisdiction)


def _browser_state(browser_id: str) -> ConsentState:
    record = service.latest_for_browser(browser_id)
    if record is None:
        raise _not_found()
    return service.state_from_record(record)


def _body(subject: int | str, kind: str, state: ConsentState) -> dict[str, Any]:
    catalogue = get_catalogue()
    settings = current_app.config["SETTINGS"]
    current = state.is_current(
        purposes_version=catalogue.version,
        notice_version=current_notice_version(),
        max_age_days=settings.consent_max_age_days,
        now=datetime.now(UTC),
    )
    return {
        "subject": subject,
        "subject_type": kind,
        "choices": service.choices_for(catalogue, state),
        "current": current,
        "receipt_id": state.receipt_id,
        "source": state.source,
        "gpc": state.gpc,
        "decided_at": state.decided_at.isoformat() if state.decided_at else None,
        "purposes_version": state.purposes_version or None,
        "notice_version": state.notice_version or None,
        "jurisdiction": state.jurisdiction,
        "consent_model": state.consent_model,
        "sale_or_sharing_purposes": list(catalogue.sale_or_sharing_keys),
    }


@bp.get("/consent/<subject>")
def consent(subject: str) -> Response:
    """The current cookie choices of an account (digits) or a browser (its random id)."""
    if ACCOUNT_ID.fullmatch(subject):
        user_id = int(subject)
        return json_response(_body(user_id, "account", _account_state(user_id)))
    if BROWSER_ID_PATTERN.fullmatch(subject):
        return json_response(_body(subject, "browser", _browser_state(subject)))
    raise _not_found()
