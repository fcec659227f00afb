"""Correcting your own account details, and changing the sign-in address safely.

A new sign-in address takes effect only when someone follows the link sent to it: the link
proves control of the new mailbox, and the old mailbox is told, so a stolen password alone
cannot move an account to another address unnoticed. The link is an itsdangerous signature of
the change's id and a random nonce (no address in it); only the nonce's hash is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any

from babel import Locale
from email_validator import EmailNotValidError, validate_email
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import BillingAddress, EmailChange, User, utcnow
from app.services import marketing
from app.services.audit import record_event
from app.services.auth import find_user_by_email, verify_password
from app.services.mail import queue_mail

EMAIL_CHANGE_TTL = timedelta(hours=24)
TOKEN_SALT = "email-change"  # noqa: S105 -- a signing purpose, not a secret
REGION_CODE = re.compile(r"[A-Z0-9]{1,3}")
# Two-letter codes Babel knows that are not countries or territories a person lives in:
# groupings (EU, UN), pseudo-locales, "unknown", and ISO's exceptional reservations.
NOT_COUNTRIES = frozenset(
    {"AC", "CP", "CQ", "DG", "EA", "EU", "EZ", "IC", "QO", "TA", "UN", "XA", "XB", "ZZ"}
)
# Line and paragraph separators are as unwelcome in a name or an address as a raw newline.
_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
# Bidirectional overrides and isolates reorder the text around them: a name could show staff
# something else than it says ("Trojan Source"). Marks such as U+200F stay allowed.
DIRECTION_OVERRIDES = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
PROFILE_FIELDS = ("name", "country", "region", "locale")
ADDRESS_FIELDS = ("name", "line1", "line2", "city", "postal_code", "region", "country")
ADDRESS_REQUIRED = ("name", "line1", "city", "postal_code", "country")


# --- errors -----------------------------------------------------------------------------------


class ProfileError(ValueError):
    """A value the form should have refused; `field` names it."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


class EmailChangeError(Exception):
    """Base of everything that stops an email change."""


class WrongPasswordError(EmailChangeError):
    pass


class SameAddressError(EmailChangeError):
    pass


class InvalidAddressError(EmailChangeError):
    pass


class LinkInvalidError(EmailChangeError):
    """Tampered, truncated or unknown: nothing this service ever signed."""


class LinkExpiredError(EmailChangeError):
    pass


class LinkUsedError(EmailChangeError):
    """Already confirmed, or cancelled (by the person or by a newer request)."""

    def __init__(self, confirmed: bool) -> None:
        super().__init__("confirmed" if confirmed else "cancelled")
        self.confirmed = confirmed


class AddressTakenError(EmailChangeError):
    """Another account signs in with the new address now."""


# --- countries and plain text -----------------------------------------------------------------


@cache
@cache
def country_codes() -> frozenset[str]:
    return frozenset(
        code
        for code in Locale("en").territories
        if len(code) == 2 and code.isalpha() and code.isupper() and code not in NOT_COUNTRIES
    )


def is_country_code(code: str | None) -> bool:
    return code in country_codes()


def _collation_key(name: str) -> str:
    # Close to a dictionary's order without ICU: "Österreich" sorts with the O's, not after Z.
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


@cache
def country_choices(locale: str) -> tuple[tuple[str, str], ...]:
    """(code, name in `locale`) for every country, sorted by name as a reader of it expects."""
    try:
        names = Locale.parse(locale).territories
    except (ValueError, TypeError):
        names = Locale("en").territories
    english = Locale("en").territories
    pairs = [(code, names.get(code) or english[code]) for code in country_codes()]
    return tuple(sorted(pairs, key=lambda pair: (_collation_key(pair[1]), pair[0])))


def has_control_characters(value: str | None) -> bool:
    return any(
        unicodedata.category(c) in _CONTROL_CATEGORIES or c in DIRECTION_OVERRIDES
        for c in value or ""
    )


def mask_email(address: str) -> str:
    """`jane@example.org` -> `j***@example.org`: enough to recognise, not enough to reuse."""
    local, at, domain = address.rpartition("@")
    if not at or not local:
        return "***"
    return f"{local[0]}***@{domain}"


# --- profile details --------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileDetails:
    name: str
    country: str | None
    region: str | None
    locale: str


@dataclass(frozen=True)
class AddressDetails:
    name: str | None = None
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    postal_code: str | None = None
    region: str | None = None
    country: str | None = None

    @property
    def is_blank(self) -> bool:
        return not any(getattr(self, name) for name in ADDRESS_FIELDS)

    def missing(self) -> list[str]:
        """Required fields left empty (none when the whole address is blank)."""
        if self.is_blank:
            return []
        return [name for name in ADDRESS_REQUIRED if not getattr(self, name)]


def billing_address(user_id: int) -> BillingAddress | None:
    """The address used for new invoices: the newest one, if the person has several."""
    return db.session.scalar(
        select(BillingAddress)
        .where(BillingAddress.user_id == user_id)
        .order_by(BillingAddress.created_at.desc(), BillingAddress.id.desc())
        .limit(1)
    )


def _check_details(details: ProfileDetails, allowed_locales: Collection[str]) -> None:
    if has_control_characters(details.name) or len(details.name) > 200:
        raise ProfileError("name")
    if details.country is not None and not is_country_code(details.country):
        raise ProfileError("country")
    if details.region is not None and (
        details.country is None or not REGION_CODE.fullmatch(details.region)
    ):
        raise ProfileError("region")
    if details.locale not in allowed_locales:
        raise ProfileError("locale")


def _check_address(address: AddressDetails, existing: BillingAddress | None) -> None:
    columns = BillingAddress.__table__.columns
    for name in ADDRESS_FIELDS:
        value = getattr(address, name)
        if value is not None and (
            has_control_characters(value) or len(value) > columns[name].type.length
        ):
            raise ProfileError(f"billing_{name}")
    if address.country is not None and not is_country_code(address.country):
        raise ProfileError("billing_country")
    # A saved address can be corrected but not emptied here (the data map allows no single
    # deletion of it); so once one exists, the required parts stay required.
    missing = address.missing() or (list(ADDRESS_REQUIRED) if address.is_blank and existing else [])
    if missing:
        raise ProfileError(f"billing_{missing[0]}")


def _apply_address(user_id: int, address: AddressDetails) -> list[str]:
    existing = billing_address(user_id)
    _check_address(address, existing)
    if address.is_blank:
        return []
    if existing is None:
        db.session.add(
            BillingAddress(
                user_id=user_id,
                created_at=utcnow(),
                **{name: getattr(address, name) for name in ADDRESS_FIELDS},
            )
        )
        return ["billing_address"]
    changed = []
    for name in ADDRESS_FIELDS:
        value = getattr(address, name)
        if getattr(existing, name) != value:
            setattr(existing, name, value)
            changed.append(f"billing_address.{name}")
    return changed


def update_profile(
    user: User,
    details: ProfileDetails,
    address: AddressDetails,
    *,
    allowed_locales: Collection[str],
) -> list[str]:
    """Save corrected details; the names of the fields that changed (empty: nothing did).

    The change and its audit event (field names only, never values) commit together.
    """
    _check_details(details, allowed_locales)
    changed = []
    for name in PROFILE_FIELDS:
        value = getattr(details, name)
        if (getattr(user, name) or None) != (value or None):
            setattr(user, name, value)
            changed.append(name)
    try:
        changed += _apply_address(user.id, address)
    except ProfileError:
        db.session.rollback()
        raise
    if not changed:
        db.session.rollback()
        return []
    record_event(
        "profile.updated",
        actor_type="user",
        actor_id=user.id,
        subject_user_id=user.id,
        details={"fields": changed},
    )
    db.session.commit()
    return changed


# --- the confirmation link --------------------------------------------------------------------


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=TOKEN_SALT)


def _hash_nonce(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def make_token(secret_key: str, change_id: int, nonce: str) -> str:
    return _serializer(secret_key).dumps({"c": change_id, "n": nonce})


def read_token(
    secret_key: str, token: str, max_age: timedelta = EMAIL_CHANGE_TTL
) -> tuple[int, str]:
    """(change id, nonce) from a link; LinkExpiredError or LinkInvalidError otherwise."""
    try:
        payload: Any = _serializer(secret_key).loads(token, max_age=int(max_age.total_seconds()))
    except SignatureExpired:
        raise LinkExpiredError from None
    except BadSignature:
        raise LinkInvalidError from None
    if not isinstance(payload, dict):
        raise LinkInvalidError
    change_id, nonce = payload.get("c"), payload.get("n")
    if type(change_id) is not int or not isinstance(nonce, str) or not nonce:
        raise LinkInvalidError
    return change_id, nonce


# --- asking for a change ----------------------------------------------------------------------


def pending_email_change(user_id: int) -> EmailChange | None:
    """The change waiting for confirmation, if any (at most one: a new one cancels the rest)."""
    return db.session.scalar(
        select(EmailChange)
        .where(
            EmailChange.user_id == user_id,
            EmailChange.confirmed_at.is_(None),
            EmailChange.cancelled_at.is_(None),
            EmailChange.expires_at > utcnow(),
        )
        .order_by(EmailChange.created_at.desc(), EmailChange.id.desc())
        .limit(1)
    )


def _cancel_pending(user_id: int, *, except_id: int | None = None) -> int:
    query = update(EmailChange).where(
        EmailChange.user_id == user_id,
        EmailChange.confirmed_at.is_(None),
        EmailChange.cancelled_at.is_(None),
    )
    if except_id is not None:
        query = query.where(EmailChange.id != except_id)
    result = db.session.execute(
        query.values(cancelled_at=utcnow()).execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def normalise_new_email(address: str) -> str:
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        raise InvalidAddressError from None


def request_email_change(
    user: User,
    *,
    new_email: str,
    password: str,
    secret_key: str,
    confirm_url: Callable[[str], str],
    profile_url: str,
) -> EmailChange:
    """Record a change and queue its two messages, in one transaction.

    The new address gets the confirmation link. If another account already signs in with
    it, that address gets a note instead (no link) and the person asking sees exactly the
    same answer, so the form cannot be used to find out who has an account. The old address
    is told in both cases, with the new one partly hidden.
    """
    if not verify_password(user, password):
        db.session.rollback()
        raise WrongPasswordError
    address = normalise_new_email(new_email)
    if address.lower() == user.email.lower():
        raise SameAddressError
    _cancel_pending(user.id)
    nonce = secrets.token_urlsafe(32)
    now = utcnow()
    change = EmailChange(
        user_id=user.id,
        old_email=user.email,
        new_email=address,
        nonce_hash=_hash_nonce(nonce),
        created_at=now,
        expires_at=now + EMAIL_CHANGE_TTL,
    )
    db.session.add(change)
    db.session.flush()
    owner = find_user_by_email(address)
    if owner is None:
        queue_mail(
            to=address,
            template="email_change_confirm",
            locale=user.locale,
            user_id=user.id,
            new_email=address,
            confirm_url=confirm_url(make_token(secret_key, change.id, nonce)),
        )
    else:
        queue_mail(
            to=owner.email,
            template="email_address_in_use",
            locale=owner.locale,
            user_id=owner.id,
            address=owner.email,
        )
    queue_mail(
        to=user.email,
        template="email_change_notice",
        locale=user.locale,
        user_id=user.id,
        masked_new_email=mask_email(address),
        profile_url=profile_url,
    )
    record_event(
        "profile.email_change_requested",
        actor_type="user",
        actor_id=user.id,
        subject_user_id=user.id,
        target=f"email_change:{change.id}",
    )
    db.session.commit()
    return change


def cancel_email_change(user: User) -> bool:
    """Cancel the pending change, if there is one; True when something was cancelled."""
    pending = pending_email_change(user.id)
    if pending is None:
        return False
    _cancel_pending(user.id)
    record_event(
        "profile.email_change_cancelled",
        actor_type="user",
        actor_id=user.id,
        subject_user_id=user.id,
        target=f"email_change:{pending.id}",
    )
    db.session.commit()
    return True


# --- following the link -----------------------------------------------------------------------


def _address_taken(address: str, user_id: int) -> bool:
    return (
        db.session.scalar(
            select(User.id).where(func.lower(User.email) == address.lower(), User.id != user_id)
        )
        is not None
    )


def check_email_change(secret_key: str, token: str) -> tuple[EmailChange, User]:
    """The change a link stands for, if it can still be confirmed; changes nothing."""
    change_id, nonce = read_token(secret_key, token)
    change = db.session.get(EmailChange, change_id)
    if change is None or not hmac.compare_digest(change.nonce_hash, _hash_nonce(nonce)):
        raise LinkInvalidError
    if change.confirmed_at is not None:
        raise LinkUsedError(confirmed=True)
    user = db.session.get(User, change.user_id)
    # A change made for an address the account no longer has is as good as cancelled.
    if (
        change.cancelled_at is not None
        or user is None
        or user.email.lower() != change.old_email.lower()
    ):
        raise LinkUsedError(confirmed=False)
    if utcnow() >= change.expires_at:
        raise LinkExpiredError
    if _address_taken(change.new_email, user.id):
        raise AddressTakenError
    return change, user


def confirm_email_change(secret_key: str, token: str, *, profile_url: str) -> EmailChange:
    """Make the new address the sign-in address, sign the account out everywhere, tell both."""
    change, user = check_email_change(secret_key, token)
    now = utcnow()
    # Claimed with a conditional update, so two clicks at once confirm exactly once.
    claimed = db.session.execute(
        update(EmailChange)
        .where(
            EmailChange.id == change.id,
            EmailChange.confirmed_at.is_(None),
            EmailChange.cancelled_at.is_(None),
        )
        .values(confirmed_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        db.session.rollback()
        raise LinkUsedError(confirmed=True)
    old_email = user.email
    user.email = change.new_email
    user.session_version = (user.session_version or 1) + 1
    try:
        db.session.flush()
    except IntegrityError:  # taken between the check and now
        db.session.rollback()
        raise AddressTakenError from None
    _cancel_pending(user.id, except_id=change.id)
    # Marketing email the person asked for follows them to the new address.
    marketing.follow_account_address(user.id, change.new_email)
    record_event(
        "profile.email_changed",
        actor_type="user",
        actor_id=user.id,
        subject_user_id=user.id,
        target=f"email_change:{change.id}",
    )
    for recipient, to in (("new", change.new_email), ("old", old_email)):
        queue_mail(
            to=to,
            template="email_changed",
            locale=user.locale,
            user_id=user.id,
            recipient=recipient,
            new_email=change.new_email if recipient == "new" else mask_email(change.new_email),
            profile_url=profile_url,
        )
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise AddressTakenError from None
    db.session.refresh(change)
    return change
