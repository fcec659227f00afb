"""A person's choices about optional processing, and changes to their account details."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UTCDateTime, utcnow


class ProcessingChoice(db.Model):
    """One decision about a processing purpose (e.g. model improvement); never updated.

    The current choice is the newest row; the rows before it are the person's history.
    """

    __tablename__ = "processing_choices"
    __table_args__ = (
        Index("ix_processing_choices_user_purpose", "user_id", "purpose", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(64))
    allowed: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(16))  # page | api | staff | default
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EmailChange(db.Model):
    """A requested change of sign-in address, waiting for the new address to confirm it."""

    __tablename__ = "email_changes"
    __table_args__ = (Index("ix_email_changes_user_created", "user_id", "created_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    old_email: Mapped[str] = mapped_column(String(254))
    new_email: Mapped[str] = mapped_column(String(254))
    # A random value carried by the signed link; stored hashed so a database reader cannot
    # build a working link.
    nonce_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class NoticeVersion(db.Model):
    """A published version of the privacy notice, with the data map it was rendered from."""

    __tablename__ = "notice_versions"
    __personal_data__ = "no: the published privacy notice"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(32), unique=True)
    published_on: Mapped[str] = mapped_column(String(10))  # ISO date, as published
    fingerprint: Mapped[str] = mapped_column(String(64))
    snapshot: Mapped[str] = mapped_column(db.Text)  # the data map document (YAML) of the version
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
