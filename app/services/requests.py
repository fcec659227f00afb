"""Data-subject requests: made, verified by an emailed link, answered within the legal time.

Every request is verified before anything is done with it. Signed in, the web layer asks
for the password again and this module emails a single-use link to the account's address;
not signed in, the link goes to the address the person typed, whether or not an account uses
it, so the answer never tells a stranger who has an account. Following the link (a button on
the page it opens: link scanners fetch URLs) confirms the request:

- an account deletion waits out the cooling-off period, then `app.services.erasure` runs;
- withdrawing consent and opting out of sale or sharing take effect at once;
- the rest go to the privacy team's queue, due by the jurisdiction's deadline.

Each change commits with its timeline event, its audit event and its email, or not at all.
Links are built from BASE_URL: emails are rendered by jobs and commands as well as pages.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select, update

from app.extensions import db
from app.jobs import job_handler, record_job
from app.jurisdictions import Jurisdiction, by_code, jurisdiction_for
from app.models import DataRequest, RequestEvent, User, utcnow
from app.models.types import MAX_ID
from app.services import marketing
from app.services.audit import record_event
from app.services.mail import queue_mail
from app.services.profile import DIRECTION_OVERRIDES

VERIFY_SALT = "request-verify"
CANCEL_SALT = "request-cancel"
STATUS_SALT = "request-status"
VERIFY_TTL = timedelta(hours=24)
UNVERIFIED_TTL = timedelta(days=7)
STATUS_LINK_TTL = timedelta(days=400)  # the request's whole life, its appeal included
MAX_RESENDS = 3
MAX_TOKEN_LENGTH = 400
MAX_DETAILS_LENGTH = 5000
DUE_SOON = timedelta(days=7)
ERASE_JOB = "requests.erase"

ERASE = "erase"  # account deletion: cooling-off, then the erasure executor
CONSENT = "consent"  # takes effect on confirmation
MANUAL = "manual"  # the privacy team answers it


@dataclass(frozen=True)
class Kind:
    key: str
    handling: str
    by_email: bool = True  # may be made without signing in
    needs_details: bool = False  # the person must say what they want
    prompt: timedelta | None = None  # answered sooner than the law requires


# In the order the new-request page offers them. Access and portability are not recorded
# here: they lead to the export, which is immediate and self-service.
KINDS: dict[str, Kind] = {
    k.key: k
    for k in (
        Kind("delete_account", ERASE),
        Kind("correct", MANUAL, needs_details=True),
        Kind("restrict", MANUAL, needs_details=True),
        Kind("object", MANUAL, needs_details=True),
        Kind("opt_out_sale", CONSENT),
        Kind("withdraw_consent", CONSENT),
        Kind("appeal", MANUAL, by_email=False, needs_details=True),
        # The platform's notice promises to act "immediately" on a child's account.
        Kind("child_report", MANUAL, needs_details=True, prompt=timedelta(days=2)),
        Kind("question", MANUAL, needs_details=True),
    )
}
ACCESS = "access"

# Staff pick a reason from these; each has a translated text in the user's language.
REFUSAL_REASONS = ("identity", "unfounded", "excessive", "legal_obligation", "no_data")
EXTENSION_REASONS = ("complex", "many_requests")


class RequestError(Exception):
    """Base for every refusal this module gives."""


class UnknownKindError(RequestError, ValueError):
    pass


class DetailsError(RequestError, ValueError):
    """Missing, too long or unreadable details; `reason` is one of the class constants."""

    MISSING = "missing"
    TOO_LONG = "too long"
    CONTROL_CHARACTERS = "control characters"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RequestNotFoundError(RequestError, LookupError):
    pass


class LinkInvalidError(RequestError):
    pass


class LinkExpiredError(RequestError):
    pass


class LinkUsedError(RequestError):
    """The link was followed before, or the request has moved on since it was sent."""

    def __init__(self, data_request: DataRequest | None = None) -> None:
        super().__init__("link already used")
        self.request = data_request


class ResendLimitError(RequestError):
    pass


class DeletionPendingError(RequestError):
    """A deletion is already on its way; `request` is the one to show."""

    def __init__(self, data_request: DataRequest) -> None:
        super().__init__("a deletion request is already pending")
        self.request = data_request


class WrongStateError(RequestError):
    """The request is not in a state that allows this action."""


class NotAppealableError(RequestError):
    pass


# --- reading ----------------------------------------------------------------------------------


def _settings() -> Any:
    return current_app.config["SETTINGS"]


# The right in the rules table that each kind of request exercises. A question and a report
# of a child's account are open to everyone, and we hear appeals wherever the law is silent.
RIGHT_OF_KIND = {
    "delete_account": "erasure",
    "correct": "rectification",
    "restrict": "restriction",
    "object": "objection",
    "opt_out_sale": "opt_out_sale",
    "withdraw_consent": "consent",
}


def offered_kinds(jurisdiction: Jurisdiction, *, signed_in: bool) -> list[Kind]:
    """The kinds of request the law grants where the person is (the rules table's rights),
    and without an account only those that can be made by email."""
    granted = set(jurisdiction.rules.rights)
    return [
        kind
        for kind in KINDS.values()
        if (signed_in or kind.by_email)
        and (kind.key not in RIGHT_OF_KIND or RIGHT_OF_KIND[kind.key] in granted)
    ]


def user_requests(user_id: int, limit: int = 100) -> list[DataRequest]:
    return list(
        db.session.scalars(
            select(DataRequest)
            .where(DataRequest.user_id == user_id)
            .order_by(DataRequest.created_at.desc(), DataRequest.id.desc())
            .limit(limit)
        )
    )


def get_user_request(user_id: int, request_id: int) -> DataRequest:
    """The person's own request; another person's id is as unknown as a missing one."""
    if not 0 < request_id <= MAX_ID:
        raise RequestNotFoundError(request_id)
    found = db.session.scalar(
        select(DataRequest).where(DataRequest.id == request_id, DataRequest.user_id == user_id)
    )
    if found is None:
        raise RequestNotFoundError(request_id)
    return found


def get_request(request_id: int) -> DataRequest:
    if not 0 < request_id <= MAX_ID:
        raise RequestNotFoundError(request_id)
    found = db.session.get(DataRequest, request_id)
    if found is None:
        raise RequestNotFoundError(request_id)
    return found


def timeline(request_id: int) -> list[RequestEvent]:
    return list(
        db.session.scalars(
            select(RequestEvent)
            .where(RequestEvent.request_id == request_id)
            .order_by(RequestEvent.id)
        )
    )


def pending_deletion(user_id: int) -> DataRequest | None:
    """The account's deletion request that is not finished, if there is one."""
    return db.session.scalar(
        select(DataRequest)
        .where(
            DataRequest.user_id == user_id,
            DataRequest.kind == "delete_account",
            DataRequest.status.in_(DataRequest.ACTIVE),
        )
        .order_by(DataRequest.id.desc())
        .limit(1)
    )


def open_requests(user_id: int) -> list[DataRequest]:
    """The person's requests that are not finished, newest first."""
    return [r for r in user_requests(user_id, limit=50) if r.status in DataRequest.ACTIVE]


def is_overdue(data_request: DataRequest, now: datetime | None = None) -> bool:
    return (
        data_request.status == DataRequest.OPEN
        and data_request.due_at is not None
        and data_request.due_at < (now or utcnow())
    )


def can_cancel(data_request: DataRequest) -> bool:
    return data_request.status in (DataRequest.UNVERIFIED, DataRequest.OPEN, DataRequest.WAITING)


def can_appeal(data_request: DataRequest) -> bool:
    return data_request.status == DataRequest.REFUSED and data_request.kind != "appeal"


def can_extend(data_request: DataRequest) -> bool:
    rules = by_code(data_request.jurisdiction).rules
    return (
        data_request.status == DataRequest.OPEN
        and data_request.extended_at is None
        and bool(rules.extension)
    )


def jurisdiction_of(data_request: DataRequest) -> Jurisdiction:
    return by_code(data_request.jurisdiction)


# --- tokens -----------------------------------------------------------------------------------


def _serializer(salt: str) -> URLSafeTimedSerializer:
    settings = _settings()
    return URLSafeTimedSerializer([*settings.secret_key_fallbacks, settings.secret_key], salt=salt)


def _load(salt: str, token: str, max_age: timedelta) -> list[Any]:
    if len(token) > MAX_TOKEN_LENGTH:
        raise LinkInvalidError
    try:
        payload = _serializer(salt).loads(token, max_age=int(max_age.total_seconds()))
    except SignatureExpired:
        raise LinkExpiredError from None
    except BadSignature:
        raise LinkInvalidError from None
    if not isinstance(payload, list) or not payload or type(payload[0]) is not int:
        raise LinkInvalidError
    return payload


def _hash_nonce(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def _link(path: str) -> str:
    return _settings().base_url.rstrip("/") + path


def verify_url(request_id: int, nonce: str) -> str:
    return _link(f"/requests/confirm/{_serializer(VERIFY_SALT).dumps([request_id, nonce])}")


def cancel_url(request_id: int) -> str:
    return _link(f"/requests/cancel/{_serializer(CANCEL_SALT).dumps([request_id])}")


def status_token(request_id: int) -> str:
    """The token of a request's status link (the pages redirect to it after a confirmation)."""
    return _serializer(STATUS_SALT).dumps([request_id])


def status_url(request_id: int) -> str:
    return _link(f"/requests/status/{status_token(request_id)}")


def request_for_status_token(token: str) -> DataRequest:
    """The request an emailed status link shows (for people who are not signed in)."""
    request_id = _load(STATUS_SALT, token, STATUS_LINK_TTL)[0]
    found = db.session.get(DataRequest, request_id)
    if found is None:
        raise LinkInvalidError
    return found


def request_for_cancel_token(token: str) -> DataRequest:
    """The request an emailed cancel link names; changes nothing."""
    request_id = _load(CANCEL_SALT, token, STATUS_LINK_TTL)[0]
    found = db.session.get(DataRequest, request_id)
    if found is None:
        raise LinkInvalidError
    if not can_cancel(found):
        raise LinkUsedError(found)
    return found


def request_for_verify_token(token: str) -> DataRequest:
    """The unverified request a confirmation link names; changes nothing (the page shows a
    button that confirms). LinkUsedError once it was confirmed, cancelled or replaced."""
    payload = _load(VERIFY_SALT, token, VERIFY_TTL)
    if len(payload) != 2 or not isinstance(payload[1], str):
        raise LinkInvalidError
    found = db.session.get(DataRequest, payload[0])
    if found is None:
        raise LinkInvalidError
    if (
        found.status != DataRequest.UNVERIFIED
        or found.verify_nonce_hash is None
        or not secrets.compare_digest(found.verify_nonce_hash, _hash_nonce(payload[1]))
    ):
        raise LinkUsedError(found)
    return found


# --- making a request -------------------------------------------------------------------------


def _event(data_request: DataRequest, kind: str, actor_type: str, **details: Any) -> RequestEvent:
    event = RequestEvent(
        request_id=data_request.id, kind=kind, actor_type=actor_type, details=details
    )
    db.session.add(event)
    return event


def _audit(
    data_request: DataRequest,
    action: str,
    *,
    actor_type: str,
    actor_id: int | None = None,
    **details: Any,
) -> None:
    record_event(
        f"request.{action}",
        actor_type=actor_type,
        actor_id=actor_id,
        subject_user_id=data_request.user_id,
        target=f"request:{data_request.id}",
        details={"kind": data_request.kind, **details},
    )


def clean_details(kind: Kind, details: str | None) -> str | None:
    """The person's text, trimmed; DetailsError when the kind needs it and it is missing,
    or when it is too long or holds control characters."""
    text = (details or "").replace("\r\n", "\n").strip()
    if len(text) > MAX_DETAILS_LENGTH:
        raise DetailsError(DetailsError.TOO_LONG)
    if (
        any(ord(c) < 32 and c not in "\n\t" for c in text)
        or "\x7f" in text
        or not DIRECTION_OVERRIDES.isdisjoint(text)
    ):
        raise DetailsError(DetailsError.CONTROL_CHARACTERS)
    if kind.needs_details and not text:
        raise DetailsError(DetailsError.MISSING)
    return text or None


def _require_kind(key: str, *, signed_in: bool) -> Kind:
    kind = KINDS.get(key)
    if kind is None or not (signed_in or kind.by_email):
        raise UnknownKindError(key)
    return kind


def _send_verification(data_request: DataRequest, address: str) -> None:
    nonce = secrets.token_urlsafe(16)
    data_request.verify_nonce_hash = _hash_nonce(nonce)
    data_request.verification_sent_at = utcnow()
    queue_mail(
        to=address,
        template="request_verify",
        locale=data_request.locale,
        user_id=data_request.user_id,
        data_request=data_request,
        confirm_url=verify_url(data_request.id, nonce),
        link_hours=int(VERIFY_TTL.total_seconds() // 3600),
    )


def create_for_user(
    user: User,
    kind_key: str,
    *,
    details: str | None = None,
    appeal_of_id: int | None = None,
    locale: str | None = None,
) -> DataRequest:
    """A signed-in person's request (the caller checked the fresh password). Emails the
    confirmation link to the account's address and commits."""
    kind = _require_kind(kind_key, signed_in=True)
    text = clean_details(kind, details)
    if kind.handling == ERASE:
        pending = pending_deletion(user.id)
        if pending is not None:
            raise DeletionPendingError(pending)
    if kind.key == "appeal":
        appealed = get_user_request(user.id, appeal_of_id or 0)
        if not can_appeal(appealed):
            raise NotAppealableError(appealed.id)
    jurisdiction = jurisdiction_for(user.country, user.region, _settings().default_country)
    data_request = DataRequest(
        kind=kind.key,
        status=DataRequest.UNVERIFIED,
        user_id=user.id,
        locale=locale or user.locale,
        jurisdiction=jurisdiction.code,
        details=text,
        appeal_of_id=appeal_of_id if kind.key == "appeal" else None,
        expires_at=utcnow() + UNVERIFIED_TTL,
    )
    db.session.add(data_request)
    db.session.flush()
    _event(data_request, "created", "user")
    _audit(data_request, "created", actor_type="user", actor_id=user.id)
    _send_verification(data_request, user.email)
    db.session.commit()
    return data_request


def create_by_email(
    kind_key: str,
    address: str,
    *,
    details: str | None = None,
    locale: str = "en",
    country: str | None = None,
    region: str | None = None,
) -> DataRequest:
    """A request from someone who is not signed in. Does the same work whether or not an
    account uses the address (the account is looked up only once the link is followed), so
    neither the answer nor its timing says whether it exists. A repeat of an unconfirmed
    request of the same kind resends its link (within the resend limit) instead of adding a
    second one. Raises marketing.InvalidAddressError for an address that cannot be one."""
    kind = _require_kind(kind_key, signed_in=False)
    text = clean_details(kind, details)
    normalised = marketing.valid_address(address)
    hash_value = marketing.email_hash(normalised)
    existing = db.session.scalar(
        select(DataRequest).where(
            DataRequest.email_hash == hash_value,
            DataRequest.kind == kind.key,
            DataRequest.status == DataRequest.UNVERIFIED,
            DataRequest.user_id.is_(None),
        )
    )
    if existing is not None:
        resend_verification(existing)
        return existing
    jurisdiction = jurisdiction_for(country, region, _settings().default_country)
    data_request = DataRequest(
        kind=kind.key,
        status=DataRequest.UNVERIFIED,
        email=normalised,
        email_hash=hash_value,
        locale=locale,
        jurisdiction=jurisdiction.code,
        details=text,
        expires_at=utcnow() + UNVERIFIED_TTL,
    )
    db.session.add(data_request)
    db.session.flush()
    _event(data_request, "created", "user", by_email=True)
    _audit(data_request, "created", actor_type="user", by_email=True)
    _send_verification(data_request, normalised)
    db.session.commit()
    return data_request


def _verification_address(data_request: DataRequest) -> str:
    if data_request.user_id is not None:
        user = db.session.get(User, data_request.user_id)
        if user is not None:
            return user.email
    if data_request.email:
        return data_request.email
    raise WrongStateError("nowhere to send the link")


def resend_verification(data_request: DataRequest) -> None:
    """Send a new link (the old one stops working) and commit; ResendLimitError after
    MAX_RESENDS, WrongStateError once the request is no longer waiting for it."""
    if data_request.status != DataRequest.UNVERIFIED:
        raise WrongStateError(data_request.status)
    if data_request.resend_count >= MAX_RESENDS:
        raise ResendLimitError
    data_request.resend_count += 1
    _event(data_request, "verification_resent", "user")
    _send_verification(data_request, _verification_address(data_request))
    db.session.commit()


# --- confirming -------------------------------------------------------------------------------


def _claim_verification(data_request: DataRequest, nonce_hash: str, now: datetime) -> bool:
    """Mark the request verified if this link is still the live one. One conditional UPDATE:
    of two confirmations at the same moment, exactly one wins."""
    result = db.session.execute(
        update(DataRequest)
        .where(
            DataRequest.id == data_request.id,
            DataRequest.status == DataRequest.UNVERIFIED,
            DataRequest.verify_nonce_hash == nonce_hash,
        )
        .values(verify_nonce_hash=None, verified_at=now, status=DataRequest.OPEN)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def _due_at(data_request: DataRequest, start: datetime) -> datetime:
    due = jurisdiction_of(data_request).rules.response.after(start)
    prompt = KINDS[data_request.kind].prompt
    return min(due, start + prompt) if prompt else due


def confirm(token: str, *, now: datetime | None = None) -> DataRequest:
    """Confirm the request a link names and start its handling; commits.

    LinkUsedError for a link followed before (the request is attached, to show its page).
    """
    data_request = request_for_verify_token(token)
    now = now or utcnow()
    assert data_request.verify_nonce_hash is not None
    if not _claim_verification(data_request, data_request.verify_nonce_hash, now):
        db.session.rollback()
        raise LinkUsedError(db.session.get(DataRequest, data_request.id))
    db.session.refresh(data_request)
    _attach_account(data_request)
    data_request.due_at = _due_at(data_request, now)
    _event(data_request, "verified", "user")
    _audit(data_request, "verified", actor_type="user", actor_id=data_request.user_id)
    handling = KINDS[data_request.kind].handling
    if handling == ERASE:
        _start_cooling_off(data_request, now)
    elif handling == CONSENT:
        _apply_consent_request(data_request, now)
    else:
        _mail(data_request, "request_received")
    db.session.commit()
    return data_request


def _attach_account(data_request: DataRequest) -> None:
    """A request made by email concerns the account that uses the address, if any: found
    now, once the person has shown they control it."""
    if data_request.user_id is not None or not data_request.email:
        return
    user = db.session.scalar(
        select(User).where(func.lower(User.email) == data_request.email.lower())
    )
    if user is None:
        return
    data_request.user_id = user.id
    data_request.locale = user.locale or data_request.locale
    if user.country:
        data_request.jurisdiction = jurisdiction_for(
            user.country, user.region, _settings().default_country
        ).code


def _start_cooling_off(data_request: DataRequest, now: datetime) -> None:
    if data_request.user_id is None:
        # No account uses the address: remove what marketing holds for it, and say so.
        _erase_marketing_only(data_request, now)
        return
    if not _replace_other_deletion(data_request):
        # The account's own deletion is already confirmed: it stands; this one adds nothing.
        _finish(data_request, now, outcome="already_scheduled")
        return
    grace = timedelta(days=_settings().deletion_grace_days)
    data_request.status = DataRequest.WAITING
    data_request.cooling_off_until = now + grace
    _event(data_request, "cooling_off_started", "system", days=grace.days)
    _mail(data_request, "deletion_scheduled", cancel_url=cancel_url(data_request.id))
    if not grace:
        record_job(ERASE_JOB, {"request_id": data_request.id})


def _replace_other_deletion(data_request: DataRequest) -> bool:
    """A deletion asked for by email, for an account with a deletion of its own under way:
    one never confirmed gives way to this confirmed one (its link stops working). False
    when the other one was confirmed: it goes ahead and this one is not needed. A
    conditional UPDATE, so the other link followed at the same moment cannot also win."""
    other_id = db.session.scalar(
        select(DataRequest.id).where(
            DataRequest.user_id == data_request.user_id,
            DataRequest.kind == "delete_account",
            DataRequest.status.in_(DataRequest.ACTIVE),
            DataRequest.id != data_request.id,
        )
    )
    if other_id is None:
        return True
    result = db.session.execute(
        update(DataRequest)
        .where(DataRequest.id == other_id, DataRequest.status == DataRequest.UNVERIFIED)
        .values(
            status=DataRequest.CANCELLED, completed_at=utcnow(), verify_nonce_hash=None, email=None
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    db.session.add(
        RequestEvent(
            request_id=other_id, kind="cancelled", actor_type="system", details={"replaced": True}
        )
    )
    return True


def _erase_marketing_only(data_request: DataRequest, now: datetime) -> None:
    from app.services.erasure import erase_address_marketing  # noqa: PLC0415 -- a cycle

    assert data_request.email
    erase_address_marketing(data_request.email)
    _finish(data_request, now, outcome="no_account")


def _apply_consent_request(data_request: DataRequest, now: datetime) -> None:
    """Withdrawing consent stops every optional cookie purpose and all marketing email;
    opting out of sale or sharing stops the purposes flagged so. For the account, if the
    address has one, and for the address on the marketing list."""
    from app.services import consent  # noqa: PLC0415 -- consent imports jurisdictions late

    withdraw_all = data_request.kind == "withdraw_consent"
    user = db.session.get(User, data_request.user_id) if data_request.user_id else None
    if user is not None:
        catalogue = consent.get_catalogue()
        jurisdiction = jurisdiction_of(data_request)
        latest = consent.latest_for_user(user.id)
        state = (
            consent.state_from_record(latest)
            if latest
            else consent.default_state(catalogue, jurisdiction)
        )
        choices = consent.choices_for(catalogue, state)
        off = catalogue.optional_keys if withdraw_all else catalogue.sale_or_sharing_keys
        consent.record_decision(
            catalogue,
            consent.Decision(
                choices={key: choices[key] and key not in off for key in choices},
                source="request",
                jurisdiction=jurisdiction,
                notice_version=_notice_version(),
                user_id=user.id,
            ),
        )
    address = user.email if user is not None else data_request.email
    if withdraw_all and address:
        marketing.withdraw_address(address, source="request", actor_id=data_request.user_id)
    _finish(data_request, now, outcome="applied")


def _notice_version() -> str:
    from app.services.notice import get_notice  # noqa: PLC0415

    return get_notice().current.version


# --- closing ----------------------------------------------------------------------------------


def _finish(
    data_request: DataRequest,
    now: datetime,
    *,
    outcome: str,
    actor_type: str = "system",
    actor_id: int | None = None,
    mail: bool = True,
) -> None:
    """Close the request as done, tell the person, and forget the address it came from
    (the email is rendered first, so it still reaches them)."""
    data_request.status = DataRequest.DONE
    data_request.completed_at = now
    _event(data_request, "completed", actor_type, outcome=outcome)
    _audit(data_request, "completed", actor_type=actor_type, actor_id=actor_id, outcome=outcome)
    if mail:
        _mail(data_request, "request_done", outcome=outcome)
    _forget_contact(data_request)


def _forget_contact(data_request: DataRequest) -> None:
    data_request.email = None
    data_request.verify_nonce_hash = None


def _mail(data_request: DataRequest, template: str, **context: Any) -> None:
    address = _contact_address(data_request)
    if address is None:
        return
    queue_mail(
        to=address,
        template=template,
        locale=data_request.locale,
        user_id=data_request.user_id,
        data_request=data_request,
        status_url=None if data_request.user_id else status_url(data_request.id),
        requests_url=_link(f"/requests/{data_request.id}"),
        authority=jurisdiction_of(data_request).rules.authority,
        **context,
    )


def _contact_address(data_request: DataRequest) -> str | None:
    if data_request.user_id is not None:
        user = db.session.get(User, data_request.user_id)
        if user is not None:
            return user.email
    return data_request.email


def cancel(
    data_request: DataRequest, *, actor_type: str = "user", actor_id: int | None = None
) -> DataRequest:
    """Withdraw a request that has not been answered yet (a deletion until its erasure
    starts); commits. WrongStateError afterwards. A conditional UPDATE, so a cancel and the
    erasure starting at the same moment cannot both win."""
    result = db.session.execute(
        update(DataRequest)
        .where(
            DataRequest.id == data_request.id,
            DataRequest.status.in_((DataRequest.UNVERIFIED, DataRequest.OPEN, DataRequest.WAITING)),
        )
        .values(status=DataRequest.CANCELLED, completed_at=utcnow(), verify_nonce_hash=None)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        db.session.rollback()
        raise WrongStateError(data_request.status)
    db.session.refresh(data_request)
    _event(data_request, "cancelled", actor_type)
    _audit(data_request, "cancelled", actor_type=actor_type, actor_id=actor_id)
    if data_request.kind == "delete_account" and data_request.verified_at is not None:
        _mail(data_request, "deletion_cancelled")
    _forget_contact(data_request)
    db.session.commit()
    return data_request


def cancel_by_token(token: str) -> DataRequest:
    return cancel(request_for_cancel_token(token))


# --- the privacy team -------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueFilter:
    status: str | None = None
    kind: str | None = None
    due: str | None = None  # "soon" | "overdue"


def staff_queue(
    filters: QueueFilter, *, now: datetime | None = None, limit: int = 200
) -> list[DataRequest]:
    """Requests for the staff queue, the most urgent first."""
    now = now or utcnow()
    query = select(DataRequest)
    if filters.status:
        query = query.where(DataRequest.status == filters.status)
    else:
        query = query.where(DataRequest.status != DataRequest.EXPIRED)
    if filters.kind:
        query = query.where(DataRequest.kind == filters.kind)
    if filters.due == "overdue":
        query = query.where(DataRequest.status == DataRequest.OPEN, DataRequest.due_at < now)
    elif filters.due == "soon":
        query = query.where(
            DataRequest.status == DataRequest.OPEN,
            DataRequest.due_at >= now,
            DataRequest.due_at < now + DUE_SOON,
        )
    order = (DataRequest.due_at.is_(None), DataRequest.due_at, DataRequest.id)
    return list(db.session.scalars(query.order_by(*order).limit(limit)))


def _staff_action(data_request: DataRequest, action: str, staff: User, **details: Any) -> None:
    _event(data_request, action, "staff", **details)
    _audit(data_request, action, actor_type="staff", actor_id=staff.id, **details)


def _require_open(data_request: DataRequest) -> None:
    if data_request.status != DataRequest.OPEN:
        raise WrongStateError(data_request.status)


def _take_open(data_request: DataRequest, *conditions: Any, **values: Any) -> None:
    """Change an open request in one conditional UPDATE: a cancellation or another staff
    member's action at the same moment makes this one fail with WrongStateError instead of
    overwriting it (and mailing the person twice)."""
    result = db.session.execute(
        update(DataRequest)
        .where(
            DataRequest.id == data_request.id, DataRequest.status == DataRequest.OPEN, *conditions
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        db.session.rollback()
        raise WrongStateError(data_request.status)
    db.session.refresh(data_request)


def complete(data_request: DataRequest, staff: User, *, note_key: str = "done") -> DataRequest:
    """The privacy team answered the request (corrected, restricted, replied); commits."""
    now = utcnow()
    _take_open(data_request, status=DataRequest.DONE, completed_at=now)
    _finish(data_request, now, outcome=note_key, actor_type="staff", actor_id=staff.id)
    db.session.commit()
    return data_request


def mark_step_done(data_request: DataRequest, staff: User, step: str) -> DataRequest:
    """Record a manual step (a change made in another system) on the timeline; commits."""
    if step not in manual_steps(data_request.kind):
        raise WrongStateError(step)
    _require_open(data_request)
    if step in steps_done(data_request):
        return data_request  # ticked already (a second click): recorded once
    _staff_action(data_request, "step_done", staff, step=step)
    db.session.commit()
    return data_request


def steps_done(data_request: DataRequest) -> set[str]:
    """The manual steps already ticked on the request's timeline."""
    return {
        str(event.details.get("step"))
        for event in timeline(data_request.id)
        if event.kind == "step_done" and event.details
    }


def manual_steps(kind: str) -> tuple[str, ...]:
    """What the team has to do by hand for a kind, in order; each is ticked on the timeline."""
    return {
        "correct": ("data_checked", "data_corrected", "recipients_told"),
        "restrict": ("processing_restricted", "recipients_told"),
        "object": ("objection_assessed", "processing_stopped"),
        "appeal": ("decision_reviewed",),
        "child_report": ("account_identified", "account_suspended", "account_deleted"),
        "question": ("answered",),
    }.get(kind, ())


def refuse(data_request: DataRequest, staff: User, reason: str) -> DataRequest:
    """Refuse with one of REFUSAL_REASONS; the person is told why and how to appeal or
    complain; commits."""
    if reason not in REFUSAL_REASONS:
        raise WrongStateError(reason)
    _take_open(
        data_request, status=DataRequest.REFUSED, refusal_reason=reason, completed_at=utcnow()
    )
    _staff_action(data_request, "refused", staff, reason=reason)
    _mail(data_request, "request_refused", reason=reason)
    db.session.commit()
    return data_request


def extend(data_request: DataRequest, staff: User, reason: str) -> DataRequest:
    """Use the extension the jurisdiction allows, once, with a reason the person is told;
    commits."""
    if reason not in EXTENSION_REASONS:
        raise WrongStateError(reason)
    if not can_extend(data_request):
        raise WrongStateError(data_request.status)
    assert data_request.due_at is not None
    _take_open(
        data_request,
        DataRequest.extended_at.is_(None),
        due_at=jurisdiction_of(data_request).rules.extension.after(data_request.due_at),
        extended_at=utcnow(),
        extension_reason=reason,
    )
    _staff_action(data_request, "extended", staff, reason=reason)
    _mail(data_request, "request_extended", reason=reason)
    db.session.commit()
    return data_request


def staff_user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None or not user.is_staff:
        raise RequestNotFoundError(user_id)
    return user


# --- the sweeper ------------------------------------------------------------------------------


def expire_unverified(now: datetime | None = None) -> int:
    """Close requests nobody confirmed within UNVERIFIED_TTL and forget their address."""
    now = now or utcnow()
    stale = list(
        db.session.scalars(
            select(DataRequest)
            .where(DataRequest.status == DataRequest.UNVERIFIED, DataRequest.expires_at <= now)
            .limit(500)
        )
    )
    for data_request in stale:
        data_request.status = DataRequest.EXPIRED
        data_request.completed_at = now
        data_request.details = None  # never confirmed: it may not even be the owner's text
        _forget_contact(data_request)
        _event(data_request, "expired", "system")
    db.session.commit()
    return len(stale)


def due_erasure_ids(now: datetime | None = None) -> Sequence[int]:
    """Deletions whose cooling-off is over, and erasures that stopped midway."""
    now = now or utcnow()
    return list(
        db.session.scalars(
            select(DataRequest.id)
            .where(
                (
                    (DataRequest.status == DataRequest.WAITING)
                    & (DataRequest.cooling_off_until <= now)
                )
                | (DataRequest.status == DataRequest.ERASING)
            )
            .order_by(DataRequest.id)
        )
    )


@job_handler(ERASE_JOB)
def erase_job(payload: dict[str, Any]) -> None:
    from app.services.erasure import run_erasure  # noqa: PLC0415 -- a cycle

    run_erasure(payload["request_id"])


def record_progress(data_request: DataRequest, kind: str) -> None:
    """For the erasure executor: a system step on the timeline and in the audit log."""
    _event(data_request, kind, "system")
    _audit(data_request, kind, actor_type="system")


def send_mail_for(data_request: DataRequest, template: str, **context: Any) -> None:
    """For the erasure executor: queue one of this module's emails (the caller commits)."""
    _mail(data_request, template, **context)


def finish(data_request: DataRequest, *, outcome: str) -> None:
    """For the erasure executor: close the request as done (the caller commits)."""
    _finish(data_request, utcnow(), outcome=outcome, mail=False)
