"""Data-subject requests: what a person asked for, each step of its handling, and the
recorded steps of an account erasure (so a crash resumes where it stopped)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UTCDateTime, utcnow


class DataRequest(db.Model):
    """One request. After the account it concerns is erased, the row stays as the minimal
    proof that the request was made and answered: kind, dates, outcome and a pseudonym."""

    __tablename__ = "data_requests"
    __table_args__ = (
        Index("ix_data_requests_user_created", "user_id", "created_at", "id"),
        Index("ix_data_requests_status_due", "status", "due_at"),
        Index("ix_data_requests_email_hash", "email_hash"),
    )

    UNVERIFIED = "unverified"  # waiting for the person to follow the emailed link
    OPEN = "open"  # verified; the privacy team is working on it
    WAITING = "waiting"  # an account deletion in its cooling-off period
    ERASING = "erasing"  # the erasure is running
    DONE = "done"
    REFUSED = "refused"
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # never verified
    ACTIVE = (UNVERIFIED, OPEN, WAITING, ERASING)
    FINAL = (DONE, REFUSED, CANCELLED, EXPIRED)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(16), default=UNVERIFIED)
    # Kept as a plain link that becomes NULL when the account goes: the request outlives it.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # The address a request made without signing in came from (and the one an erasure's
    # last message goes to); cleared when the request is closed.
    email: Mapped[str | None] = mapped_column(String(254))
    email_hash: Mapped[str | None] = mapped_column(String(64))  # keyed, like the suppression list
    locale: Mapped[str] = mapped_column(String(16), default="en")
    jurisdiction: Mapped[str] = mapped_column(String(8), default="ZZ")
    details: Mapped[str | None] = mapped_column(Text)  # what the person wrote to us
    appeal_of_id: Mapped[int | None] = mapped_column(ForeignKey("data_requests.id"))
    verify_nonce_hash: Mapped[str | None] = mapped_column(String(64))
    verification_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resend_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # while unverified
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    extended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    extension_reason: Mapped[str | None] = mapped_column(String(32))
    cooling_off_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    erasure_locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    refusal_reason: Mapped[str | None] = mapped_column(String(32))
    retained_as: Mapped[str | None] = mapped_column(String(40))
    retain_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RequestEvent(db.Model):
    """One line of a request's timeline. Holds keys (a reason, a step), never free text."""

    __tablename__ = "request_events"
    __table_args__ = (Index("ix_request_events_request", "request_id", "id"),)
    __personal_data__ = "no: event kinds and reason keys of a request, by design"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("data_requests.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    actor_type: Mapped[str] = mapped_column(String(16))  # user | staff | system
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ErasureStep(db.Model):
    """A finished step of an account erasure; its presence is what makes the step idempotent."""

    __tablename__ = "erasure_steps"
    __table_args__ = (UniqueConstraint("request_id", "step", name="uq_erasure_steps_step"),)
    __personal_data__ = "no: step names and row counts of an erasure"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("data_requests.id", ondelete="CASCADE"))
    step: Mapped[str] = mapped_column(String(64))
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    done_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
