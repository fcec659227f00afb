"""Passwords and sign-in rules (no HTTP here: the web layer calls these)."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select

from app.extensions import db
from app.models import User, utcnow

_hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters


@cache
def _dummy_hash() -> str:
    """Verified against when the address is unknown, so both answers take the same time.

    Made on first use, not at import: hashing costs 64 MiB and a few hundred milliseconds,
    which every worker process would otherwise pay at start-up whether or not it signs in.
    """
    return _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def normalise_email(email: str) -> str:
    return email.strip()


def find_user_by_email(email: str) -> User | None:
    return db.session.scalar(
        select(User).where(func.lower(User.email) == normalise_email(email).lower())
    )


def verify_password(user: User | None, password: str) -> bool:
    """Check a password; upgrade the stored hash when the parameters have changed."""
    try:
        _hasher.verify(user.password_hash if user else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    if user is None:
        return False
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return True


def authenticate(email: str, password: str) -> User | None:
    """The account for these credentials, or None. Records the sign-in time on success."""
    user = find_user_by_email(email)
    if not verify_password(user, password):
        return None
    assert user is not None
    user.last_sign_in_at = utcnow()
    db.session.commit()
    return user


def load_user_from_session_id(session_id: str) -> User | None:
    """Flask-Login's user loader: ids look like "<id>:<session version>"."""
    user_id, _, version = session_id.partition(":")
    if not (user_id.isdigit() and version.isdigit()):
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.session_version != int(version):
        return None
    return user
