"""Platform API endpoints for marketing: the suppression list and a subscriber's topics.

The platform's sending system follows `GET /suppressions` with a cursor (`since=`) and never
emails an address whose keyed hash is suppressed for the topic; `GET /subscriptions/<email>`
answers what one address asked for. Addresses travel only in the second call's path; the list
holds hashes (HMAC-SHA256 with SUPPRESSION_HASH_KEY over the trimmed, lower-cased address).
"""

from __future__ import annotations

from typing import Any

from flask import request
from werkzeug.wrappers import Response

from app.models import MarketingSubscriber, SuppressionEntry
from app.services import marketing
from app.web.api import ApiError, bp, json_response

DEFAULT_LIMIT = 100
MAX_CURSOR = 2**63 - 1  # the id column is a 64-bit integer on PostgreSQL


def _whole_number(name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not minimum <= int(raw) <= maximum:
        raise ApiError(
            400,
            "bad_request",
            f"'{name}' must be a whole number from {minimum} to {maximum}.",
        )
    return int(raw)


def _entry(entry: SuppressionEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "email_hash": entry.email_hash,
        "topic": entry.topic,
        "suppressed": entry.suppressed,
        "reason": entry.reason,
        "created_at": entry.created_at.isoformat(),
    }


@bp.get("/suppressions")
def suppressions() -> Response:
    """Entries after the cursor, oldest first; `next` is the cursor for the following call."""
    since = _whole_number("since", 0, minimum=0, maximum=MAX_CURSOR)
    limit = _whole_number("limit", DEFAULT_LIMIT, minimum=1, maximum=marketing.MAX_PAGE)
    # One more than asked for tells whether another page follows, without a count query.
    entries = marketing.suppressions_since(since, limit + 1)
    more = len(entries) > limit
    entries = entries[:limit]
    return json_response(
        {
            "entries": [_entry(entry) for entry in entries],
            "next": str(entries[-1].id if entries else since),
            "more": more,
        }
    )


def _subscriber_state(subscriber: MarketingSubscriber) -> dict[str, Any]:
    topics = {}
    for state in marketing.topic_states(subscriber.id):
        key = state.topic.key
        topics[key] = {
            "status": state.status,
            "since": state.since.isoformat() if state.since else None,
            "suppressed": marketing.is_suppressed(subscriber.email_hash, key),
        }
    return {
        "email_hash": subscriber.email_hash,
        "locale": subscriber.locale,
        "has_account": subscriber.user_id is not None,
        "topics": topics,
    }


@bp.get("/subscriptions/<path:email>")
def subscriptions(email: str) -> Response:
    try:
        address = marketing.valid_address(email)
    except marketing.InvalidAddressError:
        raise ApiError(400, "bad_request", "This is not a valid email address.") from None
    subscriber = marketing.find_subscriber(address)
    if subscriber is None:
        raise ApiError(404, "not_found", "This address is not on the mailing list.")
    return json_response(_subscriber_state(subscriber))
